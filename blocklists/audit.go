package blocklists

import (
	"fmt"
	"slices"
)

// ListAudit is what one deny list does, judged before a user turns it on
// or keeps it: the names the allowlists rescue from it, and the popular
// names (from a top-sites list the user gives) it blocks.
type ListAudit struct {
	List   string `json:"list"`
	Vendor string `json:"vendor"`
	// Enabled is false for a list that is off (a vendor's cloud tier):
	// audited all the same, so it can be judged before it is turned on.
	Enabled bool `json:"enabled"`
	// Breaks is what the list's configuration says turning it on breaks.
	Breaks []Breakage `json:"breaks,omitempty"`
	Rules  int        `json:"rules"`
	// Unread are the list's sources with no stored copy to read (never
	// fetched: a list that is off, or a store that has not been filled),
	// so Rules and the names below leave them out.
	Unread []string `json:"unread,omitempty"`
	// Rescued are allow rules' names (the curated functional allowlist,
	// allow-now names, other allow lists) this list would block; the
	// allowlists keep them working, unless this list's rule is $important.
	Rescued []AuditedName `json:"rescued"`
	// Popular are the popular names this list blocks, most popular first.
	Popular []AuditedName `json:"popular"`
}

// AuditedName is one name an audit found a list blocking.
type AuditedName struct {
	Name string `json:"name"`
	Rank int    `json:"rank,omitempty"` // 1 for the most popular; 0 outside the popular names
	Rule string `json:"rule"`           // the list's rule that blocks it
	// Allowed: an allowlist rescues it (the list's rule is not $important).
	Allowed   bool   `json:"allowed"`
	AllowedBy string `json:"allowed_by,omitempty"`
}

// Audit compiles each deny list, on or off, on its own and reports, per list,
// the allow rules' names it blocks and which of popular (names, most
// popular first) it blocks. It reads the stored copies; nothing is
// fetched, and the lists in use are not touched. It costs a compilation
// of every list: a command, not the query path.
func (m *Manager) Audit(popular []string) ([]ListAudit, error) {
	lists := m.conf.Load().lists
	allow := NewBuilder()
	var allowNames []string
	for i := range lists {
		l := &lists[i]
		if !l.IsEnabled() || !l.Allow() {
			continue
		}
		idx, err := allow.AddList(ListInfo{Name: l.Name, Vendor: l.Vendor, Allow: true})
		if err != nil {
			return nil, err
		}
		if err := m.eachRule(l, func(r Rule) { allow.Add(idx, r); allowNames = append(allowNames, r.Name) }); err != nil {
			return nil, fmt.Errorf("reading list %s: %w", l.Name, err)
		}
	}
	if names, err := m.store.ListAllowed(); err == nil && len(names) > 0 {
		idx, err := allow.AddList(ListInfo{Name: AllowedNowList, Allow: true})
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			allow.Add(idx, Rule{Name: n})
			allowNames = append(allowNames, n)
		}
	}
	slices.Sort(allowNames)
	allowNames = slices.Compact(allowNames)
	allowed, err := allow.Build()
	if err != nil {
		return nil, err
	}
	var out []ListAudit
	for i := range lists {
		l := &lists[i]
		if l.Allow() {
			continue
		}
		b := NewBuilder()
		idx, err := b.AddList(ListInfo{Name: l.Name, Vendor: l.Vendor})
		if err != nil {
			return nil, err
		}
		if err := m.eachRule(l, func(r Rule) { b.Add(idx, r) }); err != nil {
			return nil, fmt.Errorf("reading list %s: %w", l.Name, err)
		}
		deny, err := b.Build()
		if err != nil {
			return nil, err
		}
		a := ListAudit{List: l.Name, Vendor: l.Vendor, Enabled: l.IsEnabled(), Breaks: l.Breaks,
			Rules: deny.Len(), Unread: m.unread(l), Rescued: []AuditedName{}, Popular: []AuditedName{}}
		judge := func(name string, rank int) (AuditedName, bool) {
			v, ok := deny.Match(name)
			if !ok || !v.Blocked {
				return AuditedName{}, false
			}
			an := AuditedName{Name: name, Rank: rank, Rule: v.Rule.String()}
			if av, ok := allowed.Match(name); ok && !v.Rule.Important {
				an.Allowed, an.AllowedBy = true, av.List.Name
			}
			return an, true
		}
		for _, n := range allowNames {
			if an, ok := judge(n, 0); ok && an.Allowed {
				a.Rescued = append(a.Rescued, an)
			}
		}
		for i, n := range popular {
			if an, ok := judge(n, i+1); ok {
				a.Popular = append(a.Popular, an)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// unread returns the list's sources that have no copy to read.
func (m *Manager) unread(l *ListConfig) []string {
	var out []string
	for _, src := range l.Sources {
		if IsBuiltin(src) {
			continue
		}
		if meta, err := m.store.GetListMeta(SourceID(l.Name, src)); err != nil || !meta.HasCopy {
			out = append(out, src)
		}
	}
	return out
}
