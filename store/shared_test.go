package store

import (
	"slices"
	"testing"
)

// Shared keys carry versions and tombstones; a change from the fleet is
// applied only when it is newer; the observer sees local changes only.
func TestSharedState(t *testing.T) {
	s := testStore(t, t.TempDir())
	var seen []SharedChange
	s.ObserveShared(func(c SharedChange) { seen = append(seen, c) })
	if err := s.PutAllowed("a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeviceName("aa:bb:cc:dd:ee:ff", "tv"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAllowed("a.example"); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0].Key != "a/a.example" || seen[2].Deleted != true || !(seen[0].Version < seen[1].Version && seen[1].Version < seen[2].Version) {
		t.Fatalf("observed %+v", seen)
	}
	state, err := s.SharedState()
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]SharedChange{}
	for _, c := range state {
		byKey[c.Key] = c
	}
	if c := byKey["a/a.example"]; !c.Deleted || c.Version != seen[2].Version {
		t.Errorf("the deleted name: %+v, want a tombstone at %d", c, seen[2].Version)
	}
	if c := byKey["d/aa:bb:cc:dd:ee:ff"]; c.Deleted || string(c.Value) != "tv" {
		t.Errorf("the device name: %+v", c)
	}

	// An older change from the fleet loses; a newer one wins, unobserved.
	old := SharedChange{Key: "a/a.example", Value: []byte{}, Version: seen[2].Version - 1}
	if ok, err := s.ApplyShared(old); err != nil || ok {
		t.Errorf("an older change applied: %v, %v", ok, err)
	}
	newer := SharedChange{Key: "a/a.example", Value: []byte{}, Version: seen[2].Version + 1000}
	if ok, err := s.ApplyShared(newer); err != nil || !ok {
		t.Errorf("a newer change not applied: %v, %v", ok, err)
	}
	if names, _ := s.ListAllowed(); !slices.Equal(names, []string{"a.example"}) {
		t.Errorf("allowed names %v after the fleet's change", names)
	}
	if len(seen) != 3 {
		t.Errorf("the fleet's change was observed: %+v", seen[3:])
	}
	// The next local change comes after the fleet's.
	if err := s.DeleteAllowed("a.example"); err != nil {
		t.Fatal(err)
	}
	if seen[3].Version <= newer.Version {
		t.Errorf("local version %d not after the fleet's %d", seen[3].Version, newer.Version)
	}
	if _, err := s.ApplyShared(SharedChange{Key: "h/x", Version: 1}); err == nil {
		t.Error("a key outside the shared spaces was applied")
	}
}
