package api

import (
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bounds what one client of the API can hold: time to send a
// request, time to take an answer, idle keep-alive time, open
// connections and header size. The API shares the process's file
// descriptors with DNS, so a crowd of slow clients must run out of API
// slots long before DNS runs out of descriptors.
type Limits struct {
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the whole request, body included; the only body
	// the API reads is a login form of a few bytes.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the answer. It must outlast the largest
	// legitimate page and a 30 s CPU profile; the lists update stream,
	// bounded by the download timeout, lifts it for itself.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxConns bounds open connections; past it new connections wait in
	// the kernel's queue until one closes.
	MaxConns int
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// DefaultLimits are the limits serve uses: generous for the dashboard (a
// browser opens about six connections), the CLI and a Prometheus scraper.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxConns:          64,
		MaxHeaderBytes:    16 << 10,
	}
}

// NewServer returns the http.Server for h with l's timeouts; errLog may
// be nil (the standard logger). Serve it on LimitListener(ln,
// l.MaxConns).
func NewServer(h http.Handler, l Limits, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
}

// LimitListener returns ln accepting at most n connections at a time:
// past n, Accept waits until one of them is closed. Closing the listener
// ends a waiting Accept.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// limitListener is a counting semaphore in front of Accept: a slot is
// taken before accepting and given back when the connection closes.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close implements net.Listener.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close implements net.Conn.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
