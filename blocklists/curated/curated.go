// Package curated holds the lists the Vigil project maintains itself,
// embedded in the binary so that a configuration naming them works after
// `go build`, in Docker, anywhere: no network and no path on the user's
// machine. A list source "builtin:NAME" reads the file NAME.txt of this
// folder (see blocklists.IsBuiltin).
//
// # Format
//
// Every curated file is an adblock-syntax list whose rules carry their
// provenance. Every rule line belongs to the nearest metadata comment above
// it, of the form
//
//	! [category] Vendor: what breaks when it is blocked — SOURCE
//
// where category is one of Categories, Vendor names the vendor (or "Android"
// for what every Android maker shares), the text says what the rule keeps
// working (or, in a deny file, what the names do), and SOURCE is an http(s)
// URL: the vendor's documentation, the list maintainer's issue, a forum
// report of the breakage. The separator before SOURCE is an em dash between
// spaces (" — "). Other "!" lines are free comments and do not end the
// block. Rules are "@@||name^" (allow name and its subdomains), "@@|name^"
// (allow that exact name), and in deny files "||name^" or "|name^",
// optionally with "$important".
package curated

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
)

//go:embed *.txt
var files embed.FS

// ErrUnknown means no curated file has the name asked for.
var ErrUnknown = errors.New("unknown built-in list")

// Categories are the categories a metadata comment may name. The first ten
// describe a function that breaks when its names are blocked (the
// allowlist's); the rest describe what deny files list.
var Categories = []string{
	"push", "find-device", "connectivity", "location", "update", "login",
	"time", "captive-portal", "sync", "other",
	"telemetry", "analytics", "ads", "tracking", "crash-report", "cloud",
}

// FunctionalCategory reports whether c is a category of a function that
// breaks (one an allowlist entry may carry).
func FunctionalCategory(c string) bool {
	i := slices.Index(Categories, c)
	return i >= 0 && i < functionalCategories
}

// functionalCategories is how many of Categories, from the first, are
// functions that break.
const functionalCategories = 10

// Files returns the names of the embedded lists, sorted, without ".txt":
// the NAME of "builtin:NAME".
func Files() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".txt"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	return names
}

// Read returns the text of the embedded list name (without ".txt").
func Read(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, fmt.Errorf("%w %q", ErrUnknown, name)
	}
	b, err := files.ReadFile(name + ".txt")
	if err != nil {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Files(), ", "))
	}
	return b, nil
}

// Entry is one rule of a curated file with its provenance.
type Entry struct {
	// Line is the rule's line number in the file, from 1.
	Line int
	// Rule is the rule as written ("@@||name^").
	Rule string
	// Name is the rule's DNS name, lowercase.
	Name string
	// Suffix rules cover Name and every name below it; others Name only.
	Suffix bool
	// Allow marks an exception ("@@").
	Allow bool
	// Important marks "$important".
	Important bool
	// Category, Vendor, Breaks and Source come from the metadata comment
	// the rule belongs to.
	Category string
	Vendor   string
	Breaks   string
	Source   string
}

// Covers reports whether the entry's rule applies to name (lowercase, no
// trailing dot).
func (e Entry) Covers(name string) bool {
	return name == e.Name || e.Suffix && strings.HasSuffix(name, "."+e.Name)
}

// Metadata returns every rule of the embedded list name with its
// provenance, in file order, or the first error in its format.
func Metadata(name string) ([]Entry, error) {
	b, err := Read(name)
	if err != nil {
		return nil, err
	}
	return Parse(name+".txt", b)
}

// Find returns the entry of the embedded list file whose rule is for
// ruleName (as a Matcher reports it), if there is one.
func Find(file, ruleName string) (Entry, bool) {
	entries, err := Metadata(file)
	if err != nil {
		return Entry{}, false
	}
	for _, e := range entries {
		if e.Name == ruleName {
			return e, true
		}
	}
	return Entry{}, false
}

// sourceSep separates what breaks from the source URL.
const sourceSep = " — "

// Parse reads a curated file (named src in errors) and returns its rules
// with their provenance. Errors carry "src:line".
func Parse(src string, text []byte) ([]Entry, error) {
	var (
		out  []Entry
		meta *Entry
		errs []error
	)
	sc := bufio.NewScanner(bytes.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s == "[Adblock Plus]":
			continue
		case strings.HasPrefix(s, "! ["):
			m, err := parseMeta(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", src, line, err))
				meta = nil
				continue
			}
			meta = &m
			continue
		case strings.HasPrefix(s, "!") || strings.HasPrefix(s, "#"):
			continue
		}
		e, err := parseRule(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w: %q", src, line, err, s))
			continue
		}
		if meta == nil {
			errs = append(errs, fmt.Errorf("%s:%d: rule without a metadata comment (\"! [category] Vendor: what breaks — URL\") above it: %q", src, line, s))
			continue
		}
		e.Line, e.Category, e.Vendor, e.Breaks, e.Source = line, meta.Category, meta.Vendor, meta.Breaks, meta.Source
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// parseMeta reads "! [category] Vendor: what breaks — URL".
func parseMeta(s string) (Entry, error) {
	var m Entry
	rest := strings.TrimPrefix(s, "! [")
	cat, rest, ok := strings.Cut(rest, "]")
	if !ok {
		return m, errors.New("metadata comment without \"]\" after the category")
	}
	if slices.Index(Categories, cat) < 0 {
		return m, fmt.Errorf("unknown category %q (want one of %s)", cat, strings.Join(Categories, ", "))
	}
	vendor, rest, ok := strings.Cut(strings.TrimSpace(rest), ": ")
	if !ok || strings.TrimSpace(vendor) == "" {
		return m, errors.New("metadata comment without \"Vendor: \" after the category")
	}
	i := strings.LastIndex(rest, sourceSep)
	if i < 0 {
		return m, errors.New("metadata comment without \" — SOURCE\" at the end")
	}
	breaks, source := strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i+len(sourceSep):])
	if breaks == "" {
		return m, errors.New("metadata comment without a description before the source")
	}
	u, err := url.Parse(source)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(source, " \t") {
		return m, fmt.Errorf("source %q is not an http(s) URL", source)
	}
	m.Category, m.Vendor, m.Breaks, m.Source = cat, strings.TrimSpace(vendor), breaks, source
	return m, nil
}

// parseRule reads "@@||name^", "@@|name^", "||name^" or "|name^", with an
// optional "$important".
func parseRule(s string) (Entry, error) {
	e := Entry{Rule: s}
	r := s
	if rest, ok := strings.CutSuffix(r, "$important"); ok {
		r, e.Important = rest, true
	}
	if rest, ok := strings.CutPrefix(r, "@@"); ok {
		r, e.Allow = rest, true
	}
	switch {
	case strings.HasPrefix(r, "||"):
		r, e.Suffix = r[2:], true
	case strings.HasPrefix(r, "|"):
		r = r[1:]
	default:
		return e, errors.New("want \"||name^\" or \"|name^\" (with \"@@\" to allow)")
	}
	r, ok := strings.CutSuffix(r, "^")
	if !ok {
		return e, errors.New("rule does not end in \"^\"")
	}
	if r == "" || r != strings.ToLower(r) || strings.Trim(r, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" ||
		strings.HasPrefix(r, ".") || strings.HasSuffix(r, ".") || strings.Contains(r, "..") || !strings.Contains(r, ".") {
		return e, errors.New("not a lowercase DNS name with at least two labels")
	}
	e.Name = r
	return e, nil
}
