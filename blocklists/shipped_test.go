package blocklists

import (
	"bufio"
	"github.com/vigil-dns/vigil/blocklists/blockliststest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// localCopy maps a source of the shipped config onto a file on disk: a
// curated file for builtin:NAME, else the shared data set's copy.
func localCopy(data, src string) (path string, ok bool) {
	if name, ok := strings.CutPrefix(src, "builtin:"); ok {
		return filepath.Join(curatedDir, name+".txt"), true
	}
	return blockliststest.LocalCopy(data, src)
}

// buildShipped compiles the shipped config's enabled lists from local
// copies; before keeps only what the config shipped before curated and
// WindowsSpyBlocker sources (HaGeZi's native lists). It returns the
// matcher and the rules each vendor's lists contributed.
func buildShipped(t *testing.T, data string, before bool) (*Matcher, map[string]int) {
	t.Helper()
	b := NewBuilder()
	rules := map[string]int{}
	for _, l := range shippedLists(t) {
		if !l.IsEnabled() {
			continue
		}
		idx, err := b.AddList(ListInfo{Name: l.Name, Vendor: l.Vendor, Allow: l.Allow()})
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range l.Sources {
			if before && !strings.Contains(src, "/hagezi/") {
				continue
			}
			path, ok := localCopy(data, src)
			if !ok {
				t.Fatalf("list %s: no local copy for %s", l.Name, src)
			}
			st, err := Parse(openList(t, path), ParseOptions{Source: path, Format: l.Format, MaxRejected: -1, Allow: l.Allow()},
				func(r Rule) { b.Add(idx, r) })
			if err != nil {
				t.Fatal(err)
			}
			rules[vendorKey(l.Vendor)] += st.Entries
		}
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m, rules
}

// vendorKey folds a list's vendor tag into the vendor it is measured as.
func vendorKey(v string) string { return v }

func isBlocked(m *Matcher, name string) bool {
	v, ok := m.Match(name)
	return ok && v.Blocked
}

// namesOf reads the names a list file yields (hosts, domains: one name
// each; adblock: the rule's own name).
func namesOf(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if _, err := Parse(openList(t, path), ParseOptions{Source: path, MaxRejected: -1}, func(r Rule) { out = append(out, r.Name) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShippedConfigBlocksNewTelemetry compiles the shipped config from
// local copies of its sources (../shared/data for upstream lists, the
// curated files from disk) and checks that telemetry the HaGeZi lists
// miss is now blocked, that the off-by-default cloud lists block nothing,
// and reports, per vendor, rules and known telemetry names blocked before
// and after, and the Umbrella top-10,000 names the new lists add (run with
// -v to see the figures).
func TestShippedConfigBlocksNewTelemetry(t *testing.T) {
	data := sharedData(t)
	before, rulesBefore := buildShipped(t, data, true)
	after, rulesAfter := buildShipped(t, data, false)

	// Known telemetry names HaGeZi's native lists do not block, now
	// blocked: WindowsSpyBlocker spy names and the curated lists' hosts.
	newlyBlocked := []string{
		"ire-dsu.shalltry.com", "dsu-a.shalltry.com", "clog.geniex.com", "apitm.toolmatrix.plus",
		"dap-cn.c.hihonor.com", // HaGeZi's Huawei list already covers Honor's hihonorcloud.com log hosts
		"open-iflow.meizu.com", "api.naea1.uds.lenovo.com", "open.oneplus.net", "click.oneplus.cn",
	}
	rescued := 0
	for _, n := range namesOf(t, filepath.Join(data, "vendor/windowsspyblocker/hosts-spy.txt")) {
		if v, ok := after.Match(n); ok && !v.Blocked && v.List.Name == "functional" {
			rescued++ // a functional endpoint the spy list blocks (push, Teams presence)
			continue
		}
		if !isBlocked(before, n) {
			newlyBlocked = append(newlyBlocked, n)
		}
	}
	t.Logf("WindowsSpyBlocker spy names kept working by the functional allowlist: %d", rescued)
	for _, n := range newlyBlocked {
		if isBlocked(before, n) {
			t.Errorf("%s was already blocked before: not new coverage", n)
		}
		if !isBlocked(after, n) {
			t.Errorf("%s is not blocked by the shipped config", n)
		}
	}
	// The cloud tier is off: the vendor services it lists still resolve.
	for _, n := range []string{"theme.shalltry.com", "icloud.com", "www.hihonor.com", "u.meizu.com", "us.lgtvsdp.com", "captive.roku.com", "open.oneplus.net.example"} {
		if isBlocked(after, n) {
			t.Errorf("%s is blocked, but only an off-by-default cloud list names it", n)
		}
	}

	// Figures. Known telemetry names per vendor: HaGeZi's spelled-out
	// domain lists, WindowsSpyBlocker spy and the curated telemetry hosts.
	known := map[string][]string{}
	for _, l := range shippedLists(t) {
		if !l.IsEnabled() {
			continue
		}
		for _, src := range l.Sources {
			switch {
			case strings.Contains(src, "/hagezi/"):
				base := src[strings.LastIndex(src, "/")+1:]
				known[l.Vendor] = append(known[l.Vendor], namesOf(t, filepath.Join(data, "vendor/hagezi-native/domains", base))...)
			default:
				path, _ := localCopy(data, src)
				known[l.Vendor] = append(known[l.Vendor], namesOf(t, path)...)
			}
		}
	}
	vendors := make([]string, 0, len(known))
	for v := range known {
		vendors = append(vendors, v)
	}
	slices.Sort(vendors)
	t.Logf("%-16s %13s %13s %20s %20s", "vendor", "rules before", "rules after", "known names before", "known names after")
	for _, v := range vendors {
		names := slices.Compact(slices.Sorted(slices.Values(known[v])))
		nb, na := 0, 0
		for _, n := range names {
			if isBlocked(before, n) {
				nb++
			}
			if isBlocked(after, n) {
				na++
			}
		}
		t.Logf("%-16s %13d %13d %14d of %3d %14d of %3d", v, rulesBefore[v], rulesAfter[v], nb, len(names), na, len(names))
	}
	t.Logf("rules compiled: %d before, %d after", before.Len(), after.Len())

	f, err := os.Open(filepath.Join(data, "queries/umbrella-top-100k.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var added []string
	top, blockedBefore, blockedAfter := 0, 0, 0
	for sc.Scan() && top < 10000 {
		n := strings.TrimSpace(sc.Text())
		if n == "" {
			continue
		}
		top++
		b, a := isBlocked(before, n), isBlocked(after, n)
		if b {
			blockedBefore++
		}
		if a {
			blockedAfter++
		}
		if a && !b {
			v, _ := after.Match(n)
			added = append(added, n+" ("+v.List.Name+": "+v.Rule.String()+")")
		}
	}
	t.Logf("Umbrella top %d: %d blocked before, %d after; %d added by the new lists:", top, blockedBefore, blockedAfter, len(added))
	for _, a := range added {
		t.Logf("  %s", a)
	}
}
