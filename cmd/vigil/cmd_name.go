package main

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdName is "vigil name DEVICE NAME": give a device a name of your own,
// kept across restarts, by its MAC when the network tells it (so the name
// follows it to a new address), else by its address.
func cmdName(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("name", "DEVICE NAME", "Name a device (by its current name, an address or its MAC). The name shows in the log,\n"+
		"the API and the dashboard from now on; -forget takes it away.", stderr)
	forget := fs.Bool("forget", false, "forget the name given to DEVICE")
	asJSON := fs.Bool("json", false, "print JSON")
	operands, err := parseInterleaved(fs.FlagSet, args)
	if err != nil {
		return err
	}
	if want := map[bool]int{true: 1, false: 2}[*forget]; len(operands) != want {
		fs.Usage()
		return usageError{fmt.Errorf("name: want DEVICE NAME, or -forget DEVICE")}
	}
	cfg, err := loadConfig(resolveConfigPath(*fs.config))
	if err != nil {
		return err
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("naming a device needs the running server: %w", err)
	}
	q := url.Values{"device": {operands[0]}}
	var out api.NameReply
	if *forget {
		err = c.Call(ctx, "DELETE", "/api/v1/devices/name?"+q.Encode(), &out)
	} else {
		q.Set("name", operands[1])
		err = c.Call(ctx, "PUT", "/api/v1/devices/name?"+q.Encode(), &out)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	if *forget {
		fmt.Fprintf(stdout, "%s: the name given to it is forgotten\n", operands[0])
	} else {
		fmt.Fprintf(stdout, "%s is %q now (kept by %s)\n", operands[0], out.Name, out.Key)
	}
	return nil
}
