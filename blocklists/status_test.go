package blocklists

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/store"
)

// The API's JSON for a source is what it was when SourceStatus embedded
// store.ListMeta, plus the list's enabled and breaks after its kind: the
// same keys, in the same order, with the same omissions. If store.ListMeta gains a field, this fails until someone
// decides whether the API shows it.
func TestSourceStatusJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 3, 4, 0, time.UTC)
	l := &ListConfig{Name: "ads", Vendor: "Xiaomi", Kind: KindAllow}
	for name, meta := range map[string]store.ListMeta{
		"pending": {List: "ads", Source: "https://lists.example/ads.txt", Status: StatusPending},
		"full": {
			List: "ads", Source: "https://lists.example/ads.txt", ETag: `"e1"`, LastModified: "Fri, 27 Nov 2026 02:03:04 GMT",
			FetchedAt: at, CheckedAt: at.Add(time.Hour), Size: 1234, SHA256: "abcd", Format: "adblock",
			Entries: 100, Rejected: 2, Status: StatusFailedCached, Error: "downloading: HTTP 500",
			HasCopy: true, FailedSince: at.Add(time.Minute),
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(newSourceStatus("id1", l, meta))
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(struct {
				ID      string     `json:"id"`
				Vendor  string     `json:"vendor"`
				Kind    string     `json:"kind"`
				Enabled bool       `json:"enabled"`
				Breaks  []Breakage `json:"breaks,omitempty"`
				store.ListMeta
			}{"id1", "Xiaomi", "allow", true, nil, meta})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("JSON changed:\n got %s\nwant %s", got, want)
			}
		})
	}
	// Every field of the store's record reaches the status.
	if n, m := reflect.TypeFor[SourceStatus]().NumField(), reflect.TypeFor[store.ListMeta]().NumField(); n != m+9 {
		t.Errorf("SourceStatus has %d fields, store.ListMeta %d: want ID, Vendor, Kind, Enabled, OptIn, Breaks, each of the record's and the three retry fields", n, m)
	}
}
