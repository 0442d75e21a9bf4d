package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdGroups is "vigil groups": the [[groups]], who is in them and which
// lists they get now; "vigil groups move CLIENT GROUP[,GROUP…]" moves a
// device, "vigil groups reset CLIENT" gives it back the configuration's.
func cmdGroups(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("groups", "[move CLIENT GROUP[,GROUP...] | reset CLIENT]", "List the groups: members, devices moved in by hand, lists, schedules, lists off now.\n"+
		"\"vigil groups move CLIENT GROUP[,GROUP...]\" moves a device into exactly these groups (\"\" for none: the\n"+
		"default group's lists), over what the configuration says, kept across restarts;\n"+
		"\"vigil groups reset CLIENT\" gives it back the configuration's groups.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	operands, err := parseInterleaved(fs.FlagSet, args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*fs.config))
	if err != nil {
		return err
	}
	switch {
	case len(operands) == 3 && operands[0] == "move", len(operands) == 2 && operands[0] == "reset":
		return groupsMove(ctx, cfg, operands, stdout)
	case len(operands) > 0:
		fs.Usage()
		return usageError{fmt.Errorf("groups: want no operands, \"move CLIENT GROUPS\" or \"reset CLIENT\", got %q", strings.Join(operands, " "))}
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.GroupsReport, error) { return c.Groups(ctx) },
		func(o *offline) (api.GroupsReport, error) {
			g := cfg.compiledGroups()
			if assigned, err := o.store.ListAssignments(); err == nil && g.Len() > 0 {
				g = g.Assign(assigned)
			}
			names := make([]string, len(cfg.Lists))
			for i, l := range cfg.Lists {
				names[i] = l.Name
			}
			return api.GroupsReport{Groups: g.Info(names, time.Now())}, nil
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printGroups)
}

func printGroups(w io.Writer, rep api.GroupsReport) {
	if len(rep.Groups) == 0 {
		fmt.Fprintln(w, "no [[groups]]: every client gets every list")
		return
	}
	for _, g := range rep.Groups {
		fmt.Fprintf(w, "%s\n", g.Name)
		members := strings.Join(g.Members, ", ")
		if members == "" {
			members = "-"
			if g.Name == "default" {
				members = "every client in no other group"
			}
		}
		fmt.Fprintf(w, "  members:   %s\n", members)
		if len(g.Assigned) > 0 {
			fmt.Fprintf(w, "  moved in:  %s\n", strings.Join(g.Assigned, ", "))
		}
		if len(g.MovedOut) > 0 {
			fmt.Fprintf(w, "  moved out: %s\n", strings.Join(g.MovedOut, ", "))
		}
		lists := "every list"
		if g.Lists != nil {
			lists = strings.Join(g.Lists, ", ")
			if lists == "" {
				lists = "none"
			}
		}
		fmt.Fprintf(w, "  lists:     %s\n", lists)
		if g.Answer != "" {
			fmt.Fprintf(w, "  answer:    %s\n", g.Answer)
		}
		for _, s := range g.Schedules {
			fmt.Fprintf(w, "  schedule:  %s\n", s)
		}
		if len(g.Off) > 0 {
			fmt.Fprintf(w, "  off now:   %s\n", strings.Join(g.Off, ", "))
		}
	}
}

// groupsMove is "groups move CLIENT GROUPS" and "groups reset CLIENT".
func groupsMove(ctx context.Context, cfg *Config, operands []string, stdout io.Writer) error {
	c, err := connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("moving a device needs the running server: %w", err)
	}
	var out api.AssignReply
	if operands[0] == "reset" {
		out, err = c.Unassign(ctx, operands[1])
	} else {
		var names []string
		for _, n := range strings.Split(operands[2], ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		out, err = c.Assign(ctx, operands[1], names)
	}
	if err != nil {
		return err
	}
	in := strings.Join(out.Groups, ", ")
	if in == "" {
		in = "no group"
	}
	how := "moved by hand"
	if !out.Assigned {
		how = "as the configuration says"
	}
	fmt.Fprintf(stdout, "%s is in %s (%s)\n", out.Client, in, how)
	return nil
}
