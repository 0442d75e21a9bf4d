// Command stubdns is a minimal authoritative-looking DNS server for
// benchmarks and manual runs on loopback: it answers every A question with
// one address, AAAA with one address, names under "nx." with NXDOMAIN, and
// anything else with an empty NOERROR. It never forwards anywhere.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:5300", "`ADDR` to serve on, UDP and TCP")
	ttl := flag.Uint("ttl", 3600, "TTL of the answers")
	flag.Parse()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: uint32(*ttl), Rrtype: q.Qtype}
		switch {
		case strings.HasPrefix(strings.ToLower(q.Name), "nx."):
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
				Ns: "ns.stub.", Mbox: "hostmaster.stub.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}}
		case q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 1)}}
		case q.Qtype == dns.TypeAAAA:
			m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::1")}}
		}
		_ = w.WriteMsg(m)
	})
	errs := make(chan error, 2)
	for _, n := range []string{"udp", "tcp"} {
		s := &dns.Server{Addr: *addr, Net: n, Handler: h, UDPSize: 65535}
		go func() { errs <- s.ListenAndServe() }()
	}
	fmt.Fprintf(os.Stderr, "stubdns: answering on %s\n", *addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errs:
		log.Fatal(err)
	case <-sig:
	}
}
