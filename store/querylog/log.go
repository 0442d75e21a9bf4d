package querylog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"go.uber.org/zap"
)

// Config is the [querylog] section. QueueSize, BatchSize and SyncInterval
// set the loss bound (package documentation, LossBound).
type Config struct {
	// Enabled turns the per-client log on.
	Enabled bool `toml:"enabled"`
	// Retention is how long blocked lookups are kept.
	Retention time.Duration `toml:"retention"`
	// LogAllowed also records lookups that were not blocked.
	LogAllowed bool `toml:"log_allowed"`
	// AllowedRetention is how long allowed lookups are kept.
	AllowedRetention time.Duration `toml:"allowed_retention"`
	// QueueSize bounds the entries waiting for the writer; when full, new
	// entries are dropped and counted, never waited for.
	QueueSize int `toml:"queue_size"`
	// BatchSize is how many entries the writer gathers before writing.
	BatchSize int `toml:"batch_size"`
	// FlushInterval bounds how long an entry waits in a partial batch.
	FlushInterval time.Duration `toml:"flush_interval"`
	// SyncInterval is how often written entries are synced to disk: the
	// power-loss bound.
	SyncInterval time.Duration `toml:"sync_interval"`
	// TruncateAddresses stores client addresses cut to /24 (IPv4) and /56
	// (IPv6) instead of whole.
	TruncateAddresses bool `toml:"truncate_addresses"`
	// LogLines also writes each blocked lookup as a log line.
	LogLines bool `toml:"log_lines"`
}

// DefaultConfig returns the [querylog] defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		Retention:        30 * 24 * time.Hour,
		AllowedRetention: 24 * time.Hour,
		QueueSize:        16384,
		BatchSize:        512,
		FlushInterval:    time.Second,
		SyncInterval:     5 * time.Second,
		LogLines:         true,
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Retention < time.Second {
		errs = append(errs, fmt.Errorf("querylog.retention: want at least \"1s\", got %q", c.Retention.String()))
	}
	if c.AllowedRetention < time.Second {
		errs = append(errs, fmt.Errorf("querylog.allowed_retention: want at least \"1s\", got %q", c.AllowedRetention.String()))
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<22 {
		errs = append(errs, fmt.Errorf("querylog.queue_size: want 1 to 4194304, got %d", c.QueueSize))
	}
	if c.BatchSize < 1 || c.BatchSize > 1<<16 {
		errs = append(errs, fmt.Errorf("querylog.batch_size: want 1 to 65536, got %d", c.BatchSize))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("querylog.flush_interval: want a positive duration, got %q", c.FlushInterval.String()))
	}
	if c.SyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("querylog.sync_interval: want a positive duration, got %q", c.SyncInterval.String()))
	}
	return errors.Join(errs...)
}

// LossBound describes, for people, how much a crash can lose when lanes
// lanes (one per UDP reader: two per UDP socket, lane.go) are in use.
func (c *Config) LossBound(lanes int) string {
	perLane := min(laneSize, c.QueueSize)
	return fmt.Sprintf("a crash loses at most %d entries (queue_size + 2 × %d for each of %d UDP readers); a power loss also up to %s of entries (sync_interval)",
		c.QueueSize+2*lanes*perLane, perLane, lanes, c.SyncInterval)
}

// lossBound is LossBound for the lanes in use.
func (q *Log) lossBound() string {
	q.lanesMu.Lock()
	n := len(q.lanes)
	q.lanesMu.Unlock()
	return q.cfg.LossBound(n)
}

// Reason is why a lookup was blocked; the log, the API's JSON and the CLI
// spell it as its string value.
type Reason string

// Block reasons.
const (
	ReasonName  Reason = "name"  // the query name is listed
	ReasonCNAME Reason = "cname" // a CNAME in the answer points at a listed name
)

// Proto is the transport a lookup arrived on, as the log and the API
// spell it.
type Proto string

// Transports.
const (
	ProtoUDP Proto = "udp"
	ProtoTCP Proto = "tcp"
	ProtoDoT Proto = "dot" // DNS over TLS (RFC 7858)
	ProtoDoH Proto = "doh" // DNS over HTTPS (RFC 8484)
)

// Entry is one logged lookup.
type Entry struct {
	Time       time.Time  `json:"time"`
	Client     string     `json:"client"` // the client's name if it has one, else its address
	ClientName string     `json:"client_name,omitempty"`
	ClientAddr netip.Addr `json:"client_addr"`
	MAC        string     `json:"mac,omitempty"`
	QName      string     `json:"qname"`
	QType      string     `json:"qtype"`
	Blocked    bool       `json:"blocked"`
	List       string     `json:"list,omitempty"`
	Vendor     string     `json:"vendor,omitempty"`
	Rule       string     `json:"rule,omitempty"`
	Reason     Reason     `json:"reason,omitempty"` // ReasonName, or ReasonCNAME when a CNAME in the answer was listed
	CNAME      string     `json:"cname,omitempty"`
	Proto      Proto      `json:"proto"`
	// Group is the client's groups when groups are configured, joined
	// with "," ([[groups]]).
	Group string `json:"group,omitempty"`
	// Replica names the Vigil that answered the lookup, in a fleet's log
	// (store/fleet); a replica's own segments do not keep it.
	Replica string `json:"replica,omitempty"`
}

// Identity returns the key the log groups a client under.
func (e *Entry) identity() string {
	if e.ClientName != "" {
		return e.ClientName
	}
	return e.ClientAddr.String()
}

// Log records lookups per client off the query path: Record hands an
// entry to a bounded queue and returns at once; Run is the one writer that
// batches them into the segment files (segments.go). Its readers
// (query.go) may run at any time, with or without the writer. A Log is
// safe for concurrent use.
type Log struct {
	segs *segments
	cfg  Config
	log  *zap.Logger
	// lowDisk reports whether the disk is almost full; never nil, set
	// before Run (PauseWhen).
	lowDisk func() bool
	// queue carries encoded entries to the writer: a lane's at a time
	// (lane.go) or one Record's. queued counts the entries in it, which
	// queue_size bounds. free takes lane buffers back to the lanes.
	queue   chan queued
	free    chan []byte
	queued  atomic.Int64
	laneCap int
	lanesMu sync.Mutex
	lanes   []*Lane
	// The writer's: entries gathered for the next write, and the block
	// builder.
	pending pending
	blocks  blockBuilder
	done    chan struct{}

	written, dropped, writeErrors, lowDiskDropped atomic.Uint64
}

// Stats is a snapshot of the log's counters.
type Stats struct {
	Queued      int    `json:"queued"`
	Capacity    int    `json:"capacity"`
	Written     uint64 `json:"written"`
	Dropped     uint64 `json:"dropped"`
	WriteErrors uint64 `json:"write_errors"`
	// LowDiskDropped counts entries not written because the disk was
	// almost full (store.min_free_bytes).
	LowDiskDropped uint64 `json:"low_disk_dropped"`
	LowDisk        bool   `json:"low_disk"`
	LossBound      string `json:"loss_bound"`
}

// Open opens the log kept in the querylog directory under dir (the data
// directory, store.dir), creating it if missing. Its readers work at once,
// hiding entries past cfg's retentions; nothing is written until Run.
// Close it after Run has returned.
func Open(dir string, cfg Config, log *zap.Logger) (*Log, error) {
	segs, err := openSegments(dir)
	if err != nil {
		return nil, err
	}
	segs.setRetention(cfg.Retention, cfg.AllowedRetention)
	return &Log{
		segs: segs, cfg: cfg, log: log, done: make(chan struct{}),
		lowDisk: func() bool { return false },
		queue:   make(chan queued, cfg.QueueSize),
		free:    make(chan []byte, keptLaneBufs),
		laneCap: min(laneSize, cfg.QueueSize),
	}, nil
}

// PauseWhen makes the writer drop what it would write, counting it in
// Stats.LowDiskDropped, while low reports true: the disk holding the log
// is almost full (store.min_free_bytes; the store watches it). DNS keeps
// answering. low must be cheap and safe for concurrent use. Call
// PauseWhen before Run and before sharing the log.
func (q *Log) PauseWhen(low func() bool) { q.lowDisk = low }

// Close syncs and closes the segment files the writer left open. Call it
// after Run has returned, or instead of Run for a log only read.
func (q *Log) Close() error {
	if err := q.segs.close(); err != nil {
		return fmt.Errorf("closing the query log in %s: %w", q.segs.dir, err)
	}
	return nil
}

// keptLaneBufs is how many empty lane buffers wait for reuse (about
// 17 KiB each). Under a saturating load the writer runs in bursts and
// gives many back at once: with 8 kept, new ones were allocated at some
// 10 MB/s.
const keptLaneBufs = 32

// Record queues e for writing. It never blocks: when the queue is full the
// entry is dropped, counted, and false returned. Safe for concurrent use.
func (q *Log) Record(e Entry) bool {
	if !q.reserve(1) {
		q.dropped.Add(1)
		return false
	}
	b := appendRecord(make([]byte, 0, 64+len(e.QName)+len(e.Rule)+len(e.CNAME)), &e, q.cfg.TruncateAddresses)
	q.queue <- queued{buf: b, n: 1} // cannot block: reserve bounds what is queued
	return true
}

// Stats returns the log's counters.
func (q *Log) Stats() Stats {
	return Stats{
		Queued: int(q.queued.Load()), Capacity: q.cfg.QueueSize,
		Written: q.written.Load(), Dropped: q.dropped.Load(), WriteErrors: q.writeErrors.Load(),
		LowDiskDropped: q.lowDiskDropped.Load(), LowDisk: q.lowDisk(),
		LossBound: q.lossBound(),
	}
}

// dropReportInterval is how often drops are reported, as one line with a
// count rather than a line per drop.
const dropReportInterval = 10 * time.Second

// Run writes queued entries in batches until ctx ends, then drains the
// queue, writes and syncs what is left and returns: a graceful shutdown
// loses nothing. Callers must stop calling Record before cancelling ctx.
func (q *Log) Run(ctx context.Context) {
	defer close(q.done)
	flush := time.NewTicker(q.cfg.FlushInterval)
	sync := time.NewTicker(q.cfg.SyncInterval)
	report := time.NewTicker(dropReportInterval)
	expire := time.NewTicker(expireInterval)
	defer flush.Stop()
	defer sync.Stop()
	defer report.Stop()
	defer expire.Stop()
	var reported uint64
	syncing := make(chan struct{}, 1)
	q.expire()
	for {
		select {
		case b := <-q.queue:
			q.take(b)
			q.gather(q.cfg.BatchSize)
			if q.pending.n >= q.cfg.BatchSize {
				q.write()
			}
		case <-flush.C:
			q.gather(q.cfg.BatchSize)
			q.drainLanes()
			q.write()
		case <-sync.C:
			// In the background: the queue must not wait for the disk.
			select {
			case syncing <- struct{}{}:
				go func() {
					defer func() { <-syncing }()
					if err := q.segs.sync(); err != nil {
						q.log.Warn("syncing the query log", zap.Error(err))
					}
				}()
			default: // the last sync is still running
			}
		case <-expire.C:
			q.expire()
		case <-report.C:
			if d := q.dropped.Load(); d != reported {
				q.log.Warn("query log queue full: entries dropped", zap.Uint64("dropped", d-reported),
					zap.Uint64("dropped_total", d), zap.Int("queue_size", q.cfg.QueueSize))
				reported = d
			}
		case <-ctx.Done():
			for {
				q.gather(q.cfg.BatchSize)
				if q.pending.n < q.cfg.BatchSize {
					break
				}
				q.write()
			}
			q.drainLanes()
			q.write()
			syncing <- struct{}{} // wait for a background sync
			if err := q.segs.close(); err != nil {
				q.log.Warn("syncing the query log", zap.Error(err))
			}
			return
		}
	}
}

// pending is what the writer has gathered for its next write: n encoded
// entries (appendRecord) in arena, and its scratch for ordering them.
type pending struct {
	arena []byte
	n     int
	recs  []record
	// reserved is how many of the n came through the queue: they stay
	// counted against queue_size until written, so that queue_size bounds
	// everything handed to the writer and not yet written, the batch
	// being written included (the crash loss bound).
	reserved int
}

// take adds entries from the queue to the pending batch.
func (q *Log) take(b queued) {
	q.pending.reserved += b.n
	q.pending.arena = append(q.pending.arena, b.buf...)
	q.pending.n += b.n
	if b.lane {
		q.recycle(b.buf)
	}
}

// gather takes whatever else is queued, until the pending batch holds
// limit entries, without going through the writer's select once per item.
func (q *Log) gather(limit int) {
	for q.pending.n < limit {
		select {
		case b := <-q.queue:
			q.take(b)
		default:
			return
		}
	}
}

// drainLanes takes what the lanes hold.
func (q *Log) drainLanes() {
	q.lanesMu.Lock()
	lanes := q.lanes
	q.lanesMu.Unlock()
	for _, l := range lanes {
		l.drain()
	}
}

// expireInterval is how often segments past the retention are deleted.
const expireInterval = time.Minute

// expire deletes the segments past their kind's retention.
func (q *Log) expire() {
	for k := range kindNames {
		if n, err := q.segs.expire(k, time.Now()); err != nil {
			q.log.Warn("deleting expired query log segments", zap.Error(err))
		} else if n > 0 {
			q.log.Debug("expired query log segments deleted", zap.String("kind", kindNames[k]), zap.Int("segments", n))
		}
	}
}

// Done is closed when Run has returned.
func (q *Log) Done() <-chan struct{} { return q.done }

// Blocks. The writer puts the entries of one flush, per kind, into blocks
// of at most maxBlockBytes that never cross an hour (a segment's span),
// and appends each block to its segment as one frame (segments.go). A
// block body is, S2-compressed (entries of one flush repeat names, lists
// and vendors, so this shrinks it several times): the count and per entry
// its time (8 bytes) and its length-prefixed encoding, oldest first.
//
// maxBlockBytes bounds a block before compression, and so the memory a
// reader needs for one.
const maxBlockBytes = 48 << 10

// write stores the pending batch and empties it. Errors (a full disk,
// say) are counted and reported; the entries are lost, DNS is not
// affected.
func (q *Log) write() {
	p := &q.pending
	if p.n == 0 {
		return
	}
	n := p.n
	defer func() {
		p.arena, p.n = p.arena[:0], 0
		q.queued.Add(-int64(p.reserved)) // written, dropped or failed: no longer in memory
		p.reserved = 0
	}()
	if q.lowDisk() {
		q.lowDiskDropped.Add(uint64(n))
		return
	}
	var err error
	p.recs, err = parseRecords(p.recs[:0], p.arena)
	if err == nil {
		// Lanes hand over whole buffers, so a batch is runs of entries
		// in time order rather than one.
		if !slices.IsSortedFunc(p.recs, record.compare) {
			slices.SortStableFunc(p.recs, record.compare)
		}
		q.logLines(p)
		err = q.blocks.add(p.arena, p.recs, true, q.segs.appendFrame)
		if err == nil {
			err = q.blocks.add(p.arena, p.recs, false, q.segs.appendFrame)
		}
	}
	if err != nil {
		q.writeErrors.Add(uint64(n))
		q.log.Warn("writing the query log failed; entries lost, DNS unaffected", zap.Int("entries", n), zap.Error(err))
		return
	}
	q.written.Add(uint64(n))
}

// logLines writes a log line per blocked entry of p when log_lines asks
// for them and the level lets them through.
func (q *Log) logLines(p *pending) {
	// Checked once per batch: building a line's fields allocates even
	// when the level then discards it.
	if !q.cfg.LogLines || !q.log.Core().Enabled(zap.InfoLevel) {
		return
	}
	for _, r := range p.recs {
		if !r.blocked {
			continue
		}
		e, err := decodeEntry(p.arena[r.start:r.start+8], p.arena[r.enc:r.end])
		if err != nil {
			continue
		}
		q.log.Info("blocked", zap.String("client", e.identity()), zap.Stringer("addr", e.ClientAddr),
			zap.String("name", e.QName), zap.String("type", e.QType), zap.String("list", e.List),
			zap.String("vendor", e.Vendor), zap.String("rule", e.Rule))
	}
}

// record locates one encoded entry in an arena: [start, end) is its time,
// length and encoding as a block body keeps them, the encoding from enc.
type record struct {
	ns              int64
	start, enc, end int
	blocked         bool
}

func (a record) compare(b record) int { return cmp.Compare(a.ns, b.ns) }

// appendRecord appends e as a block body keeps it: its time (8 bytes),
// the encoding's length (uvarint) and the encoding (encodeEntryAddr).
func appendRecord(b []byte, e *Entry, truncateAddr bool) []byte {
	addr := e.ClientAddr
	if truncateAddr {
		addr = truncate(addr)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(max(e.Time.UnixNano(), 0)))
	// The length goes before the encoding: leave one byte for it, which
	// is enough below 128 bytes, and move the encoding when it is not.
	at := len(b)
	b = encodeEntryAddr(append(b, 0), e, addr)
	size := len(b) - at - 1
	var lb [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(lb[:], uint64(size))
	if k > 1 {
		b = slices.Insert(b, at+1, lb[1:k]...)
	}
	copy(b[at:], lb[:k])
	return b
}

// parseRecords appends the records of arena, which holds whole ones.
func parseRecords(recs []record, arena []byte) ([]record, error) {
	for off := 0; off < len(arena); {
		if len(arena)-off < 9 {
			return recs, errCorrupt
		}
		l, k := binary.Uvarint(arena[off+8:])
		enc := off + 8 + k
		if k <= 0 || uint64(len(arena)-enc) < l || l < 2 {
			return recs, errCorrupt
		}
		end := enc + int(l)
		recs = append(recs, record{
			ns: int64(binary.BigEndian.Uint64(arena[off:])), start: off, enc: enc, end: end,
			blocked: arena[enc+1]&flagBlocked != 0,
		})
		off = end
	}
	return recs, nil
}

// blockBuilder turns time-ordered encoded entries into frames. Its
// buffers are reused from flush to flush: the writer allocates little per
// entry.
type blockBuilder struct {
	block, body, enc, frame, summary []byte
	// The block's clients: by name, or by address when they have none.
	names map[string]struct{}
	addrs map[netip.Addr]struct{}
	list  []string
	// tuples counts the entries per distinct client name, address, MAC
	// and vendor (each length-prefixed, concatenated), for the summary.
	tuples map[string]int
	order  []string
}

// add puts the records of one kind (blocked or allowed) of arena, which
// are in time order, into blocks and hands each block's frame to emit.
func (bb *blockBuilder) add(arena []byte, recs []record, blocked bool, emit func(k int, hour time.Time, frame []byte) error) error {
	if bb.names == nil {
		bb.names, bb.addrs, bb.tuples = map[string]struct{}{}, map[netip.Addr]struct{}{}, map[string]int{}
	}
	var first, newest, hourEnd int64
	var lastName, lastAddr []byte
	var tuple, lastTuple []byte
	lastKey := ""
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		bb.body = binary.AppendUvarint(bb.body[:0], uint64(n))
		bb.body = append(bb.body, bb.block...)
		bb.list = bb.list[:0]
		for name := range bb.names {
			bb.list = append(bb.list, name)
		}
		for a := range bb.addrs {
			bb.list = append(bb.list, a.String())
		}
		bb.enc = s2.Encode(bb.enc[:cap(bb.enc)], bb.body)
		bb.summary = binary.AppendUvarint(bb.summary[:0], uint64(len(bb.order)))
		for _, t := range bb.order {
			bb.summary = append(bb.summary, t...)
			bb.summary = binary.AppendUvarint(bb.summary, uint64(bb.tuples[t]))
		}
		ft, nt := time.Unix(0, first).UTC(), time.Unix(0, newest).UTC()
		bb.frame = appendFrameBytes(bb.frame[:0], ft, nt, bb.list, bb.summary, bb.enc)
		err := emit(kind(blocked), hourOf(ft), bb.frame)
		bb.block, n = bb.block[:0], 0
		clear(bb.names)
		clear(bb.addrs)
		clear(bb.tuples)
		bb.order, lastTuple, lastKey = bb.order[:0], nil, ""
		return err
	}
	for _, r := range recs {
		if r.blocked != blocked {
			continue
		}
		if n > 0 && (len(bb.block)+r.end-r.start > maxBlockBytes || r.ns >= hourEnd) {
			if err := flush(); err != nil {
				return err
			}
		}
		if n == 0 {
			first = r.ns
			hourEnd = hourOf(time.Unix(0, first)).Add(segmentSpan).UnixNano()
			lastName, lastAddr = nil, nil
		}
		newest = r.ns
		bb.block = append(bb.block, arena[r.start:r.end]...)
		// The summary: runs of one tuple are common, so the map is asked
		// only when it changes.
		tuple = appendTuple(tuple[:0], arena[r.enc:r.end])
		if lastKey == "" || !bytes.Equal(tuple, lastTuple) {
			lastKey = string(tuple)
			if _, ok := bb.tuples[lastKey]; !ok {
				bb.order = append(bb.order, lastKey)
			}
			lastTuple = append(lastTuple[:0], tuple...)
		}
		bb.tuples[lastKey]++
		name, addr := entryClient(arena[r.enc:r.end])
		// Runs of one client's lookups are common: look the client up
		// only when it changes.
		if n == 0 || !bytes.Equal(name, lastName) || !bytes.Equal(addr, lastAddr) {
			if len(name) > 0 {
				if _, ok := bb.names[string(name)]; !ok {
					bb.names[string(name)] = struct{}{}
				}
			} else if a, ok := netip.AddrFromSlice(addr); ok {
				bb.addrs[a] = struct{}{}
			}
			lastName, lastAddr = name, addr
		}
		n++
	}
	return flush()
}

// appendTuple appends an encoding's client name, address, MAC and
// vendor, each as uvarint length + bytes: the key of its summary line.
func appendTuple(b, enc []byte) []byte {
	if len(enc) < 3 || len(enc) < 3+int(enc[2]) {
		return appendString(appendString(appendString(appendString(b, ""), ""), ""), "")
	}
	addr, v := enc[3:3+int(enc[2])], enc[3+int(enc[2]):]
	var fields [6][]byte // query type, client name, MAC, query name, list, vendor
	for i := range fields {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			break
		}
		fields[i] = v[k : k+int(l)]
		v = v[k+int(l):]
	}
	b = binary.AppendUvarint(b, uint64(len(fields[1])))
	b = append(b, fields[1]...)
	b = binary.AppendUvarint(b, uint64(len(addr)))
	b = append(b, addr...)
	b = binary.AppendUvarint(b, uint64(len(fields[2])))
	b = append(b, fields[2]...)
	b = binary.AppendUvarint(b, uint64(len(fields[5])))
	return append(b, fields[5]...)
}

// entryClient returns the client name and address bytes of an encoding.
func entryClient(enc []byte) (name, addr []byte) {
	if len(enc) < 3 || len(enc) < 3+int(enc[2]) {
		return nil, nil
	}
	addr, v := enc[3:3+int(enc[2])], enc[3+int(enc[2]):]
	for i := range 2 { // the query type, then the client's name
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return nil, addr
		}
		if i == 1 {
			return v[k : k+int(l)], addr
		}
		v = v[k+int(l):]
	}
	return nil, addr
}

// decodeBody returns a compressed block body's entries, oldest first,
// appended to out.
func decodeBody(compressed []byte, out []Entry) ([]Entry, error) {
	out, _, err := decodeBodyInto(nil, compressed, out, false)
	return out, err
}

// decodeBodyInto is decodeBody decompressing into scratch (grown as
// needed, and returned for the next block): the entries copy what they
// keep, so a reader walking many blocks reuses one buffer. With view, the
// entries' strings are views of scratch instead, valid until it is used
// again: no allocation per entry, for a reader that keeps nothing (the
// spool's shipper).
func decodeBodyInto(scratch, compressed []byte, out []Entry, view bool) ([]Entry, []byte, error) {
	if n, err := s2.DecodedLen(compressed); err == nil && n > cap(scratch) {
		scratch = make([]byte, n)
	}
	v, err := s2.Decode(scratch[:cap(scratch)], compressed)
	if err != nil {
		return out, scratch, errCorrupt
	}
	scratch = v
	out, err = decodeEntries(v, out, view)
	return out, scratch, err
}

// decodeEntries decodes a decompressed block body (view: decodeBodyInto).
func decodeEntries(v []byte, out []Entry, view bool) ([]Entry, error) {
	count, k := binary.Uvarint(v)
	if k <= 0 || count > uint64(len(v)) {
		return nil, errCorrupt
	}
	v = v[k:]
	out = slices.Grow(out, int(count))
	for range count {
		if len(v) < 8 {
			return out, errCorrupt
		}
		ts := v[:8]
		v = v[8:]
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return out, errCorrupt
		}
		e, err := decodeEntryView(ts, v[k:k+int(l)], view)
		if err != nil {
			return out, err
		}
		out = append(out, e)
		v = v[k+int(l):]
	}
	return out, nil
}

func truncate(a netip.Addr) netip.Addr {
	bits := 24
	if a.Is6() {
		bits = 56
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return p.Addr()
}

// Entry encoding, version 1: a version byte, a flags byte, the address
// (length byte + bytes), then uvarint-length-prefixed strings: query type,
// client name, MAC, query name, list, vendor, rule, CNAME, and the
// protocol when it is neither UDP nor TCP, and the client's groups when
// flagGroup is set (entries written before groups existed have neither
// the flag nor the field). The time is kept beside it in the block.
const (
	entryV1       = 1
	flagBlocked   = 1
	flagTCP       = 2
	flagCNAME     = 4
	flagOtherProt = 8
	flagGroup     = 16
)

// encodeEntryAddr encodes e with addr in place of its address.
func encodeEntryAddr(b []byte, e *Entry, addr netip.Addr) []byte {
	var flags byte
	if e.Blocked {
		flags |= flagBlocked
	}
	switch e.Proto {
	case ProtoUDP:
	case ProtoTCP:
		flags |= flagTCP
	default:
		flags |= flagOtherProt
	}
	if e.Reason == ReasonCNAME {
		flags |= flagCNAME
	}
	if e.Group != "" {
		flags |= flagGroup
	}
	b = append(b, entryV1, flags)
	switch {
	case addr.Is4():
		a := addr.As4()
		b = append(append(b, 4), a[:]...)
	case addr.Is6():
		a := addr.As16()
		b = append(append(b, 16), a[:]...)
	default:
		b = append(b, 0)
	}
	b = appendString(b, e.QType)
	b = appendString(b, e.ClientName)
	b = appendString(b, e.MAC)
	b = appendString(b, e.QName)
	b = appendString(b, e.List)
	b = appendString(b, e.Vendor)
	b = appendString(b, e.Rule)
	b = appendString(b, e.CNAME)
	if flags&flagOtherProt != 0 {
		b = appendString(b, string(e.Proto))
	}
	if flags&flagGroup != 0 {
		b = appendString(b, e.Group)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("corrupt log entry")

// decodeEntry decodes an entry whose time is the 8 bytes in ts.
func decodeEntry(ts, v []byte) (Entry, error) { return decodeEntryView(ts, v, false) }

// decodeEntryView is decodeEntry; with view, the strings are views of v.
func decodeEntryView(ts, v []byte, view bool) (Entry, error) {
	var e Entry
	if len(ts) < 8 {
		return e, errCorrupt
	}
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(ts[:8]))).UTC()
	if len(v) < 3 || v[0] != entryV1 {
		return e, errCorrupt
	}
	flags := v[1]
	n := int(v[2])
	v = v[3:]
	if len(v) < n {
		return e, errCorrupt
	}
	if a, ok := netip.AddrFromSlice(v[:n]); ok {
		e.ClientAddr = a
	}
	v = v[n:]
	var proto string
	var fieldsArr [10]*string
	fields := append(fieldsArr[:0], &e.QType, &e.ClientName, &e.MAC, &e.QName, &e.List, &e.Vendor, &e.Rule, &e.CNAME)
	if flags&flagOtherProt != 0 {
		fields = append(fields, &proto)
	}
	if flags&flagGroup != 0 {
		fields = append(fields, &e.Group)
	}
	// The fields' text, copied once: every field is a piece of it (one
	// allocation per entry instead of one per field; reading the log for
	// the alerts decodes every entry).
	var all string
	if view && len(v) > 0 {
		all = unsafe.String(&v[0], len(v))
	} else {
		all = string(v)
	}
	for _, f := range fields {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return e, errCorrupt
		}
		off := len(all) - len(v) + k
		*f = all[off : off+int(l)]
		v = v[k+int(l):]
	}
	e.Blocked = flags&flagBlocked != 0
	switch {
	case flags&flagTCP != 0:
		e.Proto = ProtoTCP
	case flags&flagOtherProt == 0:
		e.Proto = ProtoUDP
	default:
		e.Proto = Proto(proto)
	}
	e.Reason = ""
	if e.Blocked {
		e.Reason = ReasonName
		if flags&flagCNAME != 0 {
			e.Reason = ReasonCNAME
		}
	}
	e.Client = e.identity()
	return e, nil
}
