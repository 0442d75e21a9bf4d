package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"go.uber.org/zap"
)

// QueryLogConfig is the [querylog] section.
//
// Loss bound: a process crash (even SIGKILL) loses at most QueueSize +
// BatchSize entries: what is queued and the batch being built. Badger's
// write-ahead log is in the page cache once a batch is written, so it
// survives the process. A power loss additionally loses up to
// SyncInterval of entries written since the last sync to disk.
type QueryLogConfig struct {
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
	// BatchSize is how many entries the writer puts in one Badger batch.
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

// DefaultQueryLogConfig returns the [querylog] defaults.
func DefaultQueryLogConfig() QueryLogConfig {
	return QueryLogConfig{
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
func (c *QueryLogConfig) Validate() error {
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

// LossBound describes, for people, how much a crash can lose.
func (c *QueryLogConfig) LossBound() string {
	return fmt.Sprintf("a crash loses at most %d entries (queue_size + batch_size); a power loss also up to %s of entries (sync_interval)",
		c.QueueSize+c.BatchSize, c.SyncInterval)
}

// LogEntry is one logged lookup.
type LogEntry struct {
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
	Reason     string     `json:"reason,omitempty"` // "name", or "cname" when a CNAME in the answer was listed
	CNAME      string     `json:"cname,omitempty"`
	Proto      string     `json:"proto"`
}

// Identity returns the key the log groups a client under.
func (e *LogEntry) identity() string {
	if e.ClientName != "" {
		return e.ClientName
	}
	return e.ClientAddr.String()
}

// QueryLog records lookups per client off the query path: Record hands an
// entry to a bounded queue and returns at once; Run is the one writer that
// batches them into the segment files beside Badger (segments.go).
type QueryLog struct {
	st  *Store
	cfg QueryLogConfig
	log *zap.Logger
	ch  chan LogEntry
	// blocks is the writer's block builder.
	blocks blockBuilder
	done   chan struct{}

	written, dropped, writeErrors, lowDiskDropped atomic.Uint64
}

// QueryLogStats is a snapshot of the log's counters.
type QueryLogStats struct {
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

// NewQueryLog returns a log writing into s. Nothing is written until Run.
func (s *Store) NewQueryLog(cfg QueryLogConfig, log *zap.Logger) *QueryLog {
	s.SetLogRetention(cfg.Retention, cfg.AllowedRetention)
	return &QueryLog{st: s, cfg: cfg, log: log, ch: make(chan LogEntry, cfg.QueueSize), done: make(chan struct{})}
}

// Record queues e for writing. It never blocks: when the queue is full the
// entry is dropped, counted, and false returned. Safe for concurrent use.
func (q *QueryLog) Record(e LogEntry) bool {
	select {
	case q.ch <- e:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// Stats returns the log's counters.
func (q *QueryLog) Stats() QueryLogStats {
	return QueryLogStats{
		Queued: len(q.ch), Capacity: cap(q.ch),
		Written: q.written.Load(), Dropped: q.dropped.Load(), WriteErrors: q.writeErrors.Load(),
		LowDiskDropped: q.lowDiskDropped.Load(), LowDisk: q.st.LowDisk(),
		LossBound: q.cfg.LossBound(),
	}
}

// dropReportInterval is how often drops are reported, as one line with a
// count rather than a line per drop.
const dropReportInterval = 10 * time.Second

// Run writes queued entries in batches until ctx ends, then drains the
// queue, writes and syncs what is left and returns: a graceful shutdown
// loses nothing. Callers must stop calling Record before cancelling ctx.
func (q *QueryLog) Run(ctx context.Context) {
	defer close(q.done)
	batch := make([]LogEntry, 0, q.cfg.BatchSize)
	flush := time.NewTicker(q.cfg.FlushInterval)
	sync := time.NewTicker(q.cfg.SyncInterval)
	report := time.NewTicker(dropReportInterval)
	expire := time.NewTicker(expireInterval)
	defer flush.Stop()
	defer sync.Stop()
	defer report.Stop()
	defer expire.Stop()
	var reported uint64
	q.expire()
	for {
		select {
		case e := <-q.ch:
			batch = append(batch, e)
			// Take whatever else is queued without going through select
			// once per entry: under load that is most of the writer's cost.
		drain:
			for len(batch) < cap(batch) {
				select {
				case e := <-q.ch:
					batch = append(batch, e)
				default:
					break drain
				}
			}
			if len(batch) == cap(batch) {
				batch = q.write(batch)
			}
		case <-flush.C:
			batch = q.write(batch)
		case <-sync.C:
			if err := q.st.segs.sync(); err != nil {
				q.log.Warn("syncing the query log", zap.Error(err))
			}
		case <-expire.C:
			q.expire()
		case <-report.C:
			if d := q.dropped.Load(); d != reported {
				q.log.Warn("query log queue full: entries dropped", zap.Uint64("dropped", d-reported),
					zap.Uint64("dropped_total", d), zap.Int("queue_size", cap(q.ch)))
				reported = d
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-q.ch:
					batch = append(batch, e)
					if len(batch) == cap(batch) {
						batch = q.write(batch)
					}
					continue
				default:
				}
				break
			}
			q.write(batch)
			if err := q.st.segs.close(); err != nil {
				q.log.Warn("syncing the query log", zap.Error(err))
			}
			return
		}
	}
}

// expireInterval is how often segments past the retention are deleted.
const expireInterval = time.Minute

// expire deletes the segments past their kind's retention.
func (q *QueryLog) expire() {
	for k := range kindNames {
		if n, err := q.st.segs.expire(k, time.Now()); err != nil {
			q.log.Warn("deleting expired query log segments", zap.Error(err))
		} else if n > 0 {
			q.log.Debug("expired query log segments deleted", zap.String("kind", kindNames[k]), zap.Int("segments", n))
		}
	}
}

// Done is closed when Run has returned.
func (q *QueryLog) Done() <-chan struct{} { return q.done }

// Blocks. The writer puts the entries of one flush, per kind, into blocks
// of at most maxBlockBytes that never cross an hour (a segment's span),
// and appends each block to its segment as one frame (segments.go). A
// block body is, S2-compressed (entries of one flush repeat names, lists
// and vendors, so this shrinks it several times): the count and per entry
// its time (8 bytes) and its length-prefixed encoding, oldest first.
const (
	// blockV1 versions the blocks of the Badger-based log of earlier
	// versions, read once to move them into segments (migrate.go).
	blockV1 = 3
	// maxBlockBytes bounds a block before compression, and so the memory
	// a reader needs for one.
	maxBlockBytes = 48 << 10
)

func appendStamp(k []byte, t time.Time, seq uint32) []byte {
	ns := t.UnixNano()
	if t.IsZero() || ns < 0 {
		ns = 0 // the zero time means "from the beginning", not an overflowed nanosecond count
	}
	k = binary.BigEndian.AppendUint64(k, uint64(ns))
	return binary.BigEndian.AppendUint32(k, seq)
}

// write stores a batch and returns it emptied. Errors (a full disk, say)
// are counted and reported; the entries are lost, DNS is not affected.
func (q *QueryLog) write(batch []LogEntry) []LogEntry {
	if len(batch) == 0 {
		return batch
	}
	if q.st.LowDisk() {
		q.lowDiskDropped.Add(uint64(len(batch)))
		return batch[:0]
	}
	// Checked once per batch: building a line's fields allocates even
	// when the level then discards it.
	lines := q.cfg.LogLines && q.log.Core().Enabled(zap.InfoLevel)
	for i := range batch {
		e := &batch[i]
		if q.cfg.TruncateAddresses {
			e.ClientAddr = truncate(e.ClientAddr)
		}
		if e.Blocked && lines {
			q.log.Info("blocked", zap.String("client", e.identity()), zap.Stringer("addr", e.ClientAddr),
				zap.String("name", e.QName), zap.String("type", e.QType), zap.String("list", e.List),
				zap.String("vendor", e.Vendor), zap.String("rule", e.Rule))
		}
	}
	slices.SortStableFunc(batch, func(a, b LogEntry) int { return a.Time.Compare(b.Time) })
	err := q.blocks.add(batch, true, q.st.segs.appendFrame)
	if err == nil {
		err = q.blocks.add(batch, false, q.st.segs.appendFrame)
	}
	if err != nil {
		q.writeErrors.Add(uint64(len(batch)))
		q.log.Warn("writing the query log failed; entries lost, DNS unaffected", zap.Int("entries", len(batch)), zap.Error(err))
	} else {
		q.written.Add(uint64(len(batch)))
	}
	return batch[:0]
}

// blockBuilder turns time-ordered entries into frames. Its buffers are
// reused from flush to flush: the writer allocates little per entry.
type blockBuilder struct {
	entry, block, body, enc, frame []byte
	clients                        map[clientKey]struct{}
	names                          []string
}

// add encodes the entries of one kind (blocked or allowed) from batch,
// which is in time order, and hands each block's frame to emit.
func (bb *blockBuilder) add(batch []LogEntry, blocked bool, emit func(k int, hour time.Time, frame []byte) error) error {
	if bb.clients == nil {
		bb.clients = map[clientKey]struct{}{}
	}
	var first, newest time.Time
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		bb.body = binary.AppendUvarint(bb.body[:0], uint64(n))
		bb.body = append(bb.body, bb.block...)
		bb.names = bb.names[:0]
		for ck := range bb.clients {
			if ck.name != "" {
				bb.names = append(bb.names, ck.name)
			} else {
				bb.names = append(bb.names, ck.addr.String())
			}
		}
		bb.enc = s2.Encode(bb.enc[:cap(bb.enc)], bb.body)
		bb.frame = appendFrameBytes(bb.frame[:0], first, newest, bb.names, bb.enc)
		err := emit(kind(blocked), hourOf(first), bb.frame)
		bb.block, n = bb.block[:0], 0
		clear(bb.clients)
		return err
	}
	for i := range batch {
		e := &batch[i]
		if e.Blocked != blocked {
			continue
		}
		bb.entry = encodeEntry(bb.entry[:0], e)
		enc := bb.entry
		if n > 0 && (len(bb.block)+len(enc)+16 > maxBlockBytes || !hourOf(e.Time).Equal(hourOf(first))) {
			if err := flush(); err != nil {
				return err
			}
		}
		if n == 0 {
			first = e.Time
		}
		newest = e.Time
		bb.block = binary.BigEndian.AppendUint64(bb.block, uint64(max(e.Time.UnixNano(), 0)))
		bb.block = binary.AppendUvarint(bb.block, uint64(len(enc)))
		bb.block = append(bb.block, enc...)
		ck := clientKey{name: e.ClientName}
		if ck.name == "" {
			ck.addr = e.ClientAddr
		}
		bb.clients[ck] = struct{}{}
		n++
	}
	return flush()
}

// clientKey identifies a client within a block.
type clientKey struct {
	name string
	addr netip.Addr
}

// decodeBlock returns the entries of a block of the Badger-based log of
// earlier versions: a version byte, the newest entry's time, the body.
func decodeBlock(v []byte) ([]LogEntry, error) {
	if len(v) < 9 || v[0] != blockV1 {
		return nil, errCorrupt
	}
	return decodeBody(v[9:], nil)
}

// decodeBody returns a compressed block body's entries, oldest first,
// appended to out.
func decodeBody(compressed []byte, out []LogEntry) ([]LogEntry, error) {
	v, err := s2.Decode(nil, compressed)
	if err != nil {
		return out, errCorrupt
	}
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
		e, err := decodeEntry(ts, v[k:k+int(l)])
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
// protocol when it is neither UDP nor TCP. The time is kept beside it in
// the block.
const (
	entryV1       = 1
	flagBlocked   = 1
	flagTCP       = 2
	flagCNAME     = 4
	flagOtherProt = 8
)

func encodeEntry(b []byte, e *LogEntry) []byte {
	var flags byte
	if e.Blocked {
		flags |= flagBlocked
	}
	switch e.Proto {
	case "udp":
	case "tcp":
		flags |= flagTCP
	default:
		flags |= flagOtherProt
	}
	if e.Reason == "cname" {
		flags |= flagCNAME
	}
	b = append(b, entryV1, flags)
	addr := e.ClientAddr.AsSlice()
	b = append(b, byte(len(addr)))
	b = append(b, addr...)
	b = appendString(b, e.QType)
	for _, s := range []string{e.ClientName, e.MAC, e.QName, e.List, e.Vendor, e.Rule, e.CNAME} {
		b = appendString(b, s)
	}
	if flags&flagOtherProt != 0 {
		b = appendString(b, e.Proto)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("corrupt log entry")

// decodeEntry decodes an entry whose time is the 8 bytes in ts.
func decodeEntry(ts, v []byte) (LogEntry, error) {
	var e LogEntry
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
	fields := []*string{&e.QType, &e.ClientName, &e.MAC, &e.QName, &e.List, &e.Vendor, &e.Rule, &e.CNAME}
	if flags&flagOtherProt != 0 {
		fields = append(fields, &e.Proto)
	}
	for _, f := range fields {
		l, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < l {
			return e, errCorrupt
		}
		*f = string(v[k : k+int(l)])
		v = v[k+int(l):]
	}
	e.Blocked = flags&flagBlocked != 0
	switch {
	case flags&flagTCP != 0:
		e.Proto = "tcp"
	case flags&flagOtherProt == 0:
		e.Proto = "udp"
	}
	e.Reason = ""
	if e.Blocked {
		e.Reason = "name"
		if flags&flagCNAME != 0 {
			e.Reason = "cname"
		}
	}
	e.Client = e.identity()
	return e, nil
}
