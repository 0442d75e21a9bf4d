package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// upstreamUDPSize is the EDNS buffer size Vigil offers its upstreams
// (DNS flag day 2020: avoids IP fragmentation).
const upstreamUDPSize = 1232

// ErrNoUpstream means no upstream produced a usable answer.
var ErrNoUpstream = errors.New("no upstream answered")

// Forwarder is the terminal stage: it sends the question to the upstreams
// according to the strategy and returns the first usable answer.
type Forwarder struct {
	state atomic.Pointer[forwarderState] // replaced whole by a reload
	now   func() time.Time

	scrubbed atomic.Uint64 // out-of-bailiwick records dropped
}

// Scrubbed returns how many out-of-bailiwick records were dropped from
// upstream answers.
func (f *Forwarder) Scrubbed() uint64 { return f.scrubbed.Load() }

var _ Handler = (*Forwarder)(nil)

// upstreamState tracks how an upstream has behaved lately; every field is
// updated atomically by the goroutines that used it.
type upstreamState struct {
	up Upstream
	// rtt is an exponentially weighted moving average of the round trip in
	// nanoseconds; failures add a penalty so a failing upstream sorts last.
	rtt atomic.Int64
	// fails counts consecutive failures.
	fails atomic.Int32
	// downUntil (unix nanos) is set after repeated failures: until then the
	// upstream is only tried after all the others.
	downUntil atomic.Int64
	// lat is the latency histogram of answered exchanges, and the error count.
	lat latency
}

// forwarderState is the upstreams and how to use them; immutable.
type forwarderState struct {
	upstreams []*upstreamState // never empty
	strategy  Strategy
	attempt   time.Duration // bound on one attempt at one upstream
}

// NewForwarder returns a Forwarder over ups. attempt bounds a single try at
// a single upstream; the query's deadline bounds the whole.
func NewForwarder(ups []Upstream, strategy Strategy, attempt time.Duration) (*Forwarder, error) {
	f := &Forwarder{now: time.Now}
	if err := f.Reconfigure(ups, strategy, attempt); err != nil {
		return nil, err
	}
	return f, nil
}

// Reconfigure replaces the upstreams and strategy. An upstream kept (same
// address) keeps its health history; queries in flight finish with the
// old set.
func (f *Forwarder) Reconfigure(ups []Upstream, strategy Strategy, attempt time.Duration) error {
	if len(ups) == 0 {
		return errors.New("forwarder: no upstreams")
	}
	old := map[string]*upstreamState{}
	if st := f.state.Load(); st != nil {
		for _, u := range st.upstreams {
			old[u.up.String()] = u
		}
	}
	st := &forwarderState{strategy: strategy, attempt: attempt}
	for _, u := range ups {
		if prev, ok := old[u.String()]; ok {
			st.upstreams = append(st.upstreams, prev)
			delete(old, u.String())
			continue
		}
		st.upstreams = append(st.upstreams, &upstreamState{up: u})
	}
	f.state.Store(st)
	// Upstreams the reload removed let go of their idle sockets; queries
	// still using them finish first.
	for _, u := range old {
		if c, ok := u.up.(io.Closer); ok {
			_ = c.Close()
		}
	}
	return nil
}

// Close lets go of the upstreams' idle connections; exchanges in flight
// finish first. The Router calls it for the forwarders a reload replaced.
func (f *Forwarder) Close() {
	for _, u := range f.state.Load().upstreams {
		if c, ok := u.up.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// Resolve implements Handler.
//
// The query's deadline bounds each attempt (try applies the earlier of it
// and the attempt's own bound): one context and one timer per attempt,
// not one more for the query, which a profile of forwarded queries put at
// a tenth of their CPU.
func (f *Forwarder) Resolve(ctx context.Context, q *Query) (*Response, error) {
	st := f.state.Load()
	order := f.order(st)
	var errs []error
	if st.strategy == StrategyParallel && len(order) > 1 {
		resp, err := f.race(ctx, st, q, order[0], order[1])
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		order = order[2:]
	}
	// Deadlines are on the real clock, whatever f.now is (tests fake it).
	late := func() bool { return ctx.Err() != nil || !q.Deadline.IsZero() && !time.Now().Before(q.Deadline) }
	for _, u := range order {
		if late() {
			break
		}
		resp, err := f.try(ctx, st, q, u, false)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 && late() {
		errs = append(errs, context.DeadlineExceeded)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoUpstream, errors.Join(errs...))
}

// race asks a and b at once and returns the first usable answer.
func (f *Forwarder) race(ctx context.Context, st *forwarderState, q *Query, a, b *upstreamState) (*Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		resp *Response
		err  error
	}
	results := make(chan result, 2)
	for _, u := range [2]*upstreamState{a, b} {
		go func() {
			resp, err := f.try(ctx, st, q, u, true)
			results <- result{resp, err}
		}()
	}
	var errs []error
	for range 2 {
		r := <-results
		if r.err == nil {
			return r.resp, nil // the loser sees ctx cancelled and returns into the buffer
		}
		errs = append(errs, r.err)
	}
	return nil, errors.Join(errs...)
}

// try asks one upstream once and records how it went. racing says another
// upstream is asked at once, and ctx is cancelled when it wins.
func (f *Forwarder) try(ctx context.Context, st *forwarderState, q *Query, u *upstreamState, racing bool) (*Response, error) {
	deadline := time.Now().Add(st.attempt)
	if !q.Deadline.IsZero() && q.Deadline.Before(deadline) {
		deadline = q.Deadline
	}
	m := upstreamRequest(q)
	start := f.now()
	var (
		r   *dns.Msg
		err error
	)
	if de, ok := u.up.(deadlineExchanger); ok && !racing {
		r, err = de.ExchangeBy(deadline, m)
	} else {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		r, err = u.up.Exchange(dctx, m)
		cancel()
	}
	elapsed := f.now().Sub(start)
	if err == nil {
		switch r.Rcode {
		case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeFormatError:
			// The upstream cannot answer this; another one may.
			err = fmt.Errorf("%s answered %s", u.up, dns.RcodeToString[r.Rcode])
		}
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			// Cancelled because another upstream won the race or the
			// server is shutting down: not the upstream's fault.
			return nil, err
		}
		f.recordFailure(u, elapsed, st.attempt)
		u.lat.errors.Add(1)
		return nil, err
	}
	f.recordSuccess(u, elapsed)
	u.lat.observe(elapsed)
	removeOPT(r)
	// Vigil forwards: its answers are not authoritative, whatever the
	// upstream (an authoritative server, say) said (RFC 1035 section
	// 4.1.1). Only Vigil's own answers (Local, Blocker) set AA. Cleared
	// here, before the cache stores it, so cached answers (packed or
	// not) say the same.
	r.Authoritative = false
	if n := scrub(r, q.Name); n > 0 {
		f.scrubbed.Add(uint64(n))
	}
	return &Response{Msg: r, Source: SourceUpstream, Upstream: u.up.String()}, nil
}

// upstreamRequest builds the message sent upstream: a fresh random ID per
// attempt, the client's question, RD set, and Vigil's own EDNS (the client's
// options, such as its subnet, are not passed on). AD is always set, so
// the upstream says whether it validated the answer (RFC 6840 section
// 5.7) whatever the client asked: the answer is cached once, and the
// Server shows AD only to clients that asked with AD or DO (showAD).
func upstreamRequest(q *Query) *dns.Msg {
	m := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:                uint16(rand.Uint32()),
			RecursionDesired:  true,
			CheckingDisabled:  q.CD,
			AuthenticatedData: true,
		},
		Question: []dns.Question{{Name: q.Name, Qtype: q.Type, Qclass: q.Class}},
	}
	m.SetEdns0(upstreamUDPSize, q.DO)
	return m
}

// removeOPT drops the upstream's OPT record; the Server adds its own.
func removeOPT(m *dns.Msg) {
	m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
}

// order returns the upstreams, healthy ones first, each group by recent
// round trip time (fastest first).
func (f *Forwarder) order(st *forwarderState) []*upstreamState {
	now := f.now().UnixNano()
	order := slices.Clone(st.upstreams)
	slices.SortStableFunc(order, func(a, b *upstreamState) int {
		aDown, bDown := a.downUntil.Load() > now, b.downUntil.Load() > now
		switch {
		case aDown != bDown:
			if aDown {
				return 1
			}
			return -1
		case st.strategy == StrategyFailover:
			return 0 // configured order
		}
		return int(min(max(a.rtt.Load()-b.rtt.Load(), -1), 1))
	})
	return order
}

const (
	failuresBeforeBackoff = 3
	maxBackoff            = time.Minute
)

// AllFailingFor is AllFailing: a Forwarder asks the same upstreams for
// every name. It lets the cache ask a Forwarder or a Router alike.
func (f *Forwarder) AllFailingFor(string) bool { return f.AllFailing() }

// AllFailing reports whether every upstream is backed off after repeated
// failures: the cache then answers expired entries at once rather than
// wait for an upstream that is not expected to answer.
func (f *Forwarder) AllFailing() bool {
	now := f.now().UnixNano()
	for _, u := range f.state.Load().upstreams {
		if u.downUntil.Load() <= now {
			return false
		}
	}
	return true
}

func (f *Forwarder) recordSuccess(u *upstreamState, rtt time.Duration) {
	u.fails.Store(0)
	u.downUntil.Store(0)
	ewma(&u.rtt, int64(rtt))
}

func (f *Forwarder) recordFailure(u *upstreamState, elapsed, attempt time.Duration) {
	n := u.fails.Add(1)
	ewma(&u.rtt, int64(max(elapsed, attempt)))
	if n >= failuresBeforeBackoff {
		backoff := min(time.Second<<min(n-failuresBeforeBackoff, 6), maxBackoff)
		u.downUntil.Store(f.now().Add(backoff).UnixNano())
	}
}

// ewma folds sample into v with weight 1/4. Lost updates under contention
// only make the average slightly stale.
func ewma(v *atomic.Int64, sample int64) {
	old := v.Load()
	if old == 0 {
		v.Store(sample)
		return
	}
	v.Store(old + (sample-old)/4)
}
