package curated_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/blocklists/curated"
)

// Every curated file, today's and those added later, is held to the
// format: every rule parses (with Vigil's own parser too, nothing skipped or
// rejected) and belongs to a metadata comment with a known category, a
// vendor, what it is for and an http(s) source.
func TestCuratedFilesFollowTheFormat(t *testing.T) {
	files := curated.Files()
	if !slices.Contains(files, "functional") {
		t.Fatalf("embedded files %v lack functional", files)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			entries, err := curated.Metadata(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) == 0 {
				t.Fatal("no rules")
			}
			body, _ := curated.Read(name)
			var rules []blocklists.Rule
			st, err := blocklists.Parse(bytes.NewReader(body), blocklists.ParseOptions{Source: name, MaxRejected: -1},
				func(r blocklists.Rule) { rules = append(rules, r) })
			if err != nil || st.Format != blocklists.FormatAdblock || st.Rejected+st.Skipped > 0 || st.Entries != len(entries) {
				t.Fatalf("blocklists.Parse: %v, format %s, %d entries (curated: %d), rejected %v, skipped %v",
					err, st.Format, st.Entries, len(entries), st.Errors, st.Skips)
			}
			seen := map[string]int{}
			for i, e := range entries {
				r := rules[i]
				if r.Name != e.Name || r.Suffix != e.Suffix || r.Allow != e.Allow || r.Important != e.Important {
					t.Errorf("line %d %s: curated reads %+v, blocklists reads %+v", e.Line, e.Rule, e, r)
				}
				if !slices.Contains(curated.Categories, e.Category) || e.Vendor == "" || e.Breaks == "" ||
					!(strings.HasPrefix(e.Source, "https://") || strings.HasPrefix(e.Source, "http://")) {
					t.Errorf("line %d %s: incomplete provenance %+v", e.Line, e.Rule, e)
				}
				if name == "functional" && (!e.Allow || e.Important || !curated.FunctionalCategory(e.Category)) {
					t.Errorf("line %d %s: functional.txt holds only allow rules (no $important) of a functional category, got %q", e.Line, e.Rule, e.Category)
				}
				if prev, dup := seen[e.Rule]; dup {
					t.Errorf("line %d %s: already on line %d", e.Line, e.Rule, prev)
				}
				seen[e.Rule] = e.Line
			}
		})
	}
}

// The allowlist and the curated deny files must not disagree silently: a
// name that functional.txt allows and another curated file denies is a
// contradiction unless the deny rule is $important (the deny file then
// says, on purpose, that the function loses).
func TestCuratedAllowAndDenyDoNotCollide(t *testing.T) {
	allow, err := curated.Metadata("functional")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range curated.Files() {
		if name == "functional" {
			continue
		}
		deny, err := curated.Metadata(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deny {
			if d.Allow || d.Important {
				continue
			}
			for _, a := range allow {
				if a.Covers(d.Name) || d.Covers(a.Name) {
					t.Errorf("%s:%d %s and functional.txt:%d %s overlap; mark the deny rule $important or drop one", name, d.Line, d.Rule, a.Line, a.Rule)
				}
			}
		}
	}
}

func TestParseRefusesWhatTheFormatForbids(t *testing.T) {
	const meta = "! [push] Xiaomi: notifications stop — https://example.com/report\n"
	for _, tc := range []struct{ name, text, want string }{
		{"rule before metadata", "@@||a.example^\n", "without a metadata comment"},
		{"unknown category", "! [fun] X: y — https://e.example/\n@@||a.example^\n", `unknown category "fun"`},
		{"no vendor", "! [push] notifications stop — https://e.example/\n@@||a.example^\n", "Vendor"},
		{"no source", "! [push] X: notifications stop\n@@||a.example^\n", "SOURCE"},
		{"source not a URL", "! [push] X: notifications stop — issue 15\n@@||a.example^\n", "not an http(s) URL"},
		{"no description", "! [push] X:  — https://e.example/\n@@||a.example^\n", "description"},
		{"hosts line", meta + "0.0.0.0 a.example\n", "want"},
		{"no caret", meta + "@@||a.example\n", `end in "^"`},
		{"wildcard", meta + "@@||conn-*.a.example^\n", "DNS name"},
		{"uppercase", meta + "@@||A.example^\n", "DNS name"},
		{"single label", meta + "@@||example^\n", "DNS name"},
		{"bad metadata ends the block", meta + "! [nope] X: y — https://e.example/\n@@||a.example^\n", "without a metadata comment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := curated.Parse("t.txt", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.txt:") {
				t.Errorf("error %v, want one with t.txt:LINE mentioning %q", err, tc.want)
			}
		})
	}
	entries, err := curated.Parse("t.txt", []byte(meta+"! a free note\n@@||a.example^\n\n@@|b.example^\n||c.example^$important\n"))
	if err != nil || len(entries) != 3 {
		t.Fatalf("%v %+v", err, entries)
	}
	want := []curated.Entry{
		{Line: 3, Rule: "@@||a.example^", Name: "a.example", Suffix: true, Allow: true},
		{Line: 5, Rule: "@@|b.example^", Name: "b.example", Allow: true},
		{Line: 6, Rule: "||c.example^$important", Name: "c.example", Suffix: true, Important: true},
	}
	for i, w := range want {
		w.Category, w.Vendor, w.Breaks, w.Source = "push", "Xiaomi", "notifications stop", "https://example.com/report"
		if entries[i] != w {
			t.Errorf("entry %d: got %+v, want %+v", i, entries[i], w)
		}
	}
	if !entries[0].Covers("x.a.example") || entries[1].Covers("x.b.example") || entries[0].Covers("xa.example") {
		t.Error("Covers: a suffix rule covers names below it, an exact rule only its name")
	}
}

func TestReadAndFind(t *testing.T) {
	for _, name := range []string{"", "nope", "../curated", "functional.txt", "a/b"} {
		if _, err := curated.Read(name); !errors.Is(err, curated.ErrUnknown) {
			t.Errorf("Read(%q): %v, want ErrUnknown", name, err)
		}
	}
	e, ok := curated.Find("functional", "find.api.micloud.xiaomi.net")
	if !ok || e.Category != "find-device" || e.Vendor != "Xiaomi" || !strings.HasPrefix(e.Source, "https://") {
		t.Errorf("Find: %+v %v", e, ok)
	}
	if _, ok := curated.Find("functional", "tracking.intl.miui.com"); ok {
		t.Error("Find reported a name the file does not list")
	}
}
