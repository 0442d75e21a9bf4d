package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/blocklists/curated"
)

// ListsStatus is the lists report of the API and the CLI.
type ListsStatus struct {
	Rules      int                       `json:"rules"`
	Generation uint64                    `json:"generation"`
	Built      time.Time                 `json:"built"`
	Sources    []blocklists.SourceStatus `json:"sources"`
	// Warning is blocklists.Warning: nothing blocked, or sources missing.
	Warning string `json:"warning,omitempty"`
	// Added names the lists added by hand (the others are the
	// configuration's): those can be removed as well as turned off.
	Added []string `json:"added,omitempty"`
}

// listsReport is ListsReport with the lists added by hand named.
func (a *api) listsReport() ListsStatus {
	rep := ListsReport(a.d.Lists)
	if a.d.ListEditor != nil {
		rep.Added = a.d.ListEditor.Added()
	}
	return rep
}

// ListsReport reports the compiled set in use and every source's status.
func ListsReport(l Lists) ListsStatus {
	set, sources := l.Current(), l.Status()
	return ListsStatus{Rules: set.Matcher.Len(), Generation: set.Generation, Built: set.Built, Sources: sources,
		Warning: blocklists.Warning(set, sources)}
}

// UpdateEvent is one line of the POST /api/v1/lists/update stream: a
// source finished (Done of Total), or, last, the final report.
type UpdateEvent struct {
	Done   int                      `json:"done,omitempty"`
	Total  int                      `json:"total,omitempty"`
	Source *blocklists.SourceStatus `json:"source,omitempty"`
	Final  *ListsStatus             `json:"final,omitempty"`
}

// Explanation says whether and why a name is blocked.
type Explanation struct {
	Name    string `json:"name"`
	Blocked bool   `json:"blocked"`
	Matched bool   `json:"matched"` // some rule applies (a block or an exception)
	List    string `json:"list,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	Kind    string `json:"kind,omitempty"` // "deny" or "allow"
	Rule    string `json:"rule,omitempty"`
	// Functional is set when the name is a known functional endpoint in
	// the curated allowlist (functional.txt): what blocking it breaks and
	// the report that says so, whether or not it is blocked now.
	Functional *FunctionalEndpoint `json:"functional,omitempty"`
	// Client is the client asked about (its name, or its address), and
	// Group the group; both empty for the question over every list.
	Client string `json:"client,omitempty"`
	Group  string `json:"group,omitempty"`
	// Groups are the client's groups; none for a client in no group
	// (it gets every list, or the default group's).
	Groups []string `json:"groups,omitempty"`
	// Why says why the deciding list applies to this client: which group
	// and schedule, or its own exception.
	Why string `json:"why,omitempty"`
}

// FunctionalEndpoint is a curated functional allowlist entry covering a
// name.
type FunctionalEndpoint struct {
	Category string `json:"category"` // push, find-device, connectivity, ...
	Vendor   string `json:"vendor"`
	Breaks   string `json:"breaks"` // what breaks when it is blocked
	Source   string `json:"source"` // the vendor document or report
	Rule     string `json:"rule"`   // the allow rule, as written
}

// maxAuditNames bounds the popular names an audit judges.
const maxAuditNames = 100_000

// auditLists runs blocklists' audit against the popular names in the
// body (one per line, most popular first; "rank,name" lines as in the
// Umbrella and Tranco files are read too).
func (a *api) auditLists(w http.ResponseWriter, r *http.Request) error {
	select {
	case a.auditing <- struct{}{}:
		defer func() { <-a.auditing }()
	default:
		return &httpError{status: http.StatusTooManyRequests, err: errors.New("an audit is already running")}
	}
	names, err := ParsePopular(r.Body, maxAuditNames)
	if err != nil {
		return badRequest(err)
	}
	rep, err := a.d.Lists.Audit(names)
	if err != nil {
		return fmt.Errorf("auditing the lists: %w", err)
	}
	return ok(w, map[string]any{"popular": len(names), "lists": rep})
}

// ParsePopular reads popular names, most popular first: one per line,
// or "rank,name" as in the Umbrella and Tranco files; blank lines and
// comments (#) are skipped, names normalised. At most max are read.
func ParsePopular(r io.Reader, max int) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan() && len(names) < max; line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if _, after, ok := strings.Cut(text, ","); ok {
			text = after
		}
		n, err := blocklists.NormalizeName(text)
		if err != nil {
			return nil, fmt.Errorf("popular names, line %d: %w", line, err)
		}
		names = append(names, strings.TrimSuffix(n, "."))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading popular names: %w", err)
	}
	return names, nil
}

// FunctionalRule is one rule of the curated functional allowlist, as the
// dashboard marks lookups with it.
type FunctionalRule struct {
	Name   string `json:"name"`   // the rule's name
	Suffix bool   `json:"suffix"` // it covers the names below Name too
	FunctionalEndpoint
}

// functional serves the curated functional allowlist, so the dashboard can
// mark blocked lookups of names that keep a device's function working.
func (a *api) functional(w http.ResponseWriter, r *http.Request) error {
	entries, err := curated.Metadata("functional")
	if err != nil {
		return fmt.Errorf("reading the functional allowlist: %w", err)
	}
	out := []FunctionalRule{}
	for _, e := range entries {
		if e.Allow {
			out = append(out, FunctionalRule{Name: e.Name, Suffix: e.Suffix, FunctionalEndpoint: FunctionalEndpoint{
				Category: e.Category, Vendor: e.Vendor, Breaks: e.Breaks, Source: e.Source, Rule: e.Rule}})
		}
	}
	return ok(w, map[string]any{"rules": out})
}

// functionalEndpoint returns the curated functional entry covering name
// (normalised, no trailing dot), if any.
func functionalEndpoint(name string) *FunctionalEndpoint {
	entries, err := curated.Metadata("functional")
	if err != nil {
		return nil // a build without the file: nothing to say
	}
	for _, e := range entries {
		if e.Allow && e.Covers(name) {
			return &FunctionalEndpoint{Category: e.Category, Vendor: e.Vendor, Breaks: e.Breaks, Source: e.Source, Rule: e.Rule}
		}
	}
	return nil
}

// HostOf returns the host name in what a user pasted: a URL
// ("https://tracking.miui.com/x?y" → "tracking.miui.com"), "host:port", or
// a name as it is.
func HostOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i > 0 {
		if u, err := url.Parse(s); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	if h, _, err := net.SplitHostPort(s); err == nil && h != "" {
		return h
	}
	return s
}

// Explain says whether m blocks name and by which rule, over every list.
// The CLI calls it directly when no server runs, so both give the same
// answer.
// A device's or a group's own exceptions are left out: they are not for
// every client.
func Explain(m *blocklists.Matcher, name string) (Explanation, error) {
	var set *blocklists.ListSet
	for i, l := range m.Lists() {
		if strings.HasPrefix(l.Scope, blocklists.ScopeClient) || strings.HasPrefix(l.Scope, blocklists.ScopeGroup) {
			if set == nil {
				set = new(blocklists.ListSet)
				for j := range m.Lists() {
					set.Add(j)
				}
			}
			set.Remove(i)
		}
	}
	return explainIn(m, name, set)
}

// explainIn is Explain counting only the lists in set (nil: all).
func explainIn(m *blocklists.Matcher, name string, set *blocklists.ListSet) (Explanation, error) {
	n, err := blocklists.NormalizeName(HostOf(name))
	if err != nil {
		return Explanation{}, fmt.Errorf("explaining %q: %w", name, err)
	}
	ex := Explanation{Name: n, Functional: functionalEndpoint(strings.TrimSuffix(n, "."))}
	v, ok := m.MatchIn(n, set)
	if !ok {
		return ex, nil
	}
	ex.Matched, ex.Blocked = true, v.Blocked
	ex.List, ex.Vendor, ex.Rule = v.List.Name, v.List.Vendor, v.Rule.String()
	ex.Kind = blocklists.KindDeny.String()
	if !v.Blocked {
		ex.Kind = blocklists.KindAllow.String()
	}
	return ex, nil
}

// lists reports every source.
func (a *api) lists(w http.ResponseWriter, r *http.Request) error {
	return ok(w, a.listsReport())
}

// updateLists fetches every source now. Progress streams as one JSON
// object per line, so a CLI can draw a progress bar; the last line carries
// the final report.
func (a *api) updateLists(w http.ResponseWriter, r *http.Request) error {
	// The refresh outlasts the server's write timeout when downloads are
	// slow; each download is bounded by blocklists.download_timeout and the
	// refresh ends when the client goes, so this answer goes without one.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	a.d.Lists.Refresh(r.Context(), func(done, total int, st blocklists.SourceStatus) {
		_ = enc.Encode(UpdateEvent{Done: done, Total: total, Source: &st})
		if flusher != nil {
			flusher.Flush()
		}
	})
	rep := ListsReport(a.d.Lists)
	_ = enc.Encode(UpdateEvent{Final: &rep})
	return nil // the status went out with the first line
}

// explain says whether ?name is blocked and by which list and rule: for
// ?client or ?group when one is given (with the groups and schedule that
// decide), else over every list.
func (a *api) explain(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	if name == "" {
		return badRequest(errNoName)
	}
	mt := a.d.Lists.Current().Matcher
	client, group := strings.TrimSpace(q.Get("client")), strings.TrimSpace(q.Get("group"))
	if client == "" && group == "" {
		ex, err := Explain(mt, name)
		if err != nil {
			return badRequest(err)
		}
		return ok(w, ex)
	}
	who, err := a.asker(client, group)
	if err != nil {
		return err
	}
	ex, err := ExplainFor(mt, a.groups(), who, name, a.now())
	if err != nil {
		return badRequest(err)
	}
	return ok(w, ex)
}

// allowed lists the names allowed from the dashboard.
func (a *api) allowed(w http.ResponseWriter, r *http.Request) error {
	names, err := a.d.Lists.Allowed()
	if err != nil {
		return fmt.Errorf("reading allowed names: %w", err)
	}
	return ok(w, map[string]any{"names": names})
}

// errNoListEditor answers a change of lists where none can be made.
var errNoListEditor = &httpError{status: http.StatusNotImplemented, err: errors.New("lists cannot be changed here: change the configuration")}

// addList adds a list from ?name, ?url (http or https), ?format (default
// auto), ?kind ("deny", the default, or "allow") and ?vendor; it is kept
// across restarts and fetched at once.
func (a *api) addList(w http.ResponseWriter, r *http.Request) error {
	if a.d.ListEditor == nil {
		return errNoListEditor
	}
	q := r.URL.Query()
	l := blocklists.ListConfig{Name: strings.TrimSpace(q.Get("name")), Vendor: strings.TrimSpace(q.Get("vendor")), Sources: []string{strings.TrimSpace(q.Get("url"))}}
	if err := l.Kind.UnmarshalText([]byte(cmpOr(q.Get("kind"), "deny"))); err != nil {
		return badRequest(fmt.Errorf("kind: %w", err))
	}
	f, err := blocklists.ParseFormat(cmpOr(q.Get("format"), "auto"))
	if err != nil {
		return badRequest(fmt.Errorf("format: %w", err))
	}
	l.Format = f
	if err := a.d.ListEditor.AddList(l); err != nil {
		return badRequest(err)
	}
	return ok(w, a.listsReport())
}

// removeList removes a list added by hand.
func (a *api) removeList(w http.ResponseWriter, r *http.Request) error {
	if a.d.ListEditor == nil {
		return errNoListEditor
	}
	if err := a.d.ListEditor.RemoveList(r.PathValue("name")); err != nil {
		return badRequest(err)
	}
	return ok(w, a.listsReport())
}

// switchList turns a list on or off, over what the configuration says.
func (a *api) switchList(on bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.d.ListEditor == nil {
			return errNoListEditor
		}
		if err := a.d.ListEditor.SetListEnabled(r.PathValue("name"), on); err != nil {
			return &httpError{status: http.StatusNotFound, err: err}
		}
		return ok(w, a.listsReport())
	}
}

// cmpOr is cmp.Or for strings with surrounding space ignored.
func cmpOr(s, dflt string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return dflt
}
