package resolver

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-dns/vigil/resolver/groups"
)

// Pauser turns blocking off for everyone, for one client or for one group
// until a given time; the pause ends by itself. A group is named
// "group:NAME" (groups.ScopeGroup) wherever a client is. Reads are one atomic load (the query
// path); changes copy the state (rare: a person pressing a button).
type Pauser struct {
	mu    sync.Mutex // serialises changes
	state atomic.Pointer[pauseState]
	now   func() time.Time
}

type pauseState struct {
	all     time.Time            // everyone, until then
	clients map[string]time.Time // client name or address, until then
	groups  map[string]time.Time // group name, until then
}

// PauseStatus is a snapshot of the pauses in force.
type PauseStatus struct {
	All     time.Time            `json:"all,omitzero"`
	Clients map[string]time.Time `json:"clients,omitempty"`
	Groups  map[string]time.Time `json:"groups,omitempty"`
}

// NewPauser returns a Pauser with nothing paused.
func NewPauser() *Pauser {
	p := &Pauser{now: time.Now}
	p.state.Store(&pauseState{})
	return p
}

// Pause pauses blocking for client ("" for everyone) for d.
func (p *Pauser) Pause(client string, d time.Duration) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	until := p.now().Add(d)
	old := p.state.Load()
	next := &pauseState{all: old.all, clients: maps.Clone(old.clients), groups: maps.Clone(old.groups)}
	switch {
	case client == "":
		next.all = until
	case strings.HasPrefix(client, groups.ScopeGroup):
		if next.groups == nil {
			next.groups = map[string]time.Time{}
		}
		next.groups[strings.TrimPrefix(client, groups.ScopeGroup)] = until
	default:
		if next.clients == nil {
			next.clients = map[string]time.Time{}
		}
		next.clients[client] = until
	}
	p.state.Store(next)
	return until
}

// PauseUntil pauses blocking for client ("" for everyone) until a time:
// a pause set on another replica of a fleet.
func (p *Pauser) PauseUntil(client string, until time.Time) {
	p.Pause(client, until.Sub(p.now()))
}

// ResumeOnly ends the pause of exactly client: "" ends the pause for
// everyone but leaves devices' and groups' pauses (Resume("") ends all).
func (p *Pauser) ResumeOnly(client string) {
	if client != "" {
		p.Resume(client)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.state.Load()
	p.state.Store(&pauseState{clients: old.clients, groups: old.groups})
}

// Resume ends the pause for client ("" ends every pause).
func (p *Pauser) Resume(client string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if client == "" {
		p.state.Store(&pauseState{})
		return
	}
	old := p.state.Load()
	next := &pauseState{all: old.all, clients: maps.Clone(old.clients), groups: maps.Clone(old.groups)}
	if g, ok := strings.CutPrefix(client, groups.ScopeGroup); ok {
		delete(next.groups, g)
	} else {
		delete(next.clients, client)
	}
	p.state.Store(next)
}

// Paused reports whether blocking is paused at now for c, in the groups
// of mem (nil: none).
func (p *Pauser) Paused(c Client, mem *groups.Membership, now time.Time) bool {
	st := p.state.Load()
	if now.Before(st.all) {
		return true
	}
	if len(st.groups) > 0 && mem != nil {
		for _, g := range mem.Names {
			if until, ok := st.groups[g]; ok && now.Before(until) {
				return true
			}
		}
	}
	if len(st.clients) == 0 {
		return false
	}
	if c.Name != "" {
		if until, ok := st.clients[c.Name]; ok && now.Before(until) {
			return true
		}
	}
	until, ok := st.clients[c.Addr.String()]
	return ok && now.Before(until)
}

// Status returns the pauses still in force.
func (p *Pauser) Status() PauseStatus {
	st := p.state.Load()
	now := p.now()
	out := PauseStatus{}
	if now.Before(st.all) {
		out.All = st.all
	}
	for c, until := range st.clients {
		if now.Before(until) {
			if out.Clients == nil {
				out.Clients = map[string]time.Time{}
			}
			out.Clients[c] = until
		}
	}
	for g, until := range st.groups {
		if now.Before(until) {
			if out.Groups == nil {
				out.Groups = map[string]time.Time{}
			}
			out.Groups[g] = until
		}
	}
	return out
}
