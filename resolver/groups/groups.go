package groups

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

// Scopes of exception lists (blocklists.ListInfo.Scope).
const (
	ScopeEveryone = blocklists.ScopeEveryone
	ScopeClient   = blocklists.ScopeClient
	ScopeGroup    = blocklists.ScopeGroup
)

// Groups is the compiled [[groups]] configuration: who is in which group,
// and which lists each group gets when. It is immutable and safe for
// concurrent use; a reload builds a new one.
type Groups struct {
	groups   []group
	byName   map[string]uint64
	byAddr   map[netip.Addr]uint64
	prefixes []maskedPrefix
	byMAC    map[[6]byte]uint64
	// dflt is the index of the "default" group, -1 when not configured.
	dflt int
	// views are the upstreams of the groups that have their own, in
	// configuration order.
	views [][]string
	// assignedName and assignedAddr are the devices moved between groups
	// by hand (Assign): their groups replace what the configuration says.
	assignedName map[string]uint64
	assignedAddr map[netip.Addr]uint64
	assigned     map[string][]string // as given, for Info
	// memberships memoises Membership by mask: the values are shared, so
	// identifying a client allocates nothing once its combination of
	// groups has been seen.
	memberships sync.Map // uint64 -> *Membership
	// recent holds the memberships last asked for, in front of it; of
	// holds Of's answers for the clients last asked about.
	recent memo[uint64, *Membership]
	of     memo[clientKey, *Membership]
}

// clientKey is what Of decides on.
type clientKey struct {
	addr netip.Addr
	name string
	mac  [6]byte
}

// addrHash spreads an address over the memo's slots.
func addrHash(a netip.Addr) uint64 {
	b := a.As16()
	return maskHash(binary.LittleEndian.Uint64(b[8:]) ^ binary.LittleEndian.Uint64(b[:8])*31)
}

type group struct {
	name      string
	members   []string // as configured
	lists     []string // nil: every list
	answer    string
	upstreams []string
	view      uint16 // 1 + the index of its upstreams in Views; 0 without
	windows   []*window
}

type maskedPrefix struct {
	p    netip.Prefix
	mask uint64
}

// Membership is the groups a client is in. Values are shared and must not
// be changed.
type Membership struct {
	// Mask has bit i set for group i.
	Mask uint64
	// Names are the groups' names, in configuration order.
	Names []string
	// Joined is Names joined with ",", as the log records it.
	Joined string
	// Answer is the first of the groups' answer modes that is set, "" for
	// [blocking].answer.
	Answer string
	// View says whose upstreams answer the client's forwarded questions:
	// 0 for [upstream].servers, i for Views()[i-1] (the first of its
	// groups with upstreams of their own).
	View uint16
}

// New compiles validated [[groups]] tables; nil or empty means no groups.
func New(cfgs []Config, knownClients []string) *Groups {
	g := &Groups{byName: map[string]uint64{}, byAddr: map[netip.Addr]uint64{}, byMAC: map[[6]byte]uint64{}, dflt: -1}
	for i, c := range cfgs {
		gr := group{name: c.Name, members: c.Clients, lists: c.Lists, answer: c.Answer, upstreams: c.Upstreams}
		if len(c.Upstreams) > 0 {
			g.views = append(g.views, c.Upstreams)
			gr.view = uint16(len(g.views))
		}
		for s := range c.Schedules {
			// The lists were checked by Validate; New does not know them.
			if w, _ := parseSchedule(&c.Schedules[s], c.Schedules[s].Lists); w != nil {
				gr.windows = append(gr.windows, w)
			}
		}
		g.groups = append(g.groups, gr)
		if c.Name == DefaultGroup {
			g.dflt = i
		}
		bit := uint64(1) << i
		for _, s := range c.Clients {
			m, err := parseMember(s, knownClients)
			switch {
			case err != nil:
				// Validation reports it; a bare name still names a
				// client, so the group is as near to meant as it can be.
				g.byName[s] |= bit
			case m.name != "":
				g.byName[m.name] |= bit
			case m.isMAC:
				g.byMAC[m.mac] |= bit
			case m.prefix.IsSingleIP():
				g.byAddr[m.prefix.Addr()] |= bit
			default:
				g.prefixes = append(g.prefixes, maskedPrefix{m.prefix, bit})
			}
		}
	}
	return g
}

// Assign puts the devices moved by hand in their groups, for a Groups built
// by New and not yet in use: assigned maps a client (its name, or its
// address) to its groups, which replace what the configuration says of it
// (none: the default group). Groups the configuration no longer has are
// ignored.
func (g *Groups) Assign(assigned map[string][]string) *Groups {
	g.assigned = assigned
	g.assignedName, g.assignedAddr = map[string]uint64{}, map[netip.Addr]uint64{}
	for client, names := range assigned {
		var mask uint64
		for _, n := range names {
			for i := range g.groups {
				if g.groups[i].name == n {
					mask |= 1 << i
				}
			}
		}
		if a, err := netip.ParseAddr(client); err == nil {
			g.assignedAddr[a.Unmap()] = mask
		} else {
			g.assignedName[client] = mask
		}
	}
	return g
}

// Views returns the upstreams of the groups that have their own, in the
// order Membership.View counts them.
func (g *Groups) Views() [][]string {
	if g == nil {
		return nil
	}
	return g.views
}

// HasUpstreams reports whether some group has upstreams of its own, so
// that a client's forwarded questions depend on its groups.
func (g *Groups) HasUpstreams() bool { return g != nil && len(g.views) > 0 }

// IsAssigned reports whether client (its name, or its address) was moved
// between groups by hand.
func (g *Groups) IsAssigned(client string) bool {
	if g == nil {
		return false
	}
	_, ok := g.assigned[client]
	return ok
}

// Len returns the number of groups.
func (g *Groups) Len() int {
	if g == nil {
		return 0
	}
	return len(g.groups)
}

// Names returns the groups' names in configuration order.
func (g *Groups) Names() []string {
	if g == nil {
		return nil
	}
	out := make([]string, len(g.groups))
	for i := range g.groups {
		out[i] = g.groups[i].name
	}
	return out
}

// Of returns the groups of the client with the given name ("" if none),
// address and MAC (the zero MAC when unknown): those naming it by any of
// them, or the default group (nil when it is not configured and the client
// is in no group). It allocates nothing once the combination is known.
func (g *Groups) Of(name string, addr netip.Addr, mac [6]byte) *Membership {
	if g == nil || len(g.groups) == 0 {
		return nil
	}
	k, h := clientKey{addr, name, mac}, addrHash(addr)
	if m, ok := g.of.get(h, k); ok {
		return m
	}
	m := g.of1(name, addr, mac)
	g.of.put(h, k, m)
	return m
}

func (g *Groups) of1(name string, addr netip.Addr, mac [6]byte) *Membership {
	var mask uint64
	assigned := false
	if len(g.assignedName) > 0 && name != "" {
		mask, assigned = g.assignedName[name]
	}
	if !assigned && len(g.assignedAddr) > 0 {
		mask, assigned = g.assignedAddr[addr]
	}
	if assigned {
		return g.orDefault(mask)
	}
	if name != "" {
		mask |= g.byName[name]
	}
	mask |= g.byAddr[addr]
	for _, p := range g.prefixes {
		if p.p.Contains(addr) {
			mask |= p.mask
		}
	}
	if len(g.byMAC) > 0 && mac != ([6]byte{}) {
		mask |= g.byMAC[mac]
	}
	return g.orDefault(mask)
}

// orDefault is the membership for mask, or the default group's when mask
// is empty (nil without a default group).
func (g *Groups) orDefault(mask uint64) *Membership {
	if mask == 0 {
		if g.dflt < 0 {
			return nil
		}
		mask = 1 << g.dflt
	}
	return g.membership(mask)
}

// Info describes one group for the API and the CLI.
type Info struct {
	Name string `json:"name"`
	// Members are the configured members; Assigned the devices moved into
	// the group by hand.
	Members  []string `json:"members"`
	Assigned []string `json:"assigned,omitempty"`
	// MovedOut are the configured members moved to other groups by hand.
	MovedOut []string `json:"moved_out,omitempty"`
	// Lists are the lists it names (nil: every list); Active those of
	// them and of its schedules that apply now.
	Lists     []string `json:"lists"`
	Answer    string   `json:"answer,omitempty"`
	Schedules []string `json:"schedules,omitempty"`
	// Off are the lists its schedules switch off now, or that an "on"
	// schedule will switch on later.
	Off []string `json:"off_now,omitempty"`
}

// Info describes every group at now, given the configured list names
// (for the lists a schedule switches off now).
func (g *Groups) Info(lists []string, now time.Time) []Info {
	if g == nil {
		return nil
	}
	out := make([]Info, 0, len(g.groups))
	for i := range g.groups {
		gr := &g.groups[i]
		in := Info{Name: gr.name, Members: gr.members, Lists: gr.lists, Answer: gr.answer}
		if in.Members == nil {
			in.Members = []string{}
		}
		for client, names := range g.assigned {
			switch {
			case slices.Contains(names, gr.name):
				in.Assigned = append(in.Assigned, client)
			case slices.Contains(gr.members, client):
				in.MovedOut = append(in.MovedOut, client)
			}
		}
		slices.Sort(in.Assigned)
		slices.Sort(in.MovedOut)
		for _, w := range gr.windows {
			mode := ""
			if w.mode == ModeOff {
				mode = " off"
			}
			in.Schedules = append(in.Schedules, strings.Join(w.lists, ",")+mode+" "+w.describe())
		}
		for _, l := range lists {
			named := gr.lists == nil || slices.Contains(gr.lists, l) || slices.ContainsFunc(gr.windows, func(w *window) bool { return slices.Contains(w.lists, l) })
			if named && !gr.applies(l, false, now) {
				in.Off = append(in.Off, l)
			}
		}
		out = append(out, in)
	}
	return out
}

// Named returns the membership of the group called name, for a question
// about the group itself ("explain -group"); nil when there is none.
func (g *Groups) Named(name string) *Membership {
	if g == nil {
		return nil
	}
	for i := range g.groups {
		if g.groups[i].name == name {
			return g.membership(1 << i)
		}
	}
	return nil
}

func (g *Groups) membership(mask uint64) *Membership {
	h := maskHash(mask)
	if m, ok := g.recent.get(h, mask); ok {
		return m
	}
	if m, ok := g.memberships.Load(mask); ok {
		g.recent.put(h, mask, m.(*Membership))
		return m.(*Membership)
	}
	m := &Membership{Mask: mask}
	for i := range g.groups {
		if mask&(1<<i) != 0 {
			m.Names = append(m.Names, g.groups[i].name)
			if m.Answer == "" {
				m.Answer = g.groups[i].answer
			}
			if m.View == 0 {
				m.View = g.groups[i].view
			}
		}
	}
	m.Joined = strings.Join(m.Names, ",")
	v, _ := g.memberships.LoadOrStore(mask, m)
	g.recent.put(h, mask, v.(*Membership))
	return v.(*Membership)
}

// View is the lists that apply to each group and client for one Matcher
// (its lists' indexes) during one minute (schedules change on minute
// boundaries). Views are built when a lookup first needs them and shared.
type View struct {
	// Lists are the Matcher's lists the view was built for; a View is
	// valid only with the Matcher whose Lists this is.
	lists []blocklists.ListInfo
	// Until is when the view stops being valid.
	Until time.Time

	groupSets []blocklists.ListSet // by group
	noGroup   *blocklists.ListSet  // clients in no group (no default group)
	// byName and byAddr hold the "client:" lists by the client's name, or
	// by its address for a client without one.
	byName map[string][]int
	byAddr map[netip.Addr][]int
	// sets memoises the union for a mask, and for a mask and a client
	// with exceptions of its own; byMask is the first, in front of it.
	sets   sync.Map // setKey -> *blocklists.ListSet
	byMask memo[uint64, *blocklists.ListSet]
	// unrestricted is true when every client gets every list: no groups
	// and no scoped lists; Set returns nil (no filtering).
	unrestricted bool
}

type setKey struct {
	mask uint64
	name string
	addr netip.Addr
}

// ViewFor builds the view for a Matcher's lists at now.
func (g *Groups) ViewFor(lists []blocklists.ListInfo, now time.Time) *View {
	v := &View{lists: lists, Until: now.Truncate(time.Minute).Add(time.Minute), byName: map[string][]int{}, byAddr: map[netip.Addr][]int{}}
	scoped := false
	var everyone, unscoped blocklists.ListSet
	groupExtra := map[string][]int{}
	for i, l := range lists {
		switch {
		case l.Scope == "" && l.OptIn:
			// Only for the groups naming it: below.
		case l.Scope == "":
			unscoped.Add(i)
		case l.Scope == ScopeEveryone:
			everyone.Add(i)
		case strings.HasPrefix(l.Scope, ScopeClient):
			scoped = true
			k := strings.TrimPrefix(l.Scope, ScopeClient)
			if a, err := netip.ParseAddr(k); err == nil {
				v.byAddr[a.Unmap()] = append(v.byAddr[a.Unmap()], i)
			} else {
				v.byName[k] = append(v.byName[k], i)
			}
		case strings.HasPrefix(l.Scope, ScopeGroup):
			scoped = true
			k := strings.TrimPrefix(l.Scope, ScopeGroup)
			groupExtra[k] = append(groupExtra[k], i)
		}
	}
	all := unscoped
	all.Union(&everyone)
	v.noGroup = &all
	if g.Len() == 0 {
		v.unrestricted = !scoped
		v.Until = time.Time{} // no schedules: valid as long as the Matcher
		return v
	}
	if !g.scheduled() {
		v.Until = time.Time{} // nothing changes with the time: valid as long as the Matcher
	}
	v.groupSets = make([]blocklists.ListSet, len(g.groups))
	for gi := range g.groups {
		gr := &g.groups[gi]
		set := &v.groupSets[gi]
		set.Union(&everyone)
		for _, li := range groupExtra[gr.name] {
			set.Add(li)
		}
		for i, l := range lists {
			if l.Scope == "" && gr.applies(l.Name, l.OptIn, now) {
				set.Add(i)
			}
		}
	}
	return v
}

// scheduled reports whether some group has a schedule.
func (g *Groups) scheduled() bool {
	for i := range g.groups {
		if len(g.groups[i].windows) > 0 {
			return true
		}
	}
	return false
}

// applies reports whether the group gets list at now: named in its lists
// (or it names none), and not switched off by a schedule; a list an "on"
// schedule names applies only inside that schedule's window.
func (gr *group) applies(list string, optIn bool, now time.Time) bool {
	base := gr.lists == nil && !optIn || slices.Contains(gr.lists, list)
	scheduledOn, on := false, false
	for _, w := range gr.windows {
		if !slices.Contains(w.lists, list) {
			continue
		}
		switch w.mode {
		case ModeOff:
			if w.active(now) {
				return false
			}
		default:
			scheduledOn = true
			on = on || w.active(now)
		}
	}
	if scheduledOn {
		return on
	}
	return base
}

// Matches reports whether the view was built for a Matcher with these
// lists and is still valid at now.
func (v *View) Matches(lists []blocklists.ListInfo, now time.Time) bool {
	return v.ForLists(lists) && (v.Until.IsZero() || now.Before(v.Until))
}

// ForLists reports whether the view was built for a Matcher with these
// lists (the same slice: a Matcher's Lists never change).
func (v *View) ForLists(lists []blocklists.ListInfo) bool {
	return v != nil && len(lists) == len(v.lists) && (len(lists) == 0 || &lists[0] == &v.lists[0])
}

// Unrestricted reports whether every list applies to every client (no
// groups, no exceptions for some clients only): Set is nil for all, and
// nobody need be identified to know it.
func (v *View) Unrestricted() bool { return v.unrestricted }

// Set returns the lists that apply to a client with membership m (nil:
// in no group), name ("" if it has none) and address: nil when every
// list applies to everyone.
func (v *View) Set(m *Membership, name string, addr netip.Addr) *blocklists.ListSet {
	if v.unrestricted {
		return nil
	}
	var byName, byAddr []int
	if name != "" {
		byName = v.byName[name]
	}
	if len(v.byAddr) > 0 {
		byAddr = v.byAddr[addr]
	}
	var mask uint64
	if m != nil {
		mask = m.Mask
	}
	if mask == 0 && len(byName) == 0 && len(byAddr) == 0 {
		return v.noGroup
	}
	own := len(byName) > 0 || len(byAddr) > 0
	if !own {
		if s, ok := v.byMask.get(maskHash(mask), mask); ok {
			return s
		}
	}
	k := setKey{mask: mask}
	if len(byName) > 0 {
		k.name = name
	}
	if len(byAddr) > 0 {
		k.addr = addr
	}
	if s, ok := v.sets.Load(k); ok {
		if !own {
			v.byMask.put(maskHash(mask), mask, s.(*blocklists.ListSet))
		}
		return s.(*blocklists.ListSet)
	}
	set := new(blocklists.ListSet)
	if mask == 0 {
		*set = *v.noGroup
	}
	for i := range v.groupSets {
		if mask&(1<<i) != 0 {
			set.Union(&v.groupSets[i])
		}
	}
	for _, li := range byName {
		set.Add(li)
	}
	for _, li := range byAddr {
		set.Add(li)
	}
	s, _ := v.sets.LoadOrStore(k, set)
	if !own {
		v.byMask.put(maskHash(mask), mask, s.(*blocklists.ListSet))
	}
	return s.(*blocklists.ListSet)
}

// Why says, for explain, why list applies to the groups in m at now (or
// why not): "group kids, schedule mon,tue 21:00–07:00 Europe/Brussels".
func (g *Groups) Why(m *Membership, list blocklists.ListInfo, now time.Time) string {
	switch {
	case list.Scope == ScopeEveryone:
		return "for everyone"
	case strings.HasPrefix(list.Scope, ScopeClient):
		return "this device's own exception"
	case strings.HasPrefix(list.Scope, ScopeGroup):
		return "group " + strings.TrimPrefix(list.Scope, ScopeGroup) + "'s exception"
	case g.Len() == 0 || m == nil:
		return "every list applies to clients in no group"
	}
	var why []string
	for i := range g.groups {
		gr := &g.groups[i]
		if m.Mask&(1<<i) == 0 || !gr.applies(list.Name, list.OptIn, now) {
			continue
		}
		reason := "group " + gr.name
		for _, w := range gr.windows {
			if w.mode != ModeOff && slices.Contains(w.lists, list.Name) && w.active(now) {
				reason += ", schedule " + w.describe()
				break
			}
		}
		why = append(why, reason)
	}
	if len(why) == 0 {
		return "no group of this client applies list " + list.Name + " now"
	}
	return strings.Join(why, "; ")
}
