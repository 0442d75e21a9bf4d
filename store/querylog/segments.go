package querylog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The per-client log lives beside Badger, in append-only segment files,
// one per kind per UTC hour of its entries:
//
//	<store.dir>/querylog/blocked-2026112702.qlog
//	<store.dir>/querylog/allowed-2026112702.qlog
//
// Why not in Badger, where it started: a log is written once, read
// newest-first and dropped by age, and an LSM tree gives it nothing but
// compaction. Under a steady stream of blocked lookups Badger kept
// rewriting the log through its levels; its pooled table builders held
// 80–100 MB and the process grew past 300 MB RSS, and the writer cost a
// fifth of blocked-path throughput. Appending a frame per flush with one
// write(2), deleting whole hours at the end of the retention, and reading
// frames backwards with pread(2) costs no memory beyond the block being
// decoded, and no mmap, so the page cache is not counted in Vigil's RSS.
//
// A segment is a sequence of frames, one per block of entries:
//
//	magic   1 byte (frameMagic, or frameMagicV1 for a frame without a
//	        summary, as written before summaries)
//	length  4 bytes LE, of the payload
//	payload oldest and newest entry time (8 bytes BE unix nanos each),
//	        the clients in the block (uvarint count, then each identity
//	        as uvarint length + bytes), the summary (uvarint count, then
//	        each distinct client name, address, MAC and vendor as
//	        length-prefixed bytes with the uvarint number of entries:
//	        what the alerts need, read without decoding the body), the
//	        S2-compressed block body
//	crc     4 bytes LE, CRC-32C of magic, length and payload
//	length  4 bytes LE again, so frames can be walked from the end
//
// Frames are appended whole with one write; a failed write is truncated
// away. A crash can still leave a torn frame at the end of the segment
// being written: the writer cuts it off when it next opens that segment,
// and readers stop at it.
const (
	segmentDir   = "querylog"
	segmentExt   = ".qlog"
	segmentSpan  = time.Hour
	segmentStamp = "2006010215"
	frameMagic   = 0xB2
	frameMagicV1 = 0xB1
	frameHead    = 5
	frameTail    = 8
	// maxFrame bounds a payload length read from disk before it is
	// trusted for an allocation; blocks are kept far below it.
	maxFrame = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// kind indexes per-kind state: 0 allowed, 1 blocked.
func kind(blocked bool) int {
	if blocked {
		return 1
	}
	return 0
}

var kindNames = [2]string{"allowed", "blocked"}

// segments is the segment directory. The log writer appends; any number
// of readers walk it at the same time.
type segments struct {
	dir string

	mu sync.Mutex
	// open is the segment each kind is appended to. Readers take its
	// committed size from here rather than from the file, which may end
	// in a frame being written.
	open [2]*segmentFile

	// retention per kind in nanoseconds (setRetention), 0 for none:
	// entries older than this are hidden from readers until their hour is
	// deleted.
	retention [2]atomic.Int64
}

type segmentFile struct {
	hour time.Time
	path string
	f    *os.File
	size int64 // whole frames end here; guarded by segments.mu
}

func openSegments(dir string) (*segments, error) {
	d := filepath.Join(dir, segmentDir)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return nil, fmt.Errorf("creating the query log directory %s: %w", d, err)
	}
	return &segments{dir: d}, nil
}

// setRetention sets how long each kind of entry is kept.
func (sg *segments) setRetention(blocked, allowed time.Duration) {
	sg.retention[1].Store(int64(blocked))
	sg.retention[0].Store(int64(allowed))
}

func (sg *segments) path(k int, hour time.Time) string {
	return filepath.Join(sg.dir, kindNames[k]+"-"+hour.UTC().Format(segmentStamp)+segmentExt)
}

// hourOf returns the start of the segment holding t.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(segmentSpan) }

// list returns the kind's segment hours, newest first.
func (sg *segments) list(k int) ([]time.Time, error) {
	des, err := os.ReadDir(sg.dir)
	if err != nil {
		return nil, err
	}
	var hours []time.Time
	prefix := kindNames[k] + "-"
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		h, err := time.Parse(segmentStamp, strings.TrimSuffix(strings.TrimPrefix(name, prefix), segmentExt))
		if err != nil {
			continue
		}
		hours = append(hours, h)
	}
	slices.SortFunc(hours, func(a, b time.Time) int { return b.Compare(a) })
	return hours, nil
}

// appendFrame appends one frame to the kind's segment for hour, opening
// (and, after a crash, repairing) it when the writer moves to a new hour.
// Only the log writer calls it.
func (sg *segments) appendFrame(k int, hour time.Time, frame []byte) error {
	sg.mu.Lock()
	cur := sg.open[k]
	sg.mu.Unlock()
	if cur == nil || !cur.hour.Equal(hour) {
		next, err := sg.openForAppend(k, hour)
		if err != nil {
			return err
		}
		sg.mu.Lock()
		sg.open[k] = next
		sg.mu.Unlock()
		if cur != nil {
			_ = cur.f.Sync()
			_ = cur.f.Close()
		}
		cur = next
	}
	sg.mu.Lock()
	at := cur.size
	sg.mu.Unlock()
	if _, err := cur.f.WriteAt(frame, at); err != nil {
		// Leave no partial frame for readers to trip on.
		_ = cur.f.Truncate(at)
		return fmt.Errorf("appending to %s: %w", cur.path, err)
	}
	sg.mu.Lock()
	cur.size = at + int64(len(frame))
	sg.mu.Unlock()
	return nil
}

func (sg *segments) openForAppend(k int, hour time.Time) (*segmentFile, error) {
	p := sg.path(k, hour)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	size := fi.Size()
	if size > 0 && !lastFrameValid(f, size) {
		// A torn frame from a crash: keep the whole frames before it.
		size = validEnd(f, size)
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("repairing %s: %w", p, err)
		}
	}
	return &segmentFile{hour: hour, path: p, f: f, size: size}, nil
}

// sync makes what was appended durable.
func (sg *segments) sync() error {
	// Not under sg.mu: an fsync can take long on a busy disk, and the
	// writer and readers take the mutex.
	sg.mu.Lock()
	files := make([]*os.File, 0, len(sg.open))
	for _, sf := range sg.open {
		if sf != nil {
			files = append(files, sf.f)
		}
	}
	sg.mu.Unlock()
	var errs []error
	for _, f := range files {
		// A segment the writer closed meanwhile was synced first.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close syncs and closes the open segments.
func (sg *segments) close() error {
	err := sg.sync()
	sg.mu.Lock()
	defer sg.mu.Unlock()
	for i, sf := range sg.open {
		if sf != nil {
			sf.f.Close()
			sg.open[i] = nil
		}
	}
	return err
}

// expire deletes the kind's segments whose whole hour is older than the
// retention, and returns how many it deleted.
func (sg *segments) expire(k int, now time.Time) (int, error) {
	r := time.Duration(sg.retention[k].Load())
	if r <= 0 {
		return 0, nil
	}
	hours, err := sg.list(k)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range hours {
		if h.Add(segmentSpan).After(now.Add(-r)) {
			continue
		}
		sg.mu.Lock()
		if sf := sg.open[k]; sf != nil && sf.hour.Equal(h) {
			sf.f.Close()
			sg.open[k] = nil
		}
		sg.mu.Unlock()
		if err := os.Remove(sg.path(k, h)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}

// cutoff returns the oldest time readers may see for the kind.
func (sg *segments) cutoff(k int, now time.Time) time.Time {
	if r := sg.retention[k].Load(); r > 0 {
		return now.Add(-time.Duration(r))
	}
	return time.Time{}
}

// frame is one decoded frame header and its still-compressed body.
type frame struct {
	first, newest time.Time
	clients       []byte // uvarint count, then length-prefixed identities
	summary       []byte // nil in a frame written before summaries
	body          []byte
}

// appendFrameBytes encodes a frame for a block.
func appendFrameBytes(b []byte, first, newest time.Time, clients []string, summary, body []byte) []byte {
	start := len(b)
	b = append(b, frameMagic, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(max(first.UnixNano(), 0)))
	b = binary.BigEndian.AppendUint64(b, uint64(max(newest.UnixNano(), 0)))
	b = binary.AppendUvarint(b, uint64(len(clients)))
	for _, c := range clients {
		b = appendString(b, c)
	}
	b = append(b, summary...)
	b = append(b, body...)
	payload := len(b) - start - frameHead
	binary.LittleEndian.PutUint32(b[start+1:], uint32(payload))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return binary.LittleEndian.AppendUint32(b, uint32(payload))
}

// parseFrame checks a whole frame (head, payload, tail) and decodes its
// header.
func parseFrame(b []byte) (frame, bool) {
	if len(b) < frameHead+frameTail+17 || b[0] != frameMagic && b[0] != frameMagicV1 {
		return frame{}, false
	}
	l := int(binary.LittleEndian.Uint32(b[1:5]))
	if l != len(b)-frameHead-frameTail || int(binary.LittleEndian.Uint32(b[len(b)-4:])) != l {
		return frame{}, false
	}
	if crc32.Checksum(b[:len(b)-frameTail], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-8:]) {
		return frame{}, false
	}
	p := b[frameHead : len(b)-frameTail]
	fr := frame{
		first:  time.Unix(0, int64(binary.BigEndian.Uint64(p[0:8]))).UTC(),
		newest: time.Unix(0, int64(binary.BigEndian.Uint64(p[8:16]))).UTC(),
	}
	rest := p[16:]
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) {
		return frame{}, false
	}
	i := k
	for range count {
		n, k := binary.Uvarint(rest[i:])
		if k <= 0 || uint64(len(rest)-i-k) < n {
			return frame{}, false
		}
		i += k + int(n)
	}
	fr.clients, fr.body = rest[:i], rest[i:]
	if b[0] == frameMagic {
		n, ok := summaryLen(fr.body)
		if !ok {
			return frame{}, false
		}
		fr.summary, fr.body = fr.body[:n], fr.body[n:]
	}
	return fr, true
}

// summaryLen returns the length of the summary at the start of b.
func summaryLen(b []byte) (int, bool) {
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return 0, false
	}
	i := k
	for range count {
		for range 4 { // name, address, MAC, vendor
			n, k := binary.Uvarint(b[i:])
			if k <= 0 || uint64(len(b)-i-k) < n {
				return 0, false
			}
			i += k + int(n)
		}
		if _, k := binary.Uvarint(b[i:]); k <= 0 {
			return 0, false
		} else {
			i += k
		}
	}
	return i, true
}

// eachClient calls fn with every client identity the block holds.
func (fr *frame) eachClient(fn func(string)) {
	count, k := binary.Uvarint(fr.clients)
	rest := fr.clients[k:]
	for range count {
		n, k := binary.Uvarint(rest)
		fn(string(rest[k : k+int(n)]))
		rest = rest[k+int(n):]
	}
}

// hasClient reports whether the block holds entries of the client.
func (fr *frame) hasClient(client string) bool {
	count, k := binary.Uvarint(fr.clients)
	rest := fr.clients[k:]
	for range count {
		n, k := binary.Uvarint(rest)
		if string(rest[k:k+int(n)]) == client {
			return true
		}
		rest = rest[k+int(n):]
	}
	return false
}

// lastFrameValid checks the frame ending at size.
func lastFrameValid(f io.ReaderAt, size int64) bool {
	_, _, _, ok := frameBefore(f, size, nil)
	return ok
}

// frameBefore reads the frame that ends at pos into buf, grown when too
// small and returned; the frame points into it.
func frameBefore(f io.ReaderAt, pos int64, buf []byte) (fr frame, start int64, _ []byte, ok bool) {
	if pos < frameHead+frameTail {
		return frame{}, 0, buf, false
	}
	var tail [4]byte
	if _, err := f.ReadAt(tail[:], pos-4); err != nil {
		return frame{}, 0, buf, false
	}
	l := int64(binary.LittleEndian.Uint32(tail[:]))
	start = pos - frameTail - l - frameHead
	if l > maxFrame || start < 0 {
		return frame{}, 0, buf, false
	}
	n := int(pos - start)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, start); err != nil {
		return frame{}, 0, buf, false
	}
	fr, ok = parseFrame(buf)
	return fr, start, buf, ok
}

// validEnd scans a segment from its start and returns where its whole,
// valid frames end.
func validEnd(f io.ReaderAt, size int64) int64 {
	var pos int64
	var head [frameHead]byte
	var buf []byte
	for pos+frameHead+frameTail <= size {
		if _, err := f.ReadAt(head[:], pos); err != nil || head[0] != frameMagic && head[0] != frameMagicV1 {
			break
		}
		l := int64(binary.LittleEndian.Uint32(head[1:]))
		end := pos + frameHead + l + frameTail
		if l > maxFrame || end > size {
			break
		}
		if cap(buf) < int(end-pos) {
			buf = make([]byte, end-pos)
		}
		buf = buf[:end-pos]
		if _, err := f.ReadAt(buf, pos); err != nil {
			break
		}
		if _, ok := parseFrame(buf); !ok {
			break
		}
		pos = end
	}
	return pos
}

// segPos is a position in the log: a segment's hour and the end of a
// frame in it. Encoded in 12 bytes for cursors.
type segPos struct {
	hour time.Time
	end  int64
}

func (p segPos) bytes() []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(p.hour.Unix()/3600))
	return binary.BigEndian.AppendUint64(b, uint64(p.end))
}

func parseSegPos(b []byte) (segPos, bool) {
	if len(b) != 12 {
		return segPos{}, false
	}
	end := int64(binary.BigEndian.Uint64(b[4:]))
	if end < 0 {
		return segPos{}, false
	}
	return segPos{hour: time.Unix(int64(binary.BigEndian.Uint32(b))*3600, 0).UTC(), end: end}, true
}

// walk calls fn for each frame of the kind, newest segment first and,
// within a segment, last frame first, starting at the frame ending at from
// when given. Segments wholly outside [since, until) are not opened. fn
// returns false to stop.
func (sg *segments) walk(k int, since, until time.Time, from *segPos, fn func(pos segPos, fr *frame) bool) error {
	hours, err := sg.list(k)
	if err != nil {
		return err
	}
	var buf []byte
	for _, h := range hours {
		if !until.IsZero() && !h.Before(until) {
			continue
		}
		if from != nil && h.After(from.hour) {
			continue
		}
		if !since.IsZero() && !h.Add(segmentSpan).After(since) {
			return nil // this and every older segment ends before the window
		}
		more, err := sg.walkSegment(k, h, from, &buf, fn)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

func (sg *segments) walkSegment(k int, h time.Time, from *segPos, buf *[]byte, fn func(pos segPos, fr *frame) bool) (bool, error) {
	f, err := os.Open(sg.path(k, h))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil // expired since it was listed
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	end := fi.Size()
	sg.mu.Lock()
	if sf := sg.open[k]; sf != nil && sf.hour.Equal(h) {
		end = sf.size // the file may end in a frame being written
	}
	sg.mu.Unlock()
	if from != nil && from.hour.Equal(h) {
		end = min(end, from.end)
	}
	if end > 0 && !lastFrameValid(f, end) {
		end = validEnd(f, end) // torn by a crash: read the whole frames
	}
	for pos := end; pos > 0; {
		fr, start, b, ok := frameBefore(f, pos, *buf)
		*buf = b
		if !ok {
			return true, nil // damaged: skip the rest of this segment
		}
		if !fn(segPos{hour: h, end: pos}, &fr) {
			return false, nil
		}
		pos = start
	}
	return true, nil
}
