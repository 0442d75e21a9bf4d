package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// flags is a command's flag set, with the -config flag every command
// shares.
type flags struct {
	*flag.FlagSet
	config *string
}

// newFlags returns the flag set of command name. operands names what
// follows the flags in the usage line ("" for nothing).
func newFlags(name, operands, summary string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	line := strings.TrimSpace("vigil " + name + " [flags] " + operands)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s\n\nFlags:\n", line, summary)
		fs.PrintDefaults()
	}
	cfg := fs.String("config", "", "configuration `FILE` (default ./config.toml if present, else the built-in default)")
	return &flags{FlagSet: fs, config: cfg}
}

// since adds the -since flag of the commands that read the log.
func (f *flags) since() *sinceFlag {
	s := &sinceFlag{}
	_ = s.Set("24h") // cannot fail
	f.Var(s, "since", "from this long ago (24h, 7d) or this RFC 3339 `TIME`")
	return s
}

// replica registers -replica: in a fleet, one replica's part of the log
// (the running server's API answers it from PostgreSQL).
func (f *flags) replica() *string {
	return f.String("replica", "", "in a fleet ([fleet]): only what `REPLICA` answered")
}

// fleetNeedsServer refuses -replica without a running server: the
// fleet's log is in PostgreSQL, which only the server reads.
func fleetNeedsServer(replica string) error {
	if replica != "" {
		return errors.New("-replica needs the running server: the fleet's log is in PostgreSQL, read through its API")
	}
	return nil
}

// sinceFlag is -since: the text as given, for the API, which counts back
// from its own clock, and the time it means here, for the store.
type sinceFlag struct {
	text string
	time time.Time
}

// String implements flag.Value.
func (s *sinceFlag) String() string { return s.text }

// Set implements flag.Value.
func (s *sinceFlag) Set(v string) error {
	t, err := api.ParseTimeArg(v, time.Now())
	if err != nil {
		return err
	}
	s.text, s.time = v, t
	return nil
}

// load parses args, which must be flags only, and loads the configuration
// -config names.
func (f *flags) load(args []string) (*Config, error) {
	if err := parseFlags(f.FlagSet, args); err != nil {
		return nil, err
	}
	return loadConfig(resolveConfigPath(*f.config))
}

// loadWithOperand is load for commands with one operand (see
// parseWithOperand); what names the operand in messages.
func (f *flags) loadWithOperand(args []string, what string) (string, *Config, error) {
	operand, err := parseWithOperand(f.FlagSet, args, what)
	if err != nil {
		return "", nil, err
	}
	cfg, err := loadConfig(resolveConfigPath(*f.config))
	return operand, cfg, err
}

// flagError classifies a flag parsing error: -h stays itself, the rest
// are usage errors.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// parseFlags parses a command's flags; operands are a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
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
		// Flags may follow the operand too ("vigil allow NAME -client C"):
		// parse what comes after it.
		operand = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", flagError(err)
		}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return "", usageError{fmt.Errorf("%s: want one %s, got also %q", fs.Name(), what, fs.Arg(0))}
	}
	if operand == "" {
		fs.Usage()
		return "", usageError{fmt.Errorf("%s: want a %s", fs.Name(), what)}
	}
	return operand, nil
}

// parseInterleaved parses args whose flags may come before, between or
// after the operands, and returns the operands in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err)
		}
		if fs.NArg() == 0 {
			return operands, nil
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
