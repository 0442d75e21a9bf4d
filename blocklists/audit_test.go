package blocklists

import (
	"context"
	"testing"

	"go.uber.org/zap/zaptest"
)

// TestAudit: per deny list (a list that is off too, so it can be judged
// before it is turned on), the allow rules' names it blocks (and
// the allowlist rescues, unless the deny rule is $important), and the
// popular names it blocks, ranked.
func TestAudit(t *testing.T) {
	lists := validLists(t, []ListConfig{
		{Name: "vendor", Vendor: "V", Entries: []string{"||micloud.example^", "||ads.example^$important"}},
		{Name: "off", Vendor: "O", Entries: []string{"||www.example^"}, Enabled: new(bool)},
		{Name: "keep", Kind: KindAllow, Entries: []string{"@@||find.micloud.example^", "@@||x.ads.example^"}},
	})
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := m.Audit([]string{"www.example", "micloud.example", "find.micloud.example", "x.ads.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].List != "vendor" || !got[0].Enabled || got[1].List != "off" || got[1].Enabled {
		t.Fatalf("audited %+v; want both deny lists, the one that is off marked so", got)
	}
	if off := got[1]; len(off.Popular) != 1 || off.Popular[0].Name != "www.example" {
		t.Errorf("the list that is off: popular %+v", off.Popular)
	}
	a := got[0]
	if len(a.Rescued) != 1 || a.Rescued[0].Name != "find.micloud.example" || a.Rescued[0].AllowedBy != "keep" {
		t.Errorf("rescued %+v; want find.micloud.example by keep (x.ads.example is $important)", a.Rescued)
	}
	want := []AuditedName{
		{Name: "micloud.example", Rank: 2, Rule: "||micloud.example^"},
		{Name: "find.micloud.example", Rank: 3, Rule: "||micloud.example^", Allowed: true, AllowedBy: "keep"},
		{Name: "x.ads.example", Rank: 4, Rule: "||ads.example^$important"},
	}
	if len(a.Popular) != len(want) {
		t.Fatalf("popular %+v; want %+v", a.Popular, want)
	}
	for i := range want {
		if a.Popular[i] != want[i] {
			t.Errorf("popular[%d] = %+v; want %+v", i, a.Popular[i], want[i])
		}
	}
}

// A source with no stored copy (never fetched) is named in the audit, so
// "0 rules" is not taken for a list that blocks nothing.
func TestAuditNamesSourcesNeverFetched(t *testing.T) {
	lists := validLists(t, []ListConfig{
		{Name: "remote", Vendor: "R", Sources: []string{"https://lists.example/remote.txt"}, Enabled: new(bool)},
	})
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	got, err := m.Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Rules != 0 || len(got[0].Unread) != 1 || got[0].Unread[0] != "https://lists.example/remote.txt" {
		t.Fatalf("audited %+v", got)
	}
}
