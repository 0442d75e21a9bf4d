package blocklists

import (
	"context"
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
