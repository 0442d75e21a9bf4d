package blocklists

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/store"
)

// Exceptions made by hand become scoped lists in the one Matcher, are
// kept in the store across a restart, end by themselves, and a name
// allowed for everyone for good keeps its older form (GET /api/v1/allow).
func TestManagerExceptions(t *testing.T) {
	lists := validLists(t, []ListConfig{{Name: "vendor", Vendor: "V", Entries: []string{"||vendor.example^"}}})
	dir := t.TempDir()
	st := openStore(t, dir)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	m.now = func() time.Time { return now }
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, x := range []store.Exception{
		{Name: "A.Vendor.Example.", Scope: ScopeClient + "kids-tablet"},
		{Name: "b.vendor.example", Scope: ScopeGroup + "kids", Until: now.Add(time.Hour)},
		{Name: "www.example.org", Scope: ScopeClient + "10.0.0.5", Block: true, Until: now.Add(2 * time.Hour)},
		{Name: "c.vendor.example"}, // everyone, for good: the older form
		{Name: "bad.example", Block: true},
	} {
		if err := m.AddException(x); err != nil {
			t.Fatalf("%+v: %v", x, err)
		}
	}
	if err := m.AddException(store.Exception{Name: "x.example", Scope: "device:x"}); err == nil {
		t.Error("an unknown scope was accepted")
	}
	if err := m.AddException(store.Exception{Name: "x.example", Until: now.Add(-time.Second)}); err == nil {
		t.Error("an exception ending in the past was accepted")
	}
	if names, _ := m.Allowed(); len(names) != 1 || names[0] != "c.vendor.example" {
		t.Errorf("allowed names (older form) = %v", names)
	}
	lists2 := map[string]ListInfo{}
	for _, l := range m.Current().Matcher.Lists() {
		lists2[l.Name] = l
	}
	for name, scope := range map[string]string{
		"allowed:client:kids-tablet": "client:kids-tablet", "allowed:group:kids": "group:kids",
		"blocked:client:10.0.0.5": "client:10.0.0.5", AllowedNowList: ScopeEveryone, BlockedNowList: ScopeEveryone,
	} {
		if l, ok := lists2[name]; !ok || l.Scope != scope {
			t.Errorf("list %s: %+v, want scope %s (lists %v)", name, l, scope, lists2)
		}
	}
	if v, ok := m.Current().Matcher.Match("a.vendor.example."); !ok || v.Blocked || !v.Rule.Important {
		t.Errorf("a device's allow = %+v, %v; want an $important exception", v, ok)
	}
	xs, _ := m.Exceptions()
	if len(xs) != 5 {
		t.Errorf("exceptions %+v, want 5", xs)
	}
	if due, ok := m.expiryDue(); !ok || !due.Equal(now.Add(time.Hour)) {
		t.Errorf("next end %v %v, want in an hour", due, ok)
	}

	// An hour later the group's exception has ended: Run's wake-up
	// rebuilds without it and deletes it.
	now = now.Add(time.Hour)
	m.expire()
	if _, ok := lists2["allowed:group:kids"]; ok {
		for _, l := range m.Current().Matcher.Lists() {
			if l.Name == "allowed:group:kids" {
				t.Error("the ended exception's list is still compiled")
			}
		}
	}
	if xs, _ := st.ListExceptions(); len(xs) != 3 { // the group's gone; the older form is not among these
		t.Errorf("stored exceptions after the end: %+v", xs)
	}
	if due, _ := m.expiryDue(); !due.Equal(now.Add(time.Hour)) {
		t.Errorf("next end %v, want the device's block in another hour", due)
	}

	// Replacing: a block for the same name and scope replaces the allow;
	// removing takes it away.
	if err := m.AddException(store.Exception{Name: "a.vendor.example", Scope: ScopeClient + "kids-tablet", Block: true}); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveException("", "c.vendor.example"); err != nil {
		t.Fatal(err)
	}
	xs, _ = m.Exceptions()
	var got []string
	for _, x := range xs {
		got = append(got, x.Scope+"/"+x.Name+map[bool]string{true: "/block", false: "/allow"}[x.Block])
	}
	want := "/bad.example/block client:10.0.0.5/www.example.org/block client:kids-tablet/a.vendor.example/block"
	if strings.Join(got, " ") != want {
		t.Errorf("exceptions:\n got %s\nwant %s", strings.Join(got, " "), want)
	}

	// After a restart they are all still there.
	st.Close()
	st2 := openStore(t, dir)
	m2 := NewManager(testUpdateConfig(), lists, st2, zaptest.NewLogger(t))
	m2.now = func() time.Time { return now }
	if err := m2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, ok := m2.Current().Matcher.Match("bad.example."); !ok || !v.Blocked || v.List.Name != BlockedNowList {
		t.Errorf("after a restart bad.example = %+v %v", v, ok)
	}
}
