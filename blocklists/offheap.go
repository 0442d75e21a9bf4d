package blocklists

import (
	"bytes"
	"io"
	"runtime"
	"unsafe"
)

// A matcher with a million names holds some 11 MB in its table. On the Go
// heap that would also set the garbage collector's goal: with the default
// GOGC the heap may grow to twice what is live before a collection, so a
// big list would cost its own size again in headroom. The table holds no
// pointers and never changes once built, so a large one lives outside the
// heap, in an anonymous memory mapping (offheap_unix.go), released by a
// cleanup when the Matcher becomes unreachable. Every method that reads
// it keeps the Matcher alive until it is done (runtime.KeepAlive), so a
// list swapped out mid-lookup is never unmapped under the lookup.

// offHeapMin is the size below which arrays stay on the heap: a mapping
// costs a system call and at least a page.
const offHeapMin = 64 << 10

// region is memory from mapMemory, or from the heap when small or when
// mapping failed.
type region struct {
	b      []byte
	mapped bool
}

func newRegion(n int) region {
	if n >= offHeapMin {
		if b, err := mapMemory(n); err == nil {
			return region{b: b, mapped: true}
		}
	}
	return region{b: make([]byte, n)}
}

func (r region) free() {
	if r.mapped {
		unmapMemory(r.b)
	}
}

// release frees r and empties it, so that freeing it again is harmless.
func (r *region) release() {
	r.free()
	*r = region{}
}

// slotsIn views a region as a slot table.
func slotsIn(r region, n int) []slot {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(r.b))), n)
}

// releaseWith frees the regions once m is unreachable, then calls
// released (a test hook) when it is not nil.
func releaseWith(m *Matcher, released func(), regions ...region) {
	mapped := false
	for _, r := range regions {
		mapped = mapped || r.mapped
	}
	if mapped {
		runtime.AddCleanup(m, func(rs []region) {
			for _, r := range rs {
				r.free()
			}
			if released != nil {
				released()
			}
		}, regions)
	}
}

// spool keeps what is written to it in regions outside the heap, a MiB
// each: a downloaded list, compressed as it is read, until it is stored.
// On the heap, a five-million-name list's 25 MB would set the collector's
// goal to twice that.
type spool struct {
	regions []region
	n       int // bytes used in the last region
}

const spoolRegion = 1 << 20

// Write implements io.Writer; it never fails.
func (s *spool) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		if len(s.regions) == 0 || s.n == spoolRegion {
			s.regions = append(s.regions, newRegion(spoolRegion))
			s.n = 0
		}
		k := copy(s.regions[len(s.regions)-1].b[s.n:spoolRegion], p)
		s.n += k
		p = p[k:]
	}
	return written, nil
}

// reader reads back what was written; s must not be written or freed
// until it is done.
func (s *spool) reader() io.Reader {
	parts := make([]io.Reader, len(s.regions))
	for i, r := range s.regions {
		end := spoolRegion
		if i == len(s.regions)-1 {
			end = s.n
		}
		parts[i] = bytes.NewReader(r.b[:end])
	}
	return io.MultiReader(parts...)
}

// free releases the regions; s is empty after.
func (s *spool) free() {
	for i := range s.regions {
		s.regions[i].release()
	}
	*s = spool{}
}
