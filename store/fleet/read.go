package fleet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-dns/vigil/store/querylog"
)

// Reader answers the API's questions about the per-client log from the
// fleet's database: every replica's lookups, or one replica's. It answers
// as querylog.Log does, so the API needs no second shape.
type Reader struct {
	f *Fleet
	// replica, when not "", limits every answer to one replica.
	replica string
}

// Reader returns a reader of the fleet-wide log; replica "" means every
// replica.
func (f *Fleet) Reader(replica string) *Reader { return &Reader{f: f, replica: replica} }

// readTimeout bounds one question to the database.
const readTimeout = 30 * time.Second

// ErrNotReady means the database has not been reached yet (or its schema
// is not current); the caller answers from the local log instead.
var ErrNotReady = errors.New("the fleet database is not ready")

// where builds a WHERE clause from conditions, numbering the arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// window starts a where with the time window and the replica.
func (r *Reader) window(since, until time.Time) *where {
	w := &where{}
	if !since.IsZero() {
		w.add("ts >= ?", since)
	}
	if until.IsZero() {
		until = r.f.now().Add(time.Minute)
	}
	w.add("ts < ?", until)
	if r.replica != "" {
		w.add("replica = ?", r.replica)
	}
	return w
}

func (r *Reader) query(sql string, args []any, scan func(pgx.Rows) error) error {
	if !r.f.Ready() {
		return ErrNotReady
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	rows, err := r.f.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("reading the fleet log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("reading the fleet log: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the fleet log: %w", err)
	}
	return nil
}

const entryColumns = "ts, replica, seq, client, client_name, client_addr, mac, qname, qtype, list, vendor, rule, reason, cname, proto, grp"

// scanEntry reads one row of entryColumns.
func scanEntry(rows pgx.Rows, blocked bool) (querylog.Entry, int64, error) {
	var (
		e                   querylog.Entry
		seq                 int64
		addr, reason, proto string
	)
	err := rows.Scan(&e.Time, &e.Replica, &seq, &e.Client, &e.ClientName, &addr, &e.MAC, &e.QName, &e.QType,
		&e.List, &e.Vendor, &e.Rule, &reason, &e.CNAME, &proto, &e.Group)
	if a, perr := netip.ParseAddr(addr); perr == nil {
		e.ClientAddr = a
	}
	e.Time = e.Time.UTC()
	e.Blocked, e.Reason, e.Proto = blocked, querylog.Reason(reason), querylog.Proto(proto)
	return e, seq, err
}

// Entries returns entries matching f, newest first, across the fleet.
func (r *Reader) Entries(f querylog.Filter) (querylog.Page, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	w := r.window(f.Since, f.Until)
	if f.Client != "" {
		w.add("client = ANY(?)", strings.Split(f.Client, querylog.IdentitySep))
	}
	if f.Vendor != "" {
		w.add("lower(vendor) = lower(?)", f.Vendor)
	}
	if f.List != "" {
		w.add("list = ?", f.List)
	}
	if f.QType != "" {
		w.add("upper(qtype) = upper(?)", f.QType)
	}
	if f.Name != "" {
		n := strings.TrimSuffix(strings.ToLower(f.Name), ".")
		w.add("(rtrim(qname, '.') = ? OR rtrim(qname, '.') LIKE ?)", n, "%."+escapeLike(n))
	}
	if f.Cursor != "" {
		ts, replica, seq, err := parseFleetCursor(f.Cursor)
		if err != nil {
			return querylog.Page{}, err
		}
		w.add("(ts, replica, seq) < (?, ?, ?)", ts, replica, seq)
	}
	sql := "SELECT " + entryColumns + " FROM " + table(!f.Allowed) + w.String() +
		" ORDER BY ts DESC, replica DESC, seq DESC LIMIT " + strconv.Itoa(limit+1)
	page := querylog.Page{Entries: []querylog.Entry{}}
	var seqs []int64
	err := r.query(sql, w.args, func(rows pgx.Rows) error {
		e, seq, err := scanEntry(rows, !f.Allowed)
		page.Entries, seqs = append(page.Entries, e), append(seqs, seq)
		return err
	})
	if err != nil {
		return querylog.Page{}, err
	}
	if len(page.Entries) > limit {
		last := page.Entries[limit-1]
		page.Entries = page.Entries[:limit]
		page.Next = fleetCursor(last.Time, last.Replica, seqs[limit-1])
	}
	return page, nil
}

// escapeLike escapes LIKE's wildcards (a DNS name may hold "_").
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s)
}

// A fleet cursor is "f" + the entry's time (unix microseconds), its seq and
// its replica (hex), dot-separated.
func fleetCursor(ts time.Time, replica string, seq int64) string {
	return "f" + strconv.FormatInt(ts.UnixMicro(), 10) + "." + strconv.FormatInt(seq, 10) + "." + hex.EncodeToString([]byte(replica))
}

func parseFleetCursor(s string) (time.Time, string, int64, error) {
	parts := strings.Split(strings.TrimPrefix(s, "f"), ".")
	if !strings.HasPrefix(s, "f") || len(parts) != 3 {
		return time.Time{}, "", 0, querylog.ErrBadCursor
	}
	us, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseInt(parts[1], 10, 64)
	rep, err3 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return time.Time{}, "", 0, querylog.ErrBadCursor
	}
	return time.UnixMicro(us).UTC(), string(rep), seq, nil
}

// summaries groups the window's blocked lookups per client.
func (r *Reader) summaries(w *where) (map[string]*querylog.ClientSummary, error) {
	by := map[string]*querylog.ClientSummary{}
	get := func(client string) *querylog.ClientSummary {
		cs := by[client]
		if cs == nil {
			cs = &querylog.ClientSummary{Client: client, Addrs: []string{}, Vendors: map[string]int{}, Lists: map[string]int{}}
			by[client] = cs
		}
		return cs
	}
	err := r.query("SELECT client, max(client_name), vendor, list, count(*), min(ts), max(ts) FROM vigil_blocked"+w.String()+
		" GROUP BY client, vendor, list", w.args, func(rows pgx.Rows) error {
		var (
			client, name, vendor, list string
			n                          int
			first, last                time.Time
		)
		if err := rows.Scan(&client, &name, &vendor, &list, &n, &first, &last); err != nil {
			return err
		}
		cs := get(client)
		if name != "" {
			cs.Name = name
		}
		if cs.Total == 0 || first.Before(cs.First) {
			cs.First = first.UTC()
		}
		if last.After(cs.Last) {
			cs.Last = last.UTC()
		}
		cs.Total += n
		cs.Vendors[vendor] += n
		cs.Lists[list] += n
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.query("SELECT client, client_addr FROM vigil_blocked"+w.String()+" GROUP BY client, client_addr ORDER BY client, client_addr",
		w.args, func(rows pgx.Rows) error {
			var client, addr string
			if err := rows.Scan(&client, &addr); err != nil {
				return err
			}
			if cs := by[client]; cs != nil && addr != "" && len(cs.Addrs) < 16 {
				cs.Addrs = append(cs.Addrs, addr)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = r.query("SELECT DISTINCT ON (client) client, mac FROM vigil_blocked"+w.String()+" AND mac <> '' ORDER BY client, ts DESC",
		w.args, func(rows pgx.Rows) error {
			var client, mac string
			if err := rows.Scan(&client, &mac); err != nil {
				return err
			}
			if cs := by[client]; cs != nil {
				cs.MAC = mac
			}
			return nil
		})
	return by, err
}

// Clients summarises every client with blocked lookups in the window,
// most blocked first.
func (r *Reader) Clients(since, until time.Time) ([]querylog.ClientSummary, error) {
	by, err := r.summaries(r.window(since, until))
	if err != nil {
		return nil, err
	}
	out := make([]querylog.ClientSummary, 0, len(by))
	for _, cs := range by {
		out = append(out, *cs)
	}
	slices.SortFunc(out, func(a, b querylog.ClientSummary) int {
		if a.Total != b.Total {
			return b.Total - a.Total
		}
		return strings.Compare(a.Client, b.Client)
	})
	return out, nil
}

// Client summarises one client's blocked lookups (several identities
// joined with querylog.IdentitySep are one device).
func (r *Reader) Client(client string, since, until time.Time) (querylog.ClientSummary, error) {
	ids := strings.Split(client, querylog.IdentitySep)
	w := r.window(since, until)
	w.add("client = ANY(?)", ids)
	by, err := r.summaries(w)
	out := querylog.ClientSummary{Client: ids[0], Addrs: []string{}, Vendors: map[string]int{}, Lists: map[string]int{}}
	if err != nil {
		return out, err
	}
	for _, cs := range by {
		if cs.Name != "" {
			out.Name = cs.Name
		}
		if out.Total == 0 || cs.First.Before(out.First) {
			out.First = cs.First
		}
		if cs.Last.After(out.Last) {
			out.Last, out.MAC = cs.Last, cs.MAC
		}
		out.Total += cs.Total
		for k, v := range cs.Vendors {
			out.Vendors[k] += v
		}
		for k, v := range cs.Lists {
			out.Lists[k] += v
		}
		for _, a := range cs.Addrs {
			if !slices.Contains(out.Addrs, a) && len(out.Addrs) < 16 {
				out.Addrs = append(out.Addrs, a)
			}
		}
	}
	return out, nil
}

// ClientDays returns a client's blocked lookups per vendor per UTC day,
// oldest first, days without lookups included.
func (r *Reader) ClientDays(client string, since, until time.Time) ([]querylog.VendorDay, error) {
	if until.IsZero() {
		until = r.f.now()
	}
	w := r.window(since, until)
	w.add("client = ANY(?)", strings.Split(client, querylog.IdentitySep))
	byDay := map[int64]map[string]int{}
	err := r.query("SELECT date_trunc('day', ts AT TIME ZONE 'UTC'), vendor, count(*) FROM vigil_blocked"+w.String()+" GROUP BY 1, 2",
		w.args, func(rows pgx.Rows) error {
			var (
				day    time.Time
				vendor string
				n      int
			)
			if err := rows.Scan(&day, &vendor, &n); err != nil {
				return err
			}
			d := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC).Unix()
			if byDay[d] == nil {
				byDay[d] = map[string]int{}
			}
			byDay[d][vendor] += n
			return nil
		})
	if err != nil {
		return nil, err
	}
	var out []querylog.VendorDay
	for d := since.UTC().Truncate(24 * time.Hour); !d.After(until); d = d.Add(24 * time.Hour) {
		v := byDay[d.Unix()]
		if v == nil {
			v = map[string]int{}
		}
		out = append(out, querylog.VendorDay{Day: d, Vendors: v})
	}
	return out, nil
}

// top returns the n keys of column with the most rows in the window.
func (r *Reader) top(tbl, column string, withVendor bool, w *where, n int) ([]querylog.Count, error) {
	vendor := "''"
	if withVendor {
		vendor = "max(vendor)"
	}
	out := []querylog.Count{}
	err := r.query("SELECT "+column+", "+vendor+", count(*) AS n FROM "+tbl+w.String()+" GROUP BY "+column+
		" ORDER BY n DESC, "+column+" LIMIT "+strconv.Itoa(max(n, 1)), w.args, func(rows pgx.Rows) error {
		var c querylog.Count
		if err := rows.Scan(&c.Key, &c.Vendor, &c.Count); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

func (r *Reader) report(tbl string, since, until time.Time, n int, vendors bool) (querylog.TopReport, error) {
	w := r.window(since, until)
	rep := querylog.TopReport{Since: since, Until: until, Vendors: []querylog.Count{}}
	err := r.query("SELECT count(*) FROM "+tbl+w.String(), w.args, func(rows pgx.Rows) error { return rows.Scan(&rep.Total) })
	if err == nil {
		rep.Names, err = r.top(tbl, "qname", vendors, w, n)
	}
	if err == nil {
		rep.Clients, err = r.top(tbl, "client", false, w, n)
	}
	if err == nil && vendors {
		rep.Vendors, err = r.top(tbl, "vendor", false, w, n)
	}
	return rep, err
}

// Top returns the n most blocked names, clients and vendors.
func (r *Reader) Top(since, until time.Time, n int) (querylog.TopReport, error) {
	return r.report("vigil_blocked", since, until, n, true)
}

// TopAllowed returns the n most asked allowed names and clients.
func (r *Reader) TopAllowed(since, until time.Time, n int) (querylog.TopReport, error) {
	return r.report("vigil_allowed", since, until, n, false)
}

// Identities returns every client identity with entries since.
func (r *Reader) Identities(since time.Time) ([]string, error) {
	w := r.window(since, time.Time{})
	var out []string
	err := r.query("SELECT client FROM vigil_blocked"+w.String()+" UNION SELECT client FROM vigil_allowed"+w.String()+" ORDER BY 1",
		w.args, func(rows pgx.Rows) error {
			var c string
			err := rows.Scan(&c)
			out = append(out, c)
			return err
		})
	return out, err
}

// AllowedCounts counts the allowed lookups in the window per client.
func (r *Reader) AllowedCounts(since, until time.Time) (map[string]int, error) {
	w := r.window(since, until)
	out := map[string]int{}
	err := r.query("SELECT client, count(*) FROM vigil_allowed"+w.String()+" GROUP BY client", w.args, func(rows pgx.Rows) error {
		var (
			c string
			n int
		)
		err := rows.Scan(&c, &n)
		out[c] = n
		return err
	})
	return out, err
}

// Replicas returns the replicas known to the fleet, with when each was
// last seen starting.
func (f *Fleet) Replicas() (map[string]time.Time, error) {
	r := f.Reader("")
	out := map[string]time.Time{}
	err := r.query("SELECT replica, last_seen FROM vigil_replicas", nil, func(rows pgx.Rows) error {
		var (
			name string
			at   time.Time
		)
		err := rows.Scan(&name, &at)
		out[name] = at
		return err
	})
	return out, err
}
