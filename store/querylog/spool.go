package querylog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// The log as a spool: a shipper (store/fleet) reads each segment forward
// from where it stopped, block by block, and keeps its position itself.
// A position is a segment (kind and hour) and a byte offset in it, at a
// frame boundary; an entry's place is its frame's start and its index in
// the block, which together name it for ever (Seq).

// SpoolSegment is one segment file as the spool sees it.
type SpoolSegment struct {
	Blocked bool
	Hour    time.Time // the UTC hour of its entries
	Size    int64     // where its whole frames end now
}

// SpoolSegments returns the kind's segments, oldest first, with the size
// of their whole frames: what a shipper may read now.
func (q *Log) SpoolSegments(blocked bool) ([]SpoolSegment, error) {
	k := kind(blocked)
	hours, err := q.segs.list(k)
	if err != nil {
		return nil, fmt.Errorf("listing the log's segments: %w", err)
	}
	slices.Reverse(hours)
	out := make([]SpoolSegment, 0, len(hours))
	for _, h := range hours {
		size, err := q.segs.committed(k, h)
		if errors.Is(err, os.ErrNotExist) {
			continue // expired since it was listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, SpoolSegment{Blocked: blocked, Hour: h, Size: size})
	}
	return out, nil
}

// committed returns where the whole frames of a segment end: the writer's
// count for the segment being appended to, the file's size otherwise.
func (sg *segments) committed(k int, h time.Time) (int64, error) {
	// Under the lock throughout: the writer may switch to this segment
	// (late entries of an earlier hour) and start a frame in it between
	// a look at open and a look at the file.
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sf := sg.open[k]; sf != nil && sf.hour.Equal(h) {
		return sf.size, nil
	}
	fi, err := os.Stat(sg.path(k, h))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Seq names an entry within its segment: its block's offset and its index
// in the block (a block holds far fewer than 65,536 entries: maxBlockBytes).
func Seq(blockStart int64, index int) int64 { return blockStart<<16 | int64(index) }

// SpoolState says why ReadSpool stopped.
type SpoolState int

const (
	// SpoolDone: it read to the segment's size, or fn stopped it.
	SpoolDone SpoolState = iota
	// SpoolIncomplete: the frame at next runs past the size given (or
	// could not be read whole): a frame being written, or a crash's torn
	// write the writer cuts off when it next opens the segment. Nothing
	// is skipped; a later read may find it whole.
	SpoolIncomplete
	// SpoolDamaged: the whole frame at next fails its check: nothing
	// after it can be trusted to be a frame boundary.
	SpoolDamaged
)

// ReadSpool reads the segment forward from offset, a frame boundary, to
// the end of its whole frames, calling fn with each block's start and end
// and its entries, which fn must not keep: their strings are views of a
// buffer the next block reuses (no allocation per entry). It stops early
// when fn returns false, and returns the offset it read up to: the end of
// the last block fn accepted, and why it stopped there.
func (q *Log) ReadSpool(seg SpoolSegment, offset int64, fn func(start, end int64, entries []Entry) bool) (next int64, state SpoolState, err error) {
	f, err := os.Open(q.segs.path(kind(seg.Blocked), seg.Hour))
	if errors.Is(err, os.ErrNotExist) {
		return offset, SpoolDone, nil
	}
	if err != nil {
		return offset, SpoolDone, fmt.Errorf("opening a log segment: %w", err)
	}
	defer f.Close()
	var (
		head    [frameHead]byte
		buf     []byte
		scratch []byte
		entries []Entry
	)
	pos := offset
	for pos < seg.Size {
		if pos+frameHead+frameTail > seg.Size {
			return pos, SpoolIncomplete, nil
		}
		if _, err := f.ReadAt(head[:], pos); err != nil {
			return pos, SpoolIncomplete, nil
		}
		if head[0] != frameMagic && head[0] != frameMagicV1 {
			return pos, SpoolDamaged, nil
		}
		l := int64(binary.LittleEndian.Uint32(head[1:]))
		end := pos + frameHead + l + frameTail
		if l > maxFrame {
			return pos, SpoolDamaged, nil
		}
		if end > seg.Size {
			return pos, SpoolIncomplete, nil
		}
		if cap(buf) < int(end-pos) {
			buf = make([]byte, end-pos)
		}
		buf = buf[:end-pos]
		if _, err := f.ReadAt(buf, pos); err != nil {
			return pos, SpoolIncomplete, nil
		}
		fr, good := parseFrame(buf)
		if !good {
			return pos, SpoolDamaged, nil
		}
		entries, scratch, err = decodeBodyInto(scratch, fr.body, entries[:0], true)
		if err != nil {
			return pos, SpoolDamaged, nil
		}
		if !fn(pos, end, entries) {
			return pos, SpoolDone, nil
		}
		pos = end
	}
	return pos, SpoolDone, nil
}
