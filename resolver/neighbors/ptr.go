package neighbors

import (
	"context"
	"maps"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// PTRFunc returns the name the network's DNS gives an address (its PTR
// record), "" when it has none.
type PTRFunc func(ctx context.Context, addr netip.Addr) (string, error)

// PTR names: what the lookups cost and how long their answers are kept.
const (
	ptrQueue       = 64                    // addresses waiting for a lookup; more are dropped, asked again later
	ptrEvery       = 50 * time.Millisecond // at most 20 lookups a second
	ptrTimeout     = 2 * time.Second
	ptrKeep        = time.Hour        // a name found
	ptrKeepMissing = 10 * time.Minute // no name, or the lookup failed
	ptrMaxNames    = 1 << 16          // addresses remembered at most
)

type ptrName struct {
	name    string
	expires time.Time
}

// SetPTR gives the lookup PTR names use (Config.PTRNames turns them on
// and off): clients no lease names are named by the PTR record of their
// address, looked up through f in the background. Call before Run.
func (w *Watcher) SetPTR(f PTRFunc) {
	w.ptrLookup = f
	w.ptrWant = make(chan netip.Addr, ptrQueue)
	empty := map[netip.Addr]ptrName{}
	w.ptrNames.Store(&empty)
}

// ptrNameOf returns addr's PTR name if it is known, and asks for it
// otherwise. It runs per query for clients nothing else names, so it
// never waits: a full queue drops the request (the next query asks
// again).
func (w *Watcher) ptrNameOf(addr netip.Addr) string {
	if w.ptrLookup == nil || !w.ptrOn.Load() {
		return ""
	}
	if n, ok := (*w.ptrNames.Load())[addr]; ok {
		return n.name
	}
	select {
	case w.ptrWant <- addr:
	default:
	}
	return ""
}

// runPTR looks names up as they are asked for, at most one every
// ptrEvery, until ctx ends.
func (w *Watcher) runPTR(ctx context.Context) {
	if w.ptrLookup == nil {
		return
	}
	pace := time.NewTicker(ptrEvery)
	defer pace.Stop()
	for {
		var addr netip.Addr
		select {
		case <-ctx.Done():
			return
		case addr = <-w.ptrWant:
		}
		names := *w.ptrNames.Load()
		if n, ok := names[addr]; ok && w.now().Before(n.expires) {
			continue // asked twice before the first answer was in
		}
		if len(names) >= ptrMaxNames {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, ptrTimeout)
		name, err := w.ptrLookup(lctx, addr)
		cancel()
		keep := ptrKeep
		if err != nil || name == "" {
			keep = ptrKeepMissing
			if err != nil {
				w.log.Debug("PTR lookup of a client", zap.Stringer("addr", addr), zap.Error(err))
			}
		}
		next := maps.Clone(*w.ptrNames.Load())
		next[addr] = ptrName{name: validHostname(name), expires: w.now().Add(keep)}
		w.ptrNames.Store(&next)
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
	}
}

// expirePTR forgets PTR names past their time, so that they are looked
// up again.
func (w *Watcher) expirePTR() {
	if w.ptrLookup == nil {
		return
	}
	now := w.now()
	cur := *w.ptrNames.Load()
	next := maps.Clone(cur)
	maps.DeleteFunc(next, func(_ netip.Addr, n ptrName) bool { return !now.Before(n.expires) })
	if len(next) != len(cur) {
		w.ptrNames.Store(&next)
	}
}
