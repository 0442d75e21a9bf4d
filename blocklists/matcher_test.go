package blocklists

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildFrom builds a matcher from lists given as text in adblock syntax
// (which can express every rule shape).
func buildFrom(t testing.TB, lists ...ListInfo) func(rules ...string) *Matcher {
	return func(rules ...string) *Matcher {
		b := NewBuilder()
		for _, l := range lists {
			if _, err := b.AddList(l); err != nil {
				t.Fatal(err)
			}
		}
		for _, spec := range rules {
			// "N:rule" puts rule in list N.
			idx := 0
			if i := strings.IndexByte(spec, ':'); i == 1 {
				idx = int(spec[0] - '0')
				spec = spec[2:]
			}
			if _, err := Parse(strings.NewReader(spec), ParseOptions{Format: FormatAdblock, MaxRejected: 0}, func(r Rule) { b.Add(idx, r) }); err != nil {
				t.Fatal(err)
			}
		}
		m, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func TestMatcherPrecedence(t *testing.T) {
	build := buildFrom(t, ListInfo{Name: "deny", Vendor: "V"}, ListInfo{Name: "allow", Allow: true}, ListInfo{Name: "deny2", Vendor: "W"})
	cases := []struct {
		name  string
		rules []string
		query string
		want  string // "blocked by LIST RULE", "allowed by LIST RULE" or "none"
	}{
		{"exact hit", []string{"exact.example"}, "exact.example.", "blocked by deny exact.example"},
		{"exact is not suffix", []string{"exact.example"}, "sub.exact.example.", "none"},
		{"suffix covers itself", []string{"||suf.example^"}, "suf.example.", "blocked by deny ||suf.example^"},
		{"suffix covers subdomains", []string{"||suf.example^"}, "a.b.suf.example.", "blocked by deny ||suf.example^"},
		{"suffix is label-aligned", []string{"||suf.example^"}, "notsuf.example.", "none"},
		{"no trailing dot", []string{"||suf.example^"}, "x.suf.example", "blocked by deny ||suf.example^"},
		{"allow beats deny", []string{"||t.example^", "1:good.t.example"}, "good.t.example.", "allowed by allow @@|good.t.example^"},
		{"allow is exact", []string{"||t.example^", "1:good.t.example"}, "x.good.t.example.", "blocked by deny ||t.example^"},
		{"exception in a deny list", []string{"||t.example^", "@@||ok.t.example^"}, "a.ok.t.example.", "allowed by deny @@||ok.t.example^"},
		{"important beats allow", []string{"||t.example^$important", "1:||t.example^"}, "t.example.", "blocked by deny ||t.example^$important"},
		{"important allow beats important", []string{"||t.example^$important", "@@||t.example^$important"}, "t.example.", "allowed by deny @@||t.example^$important"},
		{"most specific wins among equals", []string{"||t.example^", "2:||a.t.example^"}, "x.a.t.example.", "blocked by deny2 ||a.t.example^"},
		{"first list wins a duplicate", []string{"||dup.example^", "2:||dup.example^"}, "dup.example.", "blocked by deny ||dup.example^"},
		{"badfilter disables", []string{"||bad.example^", "2:||bad.example^$badfilter"}, "bad.example.", "none"},
		{"badfilter is exact about shape", []string{"||bad.example^", "|bad.example^$badfilter"}, "bad.example.", "blocked by deny ||bad.example^"},
		{"tld rule", []string{"||zip^"}, "anything.zip.", "blocked by deny ||zip^"},
		{"root query", []string{"||zip^"}, ".", "none"},
		{"empty matcher", nil, "a.example.", "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := build(tc.rules...)
			got := "none"
			if v, ok := m.Match(tc.query); ok {
				verb := "blocked"
				if !v.Blocked {
					verb = "allowed"
				}
				got = fmt.Sprintf("%s by %s %s", verb, v.List.Name, v.Rule)
			}
			if got != tc.want {
				t.Errorf("Match(%q) = %s, want %s", tc.query, got, tc.want)
			}
		})
	}
}

func TestMatcherNoAllocs(t *testing.T) {
	m := buildFrom(t, ListInfo{Name: "l"})("||a.example^", "b.example", "@@||ok.a.example^")
	for _, q := range []string{"x.a.example.", "b.example.", "ok.a.example.", "miss.example.org."} {
		if n := testing.AllocsPerRun(100, func() { m.Match(q) }); n != 0 {
			t.Errorf("Match(%q) allocates %v times", q, n)
		}
	}
}

// reference is the obvious, slow matcher the real one must agree with.
type reference struct {
	rules []struct {
		Rule
		list int
	}
}

func (r *reference) match(name string, set *ListSet) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	bestRank, bestDepth, best := 0, 0, ""
	for _, rr := range r.rules {
		if set != nil && !set.Has(rr.list) {
			continue
		}
		applies := rr.Name == name && !rr.BelowOnly || rr.Suffix && strings.HasSuffix(name, "."+rr.Name)
		if !applies {
			continue
		}
		rank := 1
		switch {
		case rr.Allow && rr.Important:
			rank = 4
		case rr.Important:
			rank = 3
		case rr.Allow:
			rank = 2
		}
		depth := strings.Count(rr.Name, ".") + 1
		if rank > bestRank || rank == bestRank && depth > bestDepth {
			bestRank, bestDepth, best = rank, depth, rr.String()
		}
	}
	return best, bestRank != 0
}

// FuzzMatcherDifferential builds a matcher and the reference from the same
// random rules and checks they agree on random names.
// The table keeps fingerprints, not names (slot): a million names that
// are not listed, checked against 300,000 that are, must give no false
// match. At the 2^-48 per compared cell the design promises, one here
// would be a bug (too few fingerprint bits, or index bits reused as
// fingerprint), not bad luck. The listed names and their parents must
// all match, each reporting the name it was listed under.
func TestMatcherFingerprintsNoFalseMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	word := func() string {
		b := make([]byte, 3+rng.IntN(10))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	b := NewBuilder()
	list, _ := b.AddList(ListInfo{Name: "l"})
	listed := make([]string, 300_000)
	for i := range listed {
		listed[i] = word() + "." + word() + ".example"
		b.Add(list, Rule{Name: listed[i], Suffix: i%2 == 0})
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range listed {
		q := name
		if i%2 == 0 {
			q = "sub." + name // a suffix rule covers what is below
		}
		if v, ok := m.Match(q); !ok || v.Rule.Name != name {
			t.Fatalf("%s: got %+v, %v; want the rule for %s", q, v, ok, name)
		}
	}
	for range 1_000_000 {
		q := word() + "." + word() + ".test" // never listed: another TLD
		if v, ok := m.Match(q); ok {
			t.Fatalf("%s matched %+v", q, v)
		}
	}
}

func FuzzMatcherDifferential(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		rng := rand.New(rand.NewPCG(seed1, seed2))
		labels := []string{"a", "b", "c", "ads", "x-1", "_t"}
		name := func() string {
			n := 1 + rng.IntN(4)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = labels[rng.IntN(len(labels))]
			}
			return strings.Join(parts, ".")
		}
		// Rules spread over three lists (the same rule may be in several),
		// looked up with every list and with random subsets, as groups do.
		const nlists = 3
		b := NewBuilder()
		for i := range nlists {
			_, _ = b.AddList(ListInfo{Name: fmt.Sprintf("l%d", i)})
		}
		ref := &reference{}
		type ruleIn struct {
			Rule
			list int
		}
		seen := map[ruleIn]bool{}
		for range rng.IntN(30) {
			r := Rule{Name: name(), Suffix: rng.IntN(2) == 0, Allow: rng.IntN(4) == 0, Important: rng.IntN(5) == 0}
			r.BelowOnly = r.Suffix && rng.IntN(3) == 0
			list := rng.IntN(nlists)
			b.Add(list, r)
			if !seen[ruleIn{r, list}] {
				seen[ruleIn{r, list}] = true
				ref.rules = append(ref.rules, struct {
					Rule
					list int
				}{r, list})
			}
		}
		m, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			q := name()
			var set ListSet
			for i := range nlists {
				if rng.IntN(2) == 0 {
					set.Add(i)
				}
			}
			want, wok := ref.match(q, nil)
			v, ok := m.Match(q + ".")
			if ok != wok || ok && v.Rule.String() != want {
				t.Fatalf("Match(%q) = %v %v, reference %q %v", q, v.Rule, ok, want, wok)
			}
			want, wok = ref.match(q, &set)
			v, ok = m.MatchIn(q+".", &set)
			if ok != wok || ok && v.Rule.String() != want || ok && !set.Has(listIndex(m, v.List.Name)) {
				t.Fatalf("MatchIn(%q, %b) = %v %v in %s, reference %q %v", q, set[0], v.Rule, ok, v.List.Name, want, wok)
			}
		}
	})
}

func listIndex(m *Matcher, name string) int {
	for i, l := range m.Lists() {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// The set of lists that apply is asked for only when some list has a
// rule for the name (finding a client's groups costs work), once, and
// the lookup still allocates nothing.
func TestMatchForAsksForTheSetOnlyOnAHit(t *testing.T) {
	m := buildFrom(t, ListInfo{Name: "tiktok"}, ListInfo{Name: "ads"}, ListInfo{Name: "allow", Allow: true})(
		"||tiktok.example^", "1:||ads.example^", "1:||tiktok.example^", "2:ok.ads.example")
	var onlyAds, adsAllow ListSet
	onlyAds.Add(1)
	adsAllow.Add(1)
	adsAllow.Add(2)
	cases := []struct {
		query string
		set   *ListSet
		want  string // "LIST RULE" of the decisive rule, or "none"
		asked bool
	}{
		{"www.example.org.", &onlyAds, "none", false},
		{"a.tiktok.example.", nil, "tiktok ||tiktok.example^", true},
		{"a.tiktok.example.", &onlyAds, "ads ||tiktok.example^", true}, // the same rule, in the list that applies
		{"x.ads.example.", &ListSet{}, "none", true},
		{"ok.ads.example.", &onlyAds, "ads ||ads.example^", true},
		{"ok.ads.example.", &adsAllow, "allow @@|ok.ads.example^", true},
	}
	for _, tc := range cases {
		asked := 0
		v, ok := m.MatchFor(tc.query, func() *ListSet { asked++; return tc.set })
		got := "none"
		if ok {
			got = v.List.Name + " " + v.Rule.String()
		}
		if got != tc.want || (asked == 1) != tc.asked || asked > 1 {
			t.Errorf("MatchFor(%q) = %s, asked %d times; want %s, asked %v", tc.query, got, asked, tc.want, tc.asked)
		}
		if n := testing.AllocsPerRun(100, func() { m.MatchFor(tc.query, func() *ListSet { return tc.set }) }); n != 0 {
			t.Errorf("MatchFor(%q) allocates %v times", tc.query, n)
		}
	}
}

// bigList loads the largest real list in the shared data into a builder.
func bigList(tb testing.TB) (*Builder, []string) {
	dir := sharedData(tb)
	path := filepath.Join(dir, "big", "lint1995-merged.domains.txt.gz")
	b := NewBuilder()
	idx, _ := b.AddList(ListInfo{Name: "big", Vendor: "Ads"})
	var names []string
	if _, err := Parse(openList(tb, path), ParseOptions{Format: FormatWildcard, MaxRejected: -1}, func(r Rule) {
		b.Add(idx, r)
		if len(names) < 1<<16 {
			names = append(names, r.Name)
		}
	}); err != nil {
		tb.Fatal(err)
	}
	return b, names
}

// BenchmarkMatch measures lookups in a matcher built from the largest real
// list (295,168 names): hits on listed names' subdomains, misses on
// popular names.
func BenchmarkMatch(b *testing.B) {
	bl, listed := bigList(b)
	m, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	hits := make([]string, len(listed))
	for i, n := range listed {
		hits[i] = "www." + n + "."
	}
	misses := make([]string, len(listed))
	for i := range misses {
		misses[i] = fmt.Sprintf("host%d.not-listed-%d.example.org.", i, i%97)
	}
	for _, bc := range []struct {
		name  string
		names []string
		want  bool
	}{{"hit", hits, true}, {"miss", misses, false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := m.Match(bc.names[i%len(bc.names)]); ok != bc.want {
					b.Fatalf("Match(%s) = %v", bc.names[i%len(bc.names)], ok)
				}
				i++
			}
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkBuild measures compiling the largest real list, the heap the
// matcher keeps per entry, and the heap after ten rebuilds (old matchers
// must be collected).
func BenchmarkBuild(b *testing.B) {
	sharedData(b)
	var m *Matcher
	before := heapInUse()
	var buildTime time.Duration
	for b.Loop() {
		bl, _ := bigList(b)
		start := time.Now()
		var err error
		if m, err = bl.Build(); err != nil {
			b.Fatal(err)
		}
		buildTime += time.Since(start)
	}
	after := heapInUse()
	b.ReportMetric(float64(after-before)/float64(m.Len()), "heap-B/entry")
	b.ReportMetric(float64(m.Bytes())/float64(m.Len()), "matcher-B/entry")
	b.ReportMetric(float64(buildTime.Milliseconds())/float64(b.N), "build-ms")
	for range 10 {
		bl, _ := bigList(b)
		if m, _ = bl.Build(); m == nil {
			b.Fatal("nil matcher")
		}
	}
	b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-MiB-after-10-rebuilds")
	runtime.KeepAlive(m)
}
