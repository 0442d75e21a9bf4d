package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store/querylog"
)

// ErrNoServer means no running Vigil answered on the API address.
var ErrNoServer = errors.New("no running vigil answers on the API address")

// Client talks to a running Vigil's HTTP API. The CLI and the tests use
// it, so the endpoints' Go shapes are written once, here. It is safe for
// concurrent use.
type Client struct {
	addr  netip.AddrPort
	base  string
	token string
	http  *http.Client
	// replica, when set, narrows every read to one replica of a fleet.
	replica string
}

// ForReplica returns a client whose reads ask for one replica's part of a
// fleet's log (?replica=NAME); "" for the whole fleet.
func (c *Client) ForReplica(name string) *Client {
	cc := *c
	cc.replica = name
	return &cc
}

// NewClient returns a client of the API listening on addr, sending token
// (if not "") as a bearer token. A server listening on every address is
// reached on loopback.
func NewClient(addr netip.AddrPort, token string) *Client {
	if addr.Addr().IsUnspecified() {
		lo := netip.IPv6Loopback()
		if addr.Addr().Is4() {
			lo = netip.MustParseAddr("127.0.0.1")
		}
		addr = netip.AddrPortFrom(lo, addr.Port())
	}
	return &Client{addr: addr, base: "http://" + addr.String(), token: token, http: &http.Client{}}
}

// Connect returns a client of the server at addr once its health check
// answers; an error wraps ErrNoServer.
func Connect(ctx context.Context, addr netip.AddrPort, token string) (*Client, error) {
	c := NewClient(addr, token)
	// A running server answers at once; waiting longer only delays the
	// CLI's fallback to the store.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Health(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Health checks the server answers its health check; an error wraps
// ErrNoServer.
func (c *Client) Health(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/health", nil)
	if err != nil {
		return fmt.Errorf("building the health check: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (%s): %v", ErrNoServer, c.addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w (%s answered %s)", ErrNoServer, c.addr, resp.Status)
	}
	return nil
}

// Blocked returns a page of the log; q takes GET /api/v1/blocked's
// parameters (client, vendor, list, name, since, until, limit, cursor,
// allowed).
func (c *Client) Blocked(ctx context.Context, q url.Values) (querylog.Page, error) {
	var page querylog.Page
	err := c.do(ctx, http.MethodGet, "/api/v1/blocked?"+q.Encode(), &page)
	return page, err
}

// Clients summarises every client with blocked lookups since (24h, 7d or
// an RFC 3339 time; "" for the server's default).
func (c *Client) Clients(ctx context.Context, since string) (ClientsReport, error) {
	var rep ClientsReport
	err := c.do(ctx, http.MethodGet, "/api/v1/clients?since="+url.QueryEscape(since), &rep)
	return rep, err
}

// Devices lists the devices seen since (24h, 7d or an RFC 3339 time; ""
// for the server's default), filtered by hardware maker and sorted as
// GET /api/v1/devices does.
func (c *Client) Devices(ctx context.Context, since, hardwareVendor, sortBy string) (DevicesReport, error) {
	q := url.Values{"since": {since}, "hardware_vendor": {hardwareVendor}, "sort": {sortBy}}
	var rep DevicesReport
	err := c.do(ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), &rep)
	return rep, err
}

// Top ranks the most blocked vendors, clients and names since, limit rows
// each.
func (c *Client) Top(ctx context.Context, since string, limit int) (querylog.TopReport, error) {
	var rep querylog.TopReport
	q := url.Values{"since": {since}, "limit": {strconv.Itoa(limit)}}
	err := c.do(ctx, http.MethodGet, "/api/v1/top?"+q.Encode(), &rep)
	return rep, err
}

// Lists reports every list source.
func (c *Client) Lists(ctx context.Context) (ListsStatus, error) {
	var rep ListsStatus
	err := c.do(ctx, http.MethodGet, "/api/v1/lists", &rep)
	return rep, err
}

// UpdateLists has the server fetch every source now, telling progress
// (may be nil) about each as it finishes, and returns the final report.
func (c *Client) UpdateLists(ctx context.Context, progress blocklists.Progress) (ListsStatus, error) {
	var rep ListsStatus
	resp, err := c.send(ctx, http.MethodPost, "/api/v1/lists/update")
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20) // a final report with many sources is one long line
	for sc.Scan() {
		var ev UpdateEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return rep, fmt.Errorf("decoding update progress: %w", err)
		}
		if ev.Final != nil {
			rep = *ev.Final
		} else if ev.Source != nil && progress != nil {
			progress(ev.Done, ev.Total, *ev.Source)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("reading update progress: %w", err)
	}
	return rep, nil
}

// AuditReport is the answer of POST /api/v1/lists/audit.
type AuditReport struct {
	Popular int                    `json:"popular"` // popular names judged
	Lists   []blocklists.ListAudit `json:"lists"`
}

// Audit has the server judge its enabled deny lists against popular
// (names, most popular first).
func (c *Client) Audit(ctx context.Context, popular []string) (AuditReport, error) {
	var rep AuditReport
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+auditPath, strings.NewReader(strings.Join(popular, "\n")))
	if err != nil {
		return rep, fmt.Errorf("building the audit request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.roundTrip(req, auditPath)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("decoding the answer of %s: %w", auditPath, err)
	}
	return rep, nil
}

// Explain says whether name is blocked and by which list and rule.
func (c *Client) Explain(ctx context.Context, name string) (Explanation, error) {
	var ex Explanation
	err := c.do(ctx, http.MethodGet, "/api/v1/explain?name="+url.QueryEscape(name), &ex)
	return ex, err
}

// Pause pauses blocking for d, for client ("" for everyone).
func (c *Client) Pause(ctx context.Context, client string, d time.Duration) (PauseReply, error) {
	var out PauseReply
	q := url.Values{"duration": {d.String()}}
	if client != "" {
		q.Set("client", client)
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/pause?"+q.Encode(), &out)
	return out, err
}

// PauseGroup pauses blocking for a group for d.
func (c *Client) PauseGroup(ctx context.Context, group string, d time.Duration) (PauseReply, error) {
	var out PauseReply
	q := url.Values{"duration": {d.String()}, "group": {group}}
	err := c.do(ctx, http.MethodPost, "/api/v1/pause?"+q.Encode(), &out)
	return out, err
}

// ResumeGroup ends a group's pause.
func (c *Client) ResumeGroup(ctx context.Context, group string) (resolver.PauseStatus, error) {
	var out resolver.PauseStatus
	err := c.do(ctx, http.MethodPost, "/api/v1/resume?"+url.Values{"group": {group}}.Encode(), &out)
	return out, err
}

// ExplainFor says whether name is blocked for a client or a group (one of
// them set in q as "client" or "group").
func (c *Client) ExplainFor(ctx context.Context, name string, q url.Values) (Explanation, error) {
	var out Explanation
	q = maps.Clone(q)
	q.Set("name", name)
	err := c.do(ctx, http.MethodGet, "/api/v1/explain?"+q.Encode(), &out)
	return out, err
}

// Except allows (block false) or blocks name: for everyone, or for the
// "client" or "group" in q, and for q's "for" if set.
func (c *Client) Except(ctx context.Context, name string, block bool, q url.Values) (ExceptionReply, error) {
	var out ExceptionReply
	q = maps.Clone(q)
	q.Set("name", name)
	path := "/api/v1/allow?"
	if block {
		path = "/api/v1/block?"
	}
	err := c.do(ctx, http.MethodPost, path+q.Encode(), &out)
	return out, err
}

// Unexcept removes the exception for name, for everyone or q's "client"
// or "group".
func (c *Client) Unexcept(ctx context.Context, name string, q url.Values) (ExceptionReply, error) {
	var out ExceptionReply
	q = maps.Clone(q)
	q.Set("name", name)
	err := c.do(ctx, http.MethodDelete, "/api/v1/allow?"+q.Encode(), &out)
	return out, err
}

// Call sends method to path (with its query) and decodes the answer into
// out, for the endpoints without a method of their own.
func (c *Client) Call(ctx context.Context, method, path string, out any) error {
	return c.do(ctx, method, path, out)
}

// Groups lists the groups.
func (c *Client) Groups(ctx context.Context) (GroupsReport, error) {
	var out GroupsReport
	err := c.do(ctx, http.MethodGet, "/api/v1/groups", &out)
	return out, err
}

// Assign moves client into exactly these groups (none: no group).
func (c *Client) Assign(ctx context.Context, client string, groups []string) (AssignReply, error) {
	var out AssignReply
	q := url.Values{"groups": {strings.Join(groups, ",")}}
	err := c.do(ctx, http.MethodPut, "/api/v1/clients/"+url.PathEscape(client)+"/groups?"+q.Encode(), &out)
	return out, err
}

// Unassign gives client back the configuration's groups.
func (c *Client) Unassign(ctx context.Context, client string) (AssignReply, error) {
	var out AssignReply
	err := c.do(ctx, http.MethodDelete, "/api/v1/clients/"+url.PathEscape(client)+"/groups", &out)
	return out, err
}

// Exceptions lists the exceptions made by hand.
func (c *Client) Exceptions(ctx context.Context) (ExceptionsReport, error) {
	var out ExceptionsReport
	err := c.do(ctx, http.MethodGet, "/api/v1/exceptions", &out)
	return out, err
}

// Resume ends client's pause ("" ends every pause) and returns the pauses
// still in force.
func (c *Client) Resume(ctx context.Context, client string) (resolver.PauseStatus, error) {
	var st resolver.PauseStatus
	err := c.do(ctx, http.MethodPost, "/api/v1/resume?client="+url.QueryEscape(client), &st)
	return st, err
}

// Reload has the server re-read its configuration file.
func (c *Client) Reload(ctx context.Context) error {
	var out map[string]any
	return c.do(ctx, http.MethodPost, "/api/v1/reload", &out)
}

// Error is an answer other than 200 OK.
type Error struct {
	// Path is the request's path and query.
	Path string
	// StatusCode is the HTTP status, such as 400.
	StatusCode int
	// Message is the answer's "error", or the status text without one.
	Message string
	// explained says Message is the server's own words, which say what
	// went wrong without the request's path.
	explained bool
}

// Error implements error: the server's message, or "PATH: STATUS" when it
// sent none.
func (e *Error) Error() string {
	if e.explained {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// do sends a request and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	return nil
}

// send sends a request with the token and returns a 200 answer; any other
// status is an *Error.
func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	if c.replica != "" && method == http.MethodGet {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "replica=" + url.QueryEscape(c.replica)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("building the request for %s: %w", path, err)
	}
	return c.roundTrip(req, path)
}

// roundTrip sends req with the CLI's header and the token and returns a
// 200 answer; any other status becomes an *Error with the server's message.
func (c *Client) roundTrip(req *http.Request, path string) (*http.Response, error) {
	req.Header.Set(ClientHeader, "vigil")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the API: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var body errorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &Error{Path: path, StatusCode: resp.StatusCode, Message: resp.Status}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.explained = body.Error, true
	}
	return nil, e
}
