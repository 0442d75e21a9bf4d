// Command vigil is a DNS sinkhole resolver: it answers from blocklists of
// vendor telemetry and tracking domains, forwards everything else upstream
// with an answer cache, and records which device looked up what.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-dns/vigil/resolver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vigil:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks errors in how vigil was invoked (exit status 2).
type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

const usage = `Usage: vigil [command] [flags]

Commands:
  serve     run the DNS server (the default when no command is given)
  check     validate the configuration and exit
  lists     show list sources; "lists update" fetches them now;
            "lists parse FILE" prints the rules a list yields
  explain   say whether a name is blocked, and by which list and rule
  log       blocked lookups, newest first (-client, -vendor, -since, -json)
  clients   every client with its blocked lookups per vendor
  top       most blocked names, clients and vendors
  pause     pause blocking for a while (everyone, or -client C)
  resume    end a pause
  health    exit 0 if the running server is healthy
  version   print the version

Every command takes -config FILE (default: ./config.toml if present, else
the built-in default). Run "vigil COMMAND -h" for a command's flags.
`

// run is main without the process: it parses args, runs one command and
// returns its error. Tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "version":
		return cmdVersion(args, stdout, stderr)
	case "lists":
		return cmdLists(ctx, args, stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args, stdout, stderr)
	case "log":
		return cmdLog(ctx, args, stdout, stderr)
	case "clients":
		return cmdClients(ctx, args, stdout, stderr)
	case "top":
		return cmdTop(ctx, args, stdout, stderr)
	case "pause":
		return cmdPause(ctx, args, stdout, stderr)
	case "resume":
		return cmdResume(ctx, args, stdout, stderr)
	case "health":
		return cmdHealth(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

// newFlagSet returns a flag set for a command with the -config flag every
// command shares.
func newFlagSet(name, summary string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	cfg := fs.String("config", "", "configuration `FILE` (default ./config.toml if present, else the built-in default)")
	return fs, cfg
}

// newPlainFlagSet is newFlagSet for commands that need no configuration.
func newPlainFlagSet(name, operands, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil %s [flags] %s\n\n%s\n\nFlags:\n", name, operands, summary)
		fs.PrintDefaults()
	}
	return fs
}

// flagError classifies a flag parsing error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// parseWithOperand parses flags around a command's single operand, which
// may come before or after them ("vigil explain NAME -json" and "vigil
// explain -json NAME"). A missing operand is a usage error naming what.
func parseWithOperand(fs *flag.FlagSet, args []string, what string) (string, error) {
	var operand string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		operand, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", flagError(err)
	}
	if operand == "" && fs.NArg() > 0 {
		operand = fs.Arg(0)
	}
	if operand == "" {
		fs.Usage()
		return "", usageError{fmt.Errorf("%s: want a %s", fs.Name(), what)}
	}
	return operand, nil
}

// parseSince reads a -since flag's value as a usage error when wrong.
func parseSince(v string) (time.Time, error) {
	t, err := parseTimeArg(v, time.Now())
	if err != nil {
		return t, usageError{fmt.Errorf("-since: %w", err)}
	}
	return t, nil
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("check", "Validate the configuration and exit non-zero with the problem if it is invalid.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", cfg.Source)
	return nil
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlagSet("version", "Print the version.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "vigil", version())
	return nil
}

// version reports the module version and VCS revision the binary was
// built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v + " " + bi.GoVersion
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// addrList is a repeatable, comma-separating flag of ip:port addresses.
type addrList []string

func (a *addrList) String() string { return strings.Join(*a, ",") }
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
