package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-dns/vigil/blocklists"
)

// cmdCheck is "vigil check": validate the configuration and exit.
func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "", "Validate the configuration and exit non-zero with every problem, each at its line.\n"+
		"Files it names (list sources, lease and hosts files) must exist too.", stderr)
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	if err := checkFiles(cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", cfg.Source)
	return nil
}

// checkFiles reports the files the configuration names that cannot be
// read: a server would run without them (a list keeps its last good copy),
// but vigil check is where a typo in a path should show.
func checkFiles(cfg *Config) error {
	var src []byte
	if cfg.path != "" {
		src, _ = os.ReadFile(cfg.path)
	}
	var errs []error
	missing := func(path, key string) {
		if _, err := os.Stat(path); err != nil {
			what := "cannot be read"
			if errors.Is(err, os.ErrNotExist) {
				what = "does not exist"
			}
			msg := fmt.Sprintf("%s: the file %q %s", key, path, what)
			if line := keyPathLine(src, key); line > 0 {
				errs = append(errs, fmt.Errorf("%s:%d: %s", cfg.Source, line, msg))
			} else {
				errs = append(errs, fmt.Errorf("%s: %s", cfg.Source, msg))
			}
		}
	}
	for i, l := range cfg.Lists {
		if !l.IsEnabled() {
			continue
		}
		for j, s := range l.Sources {
			if !blocklists.IsURL(s) && !strings.HasPrefix(s, blocklists.BuiltinScheme) {
				missing(s, "lists["+strconv.Itoa(i)+"].sources["+strconv.Itoa(j)+"]")
			}
		}
	}
	for i, f := range cfg.Identify.LeaseFiles {
		missing(f, "identify.lease_files["+strconv.Itoa(i)+"]")
	}
	for i, f := range cfg.Network.HostsFiles {
		missing(f, "local.hosts_files["+strconv.Itoa(i)+"]")
	}
	return errors.Join(errs...)
}

// sortByLine orders errors that start with "FILE:LINE:" by line, the
// others after them, so that a file's problems read top to bottom.
func sortByLine(errs []error) {
	line := func(e error) int {
		parts := strings.SplitN(e.Error(), ":", 3)
		if len(parts) == 3 {
			if n, err := strconv.Atoi(parts[1]); err == nil {
				return n
			}
		}
		return 1 << 30
	}
	sort.SliceStable(errs, func(i, j int) bool { return line(errs[i]) < line(errs[j]) })
}
