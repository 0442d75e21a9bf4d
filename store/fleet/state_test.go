package fleet

import "testing"

// Store keys survive vigil_state's text column, NUL separators included.
func TestDBKeyRoundTrip(t *testing.T) {
	for _, k := range []string{"a/example.org", "x/client:tv\x00a.example", "d/aa:bb:cc:dd:ee:ff", "x/group:100%\x00%00.example", "p/*"} {
		db := dbKey(k)
		for i := range len(db) {
			if db[i] == 0 {
				t.Errorf("%q keeps a NUL as %q", k, db)
			}
		}
		if back := storeKey(db); back != k {
			t.Errorf("%q -> %q -> %q", k, db, back)
		}
	}
}
