package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdExplain is "vigil explain NAME": blocked or not, and by which rule.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", "NAME", "Say whether NAME is blocked, by which list, rule and vendor: over every list, or for one client or group\n(with the group and schedule that decide).", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	who := whoFlags(fs, "explain for this")
	name, cfg, err := fs.loadWithOperand(args, "NAME")
	if err != nil {
		return err
	}
	if err := who.check(); err != nil {
		fs.Usage()
		return err
	}
	ex, err := fetch(ctx, cfg,
		func(c *api.Client) (api.Explanation, error) {
			if who.any() {
				return c.ExplainFor(ctx, name, who.query())
			}
			return c.Explain(ctx, name)
		},
		func(o *offline) (api.Explanation, error) {
			if err := o.lists.Load(ctx); err != nil {
				return api.Explanation{}, fmt.Errorf("loading lists from the store: %w", err)
			}
			if !who.any() {
				return api.Explain(o.lists.Current().Matcher, name)
			}
			w, err := o.asker(cfg, who)
			if err != nil {
				return api.Explanation{}, err
			}
			return api.ExplainFor(o.lists.Current().Matcher, cfg.compiledGroups(), w, name, time.Now())
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, ex, printExplanation)
}

// printExplanation says in a sentence whether and why a name is blocked.
func printExplanation(w io.Writer, ex api.Explanation) {
	switch {
	case ex.Group != "":
		fmt.Fprintf(w, "for group %s:\n", ex.Group)
	case ex.Client != "" && len(ex.Groups) > 0:
		fmt.Fprintf(w, "for %s, in group%s %s:\n", ex.Client, plural(len(ex.Groups)), strings.Join(ex.Groups, ", "))
	case ex.Client != "":
		fmt.Fprintf(w, "for %s, in no group (every list applies):\n", ex.Client)
	}
	switch {
	case !ex.Matched && (ex.Client != "" || ex.Group != ""):
		fmt.Fprintf(w, "%s is not blocked: no list that applies has a rule for it\n", ex.Name)
	case !ex.Matched:
		fmt.Fprintf(w, "%s is not blocked: no list has a rule for it\n", ex.Name)
	case ex.Blocked:
		fmt.Fprintf(w, "%s is BLOCKED by list %q%s, rule %s\n", ex.Name, ex.List, vendorText(ex.Vendor), ex.Rule)
	default:
		fmt.Fprintf(w, "%s is allowed by list %q%s, rule %s, which overrides any block\n", ex.Name, ex.List, vendorText(ex.Vendor), ex.Rule)
	}
	if ex.Why != "" {
		fmt.Fprintf(w, "the list applies: %s\n", ex.Why)
	}
	if f := ex.Functional; f != nil {
		breaks := strings.TrimRight(f.Breaks, ". ")
		if ex.Blocked {
			fmt.Fprintf(w, "note: a known functional endpoint (%s, %s): %s. It is blocked anyway: rule %s beats the functional allowlist (it is $important, or that list is off).\n", f.Category, f.Vendor, breaks, ex.Rule)
		} else {
			fmt.Fprintf(w, "a known functional endpoint (%s, %s), kept working: %s.\n", f.Category, f.Vendor, breaks)
		}
		fmt.Fprintf(w, "source: %s\n", f.Source)
	}
}

// vendorText is ` (vendor "Xiaomi")`, or nothing for a list without a
// vendor (an allowlist, the names allowed from the dashboard).
func vendorText(v string) string {
	if v == "" {
		return ""
	}
	return fmt.Sprintf(" (vendor %q)", v)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// who is the -client and -group flags of the commands that act for one
// client or group.
type who struct {
	client, group *string
}

func whoFlags(fs *flags, verb string) *who {
	return &who{
		client: fs.String("client", "", verb+" `CLIENT`: its name (any case), an address, or its MAC"),
		group:  fs.String("group", "", verb+" `GROUP` of the configuration's [[groups]]"),
	}
}

func (w *who) any() bool { return *w.client != "" || *w.group != "" }

func (w *who) check() error {
	if *w.client != "" && *w.group != "" {
		return usageError{fmt.Errorf("want -client or -group, not both")}
	}
	return nil
}

// query is the API's ?client= or ?group=.
func (w *who) query() url.Values {
	q := url.Values{}
	if *w.client != "" {
		q.Set("client", *w.client)
	}
	if *w.group != "" {
		q.Set("group", *w.group)
	}
	return q
}

// asker resolves -client or -group without the server, as the API does.
func (o *offline) asker(cfg *Config, w *who) (api.Asker, error) {
	if *w.group != "" {
		g := cfg.compiledGroups()
		if g.Named(*w.group) == nil {
			return api.Asker{}, fmt.Errorf("no group %q in %s; the groups are: %s", *w.group, cfg.Source, strings.Join(g.Names(), ", "))
		}
		return api.Asker{Group: *w.group}, nil
	}
	id, err := o.resolveClient(cfg, *w.client)
	if err != nil {
		return api.Asker{}, err
	}
	known := clientInfos(cfg.Clients)
	if names, err := o.store.ListDeviceNames(); err == nil {
		known = append(known, api.NamedClientInfos(names)...)
	}
	return api.IdentifyAsker(id, known, o.devices(cfg)), nil
}
