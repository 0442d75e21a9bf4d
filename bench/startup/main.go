// Command startup measures how long Vigil takes from process start to its
// first blocked answer: it starts the given command, queries NAME on ADDR
// every few milliseconds, and prints the milliseconds until an answer of
// 0.0.0.0 arrives. It then waits for the command to end (so the command
// is reaped by its parent, not left a zombie); its PID goes to -pidfile.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:15353", "Vigil's `ADDR`")
	name := flag.String("name", "", "a blocked `NAME`")
	pidfile := flag.String("pidfile", "", "write the started process's PID to `FILE`")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if *name == "" || flag.NArg() == 0 {
		log.Fatal("usage: startup -name NAME [-addr ADDR] -- command args...")
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(*name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 20 * time.Millisecond}
	for time.Since(start) < *timeout {
		r, _, err := c.Exchange(q, *addr)
		if err == nil && len(r.Answer) == 1 {
			if a, ok := r.Answer[0].(*dns.A); ok && a.A.IsUnspecified() {
				fmt.Printf("%d\n", time.Since(start).Milliseconds())
				_ = os.Stdout.Sync()
				_ = cmd.Wait()
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	log.Fatalf("no blocked answer for %s within %s", *name, *timeout)
}
