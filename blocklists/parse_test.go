package blocklists

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// render is the golden form of a parse: every rule, then the counts and
// rejected lines.
func render(t *testing.T, name string, format Format) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	st, err := Parse(f, ParseOptions{Source: filepath.Base(name), Format: format, MaxRejected: -1}, func(r Rule) {
		out.WriteString(r.String() + "\n")
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "# format=%s lines=%d comments=%d entries=%d ignored=%d skipped=%d rejected=%d\n",
		st.Format, st.Lines, st.Comments, st.Entries, st.Ignored, st.Skipped, st.Rejected)
	for _, e := range st.Errors {
		fmt.Fprintf(&out, "# %v\n", e)
	}
	for _, e := range st.Skips {
		fmt.Fprintf(&out, "# skipped %v\n", e)
	}
	return out.Bytes()
}

// TestGolden pins the normalised output of every fixture; run with
// -update after an intended change and review the diff.
func TestGolden(t *testing.T) {
	fixtures, _ := filepath.Glob("testdata/*.txt")
	if len(fixtures) == 0 {
		t.Fatal("no fixtures")
	}
	for _, fx := range fixtures {
		t.Run(filepath.Base(fx), func(t *testing.T) {
			got := render(t, fx, FormatAuto)
			golden := strings.TrimSuffix(fx, ".txt") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func parseString(t *testing.T, format Format, text string) ([]Rule, ParseStats) {
	t.Helper()
	var rules []Rule
	st, err := Parse(strings.NewReader(text), ParseOptions{Source: "test", Format: format, MaxRejected: -1}, func(r Rule) {
		rules = append(rules, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rules, st
}

func TestParseRules(t *testing.T) {
	cases := []struct {
		format Format
		line   string
		want   string // Rule.String(), "" for no rule
	}{
		{FormatHosts, "0.0.0.0 a.example", "a.example"},
		{FormatHosts, "127.0.0.1 A.EXAMPLE.", "a.example"},
		{FormatHosts, ":: a.example # c", "a.example"},
		{FormatHosts, "0.0.0.0 localhost", ""},
		{FormatDomains, "a.example", "a.example"},
		{FormatDomains, "*.a.example", "||a.example^"},
		{FormatWildcard, "*.a.example", "||a.example^"},
		{FormatWildcard, "a.example", "||a.example^"},
		{FormatAdblock, "||a.example^", "||a.example^"},
		{FormatAdblock, "||a.example^|", "||a.example^"},
		{FormatAdblock, "@@||a.example^", "@@||a.example^"},
		{FormatAdblock, "||a.example^$important", "||a.example^$important"},
		{FormatAdblock, "@@||a.example^$important", "@@||a.example^$important"},
		{FormatAdblock, "||a.example^$badfilter", "||a.example^$badfilter"},
		{FormatAdblock, "|a.example^", "|a.example^"},
		{FormatAdblock, "a.example", "a.example"},
		{FormatAdblock, "a.example^", "||a.example^"},
		{FormatAdblock, "||*.a.example^", "||*.a.example^"},
		{FormatAdblock, "*.a.example", "||*.a.example^"},
		{FormatAdblock, "0.0.0.0 a.example # c", "a.example"},
		{FormatAdblock, "||a.example^$third-party", ""},
		{FormatAdblock, "||a.*.example^", ""},
		{FormatAdblock, "||a.example/path", ""},
		{FormatAdblock, "||a.", ""},
		{FormatAdblock, "||192.0.2.1^", ""},
		{FormatAdblock, "example.com##.ad", ""},
		{FormatAdblock, "/ads?/", ""},
		{FormatAdblock, "||xn--bcher-kva.example^", "||xn--bcher-kva.example^"},
		{FormatAdblock, "||bücher.example^", "||xn--bcher-kva.example^"},
		{FormatDnsmasq, "local=/a.example/", "||a.example^"},
		{FormatDnsmasq, "address=/a.example/0.0.0.0", "||a.example^"},
	}
	for _, tc := range cases {
		t.Run(string(tc.format)+" "+tc.line, func(t *testing.T) {
			rules, _ := parseString(t, tc.format, tc.line)
			got := ""
			if len(rules) == 1 {
				got = rules[0].String()
			} else if len(rules) > 1 {
				t.Fatalf("%d rules from one line", len(rules))
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseCountsEveryLine(t *testing.T) {
	text := "# c\n\n0.0.0.0 a.example b.example\n0.0.0.0 localhost\nnot-ip x.example\n0.0.0.0 bad..example\n"
	_, st := parseString(t, FormatHosts, text)
	want := ParseStats{Format: FormatHosts, Lines: 6, Comments: 1, Entries: 2, Ignored: 1, Rejected: 2}
	if st.Lines != want.Lines || st.Comments != want.Comments || st.Entries != want.Entries || st.Ignored != want.Ignored || st.Rejected != want.Rejected {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if len(st.Errors) != 2 || st.Errors[0].Line != 5 || !strings.HasPrefix(st.Errors[0].Error(), "test:5: ") {
		t.Errorf("errors %v: want source:line positions", st.Errors)
	}
}

func TestParseRejectLimit(t *testing.T) {
	text := strings.Repeat("not a domain line\n", 10) + "good.example\n"
	_, err := Parse(strings.NewReader(text), ParseOptions{Source: "junk", Format: FormatDomains, MaxRejected: 5}, func(Rule) {})
	if err == nil || !strings.Contains(err.Error(), "too many invalid lines") {
		t.Errorf("err %v, want too many invalid lines", err)
	}
	binary := string([]byte{0x89, 'P', 'N', 'G', 0, 1, 2, '\n', 0xff, 0xfe, '\n'})
	_, st := parseString(t, FormatAuto, binary)
	if st.Rejected != 2 || st.Entries != 0 {
		t.Errorf("binary input: %+v, want 2 rejected lines", st)
	}
}

func TestNormalizeName(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"Example.COM.", "example.com", ""},
		{"münchen.de", "xn--mnchen-3ya.de", ""},
		{"_dmarc.example.com", "_dmarc.example.com", ""},
		{"", "", "empty name"},
		{"a..b", "", "empty label"},
		{".a", "", "empty label"},
		{strings.Repeat("a", 64) + ".com", "", "label longer than 63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "", "longer than 253"},
		{"a b.com", "", "invalid character"},
		{"a/b.com", "", "invalid character"},
	}
	for _, tc := range cases {
		got, err := NormalizeName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeName(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	cases := []struct {
		head string
		want Format
	}{
		{"# Syntax: Domains (wildcards) without *.\nexample.com\n", FormatWildcard},
		{"# Syntax: Domains (without subdomains)\nexample.com\n", FormatWildcard},
		{"# Syntax: Domains (including possible subdomains)\nexample.com\n", FormatDomains},
		{"# Syntax: Hosts compressed\n0.0.0.0 a b c\n", FormatHosts},
		{"[Adblock Plus]\n! x\n||a.com^\n", FormatAdblock},
		{"||a.com^\n||b.com^\n", FormatAdblock},
		{"0.0.0.0 a.com\n0.0.0.0 b.com\n", FormatHosts},
		{"*.a.com\n*.b.com\n", FormatWildcard},
		{"local=/a.com/\n", FormatDnsmasq},
		{"a.com\nb.com\n", FormatDomains},
		{"", FormatDomains},
	}
	for _, tc := range cases {
		if got := DetectFormat([]byte(tc.head)); got != tc.want {
			t.Errorf("DetectFormat(%q) = %s, want %s", tc.head, got, tc.want)
		}
	}
}

// fuzzParse checks a parser never panics and every rule it emits is a
// normalised name (normalising it again changes nothing).
func fuzzParse(f *testing.F, format Format, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if fx, err := os.ReadFile(filepath.Join("testdata", string(format)+".txt")); err == nil {
		f.Add(fx)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		detected := format
		if format == FormatAuto {
			detected = DetectFormat(data[:min(len(data), 32<<10)])
		}
		st, err := Parse(bytes.NewReader(data), ParseOptions{Source: "fuzz", Format: format, MaxRejected: -1}, func(r Rule) {
			n++
			if again, err := NormalizeName(r.Name); err != nil || again != r.Name {
				t.Fatalf("emitted %q, which normalises to %q, %v", r.Name, again, err)
			}
			if r.BelowOnly && !r.Suffix {
				t.Fatalf("emitted %+v: below-only but not a suffix rule", r)
			}
			if detected != FormatAdblock || looksLikeIP(r.Name) {
				return
			}
			// An adblock rule's text reads back as the same rule, so
			// `vigil explain` shows what the list says and $badfilter
			// names what it disables. (A hosts line may name a
			// dotted-number host, which adblock syntax reads as an IP.)
			var back []Rule
			if _, err := Parse(strings.NewReader(r.String()), ParseOptions{Format: FormatAdblock, MaxRejected: -1}, func(b Rule) { back = append(back, b) }); err != nil || len(back) != 1 || back[0] != r {
				t.Fatalf("emitted %+v as %q, which reads back as %+v, %v", r, r.String(), back, err)
			}
		})
		if err == nil && n != st.Entries {
			t.Fatalf("emitted %d rules but counted %d", n, st.Entries)
		}
	})
}

func FuzzParseHosts(f *testing.F) {
	fuzzParse(f, FormatHosts, "0.0.0.0 a.com b.com # c\n", "::1 localhost\n", "fe80::1%lo0 x\n")
}

func FuzzParseDomains(f *testing.F) {
	fuzzParse(f, FormatDomains, "a.com\n*.b.com\n", "ü.com\n", "a..b\n")
}

func FuzzParseAdblock(f *testing.F) {
	fuzzParse(f, FormatAdblock, "||a.com^$important,badfilter\n@@||b.com^|\n", "||*.c.com^\n", "|d.com^\n",
		"0.0.0.0 a.com b.com # c\n:: c.com\n127.0.0.1 localhost\n", "*.e.com\n@@*.f.com^\ng.com\n",
		"||h.com^$client=1.2.3.4,badfilter\n||i.com^$dnstype=AAAA\n@@||j.com^$denyallow=k.j.com\n",
		"||l.com^$dnsrewrite=NOERROR;A;1.2.3.4\n/^m\\./\n@@/n/\n||o.com^$important,ctag=tv\n")
}

func FuzzParseWildcard(f *testing.F) {
	fuzzParse(f, FormatWildcard, "*.a.com\nb.com\n", "*.*.c\n")
}

func FuzzParseDnsmasq(f *testing.F) {
	fuzzParse(f, FormatDnsmasq, "local=/a.com/b.com/\naddress=/c.com/0.0.0.0\n", "server=//\n")
}

func FuzzParseAuto(f *testing.F) {
	fuzzParse(f, FormatAuto, "# Syntax: Hosts\n0.0.0.0 a.com\n", "[Adblock Plus]\n||a^\n")
}
