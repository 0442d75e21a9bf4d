// Package blocklists turns real-world blocklists (hosts files, plain domain
// lists, adblock/AdGuard DNS filters, wildcard and dnsmasq lists) into an
// immutable, compact matcher, and keeps them fresh from their sources with
// the last good copy of each in the store.
//
// Its API deals in strings only, never DNS library types.
package blocklists

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Format is the syntax of a list.
type Format string

// List formats.
const (
	FormatAuto     Format = "auto"     // detected from the header and the first rules
	FormatHosts    Format = "hosts"    // "0.0.0.0 name [name...]": exact names
	FormatDomains  Format = "domains"  // one name per line: exact names
	FormatAdblock  Format = "adblock"  // "||name^", "@@||name^", "$important", "$badfilter"
	FormatWildcard Format = "wildcard" // "*.name" or "name": the name and all its subdomains
	FormatDnsmasq  Format = "dnsmasq"  // "local=/name/", "server=/name/", "address=/name/...": name and subdomains
)

// ParseFormat checks a format name from the configuration or a flag; case
// and surrounding space do not matter, and "" is FormatAuto.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "", FormatAuto:
		return FormatAuto, nil
	case FormatHosts, FormatDomains, FormatAdblock, FormatWildcard, FormatDnsmasq:
		return f, nil
	}
	return "", errBadFormat(s)
}

func errBadFormat(s string) error {
	return fmt.Errorf("want auto, hosts, domains, adblock, wildcard or dnsmasq, got %q", s)
}

// valid reports whether f is a format Parse knows, as ParseFormat returns
// it; "" means FormatAuto.
func (f Format) valid() bool {
	switch f {
	case "", FormatAuto, FormatHosts, FormatDomains, FormatAdblock, FormatWildcard, FormatDnsmasq:
		return true
	}
	return false
}

// MarshalText implements encoding.TextMarshaler; "" is written as "auto".
func (f Format) MarshalText() ([]byte, error) {
	if f == "" {
		return []byte(FormatAuto), nil
	}
	return []byte(f), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseFormat.
func (f *Format) UnmarshalText(text []byte) error {
	v, err := ParseFormat(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Rule is one blocking or allowing rule, normalised.
type Rule struct {
	// Name is lowercase, punycode, without a trailing dot.
	Name string
	// Suffix rules match Name and every name below it; others match Name
	// only.
	Suffix bool
	// BelowOnly narrows a Suffix rule to the names below Name, not Name
	// itself (adblock "||*.name^", as AdGuard reads it).
	BelowOnly bool
	// Allow marks an exception (adblock "@@", or any rule of an allowlist).
	Allow bool
	// Important rules beat exceptions (adblock "$important").
	Important bool
	// BadFilter rules disable the identical rule wherever it appears
	// (adblock "$badfilter").
	BadFilter bool
	// Adblock marks a rule written in adblock network-rule syntax ("||a^",
	// "|a^", "a^"), as opposed to a hosts, plain-domain, wildcard or
	// dnsmasq line, even inside an adblock list. Only such rules can be
	// disabled by a $badfilter rule, which names a rule by its text: as in
	// AdGuard, "|a^$badfilter" disables "|a^", not a hosts line for a.
	// The Matcher does not keep it: a Match reports the rule's shape.
	Adblock bool
}

// String renders the rule in the syntax that expresses it best.
func (r Rule) String() string {
	if r.Plain() {
		return r.Name
	}
	return string(r.AppendText(nil))
}

// Plain reports whether the rule's text is just its name: an exact rule
// with no modifiers.
func (r Rule) Plain() bool {
	return !r.Suffix && !r.BelowOnly && !r.Allow && !r.Important && !r.BadFilter && !r.Adblock
}

// AppendText appends the rule's text, as String returns it, to b.
func (r Rule) AppendText(b []byte) []byte {
	if r.Allow {
		b = append(b, "@@"...)
	}
	switch {
	case r.BelowOnly:
		b = append(append(append(b, "||*."...), r.Name...), '^')
	case r.Suffix:
		b = append(append(append(b, "||"...), r.Name...), '^')
	case r.Allow || r.Important || r.BadFilter || r.Adblock:
		b = append(append(append(b, '|'), r.Name...), '^')
	default:
		b = append(b, r.Name...)
	}
	switch {
	case r.Important && r.BadFilter:
		b = append(b, "$important,badfilter"...)
	case r.Important:
		b = append(b, "$important"...)
	case r.BadFilter:
		b = append(b, "$badfilter"...)
	}
	return b
}

// LineError is a rejected line.
type LineError struct {
	Source string
	Line   int
	Reason string
	Text   string
}

// Error implements error as "source:line: reason: text".
func (e LineError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", e.Source, e.Line, e.Reason, e.Text)
}

// ParseStats counts what a parse saw. Every non-blank line is exactly one
// of a comment, a rule line, a skipped line or a rejected line.
type ParseStats struct {
	Format   Format // the format used (detected, for auto)
	Lines    int    // all lines, blank ones included
	Comments int    // comment and header lines
	Entries  int    // rules emitted (a hosts line with 9 names counts 9)
	Ignored  int    // localhost-style hosts names, not rules
	Skipped  int    // valid syntax Vigil does not apply to DNS: cosmetic, URL, regex, wildcard-in-label, other modifiers
	Rejected int    // invalid lines
	// Errors holds the first rejected lines, for reports.
	Errors []LineError
	// Skips holds the first skipped rule lines with the reason Vigil does
	// not apply them (an unsupported modifier, a regular expression...),
	// so a list author can see what was left out. Cosmetic lines, which
	// never concern DNS, are not listed.
	Skips []LineError
}

// maxReportedErrors bounds ParseStats.Errors.
const maxReportedErrors = 20

// ErrTooManyRejected means a source had more invalid lines than allowed.
var ErrTooManyRejected = errors.New("too many invalid lines")

// ParseOptions controls Parse.
type ParseOptions struct {
	// Source names the list in errors ("source:line").
	Source string
	// Format is the list's syntax; FormatAuto detects it.
	Format Format
	// MaxRejected is how many invalid lines are tolerated before the
	// parse fails with ErrTooManyRejected; negative means no limit.
	MaxRejected int
	// Allow marks every rule as an exception (the list is an allowlist).
	Allow bool
}

// maxLineLen bounds one line; longer lines are rejected, not buffered.
const maxLineLen = 64 << 10

// Parse reads a list and calls emit for each rule. The Rule's Name is only
// valid during the call when it comes from the input; emit must copy it to
// keep it. It returns the counts, and an error if reading failed or the
// list had more invalid lines than allowed.
func Parse(r io.Reader, opts ParseOptions, emit func(Rule)) (ParseStats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	st := ParseStats{Format: opts.Format}
	if st.Format == "" || st.Format == FormatAuto {
		head, _ := br.Peek(32 << 10)
		st.Format = DetectFormat(head)
	}
	p := parser{opts: opts, st: &st, emit: emit}
	if opts.Allow {
		p.emit = func(r Rule) { r.Allow = true; emit(r) }
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 4096), maxLineLen)
	for sc.Scan() {
		st.Lines++
		p.line(sc.Bytes())
		if opts.MaxRejected >= 0 && st.Rejected > opts.MaxRejected {
			return st, fmt.Errorf("%s: %w (%d, more than the limit of %d)", opts.Source, ErrTooManyRejected, st.Rejected, opts.MaxRejected)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("%s:%d: line longer than %d bytes: not a list", opts.Source, st.Lines+1, maxLineLen)
		}
		return st, fmt.Errorf("reading %s: %w", opts.Source, err)
	}
	return st, nil
}

type parser struct {
	opts ParseOptions
	st   *ParseStats
	emit func(Rule)
}

func (p *parser) reject(reason string, text []byte) {
	p.st.Rejected++
	p.st.Errors = p.report(p.st.Errors, reason, text)
}

// skip counts a valid rule Vigil does not apply, and why.
func (p *parser) skip(reason string, text []byte) {
	p.st.Skipped++
	p.st.Skips = p.report(p.st.Skips, reason, text)
}

// report appends the current line to a bounded report.
func (p *parser) report(to []LineError, reason string, text []byte) []LineError {
	if len(to) >= maxReportedErrors {
		return to
	}
	t := string(text)
	if len(t) > 120 {
		t = t[:120] + "..."
	}
	return append(to, LineError{Source: p.opts.Source, Line: p.st.Lines, Reason: reason, Text: t})
}

func (p *parser) line(raw []byte) {
	line := bytes.TrimSpace(raw)
	if len(line) == 0 {
		return
	}
	if !utf8.Valid(line) || bytes.IndexByte(line, 0) >= 0 {
		p.reject("not text", line)
		return
	}
	switch p.st.Format {
	case FormatHosts:
		p.hosts(line)
	case FormatAdblock:
		p.adblock(line)
	case FormatWildcard:
		p.wildcard(line)
	case FormatDnsmasq:
		p.dnsmasq(line)
	default:
		p.domains(line)
	}
}

// stripComment removes a "#" comment; it reports whether the whole line
// was a comment.
func stripComment(line []byte) ([]byte, bool) {
	if line[0] == '#' || line[0] == '!' || line[0] == ';' {
		return nil, true
	}
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = bytes.TrimSpace(line[:i])
	}
	return line, len(line) == 0
}

// localhostNames are hosts-file entries that describe the machine itself,
// not something to block.
var localhostNames = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true, "broadcasthost": true,
	"ip6-localhost": true, "ip6-loopback": true, "ip6-localnet": true, "ip6-mcastprefix": true,
	"ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
}

func (p *parser) hosts(line []byte) {
	line, comment := stripComment(line)
	if comment {
		p.st.Comments++
		return
	}
	fields := strings.Fields(string(line))
	if _, err := netip.ParseAddr(fields[0]); err != nil {
		p.reject("hosts line must start with an IP address", line)
		return
	}
	if len(fields) == 1 {
		p.reject("hosts line without a name", line)
		return
	}
	for _, f := range fields[1:] {
		if localhostNames[strings.ToLower(f)] {
			p.st.Ignored++
			continue
		}
		name, err := NormalizeName(f)
		if err != nil {
			p.reject(err.Error(), line)
			continue
		}
		p.st.Entries++
		p.emit(Rule{Name: name})
	}
}

func (p *parser) domains(line []byte) {
	line, comment := stripComment(line)
	if comment {
		p.st.Comments++
		return
	}
	s := string(line)
	if strings.ContainsAny(s, " \t") {
		p.reject("more than one field on a domain line", line)
		return
	}
	suffix := false
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		// A wildcard entry in a domain list means what it says.
		s, suffix = rest, true
	}
	p.name(s, Rule{Suffix: suffix}, line)
}

func (p *parser) wildcard(line []byte) {
	line, comment := stripComment(line)
	if comment {
		p.st.Comments++
		return
	}
	s := string(line)
	s = strings.TrimPrefix(s, "*.")
	if strings.ContainsAny(s, " \t") {
		p.reject("more than one field on a wildcard line", line)
		return
	}
	p.name(s, Rule{Suffix: true}, line)
}

func (p *parser) dnsmasq(line []byte) {
	line, comment := stripComment(line)
	if comment {
		p.st.Comments++
		return
	}
	s := string(line)
	key, val, ok := strings.Cut(s, "=")
	if !ok || (key != "local" && key != "server" && key != "address") || !strings.HasPrefix(val, "/") {
		p.reject("want local=/name/, server=/name/ or address=/name/...", line)
		return
	}
	parts := strings.Split(val, "/")
	// "/a/b/" splits into "", "a", "b", "" (or the address after the last slash).
	for _, n := range parts[1 : len(parts)-1] {
		if n == "" {
			continue
		}
		p.name(n, Rule{Suffix: true}, line)
	}
}

// name normalises s and emits it with the shape of tmpl.
func (p *parser) name(s string, tmpl Rule, line []byte) {
	if strings.ContainsAny(s, "*?") {
		p.st.Skipped++ // wildcards inside a label: not a DNS name
		return
	}
	name, err := NormalizeName(s)
	if err != nil {
		p.reject(err.Error(), line)
		return
	}
	tmpl.Name = name
	p.st.Entries++
	p.emit(tmpl)
}

// adblock reads a line of an adblock list as AdGuard's DNS filtering
// syntax does: adblock network rules, and also /etc/hosts lines and plain
// domain names, which AdGuard treats as host rules for that exact name.
//
// Vigil applies a rule only when it can honour all of it: a rule with a
// modifier it does not implement ($client, $dnstype, $denyallow,
// $dnsrewrite, $ctag, browser modifiers) or a pattern that is not a DNS
// name (regular expression, URL path, port, wildcard inside a label) is
// skipped with its reason, never applied more broadly than written.
func (p *parser) adblock(line []byte) {
	switch {
	case line[0] == '!' || line[0] == '[':
		p.st.Comments++
		return
	case isCosmetic(line):
		p.st.Skipped++
		return
	case line[0] == '#':
		p.st.Comments++
		return
	case isHostsLine(line):
		p.hosts(line)
		return
	}
	s := string(line)
	var r Rule
	if rest, ok := strings.CutPrefix(s, "@@"); ok {
		s, r.Allow = rest, true
	}
	if len(s) > 1 && s[0] == '/' {
		p.skip("regular expression rules are not supported", line)
		return
	}
	if i := strings.LastIndexByte(s, '$'); i >= 0 {
		mods := s[i+1:]
		s = s[:i]
		for _, m := range strings.Split(mods, ",") {
			switch m = strings.TrimSpace(m); m {
			case "important":
				r.Important = true
			case "badfilter":
				r.BadFilter = true
			default:
				// $client, $ctag, $dnstype, $denyallow, $dnsrewrite and
				// browser modifiers narrow or change a rule in ways Vigil
				// does not model; applying it unnarrowed would over-block
				// (or, for an exception, over-allow).
				name, _, _ := strings.Cut(m, "=")
				p.skip(fmt.Sprintf("modifier $%s is not supported", name), line)
				return
			}
		}
	}
	network := false
	switch {
	case strings.HasPrefix(s, "||"):
		s, r.Suffix, network = s[2:], true, true
	case strings.HasPrefix(s, "|"):
		s = s[1:] // anchored at the start: this exact host
		if !strings.HasSuffix(strings.TrimSuffix(s, "|"), "^") {
			p.skip("a start anchor without ^ is a URL rule", line)
			return
		}
		network = true
	case strings.HasSuffix(s, "^") || strings.HasSuffix(s, "^|"):
		r.Suffix, network = true, true // "name^": the host and its subdomains
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok && (r.Suffix || !network) {
		// "||*.x^" and "*.x": the names below x, not x itself.
		s, r.Suffix, r.BelowOnly, network = rest, true, true, true
	}
	s = strings.TrimSuffix(s, "|")
	s = strings.TrimSuffix(s, "^")
	if s == "" {
		p.reject("empty rule", line)
		return
	}
	if strings.ContainsAny(s, "/:^|*?=&%") || s[0] == '.' || s[len(s)-1] == '.' {
		// URL paths, ports, mid-label wildcards, "any TLD" rules
		// ("||name.") and other patterns that are not a DNS name.
		p.skip("not a DNS name pattern", line)
		return
	}
	if looksLikeIP(s) {
		p.skip("IP rules apply to answers, not names", line)
		return
	}
	name, err := NormalizeName(s)
	if err != nil {
		p.reject(err.Error(), line)
		return
	}
	// A bare name with no anchor, separator or modifier is a host rule for
	// that name (AdGuard's "domains-only" syntax); anything else is a
	// network rule, the kind $badfilter can name.
	r.Adblock = network || r.Allow || r.Important || r.BadFilter
	r.Name = name
	p.st.Entries++
	p.emit(r)
}

// isHostsLine reports an /etc/hosts line: an IP address, then space.
func isHostsLine(line []byte) bool {
	i := bytes.IndexAny(line, " \t")
	if i <= 0 {
		return false
	}
	_, err := netip.ParseAddr(string(line[:i]))
	return err == nil
}

func isCosmetic(line []byte) bool {
	for _, sep := range [][]byte{[]byte("##"), []byte("#@#"), []byte("#$#"), []byte("#?#"), []byte("#%#"), []byte("$$")} {
		if bytes.Contains(line, sep) {
			return true
		}
	}
	return false
}

// looksLikeIP reports an IPv4 address or a dotted-numeric prefix of one.
func looksLikeIP(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	for _, c := range s {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// NormalizeName lowercases s, drops one trailing dot, converts an IDN to
// punycode and checks it is a valid DNS name: 1 to 253 characters, labels
// of 1 to 63 letters, digits, hyphens or underscores.
func NormalizeName(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("empty name")
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(s)
		if err != nil {
			return "", fmt.Errorf("invalid international name: %w", err)
		}
		s = a
	}
	s = strings.ToLower(s)
	if len(s) > 253 {
		return "", errors.New("name longer than 253 characters")
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", errors.New("empty label")
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", fmt.Errorf("invalid character %q in name", c)
		}
		label++
		if label > 63 {
			return "", errors.New("label longer than 63 characters")
		}
	}
	if label == 0 {
		return "", errors.New("empty label")
	}
	return s, nil
}

// DetectFormat guesses a list's format from its beginning: a "Syntax:"
// header line if there is one, else the shape of the first rules.
func DetectFormat(head []byte) Format {
	var votes = map[Format]int{}
	lines := 0
	for len(head) > 0 && lines < 200 {
		var line []byte
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			line, head = head, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' || line[0] == '!' || line[0] == ';' {
			if f, ok := syntaxHeader(string(line)); ok {
				return f
			}
			continue
		}
		if line[0] == '[' && bytes.Contains(bytes.ToLower(line), []byte("adblock")) {
			return FormatAdblock
		}
		lines++
		s := string(line)
		switch {
		case strings.HasPrefix(s, "|") || strings.HasPrefix(s, "@@") || strings.Contains(s, "^") || strings.Contains(s, "$important") || strings.Contains(s, "$badfilter"):
			votes[FormatAdblock]++
		case strings.HasPrefix(s, "*."):
			votes[FormatWildcard]++
		case strings.HasPrefix(s, "local=/") || strings.HasPrefix(s, "server=/") || strings.HasPrefix(s, "address=/"):
			votes[FormatDnsmasq]++
		default:
			if f := strings.Fields(s); len(f) >= 2 {
				if _, err := netip.ParseAddr(f[0]); err == nil {
					votes[FormatHosts]++
					continue
				}
			}
			votes[FormatDomains]++
		}
	}
	best, n := FormatDomains, 0
	for _, f := range []Format{FormatAdblock, FormatHosts, FormatWildcard, FormatDnsmasq, FormatDomains} {
		if votes[f] > n {
			best, n = f, votes[f]
		}
	}
	if (best == FormatHosts || best == FormatDomains) && votes[FormatAdblock] > 0 {
		// The adblock parser reads hosts and domain lines as the hosts
		// and domains parsers do, as AdGuard does; the other way round,
		// every adblock rule would be rejected.
		return FormatAdblock
	}
	return best
}

// syntaxHeader reads the "Syntax:" header lists such as HaGeZi's and
// OISD's carry. "Domains (wildcards)" and "Domains (without subdomains)"
// both mean each entry covers its subdomains.
func syntaxHeader(line string) (Format, bool) {
	l := strings.ToLower(line)
	i := strings.Index(l, "syntax:")
	if i < 0 {
		return "", false
	}
	v := l[i+len("syntax:"):]
	switch {
	case strings.Contains(v, "adblock"):
		return FormatAdblock, true
	case strings.Contains(v, "hosts"):
		return FormatHosts, true
	case strings.Contains(v, "dnsmasq"):
		return FormatDnsmasq, true
	case strings.Contains(v, "wildcard") || strings.Contains(v, "without subdomains"):
		return FormatWildcard, true
	case strings.Contains(v, "domains"):
		return FormatDomains, true
	}
	return "", false
}
