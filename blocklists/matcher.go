package blocklists

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"unsafe"
)

// ListInfo describes a list whose rules are in a Matcher.
type ListInfo struct {
	// Name is the list's configured name.
	Name string
	// Vendor is the vendor or category tag that travels with every match.
	Vendor string
	// Allow marks an allowlist: all its rules are exceptions.
	Allow bool
	// Scope, when set, limits the list to some clients: "client:NAME"
	// (a device's own exceptions) or "group:NAME" (a group's). Unscoped
	// lists apply to whoever their group's lists name; scoped ones only
	// where their scope says (see resolver/groups).
	Scope string
	// OptIn marks a list off for everyone that applies only to the
	// groups naming it (ListConfig.OptIn).
	OptIn bool
}

// ListSet is a set of a Matcher's lists, by index in Lists: the lists that
// apply to one client. The zero value is empty.
type ListSet [MaxLists / 64]uint64

// Add puts list i in the set.
func (s *ListSet) Add(i int) { s[i>>6] |= 1 << (i & 63) }

// Remove takes list i out of the set.
func (s *ListSet) Remove(i int) { s[i>>6] &^= 1 << (i & 63) }

// Has reports whether list i is in the set.
func (s *ListSet) Has(i int) bool { return s[i>>6]&(1<<(i&63)) != 0 }

// Union adds every list of o to s.
func (s *ListSet) Union(o *ListSet) {
	for i := range s {
		s[i] |= o[i]
	}
}

// Match is the verdict for one name.
type Match struct {
	// List is the list whose rule decided.
	List ListInfo
	// Rule is the decisive rule.
	Rule Rule
	// Blocked is true when the name must be blocked, false when an
	// exception allowed it.
	Blocked bool
}

// slot is one cell of the open-addressing table: a name's fingerprint,
// 48 bits of its hash, above 16 bits of metadata; 0 is an empty cell.
//
// The table keeps no names: a lookup hashes each suffix of the name asked
// and compares fingerprints, and a match reports the suffix it hashed.
// That halves the memory of a big list (1M names: 10.7 MB instead of 25
// MB with the names in an arena) and saves a cache miss per hit. The
// price is a false match when a name that is not listed has a listed
// name's fingerprint: 2^-48 per occupied cell compared, some 25 cells for
// a three-label name that is not listed (load 3/4), about 1e-13 per query,
// or one wrong answer in 10^13 queries. The hash seed is random for each
// build, so nobody can aim for a collision, and a name that collides in
// one build does not in the next.
//
// The metadata is the list's index (11 bits) and the rule's shape and
// precedence (4 bits, flagShift up), then metaUsed.
type slot uint64

const (
	metaListMask  = 1<<11 - 1
	metaBelowOnly = 1 << 11 // with metaSuffix: not the name itself
	metaSuffix    = 1 << 12
	metaAllow     = 1 << 13
	metaImportant = 1 << 14
	metaUsed      = 1 << 15 // so that no cell in use is 0
	// flagShift brings the four flag bits down to 0..15, an index into
	// Builder.bad's bit sets.
	flagShift = 11
	// pendingAdblock marks, in Builder.pending only, a rule written in
	// adblock syntax (Rule.Adblock): the only kind $badfilter disables. It
	// takes metaUsed's place, which pending entries do not need.
	pendingAdblock = metaUsed
	// MaxLists is how many lists one Matcher can hold.
	MaxLists = metaListMask + 1
)

func (s slot) fingerprint() uint64 { return uint64(s) >> 16 }
func (s slot) meta() uint16        { return uint16(s) &^ metaUsed }

// fingerprint is the part of a name's hash a slot keeps.
func fingerprint(h uint64) uint64 { return h >> 16 }

// Matcher answers "is this name blocked, and by what?" for a fixed set of
// rules. It is immutable once built and safe for concurrent use; Match
// takes no lock and allocates nothing.
type Matcher struct {
	slots []slot
	seed  maphash.Seed
	lists []ListInfo
	count int
}

// Len returns the number of distinct rules.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return m.count
}

// Lists returns the lists the matcher was built from, in order.
func (m *Matcher) Lists() []ListInfo { return m.lists }

// Bytes returns the memory held by the matcher's table.
func (m *Matcher) Bytes() int { return len(m.slots) * 8 }

// index maps a fingerprint onto the table (Lemire's fast range
// reduction, so the table need not be a power of two).
func (m *Matcher) index(fp uint64) int {
	return int((fp & 0xffffffff) * uint64(len(m.slots)) >> 32)
}

func rank(meta uint16) int {
	switch {
	case meta&metaAllow != 0 && meta&metaImportant != 0:
		return 4
	case meta&metaImportant != 0:
		return 3
	case meta&metaAllow != 0:
		return 2
	default:
		return 1
	}
}

// Match looks name up ("example.com" or "example.com."; lowercase) and
// reports the decisive rule, if any rule applies. Exact rules apply to the
// name itself, suffix rules to it and everything below; an important
// exception beats an important rule, which beats an exception, which beats
// a plain rule; among equals the most specific wins.
func (m *Matcher) Match(name string) (Match, bool) {
	return m.MatchFor(name, nil)
}

// MatchIn is Match counting only the rules of the lists in set; a nil
// set means every list.
func (m *Matcher) MatchIn(name string, set *ListSet) (Match, bool) {
	return m.MatchFor(name, func() *ListSet { return set })
}

// MatchFor is Match counting only the rules of the lists in the set that
// lists returns (nil: every list). It calls lists at most once, and only
// when some list has a rule for the name, so a caller whose set costs
// work (finding the client's groups) pays for it on listed names only;
// lists may be nil (every list).
func (m *Matcher) MatchFor(name string, lists func() *ListSet) (Match, bool) {
	if m == nil || m.count == 0 {
		return Match{}, false
	}
	var (
		set     *ListSet
		checked bool // lists was called
	)
	name = strings.TrimSuffix(name, ".")
	var (
		best     uint16
		bestName string
		bestRank int
	)
	s, full := name, true
	for s != "" {
		fp := fingerprint(maphash.String(m.seed, s))
		for i := m.index(fp); ; {
			sl := m.slots[i]
			if sl == 0 {
				break
			}
			// The name itself matches an exact or a suffix rule, unless
			// the suffix rule is for the names below only; a parent of
			// the name matches a suffix rule.
			if sl.fingerprint() == fp && (full && sl&metaBelowOnly == 0 || !full && sl&metaSuffix != 0) {
				if !checked && lists != nil {
					set, checked = lists(), true
				}
				if set != nil && !set.Has(int(sl&metaListMask)) {
					goto next
				}
				if r := rank(sl.meta()); r > bestRank {
					best, bestName, bestRank = sl.meta(), s, r
				}
			}
		next:
			if i++; i == len(m.slots) {
				i = 0
			}
		}
		dot := strings.IndexByte(s, '.')
		if dot < 0 {
			break
		}
		s, full = s[dot+1:], false
	}
	// The table may live outside the heap, freed when m is unreachable: m
	// must stay reachable until it is no longer read.
	runtime.KeepAlive(m)
	if bestRank == 0 {
		return Match{}, false
	}
	return Match{
		List: m.lists[best&metaListMask],
		Rule: Rule{
			Name:      bestName,
			Suffix:    best&metaSuffix != 0,
			BelowOnly: best&metaBelowOnly != 0,
			Allow:     best&metaAllow != 0,
			Important: best&metaImportant != 0,
		},
		Blocked: best&metaAllow == 0,
	}, true
}

// Builder collects rules from lists and builds a Matcher. It is not safe
// for concurrent use.
type Builder struct {
	lists []ListInfo
	seed  maphash.Seed
	// pending holds each rule as its slot will: the name's fingerprint
	// and the rule's metadata. Names are hashed as they come and never
	// kept. A big one lives outside the heap, like the table (offheap.go):
	// 40 MB for five million rules would otherwise add as much again to
	// the collector's goal while the table is built. pendingMem is its
	// memory, freed by Build or, for a builder dropped unbuilt, by a
	// cleanup.
	pending    []slot
	pendingMem *region
	// bad holds, by fingerprint, the flag combinations $badfilter rules
	// disable: one bit each, at the flags' value (meta >> flagShift).
	bad map[uint64]uint16
	// released, when set, is called once the built matcher's off-heap
	// memory has been unmapped (tests).
	released func()
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	b := &Builder{seed: maphash.MakeSeed(), bad: make(map[uint64]uint16), pendingMem: &region{}}
	runtime.AddCleanup(b, func(r *region) { r.release() }, b.pendingMem)
	return b
}

// Grow makes room for n more rules, so that adding a known number of
// rules allocates once instead of doubling (and copying) its way there.
func (b *Builder) Grow(n int) {
	if n <= 0 || len(b.pending)+n <= cap(b.pending) {
		return
	}
	size := len(b.pending) + n
	mem := newRegion(size * int(unsafe.Sizeof(slot(0))))
	grown := slotsIn(mem, size)[:len(b.pending)]
	copy(grown, b.pending)
	b.pendingMem.release()
	*b.pendingMem, b.pending = mem, grown
}

// AddList registers a list and returns its index for Add.
func (b *Builder) AddList(info ListInfo) (int, error) {
	if len(b.lists) >= MaxLists {
		return 0, fmt.Errorf("more than %d lists", MaxLists)
	}
	b.lists = append(b.lists, info)
	return len(b.lists) - 1, nil
}

// Add adds a rule of list. Rules of an allowlist are exceptions whatever
// their syntax said.
func (b *Builder) Add(list int, r Rule) {
	if len(r.Name) == 0 || len(r.Name) > 255 || list < 0 || list >= len(b.lists) {
		return
	}
	var meta uint16 = uint16(list)
	if r.Suffix || r.BelowOnly {
		meta |= metaSuffix
	}
	if r.BelowOnly {
		meta |= metaBelowOnly
	}
	if r.Allow || b.lists[list].Allow {
		meta |= metaAllow
	}
	if r.Important {
		meta |= metaImportant
	}
	fp := fingerprint(maphash.String(b.seed, r.Name))
	if r.BadFilter {
		b.bad[fp] |= 1 << (meta >> flagShift) // one bit per flag combination
		return
	}
	if r.Adblock {
		meta |= pendingAdblock
	}
	if len(b.pending) == cap(b.pending) {
		b.Grow(max(1024, len(b.pending)))
	}
	b.pending = append(b.pending, slot(fp<<16|uint64(meta)))
}

// Build returns the Matcher. Duplicate rules (same name and flags in the
// same list) are kept once; the same rule in two lists is kept for each,
// since groups may apply one list and not the other (among equal rules
// that apply, the first list's is reported). Adblock rules
// disabled by a $badfilter rule (same name, shape and modifiers, in any
// list) are dropped. The builder may not be used afterwards.
func (b *Builder) Build() (*Matcher, error) {
	m := &Matcher{seed: b.seed, lists: b.lists}
	nslots := max(8, len(b.pending)*4/3+1)
	slotMem := newRegion(nslots * int(unsafe.Sizeof(slot(0))))
	m.slots = slotsIn(slotMem, nslots)
	for _, p := range b.pending {
		fp, meta := p.fingerprint(), uint16(p)
		adblock := meta&pendingAdblock != 0
		meta &^= pendingAdblock
		if adblock && len(b.bad) > 0 && b.bad[fp]&(1<<(meta>>flagShift)) != 0 {
			continue
		}
		i := m.index(fp)
		dup := false
		for ; m.slots[i] != 0; i = (i + 1) % len(m.slots) {
			if sl := m.slots[i]; sl.fingerprint() == fp && sl.meta() == meta {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		m.slots[i] = slot(fp<<16 | uint64(meta|metaUsed))
		m.count++
	}
	releaseWith(m, b.released, slotMem)
	b.pendingMem.release()
	*b = Builder{pendingMem: b.pendingMem}
	return m, nil
}
