package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// apiClient talks to a running Vigil's HTTP API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// errNoServer means no running Vigil answered on the configured API address.
var errNoServer = errors.New("no running vigil answers on the API address")

// connectAPI finds the running server through the configuration.
func connectAPI(ctx context.Context, cfg *Config) (*apiClient, error) {
	if !cfg.HTTP.Listen.IsValid() {
		return nil, fmt.Errorf("%w (http.listen is off in %s)", errNoServer, cfg.Source)
	}
	ap := cfg.HTTP.Listen
	if ap.Addr().IsUnspecified() {
		// A server listening on every address is reached on loopback.
		lo := netip.IPv6Loopback()
		if ap.Addr().Is4() {
			lo = netip.MustParseAddr("127.0.0.1")
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	c := &apiClient{base: "http://" + ap.String(), token: cfg.HTTP.Token, http: &http.Client{}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/health", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %v", errNoServer, ap, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w (%s answered %s)", errNoServer, ap, resp.Status)
	}
	return c, nil
}

// do sends a request and decodes a JSON answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, out any) error {
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

func (c *apiClient) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", path, e.Error)
		}
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return resp, nil
}

// offline opens what a stopped server would use: its store and its lists.
// It fails with a clear message when the store is locked (a server runs
// with its API off) or missing.
type offline struct {
	store *store.Store
	qlog  *querylog.Log
	lists *blocklists.Manager
}

func openOffline(cfg *Config, apiErr error) (*offline, error) {
	st, err := store.Open(cfg.Store, zap.NewNop())
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%v; and the store is held by a running server: enable http.listen in %s to reach it", apiErr, cfg.Source)
		}
		return nil, fmt.Errorf("%v; and the store cannot be opened: %w", apiErr, err)
	}
	ql, err := querylog.Open(cfg.Store.Dir, cfg.QueryLog, zap.NewNop())
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("%v; and the query log cannot be opened: %w", apiErr, err)
	}
	return &offline{store: st, qlog: ql, lists: blocklists.NewManager(cfg.Updates, cfg.Lists, st, zap.NewNop())}, nil
}

func (o *offline) Close() error { return errors.Join(o.qlog.Close(), o.store.Close()) }
