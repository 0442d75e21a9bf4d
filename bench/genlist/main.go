// Command genlist writes a deterministic benchmark data set: a blocklist of
// N names in adblock syntax, and query files in dnsperf's format for the
// three mixes the benchmark measures (cached, blocked, cache-miss).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
)

var tlds = []string{"com", "net", "org", "io", "cn", "de", "xyz", "info", "co", "app"}

const letters = "abcdefghijklmnopqrstuvwxyz0123456789"

func label(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	if b[0] >= '0' && b[0] <= '9' {
		b[0] = 'x'
	}
	return string(b)
}

func create(dir, name string) (*os.File, *bufio.Writer) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	return f, bufio.NewWriterSize(f, 1<<20)
}

func closeAll(f *os.File, w *bufio.Writer) {
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func main() {
	n := flag.Int("n", 1_000_000, "names in the blocklist")
	cached := flag.Int("cached", 10_000, "distinct names in the cached mix")
	blocked := flag.Int("blocked", 100_000, "queries in the blocked mix")
	miss := flag.Int("miss", 2_000_000, "distinct names in the cache-miss mix")
	dir := flag.String("out", ".", "output `DIR`")
	flag.Parse()
	r := rand.New(rand.NewPCG(2026, 11))

	names := make([]string, *n)
	lf, lw := create(*dir, "list.txt")
	fmt.Fprintf(lw, "[Adblock Plus]\n! Title: vigil benchmark list, %d names\n", *n)
	for i := range names {
		// Two or three labels, like real tracker names.
		name := label(r, 4+r.IntN(10)) + "." + tlds[r.IntN(len(tlds))]
		if r.IntN(3) == 0 {
			name = label(r, 2+r.IntN(8)) + "." + name
		}
		names[i] = name
		fmt.Fprintf(lw, "||%s^\n", name)
	}
	closeAll(lf, lw)

	// Cached and missed names are under "example" (RFC 2606): reserved,
	// yet forwarded like any public name, where "test" (RFC 6761) is
	// answered locally by resolvers that honour it, Vigil among them.
	cf, cw := create(*dir, "cached.txt")
	for i := range *cached {
		fmt.Fprintf(cw, "host%d.allowed-%d.example A\n", i, i%97)
	}
	closeAll(cf, cw)

	bf, bw := create(*dir, "blocked.txt")
	for range *blocked {
		name := names[r.IntN(len(names))]
		if r.IntN(2) == 0 {
			name = label(r, 3) + "." + name // a subdomain of a listed name
		}
		fmt.Fprintf(bw, "%s A\n", name)
	}
	closeAll(bf, bw)

	mf, mw := create(*dir, "miss.txt")
	for i := range *miss {
		fmt.Fprintf(mw, "m%d.miss-%d.example A\n", i, i%101)
	}
	closeAll(mf, mw)
}
