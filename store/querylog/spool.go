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
	sg.mu.Lock()
	if sf := sg.open[k]; sf != nil && sf.hour.Equal(h) {
		size := sf.size
		sg.mu.Unlock()
		return size, nil
	}
	sg.mu.Unlock()
	fi, err := os.Stat(sg.path(k, h))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Seq names an entry within its segment: its block's offset and its index
// in the block (a block holds far fewer than 65,536 entries: maxBlockBytes).
func Seq(blockStart int64, index int) int64 { return blockStart<<16 | int64(index) }

// ReadSpool reads the segment forward from offset, a frame boundary, to
// the end of its whole frames, calling fn with each block's start and end
// and its entries, which fn must not keep: their strings are views of a
// buffer the next block reuses (no allocation per entry). It stops
// early when fn returns false, and returns the offset it read up to: the
// end of the last block fn accepted. A damaged block ends the read there
// (ok false): nothing after it in the segment can be trusted to be a
// frame boundary.
func (q *Log) ReadSpool(seg SpoolSegment, offset int64, fn func(start, end int64, entries []Entry) bool) (next int64, ok bool, err error) {
	f, err := os.Open(q.segs.path(kind(seg.Blocked), seg.Hour))
	if errors.Is(err, os.ErrNotExist) {
		return offset, false, nil
	}
	if err != nil {
		return offset, false, fmt.Errorf("opening a log segment: %w", err)
	}
	defer f.Close()
	var (
		head    [frameHead]byte
		buf     []byte
		scratch []byte
		entries []Entry
	)
	pos := offset
	for pos+frameHead+frameTail <= seg.Size {
		if _, err := f.ReadAt(head[:], pos); err != nil {
			return pos, false, nil
		}
		l := int64(binary.LittleEndian.Uint32(head[1:]))
		end := pos + frameHead + l + frameTail
		if l > maxFrame || end > seg.Size {
			return pos, false, nil
		}
		if cap(buf) < int(end-pos) {
			buf = make([]byte, end-pos)
		}
		buf = buf[:end-pos]
		if _, err := f.ReadAt(buf, pos); err != nil {
			return pos, false, nil
		}
		fr, good := parseFrame(buf)
		if !good {
			return pos, false, nil
		}
		entries, scratch, err = decodeBodyInto(scratch, fr.body, entries[:0], true)
		if err != nil {
			return pos, false, nil
		}
		if !fn(pos, end, entries) {
			return pos, true, nil
		}
		pos = end
	}
	return pos, true, nil
}
