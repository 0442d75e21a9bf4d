package blocklists

import (
	"compress/gzip"
	"github.com/vigil-dns/vigil/blocklists/blockliststest"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sharedData is the shared data set of real lists; the test skips
// without it.
func sharedData(t testing.TB) string { return blockliststest.SharedData(t) }

func openList(t testing.TB, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		return zr
	}
	return f
}

// TestRealListCounts pins what the parser makes of every real list: the
// detected format and the number of entries, skipped and rejected lines.
// Entries agree with the counts in data/SOURCES.md except where a rule is
// not a DNS name (regex, URL and IP rules, modifiers Vigil does not model),
// which are skipped, and genuinely broken lines, which are rejected.
func TestRealListCounts(t *testing.T) {
	dir := sharedData(t)
	cases := []struct {
		file                       string
		format                     Format
		entries, skipped, rejected int
	}{
		{"big/adguard-dns-filter-noprivacy.txt", FormatAdblock, 70771, 330, 0},
		{"big/adguard-dns-filter.txt", FormatAdblock, 57266, 363, 0},
		{"big/hagezi-light.domains.txt", FormatDomains, 86359, 0, 0},
		{"big/hagezi-light.hosts-compressed.txt", FormatHosts, 86359, 0, 0},
		{"big/hagezi-light.hosts.txt", FormatHosts, 86359, 0, 0},
		{"big/hagezi-normal.adblock.txt", FormatAdblock, 181570, 0, 0},
		{"big/hagezi-normal.wildcard.txt", FormatWildcard, 181570, 0, 0},
		{"big/hagezi-pro.mini.adblock.txt", FormatAdblock, 54304, 0, 0},
		{"big/hagezi-pro.wildcard-onlydomains.txt", FormatWildcard, 214895, 0, 0},
		{"big/hagezi-tif.mini.adblock.txt", FormatAdblock, 167478, 0, 0},
		{"big/lint1995-merged.domains.txt.gz", FormatDomains, 295168, 0, 0},
		{"big/lint1995-merged.hosts.txt.gz", FormatHosts, 295168, 0, 0},
		{"big/oisd-big.domainswild2.txt", FormatWildcard, 209458, 0, 0},
		{"big/oisd-small.abp.txt", FormatAdblock, 47908, 0, 0},
		{"big/oisd-small.dnsmasq2.txt", FormatDnsmasq, 47908, 0, 0},
		{"big/oisd-small.domainswild.txt", FormatWildcard, 47908, 0, 0},
		{"big/stevenblack-unified.hosts", FormatHosts, 115262, 0, 0},
		{"vendor/amdromeda/amazon-firetv-telemetry.txt", FormatDomains, 54, 0, 0},
		{"vendor/amdromeda/windows-telemetry.txt", FormatDomains, 574, 0, 2},
		{"vendor/amdromeda/xiaomi-mifit-amazfit.txt", FormatDomains, 1013, 0, 5},
		{"vendor/perflyst/AmazonFireTV.txt", FormatDomains, 16, 0, 0},
		{"vendor/perflyst/SessionReplay.txt", FormatDomains, 24, 0, 0},
		{"vendor/perflyst/SmartTV-AGH.txt", FormatAdblock, 152, 10, 0},
		{"vendor/perflyst/SmartTV.txt", FormatDomains, 245, 0, 0},
		{"vendor/perflyst/android-tracking.txt", FormatDomains, 80, 0, 0},
		{"vendor/unknownfallen-xiaomi/xiaomi_dns_block.lst", FormatDomains, 484, 0, 0},
		{"vendor/unknownfallen-xiaomi/xiaomi_dns_whitelist.lst", FormatDomains, 13, 0, 0},
		{"vendor/windowsspyblocker/dnscrypt-spy.txt", FormatDomains, 315, 3, 0},
		{"vendor/windowsspyblocker/hosts-spy.txt", FormatHosts, 347, 0, 0},
		{"vendor/windowsspyblocker/hosts-spy_v6.txt", FormatHosts, 347, 0, 0},
		{"vendor/windowsspyblocker/hosts-update.txt", FormatHosts, 539, 0, 0},
		{"vendor/windowsspyblocker/hosts-extra.txt", FormatHosts, 400, 0, 0},
		{"vendor/hagezi-native/adblock/native.xiaomi.txt", FormatAdblock, 346, 0, 0},
		{"vendor/hagezi-native/domains/native.xiaomi.txt", FormatDomains, 470, 0, 0},
		{"vendor/hagezi-native/hosts/native.xiaomi.txt", FormatHosts, 470, 0, 0},
		{"vendor/hagezi-native/hosts-compressed/native.xiaomi-compressed.txt", FormatHosts, 470, 0, 0},
		{"vendor/hagezi-native/wildcard/native.xiaomi.txt", FormatWildcard, 346, 0, 0},
		{"vendor/hagezi-native/wildcard-onlydomains/native.xiaomi-onlydomains.txt", FormatWildcard, 346, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			st, err := Parse(openList(t, filepath.Join(dir, tc.file)), ParseOptions{Source: tc.file, MaxRejected: -1}, func(Rule) {})
			if err != nil {
				t.Fatal(err)
			}
			if st.Format != tc.format || st.Entries != tc.entries || st.Skipped != tc.skipped || st.Rejected != tc.rejected {
				t.Errorf("format %s, %d entries, %d skipped, %d rejected; want %s, %d, %d, %d (first errors %v)",
					st.Format, st.Entries, st.Skipped, st.Rejected, tc.format, tc.entries, tc.skipped, tc.rejected, st.Errors)
			}
		})
	}
}

// ruleSet parses a file into its sorted, distinct rules.
func ruleSet(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	if _, err := Parse(openList(t, path), ParseOptions{Source: path, MaxRejected: -1}, func(r Rule) {
		out = append(out, r.String())
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestSameListDifferentFormats checks that one list published in several
// syntaxes yields the same rules whatever the syntax.
func TestSameListDifferentFormats(t *testing.T) {
	dir := sharedData(t)
	groups := [][]string{
		{"big/hagezi-light.domains.txt", "big/hagezi-light.hosts.txt", "big/hagezi-light.hosts-compressed.txt"},
		{"big/hagezi-normal.adblock.txt", "big/hagezi-normal.wildcard.txt"},
		{"big/oisd-small.abp.txt", "big/oisd-small.domainswild.txt", "big/oisd-small.dnsmasq2.txt"},
		{"big/lint1995-merged.domains.txt.gz", "big/lint1995-merged.hosts.txt.gz"},
		{"vendor/windowsspyblocker/hosts-spy.txt", "vendor/windowsspyblocker/hosts-spy_v6.txt"},
	}
	vendors := []string{"amazon", "apple", "huawei", "lgwebos", "oppo-realme", "roku", "samsung", "tiktok", "tiktok.extended", "vivo", "winoffice", "xiaomi"}
	for _, v := range vendors {
		groups = append(groups,
			[]string{"vendor/hagezi-native/domains/native." + v + ".txt", "vendor/hagezi-native/hosts/native." + v + ".txt",
				"vendor/hagezi-native/hosts-compressed/native." + v + "-compressed.txt"},
			[]string{"vendor/hagezi-native/adblock/native." + v + ".txt", "vendor/hagezi-native/wildcard/native." + v + ".txt",
				"vendor/hagezi-native/wildcard-onlydomains/native." + v + "-onlydomains.txt"})
	}
	for _, g := range groups {
		t.Run(g[0], func(t *testing.T) {
			want := ruleSet(t, filepath.Join(dir, g[0]))
			if len(want) == 0 {
				t.Fatal("no rules")
			}
			for _, other := range g[1:] {
				got := ruleSet(t, filepath.Join(dir, other))
				if !slices.Equal(got, want) {
					t.Errorf("%s: %d rules, %s: %d rules; the sets differ", g[0], len(want), other, len(got))
				}
			}
		})
	}
}

// TestRealListsBlockTheirNames builds a matcher from the HaGeZi Xiaomi
// list in adblock form and checks that every name of the same list in
// plain-domain form (which spells out subdomains) is blocked, and that the
// community allowlist's names the vendor needs stay allowed when used as
// an allowlist.
func TestRealListsBlockTheirNames(t *testing.T) {
	dir := sharedData(t)
	b := NewBuilder()
	deny, _ := b.AddList(ListInfo{Name: "xiaomi", Vendor: "Xiaomi"})
	allow, _ := b.AddList(ListInfo{Name: "xiaomi-allow", Vendor: "Xiaomi", Allow: true})
	if _, err := Parse(openList(t, filepath.Join(dir, "vendor/hagezi-native/adblock/native.xiaomi.txt")), ParseOptions{MaxRejected: -1}, func(r Rule) { b.Add(deny, r) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(openList(t, filepath.Join(dir, "vendor/unknownfallen-xiaomi/xiaomi_dns_whitelist.lst")), ParseOptions{MaxRejected: -1}, func(r Rule) { b.Add(allow, r) }); err != nil {
		t.Fatal(err)
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	allowed := ruleSet(t, filepath.Join(dir, "vendor/unknownfallen-xiaomi/xiaomi_dns_whitelist.lst"))
	for _, name := range ruleSet(t, filepath.Join(dir, "vendor/hagezi-native/domains/native.xiaomi.txt")) {
		v, ok := m.Match(name)
		if slices.Contains(allowed, name) {
			if !ok || v.Blocked {
				t.Errorf("%s is on the allowlist but %v", name, v)
			}
			continue
		}
		if !ok || !v.Blocked || v.List.Vendor != "Xiaomi" {
			t.Errorf("%s: got %+v, %v; want blocked by the Xiaomi list", name, v, ok)
		}
	}
}
