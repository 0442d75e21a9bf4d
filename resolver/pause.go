package resolver

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Pauser turns blocking off for everyone or for one client until a given
// time; the pause ends by itself. Reads are one atomic load (the query
// path); changes copy the state (rare: a person pressing a button).
type Pauser struct {
	mu    sync.Mutex // serialises changes
	state atomic.Pointer[pauseState]
	now   func() time.Time
}

type pauseState struct {
	all     time.Time            // everyone, until then
	clients map[string]time.Time // client name or address, until then
}

// PauseStatus is a snapshot of the pauses in force.
type PauseStatus struct {
	All     time.Time            `json:"all,omitzero"`
	Clients map[string]time.Time `json:"clients,omitempty"`
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
	next := &pauseState{all: old.all, clients: maps.Clone(old.clients)}
	if client == "" {
		next.all = until
	} else {
		if next.clients == nil {
			next.clients = map[string]time.Time{}
		}
		next.clients[client] = until
	}
	p.state.Store(next)
	return until
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
	next := &pauseState{all: old.all, clients: maps.Clone(old.clients)}
	delete(next.clients, client)
	p.state.Store(next)
}

// Paused reports whether blocking is paused for c at now.
func (p *Pauser) Paused(c Client, now time.Time) bool {
	st := p.state.Load()
	if now.Before(st.all) {
		return true
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
	return out
}
