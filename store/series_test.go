package store

import (
	"testing"
	"time"
)

func TestSeries(t *testing.T) {
	s := testStore(t, t.TempDir())
	defer s.Close()
	now := time.Now().UTC()
	for _, c := range []struct {
		at   time.Time
		q, b uint64
	}{{now.Add(-3 * time.Hour), 10, 2}, {now.Add(-3 * time.Hour), 5, 1}, {now, 7, 0}} {
		if err := s.AddSeries(c.at, c.q, c.b, time.Hour*24); err != nil {
			t.Fatal(err)
		}
	}
	pts, err := s.Series(now.Add(-5*time.Hour), now)
	if err != nil || len(pts) != 6 {
		t.Fatalf("%d points, %v", len(pts), err)
	}
	if p := pts[2]; p.Queries != 15 || p.Blocked != 3 {
		t.Errorf("3 hours ago: %+v, want 15 queries, 3 blocked", p)
	}
	if p := pts[5]; p.Queries != 7 {
		t.Errorf("this hour: %+v", p)
	}
	if p := pts[0]; p.Queries != 0 {
		t.Errorf("empty hour: %+v", p)
	}
}
