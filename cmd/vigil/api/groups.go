package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store"
)

// Asker is a client (or a group) a question is asked for: explain a name
// for it, or make an exception for it.
type Asker struct {
	// Client is the client's identity as the log keys it (its name, or
	// its address); "" when the question is about a group.
	Client string
	// Name, Addr and MAC identify it to the groups: its name if it has
	// one, an address and a MAC when known.
	Name string
	Addr netip.Addr
	MAC  [6]byte
	// Group is the group asked about, when no client is.
	Group string
}

// Scope is the exception scope for the asker: "client:…" or "group:…".
func (w Asker) Scope() string {
	if w.Group != "" {
		return blocklists.ScopeGroup + w.Group
	}
	return blocklists.ScopeClient + w.Client
}

// groups returns the [[groups]] in force; never nil.
func (a *api) groups() *groups.Groups {
	if a.d.Groups != nil {
		if g := a.d.Groups(); g != nil {
			return g
		}
	}
	return groups.New(nil, nil)
}

// asker resolves ?client (forgivingly, as everywhere) or ?group (exactly;
// 404 with the closest names otherwise). One of them must be given.
func (a *api) asker(client, group string) (Asker, error) {
	if client != "" && group != "" {
		return Asker{}, badRequest(errors.New("want ?client= or ?group=, not both"))
	}
	if group != "" {
		g := a.groups()
		if g.Named(group) == nil {
			return Asker{}, unknownGroup(group, g.Names())
		}
		return Asker{Group: group}, nil
	}
	id, err := a.resolveClient(client)
	if err != nil {
		return Asker{}, err
	}
	var configured []ClientInfo
	if a.d.Clients != nil {
		configured = a.d.Clients()
	}
	configured = append(configured, a.namedClients()...)
	var learned []neighbors.Device
	if a.d.Neighbors != nil {
		learned = a.d.Neighbors.Devices()
	}
	return IdentifyAsker(id, configured, learned), nil
}

// IdentifyAsker completes a resolved client identity (a name or an
// address, as ResolveClient returns it) with what the configuration and
// the network know of it: an address and a MAC for a name, the name and
// MAC for an address.
func IdentifyAsker(id string, configured []ClientInfo, learned []neighbors.Device) Asker {
	w := Asker{Client: id}
	macOf := func(s string) {
		if hw, err := net.ParseMAC(s); err == nil && len(hw) == 6 && w.MAC == ([6]byte{}) {
			w.MAC = [6]byte(hw)
		}
	}
	if addr, err := netip.ParseAddr(id); err == nil {
		w.Addr = addr.Unmap()
		w.Name = configuredByAddr(configured, w.Addr)
		for _, d := range learned {
			if d.Addr == w.Addr {
				if w.Name == "" {
					w.Name = d.Name
				}
				macOf(d.MAC)
			}
		}
		return w
	}
	w.Name = id
	for _, c := range configured {
		if c.Name != id {
			continue
		}
		for _, p := range c.Prefixes {
			if p.IsSingleIP() && !w.Addr.IsValid() {
				w.Addr = p.Addr()
			}
		}
		for _, m := range c.MACs {
			macOf(m)
		}
	}
	for _, d := range learned {
		if d.Name == id {
			if !w.Addr.IsValid() {
				w.Addr = d.Addr
			}
			macOf(d.MAC)
		}
	}
	return w
}

// ExplainFor says whether m blocks name for the asker, which of its
// groups and which schedule or exception make the deciding list apply, at
// now. The CLI calls it directly when no server runs.
func ExplainFor(m *blocklists.Matcher, g *groups.Groups, w Asker, name string, now time.Time) (Explanation, error) {
	var mem *groups.Membership
	if w.Group != "" {
		mem = g.Named(w.Group)
	} else {
		mem = g.Of(w.Name, w.Addr, w.MAC)
	}
	set := g.ViewFor(m.Lists(), now).Set(mem, w.Name, w.Addr)
	ex, err := explainIn(m, name, set)
	if err != nil {
		return ex, err
	}
	ex.Client, ex.Group = w.Client, w.Group
	if mem != nil {
		ex.Groups = mem.Names
	}
	if ex.Matched {
		if v, ok := m.MatchIn(ex.Name, set); ok {
			ex.Why = g.Why(mem, v.List, now)
		}
	}
	return ex, nil
}

// unknownGroup is the 404 for a group the configuration does not have.
func unknownGroup(raw string, known []string) error {
	msg := fmt.Sprintf("no group %q in the configuration", raw)
	var close []string
	for _, k := range known {
		if groups.EditDistance(strings.ToLower(raw), strings.ToLower(k)) <= max(2, len(raw)/3) {
			close = append(close, fmt.Sprintf("%q", k))
		}
	}
	switch {
	case len(close) > 0:
		msg += "; did you mean " + strings.Join(close, " or ") + "?"
	case len(known) > 0:
		msg += "; the groups are " + strings.Join(known, ", ")
	default:
		msg += ": it has no [[groups]]"
	}
	return &httpError{status: http.StatusNotFound, err: errors.New(msg)}
}

// ExceptionsReport is GET /api/v1/exceptions.
type ExceptionsReport struct {
	Exceptions []store.Exception `json:"exceptions"`
}

// exceptions lists the names allowed or blocked by hand, for everyone,
// a device or a group; ?client or ?group keeps one's.
func (a *api) exceptions(w http.ResponseWriter, r *http.Request) error {
	xs, err := a.d.Lists.Exceptions()
	if err != nil {
		return fmt.Errorf("reading exceptions: %w", err)
	}
	q := r.URL.Query()
	if c, g := q.Get("client"), q.Get("group"); c != "" || g != "" {
		who, err := a.asker(c, g)
		if err != nil {
			return err
		}
		xs = slices.DeleteFunc(xs, func(x store.Exception) bool { return x.Scope != who.Scope() })
	}
	if xs == nil {
		xs = []store.Exception{}
	}
	return ok(w, ExceptionsReport{Exceptions: xs})
}

// ExceptionReply is the answer to making or removing an exception.
type ExceptionReply struct {
	Status string    `json:"status"` // "allowed", "blocked" or "removed"
	Name   string    `json:"name"`
	Scope  string    `json:"scope,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// maxException bounds ?for: an exception meant for longer is for good.
const maxException = 400 * 24 * time.Hour

// except allows (block false) or blocks ?name for ?client, ?group or
// everyone, for ?for or for good.
func (a *api) except(block bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		name := strings.TrimSpace(q.Get("name"))
		if name == "" {
			return badRequest(errNoName)
		}
		x := store.Exception{Name: HostOf(name), Block: block}
		if c, g := q.Get("client"), q.Get("group"); c != "" || g != "" {
			who, err := a.asker(c, g)
			if err != nil {
				return err
			}
			x.Scope = who.Scope()
		}
		if f := q.Get("for"); f != "" {
			d, err := time.ParseDuration(f)
			if err != nil || d <= 0 || d > maxException {
				return badRequest(fmt.Errorf("want ?for= a positive duration up to %s, such as 24h, got %q", maxException, f))
			}
			x.Until = a.now().Add(d)
		}
		if err := a.d.Lists.AddException(x); err != nil {
			return badRequest(fmt.Errorf("want ?name= a valid domain name: %w", err))
		}
		status := "allowed"
		if block {
			status = "blocked"
		}
		return ok(w, ExceptionReply{Status: status, Name: name, Scope: x.Scope, Until: x.Until})
	}
}

// unexcept removes the exception for ?name for ?client, ?group or
// everyone.
func (a *api) unexcept(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	if name == "" {
		return badRequest(errNoName)
	}
	scope := ""
	if c, g := q.Get("client"), q.Get("group"); c != "" || g != "" {
		who, err := a.asker(c, g)
		if err != nil {
			return err
		}
		scope = who.Scope()
	}
	if err := a.d.Lists.RemoveException(scope, HostOf(name)); err != nil {
		return badRequest(err)
	}
	return ok(w, ExceptionReply{Status: "removed", Name: name, Scope: scope})
}

// GroupsReport is GET /api/v1/groups.
type GroupsReport struct {
	Groups []groups.Info `json:"groups"`
}

// groupsReport lists the groups: members, devices moved in by hand,
// lists, schedules, and the lists switched off now.
func (a *api) groupsReport(w http.ResponseWriter, r *http.Request) error {
	var lists []string
	if a.d.ListNames != nil {
		lists = a.d.ListNames()
	}
	info := a.groups().Info(lists, a.now())
	if info == nil {
		info = []groups.Info{}
	}
	return ok(w, GroupsReport{Groups: info})
}

// AssignReply is the answer to moving a device between groups.
type AssignReply struct {
	Client string `json:"client"`
	// Groups are the device's groups now; Assigned says whether they were
	// set by hand (false: back to the configuration's).
	Groups   []string `json:"groups"`
	Assigned bool     `json:"assigned"`
}

// assign puts {client} in exactly ?groups= (comma-separated; empty: in
// none, so the default group's lists), overriding the configuration.
func (a *api) assign(w http.ResponseWriter, r *http.Request) error {
	if a.d.Assign == nil {
		return &httpError{status: http.StatusNotImplemented, err: errors.New("devices cannot be moved between groups here")}
	}
	q := r.URL.Query()
	if !q.Has("groups") {
		return badRequest(errors.New("want ?groups= the groups, comma-separated (empty: none)"))
	}
	var names []string
	for _, n := range strings.Split(q.Get("groups"), ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	g := a.groups()
	for _, n := range names {
		if g.Named(n) == nil {
			return unknownGroup(n, g.Names())
		}
	}
	who, err := a.asker(r.PathValue("client"), "")
	if err != nil {
		return err
	}
	if err := a.d.Assign.Assign(who.Client, names); err != nil {
		return err
	}
	return ok(w, a.assignReply(who, true))
}

// unassign gives {client} back the configuration's groups.
func (a *api) unassign(w http.ResponseWriter, r *http.Request) error {
	if a.d.Assign == nil {
		return &httpError{status: http.StatusNotImplemented, err: errors.New("devices cannot be moved between groups here")}
	}
	who, err := a.asker(r.PathValue("client"), "")
	if err != nil {
		return err
	}
	if err := a.d.Assign.Unassign(who.Client); err != nil {
		return err
	}
	return ok(w, a.assignReply(who, false))
}

// clientGroups says which groups {client} is in, and whether it was moved
// there by hand.
func (a *api) clientGroups(w http.ResponseWriter, r *http.Request) error {
	who, err := a.asker(r.PathValue("client"), "")
	if err != nil {
		return err
	}
	return ok(w, a.assignReply(who, a.groups().IsAssigned(who.Client)))
}

func (a *api) assignReply(who Asker, assigned bool) AssignReply {
	out := AssignReply{Client: who.Client, Groups: []string{}, Assigned: assigned}
	if m := a.groups().Of(who.Name, who.Addr, who.MAC); m != nil {
		out.Groups = m.Names
	}
	return out
}
