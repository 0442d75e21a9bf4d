package groups

import (
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

// BenchmarkGroupsMemory builds one Matcher of a million names over
// sixteen lists and puts one or sixteen groups on it, each with its own
// lists: what groups cost in memory (the table is shared; each group adds
// a set of list indexes) and per lookup (a listed name, the client's set
// in hand). The no-groups case is Match over every list.
func BenchmarkGroupsMemory(b *testing.B) {
	const names, lists = 1_000_000, 16
	bl := blocklists.NewBuilder()
	bl.Grow(names)
	var listNames []string
	for i := range lists {
		n := "list" + strconv.Itoa(i)
		listNames = append(listNames, n)
		_, _ = bl.AddList(blocklists.ListInfo{Name: n})
	}
	for i := range names {
		bl.Add(i%lists, blocklists.Rule{Name: "n" + strconv.Itoa(i) + ".example", Suffix: true})
	}
	m, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	queries := make([]string, 4096)
	for i := range queries {
		queries[i] = "www.n" + strconv.Itoa(i*241%names) + ".example."
	}
	for _, n := range []int{0, 1, 16} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			var cfgs []Config
			for i := range n {
				c := Config{Name: "g" + strconv.Itoa(i), Clients: []string{"10.0." + strconv.Itoa(i) + ".0/24"}}
				for k := range lists / 2 {
					c.Lists = append(c.Lists, listNames[(i+k)%lists])
				}
				cfgs = append(cfgs, c)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			g := New(cfgs, nil)
			v := g.ViewFor(m.Lists(), time.Now())
			sets := make([]*blocklists.ListSet, max(n, 1))
			for i := range sets {
				addr := netip.MustParseAddr("10.0." + strconv.Itoa(i) + ".7")
				sets[i] = v.Set(g.Of("", addr, [6]byte{}), "", addr)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			i := 0
			for b.Loop() {
				if _, ok := m.MatchIn(queries[i&4095], sets[i%len(sets)]); !ok && n == 0 {
					b.Fatal("no match")
				}
				i++
			}
			runtime.KeepAlive(g)
			// After the loop: b.Loop resets what was reported before it.
			b.ReportMetric(float64(m.Bytes())/1e6, "table-MB")
			b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "groups-B")
		})
	}
}
