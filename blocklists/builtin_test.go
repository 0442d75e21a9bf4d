package blocklists

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

// A builtin: source is checked when the configuration is validated, so a
// typo is an error naming the key, not a list that silently blocks nothing.
func TestValidateBuiltinSources(t *testing.T) {
	ok := []ListConfig{{Name: "functional", Kind: KindAllow, Sources: []string{"builtin:functional"}}}
	if err := ValidateLists(ok); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"builtin:nope", "builtin:", "builtin:../config", "builtin:functional.txt"} {
		err := ValidateLists([]ListConfig{{Name: "x", Sources: []string{"a.txt", src}}})
		if err == nil || !strings.Contains(err.Error(), "lists[0] (x).sources[1]: want builtin: followed by one of") ||
			!strings.Contains(err.Error(), "functional") {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// A builtin: source is read from the binary at every build: it blocks (or
// allows) from the first Load without network, file or stored copy, shows
// as built-in, and is never written to the store or fetched by a refresh.
func TestManagerReadsBuiltinSources(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	lists := validLists(t, []ListConfig{
		{Name: "xiaomi", Vendor: "Xiaomi", Entries: []string{"||api.micloud.xiaomi.net^", "||tracking.intl.miui.com^"}, Format: FormatAdblock},
		{Name: "functional", Vendor: "Functional", Kind: KindAllow, Sources: []string{"builtin:functional"}},
	})
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !blocked(m, "tracking.intl.miui.com") || blocked(m, "find.api.micloud.xiaomi.net") || blocked(m, "us.find.api.micloud.xiaomi.net") ||
		!blocked(m, "api.micloud.xiaomi.net") {
		t.Error("the built-in allowlist does not carve Find Device out of ||api.micloud.xiaomi.net^")
	}
	v, _ := m.Current().Matcher.Match("find.api.micloud.xiaomi.net")
	if v.List.Name != "functional" || v.Rule.String() != "@@||find.api.micloud.xiaomi.net^" {
		t.Errorf("verdict %+v", v)
	}
	s := statusOf(t, m, "builtin:functional")
	if s.Status != StatusBuiltin || !s.HasCopy || s.Entries < 50 || s.Kind != KindAllow || s.Format != string(FormatAdblock) || s.SHA256 == "" {
		t.Errorf("status %+v", s)
	}
	if w := m.Warning(); w != "" {
		t.Errorf("warning %q", w)
	}
	if got := m.Refresh(context.Background(), nil); len(got) != 1 || got[0].Status != StatusBuiltin {
		t.Errorf("refresh: %+v", got)
	}
	ids, err := st.ListIDs()
	if err != nil || len(ids) != 0 {
		t.Errorf("stored copies %v (%v); a built-in list is never stored", ids, err)
	}
}

// A built-in list's status says whether it is on, off, or on only for the
// groups naming it, with what it breaks: `vigil lists` and the dashboard
// showed every built-in list as off, and never what a cloud list breaks.
func TestBuiltinStatusSaysOnOrOff(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	off := false
	lists := validLists(t, []ListConfig{
		{Name: "functional", Vendor: "Functional", Kind: KindAllow, Sources: []string{"builtin:functional"}},
		{Name: "xiaomi-cloud", Vendor: "Xiaomi", Enabled: &off, Breaks: []Breakage{"push"}, Sources: []string{"builtin:xiaomi-cloud"}},
		{Name: "huawei-cloud", Vendor: "Huawei", Enabled: &off, OptIn: true, Sources: []string{"builtin:huawei-cloud"}},
	})
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src            string
		status         string
		enabled, optIn bool
		breaks         int
	}{
		{"builtin:functional", StatusBuiltin, true, false, 0},
		{"builtin:xiaomi-cloud", StatusDisabled, false, false, 1},
		{"builtin:huawei-cloud", StatusBuiltin, true, true, 0},
	} {
		s := statusOf(t, m, tc.src)
		if s.Status != tc.status || s.Enabled != tc.enabled || s.OptIn != tc.optIn || len(s.Breaks) != tc.breaks {
			t.Errorf("%s: status %q enabled %v opt-in %v breaks %v", tc.src, s.Status, s.Enabled, s.OptIn, s.Breaks)
		}
	}
	// The opt-in list is compiled, marked so that groups apply it only
	// where named; the list that is off is not compiled.
	var names []string
	for _, l := range m.Current().Matcher.Lists() {
		names = append(names, l.Name)
		if l.Name == "huawei-cloud" && !l.OptIn {
			t.Error("huawei-cloud compiled without its opt-in mark")
		}
	}
	if !slices.Contains(names, "huawei-cloud") || slices.Contains(names, "xiaomi-cloud") {
		t.Errorf("compiled lists %v", names)
	}
}
