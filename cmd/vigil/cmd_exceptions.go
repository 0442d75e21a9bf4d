package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/store"
)

// cmdAllow is "vigil allow NAME": let NAME through, for everyone or one
// client or group, for a while or for good.
func cmdAllow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return except(ctx, "allow", false, args, stdout, stderr)
}

// cmdBlock is "vigil block NAME": block NAME, for everyone or one client
// or group, for a while or for good.
func cmdBlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return except(ctx, "block", true, args, stdout, stderr)
}

func except(ctx context.Context, verb string, block bool, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(verb, "NAME", fmt.Sprintf("%s NAME (that name only, not the names below it) for everyone, or for one client or group;\n"+
		"it applies at once and is kept across restarts. -remove takes the exception away.", strings.ToUpper(verb[:1])+verb[1:]), stderr)
	w := whoFlags(fs, verb+" for")
	dur := fs.Duration("for", 0, "end the exception by itself after `DURATION` (such as 24h); 0 keeps it")
	remove := fs.Bool("remove", false, "remove the exception for NAME (allow or block) instead")
	asJSON := fs.Bool("json", false, "print JSON")
	name, cfg, err := fs.loadWithOperand(args, "NAME")
	if err != nil {
		return err
	}
	if err := w.check(); err != nil {
		fs.Usage()
		return err
	}
	if *dur < 0 || *remove && *dur != 0 {
		fs.Usage()
		return usageError{fmt.Errorf("%s: want -for a positive duration, without -remove", verb)}
	}
	name = api.HostOf(name)
	reply, err := fetch(ctx, cfg,
		func(c *api.Client) (api.ExceptionReply, error) {
			q := w.query()
			if *remove {
				return c.Unexcept(ctx, name, q)
			}
			if *dur > 0 {
				q.Set("for", dur.String())
			}
			return c.Except(ctx, name, block, q)
		},
		func(o *offline) (api.ExceptionReply, error) {
			scope := ""
			if w.any() {
				a, err := o.asker(cfg, w)
				if err != nil {
					return api.ExceptionReply{}, err
				}
				scope = a.Scope()
			}
			if *remove {
				return api.ExceptionReply{Status: "removed", Name: name, Scope: scope}, o.lists.RemoveException(scope, name)
			}
			x := store.Exception{Name: name, Scope: scope, Block: block}
			if *dur > 0 {
				x.Until = time.Now().Add(*dur)
			}
			status := "allowed"
			if block {
				status = "blocked"
			}
			return api.ExceptionReply{Status: status, Name: name, Scope: scope, Until: x.Until}, o.lists.AddException(x)
		})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, reply)
	}
	who := "everyone"
	if reply.Scope != "" {
		who = strings.Replace(reply.Scope, ":", " ", 1)
	}
	switch {
	case reply.Status == "removed":
		fmt.Fprintf(stdout, "%s: exception for %s removed\n", name, who)
	case reply.Until.IsZero():
		fmt.Fprintf(stdout, "%s %s for %s\n", name, reply.Status, who)
	default:
		fmt.Fprintf(stdout, "%s %s for %s until %s\n", name, reply.Status, who, reply.Until.Local().Format(time.DateTime))
	}
	return nil
}

// cmdExceptions is "vigil exceptions": the names allowed or blocked by
// hand, for whom and until when.
func cmdExceptions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("exceptions", "", "List the names allowed or blocked by hand (vigil allow, vigil block, the dashboard).", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.ExceptionsReport, error) { return c.Exceptions(ctx) },
		func(o *offline) (api.ExceptionsReport, error) {
			xs, err := o.lists.Exceptions()
			return api.ExceptionsReport{Exceptions: xs}, err
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printExceptions)
}

func printExceptions(w io.Writer, rep api.ExceptionsReport) {
	if len(rep.Exceptions) == 0 {
		fmt.Fprintln(w, "no exceptions: nothing allowed or blocked by hand")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACTION\tFOR\tUNTIL")
	for _, x := range rep.Exceptions {
		action, who, until := "allow", "everyone", "-"
		if x.Block {
			action = "block"
		}
		if x.Scope != "" {
			who = strings.Replace(x.Scope, ":", " ", 1)
		}
		if !x.Until.IsZero() {
			until = x.Until.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Name, action, who, until)
	}
	tw.Flush()
}
