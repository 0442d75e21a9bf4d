package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdExplain is "vigil explain NAME": blocked or not, and by which rule.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", "NAME", "Say whether NAME is blocked, by which list, rule and vendor.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	name, cfg, err := fs.loadWithOperand(args, "NAME")
	if err != nil {
		return err
	}
	ex, err := fetch(ctx, cfg,
		func(c *api.Client) (api.Explanation, error) { return c.Explain(ctx, name) },
		func(o *offline) (api.Explanation, error) {
			if err := o.lists.Load(ctx); err != nil {
				return api.Explanation{}, fmt.Errorf("loading lists from the store: %w", err)
			}
			return api.Explain(o.lists.Current().Matcher, name)
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, ex, printExplanation)
}

// printExplanation says in a sentence whether and why a name is blocked.
func printExplanation(w io.Writer, ex api.Explanation) {
	switch {
	case !ex.Matched:
		fmt.Fprintf(w, "%s is not blocked: no list has a rule for it\n", ex.Name)
	case ex.Blocked:
		fmt.Fprintf(w, "%s is BLOCKED by list %q%s, rule %s\n", ex.Name, ex.List, vendorText(ex.Vendor), ex.Rule)
	default:
		fmt.Fprintf(w, "%s is allowed by list %q%s, rule %s, which overrides any block\n", ex.Name, ex.List, vendorText(ex.Vendor), ex.Rule)
	}
	if f := ex.Functional; f != nil {
		if ex.Blocked {
			fmt.Fprintf(w, "note: a known functional endpoint (%s, %s): %s. It is blocked anyway: rule %s beats the functional allowlist (it is $important, or that list is off).\n", f.Category, f.Vendor, f.Breaks, ex.Rule)
		} else {
			fmt.Fprintf(w, "a known functional endpoint (%s, %s), kept working: %s\n", f.Category, f.Vendor, f.Breaks)
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
