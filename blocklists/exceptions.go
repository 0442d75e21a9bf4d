package blocklists

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store"
)

// Scopes of the lists of exceptions (ListInfo.Scope).
const (
	// ScopeEveryone marks a list that applies to every client whatever its
	// groups: the names allowed or blocked for everyone by hand.
	ScopeEveryone = "*"
	// ScopeClient prefixes a device's own exceptions: "client:NAME", by
	// the client's name, or its address when it has none.
	ScopeClient = "client:"
	// ScopeGroup prefixes a group's exceptions: "group:NAME".
	ScopeGroup = "group:"
)

// BlockedNowList names the built-in list of names blocked for everyone by
// hand.
const BlockedNowList = "blocked-now"

// maxExceptionLists bounds the lists exceptions take (one per scope and
// kind), so that they cannot crowd the configured lists out of MaxLists.
const maxExceptionLists = 512

// AddException allows or blocks e.Name for e.Scope ("" everyone,
// "client:NAME", "group:NAME") until e.Until (zero: for good), persisted,
// and applies it at once. It replaces an exception for the same name and
// scope. A device's or group's exception is $important: it beats the
// lists that apply to everyone, as the person who made it meant.
func (m *Manager) AddException(e store.Exception) error {
	n, err := NormalizeName(e.Name)
	if err != nil {
		return err
	}
	e.Name = n
	if e.Scope != "" && !validScope(e.Scope) {
		return fmt.Errorf("scope %q: want \"\", %q+name or %q+name", e.Scope, ScopeClient, ScopeGroup)
	}
	if !e.Until.IsZero() && !e.Until.After(m.now()) {
		return errors.New("the exception would end before it begins")
	}
	if e.Added.IsZero() {
		e.Added = m.now()
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if err := m.checkExceptionRoom(e); err != nil {
		return err
	}
	// The name allowed for everyone for good keeps its older form, which
	// GET /api/v1/allow lists; any other replaces it.
	if e.Scope == "" && !e.Block && e.Until.IsZero() {
		if err := m.store.DeleteException("", n); err != nil {
			return err
		}
		err = m.store.PutAllowed(n)
	} else {
		if e.Scope == "" {
			if err := m.store.DeleteAllowed(n); err != nil {
				return err
			}
		}
		err = m.store.PutException(e)
	}
	if err != nil {
		return err
	}
	if err := m.rebuild(); err != nil {
		return err
	}
	m.poke() // Run waits for the earliest end
	return nil
}

// RemoveException ends the exception for name in scope, if there is one.
func (m *Manager) RemoveException(scope, name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if scope == "" {
		if err := m.store.DeleteAllowed(n); err != nil {
			return err
		}
	}
	if err := m.store.DeleteException(scope, n); err != nil {
		return err
	}
	return m.rebuild()
}

// Exceptions returns the exceptions in force: those made by hand for
// devices, groups and everyone, the names allowed for everyone for good
// included.
func (m *Manager) Exceptions() ([]store.Exception, error) {
	allowed, err := m.store.ListAllowed()
	if err != nil {
		return nil, err
	}
	xs, err := m.store.ListExceptions()
	if err != nil {
		return nil, err
	}
	now := m.now()
	out := make([]store.Exception, 0, len(allowed)+len(xs))
	for _, n := range allowed {
		out = append(out, store.Exception{Name: n})
	}
	for _, x := range xs {
		if x.Until.IsZero() || now.Before(x.Until) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b store.Exception) int {
		return strings.Compare(a.Scope+"\x00"+a.Name, b.Scope+"\x00"+b.Name)
	})
	return out, nil
}

func validScope(s string) bool {
	for _, p := range []string{ScopeClient, ScopeGroup} {
		if rest, ok := strings.CutPrefix(s, p); ok && strings.TrimSpace(rest) != "" {
			return true
		}
	}
	return false
}

// exceptionList is the list an exception's rules go in: one per scope
// and kind.
func exceptionList(scope string, block bool) ListInfo {
	kind := "allowed"
	if block {
		kind = "blocked"
	}
	if scope == "" {
		if block {
			return ListInfo{Name: BlockedNowList, Scope: ScopeEveryone}
		}
		return ListInfo{Name: AllowedNowList, Allow: true, Scope: ScopeEveryone}
	}
	return ListInfo{Name: kind + ":" + scope, Allow: !block, Scope: scope}
}

func (m *Manager) checkExceptionRoom(e store.Exception) error {
	xs, err := m.store.ListExceptions()
	if err != nil {
		return err
	}
	lists := map[string]bool{exceptionList(e.Scope, e.Block).Name: true}
	for _, x := range xs {
		lists[exceptionList(x.Scope, x.Block).Name] = true
	}
	if len(lists) > maxExceptionLists {
		return fmt.Errorf("exceptions for more than %d devices and groups: remove some first", maxExceptionLists/2)
	}
	return nil
}

// addExceptions adds the exceptions in force to b, one list per scope and
// kind, and notes when the first of them ends (nextExpiry). Expired ones
// are left out and deleted from the store. A store that cannot be read
// leaves them out: the lists must compile whatever the store's state.
func (m *Manager) addExceptions(b *Builder) error {
	xs, err := m.store.ListExceptions()
	if err != nil {
		m.log.Warn("reading exceptions: compiling without them", zap.Error(err))
		return nil
	}
	now := m.now()
	var next time.Time
	index := map[string]int{}
	for _, x := range xs {
		if !x.Until.IsZero() && !now.Before(x.Until) {
			if err := m.store.DeleteException(x.Scope, x.Name); err != nil {
				m.log.Warn("deleting an expired exception: " + err.Error())
			}
			continue
		}
		if !x.Until.IsZero() && (next.IsZero() || x.Until.Before(next)) {
			next = x.Until
		}
		info := exceptionList(x.Scope, x.Block)
		idx, ok := index[info.Name]
		if !ok {
			if idx, err = b.AddList(info); err != nil {
				return err
			}
			index[info.Name] = idx
		}
		b.Add(idx, Rule{Name: x.Name, Important: x.Scope != "" || x.Block})
	}
	m.expiryMu.Lock()
	m.nextExpiry = next
	m.expiryMu.Unlock()
	return nil
}

// expiryDue returns when the first exception ends, if one will.
func (m *Manager) expiryDue() (time.Time, bool) {
	m.expiryMu.Lock()
	defer m.expiryMu.Unlock()
	return m.nextExpiry, !m.nextExpiry.IsZero()
}

// expire rebuilds the lists when an exception has ended.
func (m *Manager) expire() {
	if due, ok := m.expiryDue(); !ok || m.now().Before(due) {
		return
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if err := m.rebuild(); err != nil {
		m.log.Warn("rebuilding the lists after an exception ended: " + err.Error())
	}
}
