package resolver

import (
	"context"
	"net/netip"
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/store/querylog"
)

// BenchmarkFastPathBlockedLog is a blocked answer from the fast path
// without the per-client log, with a recorder that drops every entry (the
// hand-off's own cost: copying the name and rule, building the entry) and
// with the real log, writer included (GOMAXPROCS=1 puts the writer on the
// same core, as in bench/run.sh), entries handed over one at a time (on)
// or through a UDP reader's lane (lane).
func BenchmarkFastPathBlockedLog(b *testing.B) {
	client := netip.MustParseAddr("127.0.0.1")
	for _, mode := range []string{"off", "discard", "on", "lane"} {
		b.Run(mode, func(b *testing.B) {
			var rec Recorder
			var lane *querylog.Lane
			switch mode {
			case "discard":
				rec = discard{}
			case "on", "lane":
				q, _ := querylog.Open(b.TempDir(), querylog.DefaultConfig(), zap.NewNop())
				ctx, cancel := context.WithCancel(context.Background())
				go q.Run(ctx)
				b.Cleanup(func() { cancel(); <-q.Done(); q.Close() })
				rec = q
				if mode == "lane" {
					lane = q.NewLane()
				}
			}
			s := blockingServer(b, rec)
			var pkts [][]byte
			for i := range 1024 {
				pkts = append(pkts, packQuery(b, "t"+strconv.Itoa(i)+".xiaomi.example"))
			}
			out := make([]byte, 0, 2048)
			rb := newReaderBufs(0, lane)
			var pre prepared
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.prepare(pkts[i&1023], client, ProtoUDP, out, rb, &pre)
				i++
			}
		})
	}
}

// discard is a Recorder that keeps nothing.
type discard struct{}

func (discard) Record(querylog.Entry) bool { return true }

func TestLogStrings(t *testing.T) {
	for _, tc := range []struct {
		qname string
		rule  blocklists.Rule
	}{
		{"a.b.example.", blocklists.Rule{Name: "b.example", Suffix: true}},
		{"a.b.example.", blocklists.Rule{Name: "a.b.example"}},
		{"b.example", blocklists.Rule{Name: "b.example"}},
		{"x.b.example.", blocklists.Rule{Name: "b.example", Suffix: true, Important: true}},
		{"b.example.", blocklists.Rule{Name: "b.example", Allow: true, Important: true, BadFilter: true}},
	} {
		buf := []byte(tc.qname)
		name, rule := logStrings(string(buf), tc.rule) // a copy, as the reader's buffer would be
		if name != tc.qname || rule != tc.rule.String() {
			t.Errorf("logStrings(%q, %+v) = %q, %q; want %q, %q", tc.qname, tc.rule, name, rule, tc.qname, tc.rule.String())
		}
		// A UDP reader's lane copies at once, so views will do.
		if got := newReaderBufs(0, nil).ruleText(tc.rule); got != tc.rule.String() {
			t.Errorf("ruleText(%+v) = %q, want %q", tc.rule, got, tc.rule.String())
		}
	}
}
