package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/vigil-dns/vigil/resolver"
)

// cmdServe is "vigil serve" (and plain "vigil"): run until ctx ends.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "", "Run the DNS server until SIGINT or SIGTERM.", stderr)
	var listen, upstream addrList
	fs.Var(&listen, "listen", "serve on `ADDR` (ip:port) instead of server.listen; repeatable")
	fs.Var(&upstream, "upstream", "forward to `ADDR` instead of upstream.servers; repeatable")
	httpListen := fs.String("http", "", "serve the API and dashboard on `ADDR` (ip:port) instead of http.listen; beyond loopback it needs a token ("+tokenEnv+" or http.token)")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	// Kept in the configuration so that a reload, which re-reads the
	// file, applies the flags again.
	cfg.overrides = func(c *Config) error {
		if err := applyOverrides(c, listen, upstream); err != nil {
			return err
		}
		if *httpListen != "" {
			ap, err := netip.ParseAddrPort(*httpListen)
			if err != nil {
				return usageError{fmt.Errorf("-http: want ip:port such as 0.0.0.0:8053, got %q", *httpListen)}
			}
			c.HTTP.Listen = ap
		}
		return nil
	}
	if err := cfg.overrides(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s with flags: %w", cfg.Source, err)
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return serve(ctx, cfg, log, nil)
}

// addrList is a repeatable, comma-separating flag of ip:port addresses.
type addrList []string

// String implements flag.Value.
func (a *addrList) String() string { return strings.Join(*a, ",") }

// Set implements flag.Value.
func (a *addrList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*a = append(*a, s)
		}
	}
	return nil
}

// applyOverrides puts -listen and -upstream into cfg before validation.
func applyOverrides(cfg *Config, listen, upstream addrList) error {
	if len(listen) > 0 {
		cfg.Server.Listen = cfg.Server.Listen[:0]
		for _, s := range listen {
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				return usageError{fmt.Errorf("-listen: want ip:port such as 127.0.0.1:5353, got %q", s)}
			}
			cfg.Server.Listen = append(cfg.Server.Listen, ap)
		}
	}
	if len(upstream) > 0 {
		cfg.Upstream.Servers = nil
		for _, s := range upstream {
			spec, err := resolver.ParseUpstream(s)
			if err != nil {
				return usageError{fmt.Errorf("-upstream: %w", err)}
			}
			cfg.Upstream.Servers = append(cfg.Upstream.Servers, spec)
		}
	}
	return nil
}
