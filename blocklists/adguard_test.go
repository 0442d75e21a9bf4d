package blocklists

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/store"
)

// adguardCase is one behaviour of AdGuard's DNS filtering rule syntax (the
// AdGuard Home "Hosts blocklists" documentation and the cases its DNS
// engine is tested on), run through Vigil's parser and matcher, which is
// what `vigil explain` shows.
type adguardCase struct {
	name string
	// lists holds each list's text; lists are auto-detected, and a list
	// whose text starts with "allow:" is an allowlist.
	lists []string
	// want maps a query to "blocked RULE", "allowed RULE" or "none".
	want map[string]string
}

var adguardCases = []adguardCase{
	// Basic rules.
	{"domain anchor covers the name and below", []string{"||example.org^"}, map[string]string{
		"example.org": "blocked ||example.org^", "a.b.example.org": "blocked ||example.org^",
		"notexample.org": "none", "example.org.evil": "none", "example.com": "none",
	}},
	{"end anchor after the separator", []string{"||example.org^|"}, map[string]string{
		"example.org": "blocked ||example.org^", "sub.example.org": "blocked ||example.org^",
	}},
	{"end anchor without separator", []string{"||example.org|"}, map[string]string{
		"example.org": "blocked ||example.org^", "sub.example.org": "blocked ||example.org^",
	}},
	{"start anchor is this host only", []string{"|example.org^"}, map[string]string{
		"example.org": "blocked example.org", "sub.example.org": "none",
	}},
	{"subdomains only, not the name", []string{"||*.example.org^"}, map[string]string{
		"example.org": "none", "sub.example.org": "blocked ||*.example.org^", "a.sub.example.org": "blocked ||*.example.org^",
	}},
	{"unanchored wildcard: subdomains only", []string{"[Adblock Plus]\n*.example.org"}, map[string]string{
		"example.org": "none", "sub.example.org": "blocked ||*.example.org^",
	}},
	{"case and IDN", []string{"||EXAMPLE.Org^\n||bücher.example^"}, map[string]string{
		"example.org": "blocked ||example.org^", "xn--bcher-kva.example": "blocked ||xn--bcher-kva.example^",
	}},
	{"comments", []string{"! comment\n# comment\n||example.org^"}, map[string]string{
		"example.org": "blocked ||example.org^", "comment": "none",
	}},

	// /etc/hosts and domains-only syntax inside an adblock list: host rules
	// for the exact names.
	{"hosts lines in an adblock list", []string{"||ads.example^\n0.0.0.0 v4.example\n127.0.0.1 lo.example\n:: v6.example\n::1 v6lo.example a2.example # c\n127.0.0.1 localhost"}, map[string]string{
		"v4.example": "blocked v4.example", "lo.example": "blocked lo.example", "v6.example": "blocked v6.example",
		"v6lo.example": "blocked v6lo.example", "a2.example": "blocked a2.example",
		"sub.v4.example": "none", "localhost": "none", "x.ads.example": "blocked ||ads.example^",
	}},
	{"domains-only line is exact", []string{"||ads.example^\nexample.org"}, map[string]string{
		"example.org": "blocked example.org", "sub.example.org": "none",
	}},
	{"exception beats a hosts rule", []string{"@@||example.org^\n127.0.0.1  example.org"}, map[string]string{
		"example.org": "allowed @@||example.org^",
	}},

	// Exceptions and $important.
	{"exception beats a block, whatever its depth", []string{"||sub.example.org^\n@@||example.org^"}, map[string]string{
		"sub.example.org": "allowed @@||example.org^",
	}},
	{"important beats an exception", []string{"||example.org^$important\n@@||example.org^"}, map[string]string{
		"example.org": "blocked ||example.org^$important",
	}},
	{"important exception beats important", []string{"||example.org^$important\n@@||example.org^$important"}, map[string]string{
		"example.org": "allowed @@||example.org^$important",
	}},
	{"important beats an allowlist", []string{"||example.org^$important", "allow:example.org"}, map[string]string{
		"example.org": "blocked ||example.org^$important",
	}},

	// $badfilter disables the identical rule only, in any list.
	{"badfilter disables the same rule", []string{"||example.org^\n||example.org^$badfilter"}, map[string]string{
		"example.org": "none", "sub.example.org": "none",
	}},
	{"badfilter reaches other lists", []string{"||example.org^", "||example.org^$badfilter"}, map[string]string{
		"example.org": "none",
	}},
	{"exact badfilter leaves a domains-list name", []string{"e.example\nf.example", "[Adblock Plus]\n|e.example^$badfilter"}, map[string]string{
		"e.example": "blocked e.example",
	}},
	{"exact badfilter leaves a hosts line", []string{"0.0.0.0 e.example\n0.0.0.0 f.example", "[Adblock Plus]\n|e.example^$badfilter"}, map[string]string{
		"e.example": "blocked e.example",
	}},
	{"exact badfilter leaves a host rule in an adblock list", []string{"||x.example^\ne.example\n0.0.0.0 e2.example\n|e.example^$badfilter\n|e2.example^$badfilter"}, map[string]string{
		"e.example": "blocked e.example", "e2.example": "blocked e2.example",
	}},
	{"exact badfilter disables the exact rule", []string{"|e.example^", "[Adblock Plus]\n|e.example^$badfilter"}, map[string]string{
		"e.example": "none",
	}},
	{"suffix badfilter leaves the exact rule", []string{"|e.example^\n||e.example^$badfilter"}, map[string]string{
		"e.example": "blocked e.example",
	}},
	{"badfilter minds modifiers", []string{"||e.example^$important\n||e.example^\n||e.example^$badfilter"}, map[string]string{
		"e.example": "blocked ||e.example^$important",
	}},
	{"important badfilter", []string{"||e.example^$important\n||e.example^\n||e.example^$important,badfilter"}, map[string]string{
		"e.example": "blocked ||e.example^",
	}},
	{"badfilter on an exception", []string{"||e.example^\n@@||e.example^\n@@||e.example^$badfilter"}, map[string]string{
		"e.example": "blocked ||e.example^",
	}},
	{"subdomain badfilter leaves the suffix rule", []string{"||e.example^\n||*.e.example^\n||*.e.example^$badfilter"}, map[string]string{
		"a.e.example": "blocked ||e.example^",
	}},
	{"suffix badfilter leaves the subdomain rule", []string{"||*.e.example^\n||e.example^$badfilter"}, map[string]string{
		"a.e.example": "blocked ||*.e.example^", "e.example": "none",
	}},

	// Modifiers Vigil does not implement: the rule is skipped, never
	// applied more broadly than written.
	{"client", []string{"||x.example^\n||example.org^$client=127.0.0.1"}, map[string]string{"example.org": "none"}},
	{"client exception", []string{"||example.org^\n@@||example.org^$client=127.0.0.1"}, map[string]string{"example.org": "blocked ||example.org^"}},
	{"ctag", []string{"||x.example^\n||example.org^$ctag=device_tv"}, map[string]string{"example.org": "none"}},
	{"dnstype", []string{"||x.example^\n||example.org^$dnstype=AAAA"}, map[string]string{"example.org": "none"}},
	{"denyallow", []string{"||x.example^\n||example.org^$denyallow=sub.example.org"}, map[string]string{"example.org": "none", "sub.example.org": "none"}},
	{"dnsrewrite", []string{"||x.example^\n||example.org^$dnsrewrite=10.0.0.1"}, map[string]string{"example.org": "none"}},
	{"browser modifier", []string{"||x.example^\n||example.org^$third-party"}, map[string]string{"example.org": "none"}},
	{"unsupported after important", []string{"||x.example^\n||example.org^$important,dnstype=A"}, map[string]string{"example.org": "none"}},
	{"badfilter of a skipped rule", []string{"||example.org^\n||example.org^$client=127.0.0.1,badfilter"}, map[string]string{"example.org": "blocked ||example.org^"}},

	// Patterns that are not a DNS name.
	{"regex", []string{"||x.example^\n/^stats?\\./\n@@/^ok\\./"}, map[string]string{"stats.example": "none"}},
	{"url path", []string{"||x.example^\n||example.org/ads"}, map[string]string{"example.org": "none"}},
	{"port", []string{"||x.example^\n||example.org:8080^"}, map[string]string{"example.org": "none"}},
	{"wildcard tld", []string{"||x.example^\n||example.*^"}, map[string]string{"example.org": "none"}},
	{"ip rule", []string{"||x.example^\n||192.168.1.1^"}, map[string]string{"192.168.1.1": "none"}},
	{"cosmetic", []string{"||x.example^\nexample.org##.banner"}, map[string]string{"example.org": "none"}},
}

func TestAdGuardSyntax(t *testing.T) {
	for _, tc := range adguardCases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder()
			for i, text := range tc.lists {
				text, allow := strings.CutPrefix(text, "allow:")
				info := ListInfo{Name: fmt.Sprintf("l%d", i)}
				kind := KindDeny
				if allow {
					info.Allow, kind = true, KindAllow
				}
				idx, err := b.AddList(info)
				if err != nil {
					t.Fatal(err)
				}
				l := ListConfig{Name: info.Name, Kind: kind}
				if _, err := Parse(strings.NewReader(text), ParseOptions{Source: info.Name, MaxRejected: 0, Allow: l.Allow()}, func(r Rule) { b.Add(idx, r) }); err != nil {
					t.Fatal(err)
				}
			}
			m, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			for q, want := range tc.want {
				got := "none"
				if v, ok := m.Match(q + "."); ok {
					got = "allowed " + v.Rule.String()
					if v.Blocked {
						got = "blocked " + v.Rule.String()
					}
				}
				if got != want {
					t.Errorf("%s: %s, want %s", q, got, want)
				}
			}
		})
	}
}

// TestAdGuardSkipsSayWhy checks that every rule Vigil leaves out is
// reported with its reason, and none is counted as an invalid line.
func TestAdGuardSkipsSayWhy(t *testing.T) {
	cases := []struct{ line, reason string }{
		{"/^stats?\\./", "regular expression"},
		{"@@/^ok\\./", "regular expression"},
		{"||example.org^$client=127.0.0.1", "$client"},
		{"||example.org^$ctag=tv", "$ctag"},
		{"||example.org^$dnstype=AAAA", "$dnstype"},
		{"||example.org^$denyallow=a.example.org", "$denyallow"},
		{"||example.org^$dnsrewrite=NOERROR;A;1.2.3.4", "$dnsrewrite"},
		{"||example.org^$important,third-party", "$third-party"},
		{"||example.org/ads", "not a DNS name"},
		{"|https://example.org", "URL rule"},
		{"||192.168.1.1^", "IP rules"},
	}
	for _, tc := range cases {
		_, st := parseString(t, FormatAdblock, "||x.example^\n"+tc.line)
		if st.Skipped != 1 || st.Rejected != 0 || len(st.Skips) != 1 || !strings.Contains(st.Skips[0].Reason, tc.reason) || st.Skips[0].Line != 2 {
			t.Errorf("%s: skipped %d, rejected %d, skips %v; want one skip at line 2 saying %q", tc.line, st.Skipped, st.Rejected, st.Skips, tc.reason)
		}
	}
}

// An adblock list made mostly of hosts lines is read whole, as AdGuard
// reads it: it was refused as "mostly invalid", and with it its adblock
// rules.
func TestAdblockListOfHostsLinesIsValid(t *testing.T) {
	text := "[Adblock Plus]\n||ads.example^\n@@||ok.ads.example^\n"
	for i := range 20 {
		text += fmt.Sprintf("0.0.0.0 h%d.example\n:: h%d.example\n", i, i)
	}
	for _, format := range []Format{FormatAdblock, FormatAuto} {
		rules, st := parseString(t, format, text)
		if st.Format != FormatAdblock || st.Rejected != 0 || st.Entries != 42 || len(rules) != 42 {
			t.Errorf("%s: %+v, %d rules; want adblock, 42 entries, none rejected", format, st, len(rules))
		}
	}
	m := NewManager(testUpdateConfig(), nil, nil, zaptest.NewLogger(t))
	got, err := m.read(&ListConfig{Name: "l", Format: FormatAdblock}, "src", strings.NewReader(text), int64(len(text)), store.ListMeta{})
	got.gz.free()
	if err != nil {
		t.Errorf("the update's checks refused the list: %v", err)
	}
	// Detection: a hosts file with some adblock rules is an adblock list.
	mixed := "0.0.0.0 a.example\n0.0.0.0 b.example\n0.0.0.0 c.example\n||d.example^\n"
	if f := DetectFormat([]byte(mixed)); f != FormatAdblock {
		t.Errorf("DetectFormat(hosts with adblock rules) = %s, want adblock", f)
	}
}
