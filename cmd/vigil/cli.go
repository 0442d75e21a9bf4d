package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// connect finds the running server through the configuration's
// http.listen; an error wraps api.ErrNoServer.
func connect(ctx context.Context, cfg *Config) (*api.Client, error) {
	addr, ok := cfg.HTTP.Addr()
	if !ok {
		return nil, fmt.Errorf("%w (http.listen is off in %s)", api.ErrNoServer, cfg.Source)
	}
	return api.Connect(ctx, addr, cfg.HTTP.Token)
}

// offline is what a stopped server would use: its store, its log and its lists.
type offline struct {
	store *store.Store
	qlog  *querylog.Log
	// lists is built on the store but not loaded: commands that need the
	// compiled set call Load, which the others need not pay for.
	lists *blocklists.Manager
}

// openOffline opens the store directly. It fails with a clear message
// when the store is locked, that is when a server runs with its API off
// (Badger's directory lock is exclusive), or missing; apiErr says why the
// API was not used.
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
	lists := newUserLists(st, zap.NewNop()).merged(cfg)
	return &offline{store: st, qlog: ql, lists: blocklists.NewManager(cfg.Updates, lists, st, zap.NewNop())}, nil
}

// resolveClient matches what the user typed to a client as the API
// does: a name in any case, an address, or a MAC, from the
// configuration, the network's lease files and neighbour table, and the
// log.
func (o *offline) resolveClient(cfg *Config, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	known := clientInfos(cfg.Clients)
	if names, err := o.store.ListDeviceNames(); err == nil {
		known = append(known, api.NamedClientInfos(names)...)
	}
	return api.ResolveClient(raw, known, o.devices(cfg), func() []string {
		ids, _ := o.qlog.Identities(time.Time{})
		return ids
	})
}

// devices reads what the network says of its devices (leases, the
// neighbour table), as the server would.
func (o *offline) devices(cfg *Config) []neighbors.Device {
	w := neighbors.NewWatcher(neighborsConfig(cfg.Identify), zap.NewNop())
	w.Refresh()
	return w.Devices()
}

func (o *offline) Close() error { return errors.Join(o.qlog.Close(), o.store.Close()) }

// fetch gets a report from the running server's API, or, when no server
// answers, computes it from the store opened directly.
// Every command that reads data goes through it, so they all find the
// server, fall back and explain a locked store the same way.
func fetch[T any](ctx context.Context, cfg *Config, fromAPI func(*api.Client) (T, error), fromStore func(*offline) (T, error)) (T, error) {
	c, apiErr := connect(ctx, cfg)
	if apiErr == nil {
		return fromAPI(c)
	}
	off, err := openOffline(cfg, apiErr)
	if err != nil {
		var zero T
		return zero, err
	}
	defer off.Close()
	return fromStore(off)
}

// printJSON prints v as the -json flags do: indented, one document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// show prints v: as JSON with -json, else as print draws it for people.
func show[T any](w io.Writer, asJSON bool, v T, print func(io.Writer, T)) error {
	if asJSON {
		return printJSON(w, v)
	}
	print(w, v)
	return nil
}
