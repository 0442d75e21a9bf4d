package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store/querylog"
)

// The shipper. Entries are read from the local segments (the spool) from
// where the last batch ended and sent with COPY in a transaction that also
// moves this replica's position for the segment (vigil_ship). A batch is
// committed whole or not at all, so a crash or an outage between two
// batches ships nothing twice and skips nothing: the next Run starts at the
// committed position. Should a position ever be lost (a restored database,
// say), the entries' primary key makes the replay harmless: the batch is
// then inserted through a staging table with ON CONFLICT DO NOTHING.

// columns are the log tables' columns in COPY order.
var columns = []string{"ts", "replica", "seq", "client", "client_name", "client_addr", "mac",
	"qname", "qtype", "list", "vendor", "rule", "reason", "cname", "proto", "grp"}

// batch is what one transaction ships: entries of one segment, already
// written as COPY text into the Fleet's copyBuf, the UTC days they fall on
// (their partitions), and the segment's position after them.
type batch struct {
	seg  querylog.SpoolSegment
	n    int // entries in copyBuf
	days []time.Time
	end  int64
}

// shipOnce ships what the spool holds beyond the positions, one batch per
// transaction.
func (f *Fleet) shipOnce(ctx context.Context) (err error) {
	kinds := []bool{true}
	if f.shipAllowed {
		kinds = append(kinds, false)
	}
	defer func() {
		if err != nil {
			f.measurePending(kinds) // what waits, for as long as the database is away
		}
	}()
	if err := f.loadPositions(ctx); err != nil {
		return err
	}
	var pending int64
	for _, blocked := range kinds {
		segs, err := f.spool.SpoolSegments(blocked)
		if err != nil {
			return err
		}
		f.noteExpired(blocked, segs)
		for _, seg := range segs {
			pos := f.position(seg)
			if seg.Size < pos {
				// The segment is shorter than what was shipped of it: the
				// writer cut a torn frame off after a crash, or the file
				// was replaced. Read it again from the start; what was
				// shipped already is recognised by its key and skipped.
				f.log.Warn("a log segment is shorter than its shipping position: shipping it again from its start",
					zap.Time("hour", seg.Hour), zap.Int64("size", seg.Size), zap.Int64("position", pos))
				pos = 0
				f.setPosition(seg, 0)
			}
			// Batch after batch until the segment's whole frames are
			// shipped: a pass ships everything waiting, not one batch
			// per ship_interval.
			for pos < seg.Size {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b, err := f.read(seg, pos)
				if err != nil {
					return err
				}
				if b.n > 0 || b.end > pos {
					if err := f.ship(ctx, b); err != nil {
						return err
					}
				}
				if b.end == pos {
					break // a frame being written: the next pass
				}
				pos = b.end
			}
			pending += seg.Size - pos
			f.noteUnshipped(seg, seg.Size-pos)
		}
	}
	f.pending.Store(pending)
	return nil
}

// read gathers up to BatchSize entries of seg from pos, whole blocks only.
func (f *Fleet) read(seg querylog.SpoolSegment, pos int64) (batch, error) {
	b := batch{seg: seg, end: pos}
	cutoff := f.cutoff(seg.Blocked)
	f.copyBuf = f.copyBuf[:0]
	var lastDay time.Time
	// Each entry is written as COPY text as it is read: no copy of it is
	// kept (holding the batch's entries cost more in copies and garbage
	// collection than everything else the shipper does).
	_, state, err := f.spool.ReadSpool(seg, pos, func(start, end int64, entries []querylog.Entry) bool {
		if b.n > 0 && b.n+len(entries) > f.cfg.BatchSize {
			return false // the next batch starts with this block
		}
		for i := range entries {
			e := &entries[i]
			if e.Time.Before(cutoff) {
				continue // past retention: its partition is gone or going
			}
			if d := e.Time.UTC().Truncate(24 * time.Hour); !d.Equal(lastDay) {
				lastDay = d
				if !slices.ContainsFunc(b.days, d.Equal) {
					b.days = append(b.days, d)
				}
			}
			f.copyBuf = f.encodeEntry(f.copyBuf, e, querylog.Seq(start, i))
			b.n++
		}
		b.end = end
		return true
	})
	if err != nil {
		return b, err
	}
	if b.n > 0 || b.end > pos {
		return b, nil
	}
	// Stopped at the very first frame: damaged, or not whole.
	final := f.now().Sub(seg.Hour.Add(time.Hour)) > time.Hour // an hour past its end: nothing writes there any more
	switch {
	case state == querylog.SpoolDamaged, state == querylog.SpoolIncomplete && final:
		// A damaged frame, or a crash's torn write at the end of a
		// segment no one will append to: nothing after it can be read
		// forward. The rest of the segment is given up, counted as lost.
		f.lostBytes.Add(uint64(seg.Size - pos))
		f.log.Warn("a damaged or torn block in the log's segment: the rest of it is not shipped",
			zap.Time("hour", seg.Hour), zap.Bool("blocked", seg.Blocked), zap.Int64("offset", pos), zap.Int64("bytes", seg.Size-pos))
		b.end = seg.Size
	}
	// SpoolIncomplete in a segment still written to: a frame being
	// written, or a torn one the writer cuts off when it reopens the
	// segment; the position stays, so what is appended after is shipped.
	return b, nil
}

// cutoff is when the kind's entries are too old to ship.
func (f *Fleet) cutoff(blocked bool) time.Time {
	keep := f.retention
	if !blocked {
		keep = f.allowedRetention
	}
	if keep <= 0 {
		return time.Time{}
	}
	return f.now().Add(-keep)
}

// ship sends one batch and moves the position, in one transaction.
func (f *Fleet) ship(ctx context.Context, b batch) error {
	if err := f.ensurePartitions(ctx, b); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if b.n > 0 {
			if err := f.copyInto(ctx, tx, table(b.seg.Blocked)); err != nil {
				return err
			}
		}
		return f.savePosition(ctx, tx, b)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: a replay
		err = f.shipIdempotent(ctx, b)
	}
	if err != nil {
		// A partition this replica created may have been dropped since by
		// another replica with a shorter retention ("no partition of
		// relation found for row"): ask again before the next attempt.
		f.mu.Lock()
		clear(f.partitions)
		f.mu.Unlock()
		return fmt.Errorf("shipping %d entries: %w", b.n, err)
	}
	f.setPosition(b.seg, b.end)
	f.shipped.Add(uint64(b.n))
	f.batches.Add(1)
	f.lastShip.Store(f.now().UnixNano())
	return nil
}

// shipIdempotent ships a batch some of whose entries are there already.
func (f *Fleet) shipIdempotent(ctx context.Context, b batch) error {
	return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE vigil_staging (LIKE vigil_blocked INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
			return err
		}
		if err := f.copyInto(ctx, tx, "vigil_staging"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table(b.seg.Blocked)+" SELECT * FROM vigil_staging ON CONFLICT DO NOTHING"); err != nil {
			return err
		}
		return f.savePosition(ctx, tx, b)
	})
}

func (f *Fleet) savePosition(ctx context.Context, tx pgx.Tx, b batch) error {
	_, err := tx.Exec(ctx, `INSERT INTO vigil_ship (replica, blocked, hour, position, shipped) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (replica, blocked, hour) DO UPDATE SET position = excluded.position, shipped = now()`,
		f.replica, b.seg.Blocked, b.seg.Hour, b.end)
	return err
}

// copyInto sends copyBuf (encodeRows) to tbl with COPY in text format.
func (f *Fleet) copyInto(ctx context.Context, tx pgx.Tx, tbl string) error {
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(f.copyBuf),
		"COPY "+tbl+" ("+strings.Join(columns, ", ")+") FROM STDIN")
	return err
}

// encodeEntry writes one entry as a line of COPY's text format. It is the
// shipper's hot loop: plain appends into one reused buffer, where pgx's
// generic COPY boxed every value in an interface and looked up its
// encoding.
func (f *Fleet) encodeEntry(b []byte, e *querylog.Entry, seq int64) []byte {
	// Microseconds, as PostgreSQL keeps them, truncated (not rounded) so
	// an entry stays in its hour's segment and its day's partition.
	b = f.appendTime(b, e.Time)
	b = append(b, "+00\t"...)
	b = appendText(b, f.replica)
	b = append(b, '\t')
	b = strconv.AppendInt(b, seq, 10)
	for _, s := range [...]string{e.Client, e.ClientName} {
		b = append(b, '\t')
		b = appendText(b, s)
	}
	b = append(b, '\t')
	if e.ClientAddr.IsValid() {
		b = e.ClientAddr.AppendTo(b)
	}
	for _, s := range [...]string{e.MAC, e.QName, e.QType, e.List, e.Vendor, e.Rule, string(e.Reason), e.CNAME, string(e.Proto), e.Group} {
		b = append(b, '\t')
		b = appendText(b, s)
	}
	return append(b, '\n')
}

// appendTime appends t as "2006-01-02 15:04:05.000000" (UTC). The
// seconds' text is kept from the entry before: a batch's entries come in
// time order, many in the same second.
func (f *Fleet) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != f.tsSecond || f.tsText == nil {
		f.tsSecond = sec
		f.tsText = t.AppendFormat(f.tsText[:0], "2006-01-02 15:04:05.")
	}
	b = append(b, f.tsText...)
	us := t.Nanosecond() / 1000
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + us%10)
		us /= 10
	}
	return append(b, d[:]...)
}

// appendText appends s escaped for COPY's text format.
func appendText(b []byte, s string) []byte {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\t' || c == '\n' || c == '\r' {
			clean = false
			break
		}
	}
	if clean {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// ensurePartitions creates the day partitions the batch's entries need.
func (f *Fleet) ensurePartitions(ctx context.Context, b batch) error {
	var days []time.Time
	f.mu.Lock()
	for _, d := range b.days {
		if !f.partitions[partitionName(b.seg.Blocked, d)] {
			days = append(days, d)
		}
	}
	f.mu.Unlock()
	if len(days) == 0 {
		return nil
	}
	if err := ensurePartitions(ctx, f.pool, b.seg.Blocked, days); err != nil {
		return err
	}
	f.mu.Lock()
	for _, d := range days {
		f.partitions[partitionName(b.seg.Blocked, d)] = true
	}
	f.mu.Unlock()
	return nil
}

// loadPositions reads this replica's positions, once.
func (f *Fleet) loadPositions(ctx context.Context) error {
	f.mu.Lock()
	loaded := f.positions != nil
	f.mu.Unlock()
	if loaded {
		return nil
	}
	rows, err := f.pool.Query(ctx, "SELECT blocked, hour, position FROM vigil_ship WHERE replica = $1", f.replica)
	if err != nil {
		return err
	}
	pos := map[posKey]int64{}
	var (
		blocked bool
		hour    time.Time
		p       int64
	)
	_, err = pgx.ForEachRow(rows, []any{&blocked, &hour, &p}, func() error {
		pos[posKey{blocked, hour.Unix()}] = p
		return nil
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.positions = pos
	f.mu.Unlock()
	return nil
}

func (f *Fleet) position(seg querylog.SpoolSegment) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.positions[posKey{seg.Blocked, seg.Hour.Unix()}]
}

func (f *Fleet) setPosition(seg querylog.SpoolSegment, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.positions[posKey{seg.Blocked, seg.Hour.Unix()}] = end
}

// noteUnshipped records how much of a segment is not shipped yet, so
// that its loss can be counted should the local retention delete it first.
func (f *Fleet) noteUnshipped(seg querylog.SpoolSegment, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := posKey{seg.Blocked, seg.Hour.Unix()}
	if n > 0 {
		f.unshipped[k] = n
	} else {
		delete(f.unshipped, k)
	}
}

// noteExpired forgets the positions of segments the local retention has
// deleted, counting what was never shipped of them.
func (f *Fleet) noteExpired(blocked bool, segs []querylog.SpoolSegment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	present := map[int64]bool{}
	for _, s := range segs {
		present[s.Hour.Unix()] = true
	}
	for k := range f.positions {
		if k.blocked == blocked && !present[k.hour] {
			delete(f.positions, k)
		}
	}
	for k, n := range f.unshipped {
		if k.blocked == blocked && !present[k.hour] {
			f.lostBytes.Add(uint64(n))
			delete(f.unshipped, k)
		}
	}
}

// measurePending counts the spool's bytes beyond the positions.
func (f *Fleet) measurePending(kinds []bool) {
	var pending int64
	for _, blocked := range kinds {
		segs, err := f.spool.SpoolSegments(blocked)
		if err != nil {
			return
		}
		for _, seg := range segs {
			if n := seg.Size - f.position(seg); n > 0 {
				pending += n
				f.noteUnshipped(seg, n)
			}
		}
	}
	f.pending.Store(pending)
}
