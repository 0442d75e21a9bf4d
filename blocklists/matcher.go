package blocklists

import (
	"errors"
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

// slot is one cell of the open-addressing table. Names live in one byte
// arena, so the table holds no pointers and the garbage collector never
// scans it, whatever the number of entries.
type slot struct {
	off  uint32 // offset of the name in the arena; 0 marks an empty slot
	tag  uint16 // 16 more bits of the hash, to skip most name comparisons
	meta uint16 // list index (bits 0-11) and rule flags
}

const (
	metaListMask  = 1<<12 - 1
	metaSuffix    = 1 << 12
	metaAllow     = 1 << 13
	metaImportant = 1 << 14
	// MaxLists is how many lists one Matcher can hold.
	MaxLists = metaListMask + 1
)

// Matcher answers "is this name blocked, and by what?" for a fixed set of
// rules. It is immutable once built and safe for concurrent use; Match
// takes no lock and allocates nothing.
type Matcher struct {
	arena []byte // length-prefixed names; arena[0] is unused so offset 0 means empty
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

// Bytes returns the memory held by the matcher's arena and table.
func (m *Matcher) Bytes() int { return len(m.arena) + len(m.slots)*8 }

func (m *Matcher) eq(off uint32, s string) bool {
	n := uint32(m.arena[off])
	return int(n) == len(s) && string(m.arena[off+1:off+1+n]) == s
}

// index maps a hash onto the table (Lemire's fast range reduction, so the
// table need not be a power of two).
func (m *Matcher) index(h uint64) int {
	return int((h & 0xffffffff) * uint64(len(m.slots)) >> 32)
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
	if m == nil || m.count == 0 {
		return Match{}, false
	}
	name = strings.TrimSuffix(name, ".")
	var (
		best     slot
		bestName string
		bestRank int
	)
	s, full := name, true
	for s != "" {
		h := maphash.String(m.seed, s)
		tag := uint16(h >> 48)
		for i := m.index(h); ; {
			sl := m.slots[i]
			if sl.off == 0 {
				break
			}
			if sl.tag == tag && (full || sl.meta&metaSuffix != 0) && m.eq(sl.off, s) {
				if r := rank(sl.meta); r > bestRank {
					best, bestName, bestRank = sl, s, r
				}
			}
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
	// The arena and table may live outside the heap, freed when m is
	// unreachable: m must stay reachable until they are no longer read.
	runtime.KeepAlive(m)
	if bestRank == 0 {
		return Match{}, false
	}
	return Match{
		List: m.lists[best.meta&metaListMask],
		Rule: Rule{
			Name:      bestName,
			Suffix:    best.meta&metaSuffix != 0,
			Allow:     best.meta&metaAllow != 0,
			Important: best.meta&metaImportant != 0,
		},
		Blocked: best.meta&metaAllow == 0,
	}, true
}

// Builder collects rules from lists and builds a Matcher. It is not safe
// for concurrent use.
type Builder struct {
	lists   []ListInfo
	arena   []byte
	pending []slot // off into arena, meta; tag unused until Build
	bad     map[string]uint16
	// released, when set, is called once the built matcher's off-heap
	// memory has been unmapped (tests).
	released func()
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{arena: []byte{0}, bad: make(map[string]uint16)}
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
	if r.Suffix {
		meta |= metaSuffix
	}
	if r.Allow || b.lists[list].Allow {
		meta |= metaAllow
	}
	if r.Important {
		meta |= metaImportant
	}
	if r.BadFilter {
		b.bad[r.Name] |= 1 << (meta >> 12) // one bit per flag combination
		return
	}
	off := uint32(len(b.arena))
	b.arena = append(b.arena, byte(len(r.Name)))
	b.arena = append(b.arena, r.Name...)
	b.pending = append(b.pending, slot{off: off, meta: meta})
}

// ErrArenaFull means the rules do not fit the matcher's 32-bit offsets.
var ErrArenaFull = errors.New("rules exceed 4 GiB")

// Build returns the Matcher. Duplicate rules (same name and flags) are
// kept once, attributed to the first list that had them; rules disabled by
// a $badfilter rule are dropped. The builder may not be used afterwards.
func (b *Builder) Build() (*Matcher, error) {
	if len(b.arena) > 1<<32-1 {
		return nil, ErrArenaFull
	}
	m := &Matcher{seed: maphash.MakeSeed(), lists: b.lists}
	nslots := max(8, len(b.pending)*4/3+1)
	slotMem := newRegion(nslots * int(unsafe.Sizeof(slot{})))
	m.slots = slotsIn(slotMem, nslots)
	// The final arena holds only the kept names; the builder's is dropped.
	// It is sized for all of them: pages left unused by duplicates and
	// overridden rules are never touched, so they cost no memory.
	arenaMem := newRegion(len(b.arena))
	arena := arenaMem.b[:1]
	for _, p := range b.pending {
		n := uint32(b.arena[p.off])
		name := string(b.arena[p.off+1 : p.off+1+n])
		if len(b.bad) > 0 && b.bad[name]&(1<<(p.meta>>12)) != 0 {
			continue
		}
		h := maphash.String(m.seed, name)
		tag := uint16(h >> 48)
		i := m.index(h)
		dup := false
		for ; m.slots[i].off != 0; i = (i + 1) % len(m.slots) {
			sl := m.slots[i]
			if sl.tag == tag && sl.meta&^metaListMask == p.meta&^metaListMask && arenaEq(arena, sl.off, name) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		off := uint32(len(arena))
		arena = arena[:int(off)+1+int(n)] // within the region: never reallocates
		arena[off] = byte(n)
		copy(arena[off+1:], name)
		m.slots[i] = slot{off: off, tag: tag, meta: p.meta}
		m.count++
	}
	m.arena = arena[:len(arena):len(arena)]
	if !arenaMem.mapped && cap(arenaMem.b) > 2*len(arena) {
		m.arena = append([]byte(nil), arena...) // give back what duplicates wasted
	}
	releaseWith(m, b.released, slotMem, arenaMem)
	*b = Builder{}
	return m, nil
}

func arenaEq(arena []byte, off uint32, s string) bool {
	n := uint32(arena[off])
	return int(n) == len(s) && string(arena[off+1:off+1+n]) == s
}
