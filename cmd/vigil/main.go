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
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// main is run with the process's arguments, signals and exit status.
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

// exitCode is the process's exit status for err: 2 for usage errors and
// -h, as the flag package's convention has it, else 1.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// usage is "vigil help" and what a wrong command prints.
const usage = `Usage: vigil [command] [flags]

Commands:
  serve       run the DNS server (the default when no command is given)
  check       validate the configuration and exit
  lists       show list sources; "lists update" fetches them now; "lists add",
              "remove", "enable", "disable" change them; "lists parse FILE"
  explain     say whether a name is blocked, by which list and rule
              (-client C or -group G: for that client or group)
  allow       allow a name for everyone, -client C or -group G (-for 24h)
  block       block a name for everyone, -client C or -group G (-for 24h)
  exceptions  the names allowed or blocked by hand
  groups      the [[groups]] and their lists; "groups move CLIENT GROUP"
  log         lookups, newest first (-client, -vendor, -since, -allowed, -json)
  clients     every client with its blocked lookups per vendor
  devices     every device: name, addresses, MAC, hardware maker, vendors called
  name        give a device a name of your own ("name 192.168.1.23 kids-tablet")
  top         most blocked names, clients and vendors
  alerts      the alerts raised (new devices, new vendors, ...); "alerts test"
  pause       pause blocking for a while (everyone, -client C or -group G)
  resume      end a pause
  health      exit 0 if the running server is healthy
  version     print the version

Every command takes -config FILE (default: ./config.toml if present, else
the built-in default). Run "vigil COMMAND -h" for a command's flags.
`

// command runs one command with its arguments (after the command's name).
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands maps each command's name to its function; a function rather
// than a package-level map, so nothing global can be changed.
func commands() map[string]command {
	return map[string]command{
		"serve":      cmdServe,
		"check":      cmdCheck,
		"version":    cmdVersion,
		"lists":      cmdLists,
		"explain":    cmdExplain,
		"allow":      cmdAllow,
		"block":      cmdBlock,
		"exceptions": cmdExceptions,
		"groups":     cmdGroups,
		"alerts":     cmdAlerts,
		"log":        cmdLog,
		"clients":    cmdClients,
		"devices":    cmdDevices,
		"name":       cmdName,
		"top":        cmdTop,
		"pause":      cmdPause,
		"resume":     cmdResume,
		"health":     cmdHealth,
	}
}

// run is main without the process: it parses args, runs one command and
// returns its error. Tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name, named := "serve", false
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args, named = args[0], args[1:], true
	}
	if name == "help" || !named && len(args) == 1 && isHelpFlag(args[0]) {
		// "vigil -h" asks about vigil, not about serve ("vigil serve -h"
		// does that).
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", name)}
	}
	return cmd(ctx, args, stdout, stderr)
}
