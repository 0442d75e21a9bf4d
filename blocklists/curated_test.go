package blocklists

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"golang.org/x/net/publicsuffix"

	"github.com/vigil-dns/vigil"
)

// curatedDir holds the lists shipped with Vigil, read by the builtin:NAME
// source scheme.
const curatedDir = "curated"

// metaRE is a curated file's metadata comment: every rule belongs to the
// nearest one above it, which says its category, its vendor, what it is,
// and where that is shown (a URL).
var metaRE = regexp.MustCompile(`^! \[([a-z-]+)\] ([^:]+): (.+) — (https?://\S+)$`)

// curatedCategories are the categories each kind of curated deny file may
// use: a telemetry file never holds a vendor's cloud, a cloud file nothing
// else.
var curatedCategories = map[string][]string{
	"telemetry": {"telemetry", "analytics", "ads", "tracking", "crash-report"},
	"cloud":     {"cloud"},
}

// curatedDenyFiles returns the curated deny files (VENDOR-telemetry.txt,
// VENDOR-cloud.txt) by tier.
func curatedDenyFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(curatedDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".txt")
		for tier := range curatedCategories {
			if strings.HasSuffix(base, "-"+tier) {
				out[f] = tier
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no curated deny files in %s", curatedDir)
	}
	return out
}

// TestCuratedDenyFiles holds each curated deny file to the shared format:
// every line is a comment or a rule the parser takes as it stands; every
// rule is a plain ||name^ or |name^ deny rule under a metadata comment
// with a known category and a URL; cloud sections say what they break; a
// telemetry file never blocks a whole registrable domain (that is the
// cloud tier's job), and no name is listed twice.
func TestCuratedDenyFiles(t *testing.T) {
	for file, tier := range curatedDenyFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var rules []Rule
			st, err := Parse(bytes.NewReader(body), ParseOptions{Source: file, MaxRejected: -1}, func(r Rule) { rules = append(rules, r) })
			if err != nil {
				t.Fatal(err)
			}
			if st.Format != FormatAdblock || st.Rejected != 0 || st.Skipped != 0 || st.Ignored != 0 || st.Entries == 0 {
				t.Errorf("format %s, %d entries, %d rejected, %d skipped, %d ignored (first errors %v); want adblock rules only",
					st.Format, st.Entries, st.Rejected, st.Skipped, st.Ignored, st.Errors)
			}
			sc := bufio.NewScanner(bytes.NewReader(body))
			var meta []string // the metadata comment in force
			seen := map[string]int{}
			rule := 0
			for line := 1; sc.Scan(); line++ {
				text := sc.Text()
				switch {
				case strings.TrimSpace(text) == "" || text == "!":
					continue
				case strings.HasPrefix(text, "! ["):
					meta = metaRE.FindStringSubmatch(text)
					if meta == nil {
						t.Errorf("line %d: %q is not `! [category] Vendor: what it is — https://source`", line, text)
						continue
					}
					if !slices.Contains(curatedCategories[tier], meta[1]) {
						t.Errorf("line %d: category %q in a %s file; want one of %v", line, meta[1], tier, curatedCategories[tier])
					}
					if tier == "cloud" && !strings.Contains(meta[3], "breaks") {
						t.Errorf("line %d: a cloud section must say what it breaks: %q", line, meta[3])
					}
					continue
				case strings.HasPrefix(text, "!"):
					continue // a file's header prose
				}
				if meta == nil {
					t.Errorf("line %d: rule %q has no metadata comment above it", line, text)
				}
				// A cloud tier cuts a vendor off entirely, the functional
				// allowlist included: its rules are $important.
				want, pattern := "", text
				if tier == "cloud" {
					want = "$important"
					pattern = strings.TrimSuffix(text, want)
				}
				if !strings.HasSuffix(text, want) || !strings.HasPrefix(pattern, "|") || !strings.HasSuffix(pattern, "^") || strings.ContainsAny(pattern, "$*@ ") {
					t.Errorf("line %d: %q; want ||name^%s or |name^%s", line, text, want, want)
				}
				if rule >= len(rules) {
					t.Fatalf("line %d: more rule lines than parsed rules", line)
				}
				r := rules[rule]
				rule++
				if r.Allow || r.Important != (tier == "cloud") || r.BadFilter || r.BelowOnly || r.Suffix != strings.HasPrefix(text, "||") {
					t.Errorf("line %d: %q parsed as %+v", line, text, r)
				}
				if prev, ok := seen[r.Name]; ok {
					t.Errorf("line %d: %s is already listed at line %d", line, r.Name, prev)
				}
				seen[r.Name] = line
				if tier == "telemetry" {
					reg, err := publicsuffix.EffectiveTLDPlusOne(r.Name)
					if err != nil || reg == r.Name {
						t.Errorf("line %d: %s is a whole registrable domain (%v); a telemetry file lists hosts", line, r.Name, err)
					}
				}
			}
			if rule != len(rules) {
				t.Errorf("%d rule lines, %d parsed rules", rule, len(rules))
			}
		})
	}
}

// shippedLists decodes the [[lists]] of the shipped config.toml.
func shippedLists(t *testing.T) []ListConfig {
	t.Helper()
	var cfg struct {
		Lists []ListConfig `toml:"lists"`
	}
	if _, err := toml.NewDecoder(bytes.NewReader(vigil.DefaultConfig)).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := ValidateLists(cfg.Lists); err != nil {
		t.Fatal(err)
	}
	return cfg.Lists
}

// TestShippedConfigUsesCuratedFiles: every curated deny file is used by
// the shipped config, and every builtin: source names a file; telemetry
// lists are on, cloud lists are present but off and say what they break.
func TestShippedConfigUsesCuratedFiles(t *testing.T) {
	used := map[string]bool{}
	for _, l := range shippedLists(t) {
		for _, src := range l.Sources {
			name, ok := strings.CutPrefix(src, "builtin:")
			if !ok {
				continue
			}
			file := filepath.Join(curatedDir, name+".txt")
			used[file] = true
			if _, err := os.Stat(file); err != nil {
				t.Errorf("list %s: %s: %v", l.Name, src, err)
			}
			switch {
			case strings.HasSuffix(name, "-cloud") && (l.IsEnabled() || len(l.Breaks) == 0 || l.Allow()):
				t.Errorf("list %s: a cloud list must be a deny list, off by default, saying what it breaks", l.Name)
			case strings.HasSuffix(name, "-telemetry") && (!l.IsEnabled() || len(l.Breaks) != 0 || l.Allow()):
				t.Errorf("list %s: a telemetry list must be an enabled deny list that breaks nothing", l.Name)
			}
		}
	}
	for file := range curatedDenyFiles(t) {
		if !used[file] {
			t.Errorf("%s is not used by the shipped config.toml", file)
		}
	}
}
