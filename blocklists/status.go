package blocklists

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/vigil-dns/vigil/store"
)

// Source statuses, as Pi-hole reports its gravity sources.
const (
	StatusPending      = "pending"                  // never attempted
	StatusUpdated      = "updated"                  // a new copy was fetched and is in use
	StatusUnchanged    = "unchanged"                // the source has not changed
	StatusFailedCached = "failed-using-cached-copy" // the update failed; the last good copy is in use
	StatusFailedNoCopy = "failed-no-copy"           // the update failed and there is no copy to use
	StatusBuiltin      = "built-in"                 // shipped inside the binary; nothing to fetch
	StatusDisabled     = "disabled"                 // the list is off (enabled = false): never fetched nor compiled
)

// SourceStatus is what the API and CLI show for one source. Its JSON is
// the HTTP API's, so its field names and flat shape stay as they are
// whatever the store records; newSourceStatus converts the store's record
// (store.ListMeta) at the boundary.
type SourceStatus struct {
	ID      string   `json:"id"`
	Vendor  string   `json:"vendor"`
	Kind    ListKind `json:"kind"`    // "deny" or "allow"
	Enabled bool     `json:"enabled"` // false: the list is configured but off
	// OptIn: the list is off for everyone but applies to the groups that
	// name it (ListConfig.OptIn).
	OptIn        bool       `json:"opt_in,omitempty"`
	Breaks       []Breakage `json:"breaks,omitempty"` // what turning the list on breaks
	List         string     `json:"list"`             // the configured list's name
	Source       string     `json:"source"`           // URL, file path or builtin:NAME
	ETag         string     `json:"etag,omitempty"`
	LastModified string     `json:"last_modified,omitempty"`
	FetchedAt    time.Time  `json:"fetched_at"`            // when the stored copy was fetched
	CheckedAt    time.Time  `json:"checked_at"`            // when an update was last attempted
	Size         int        `json:"size"`                  // bytes of the stored copy
	SHA256       string     `json:"sha256"`                // of the stored copy
	Format       string     `json:"format"`                // as detected or configured
	Entries      int        `json:"entries"`               // rules in the stored copy
	Rejected     int        `json:"rejected"`              // invalid lines in the stored copy
	Status       string     `json:"status"`                // outcome of the latest attempt (Status*)
	Error        string     `json:"error,omitempty"`       // why the latest attempt failed
	HasCopy      bool       `json:"has_copy"`              // a good copy is stored
	FailedSince  time.Time  `json:"failed_since,omitzero"` // first failure of the current run of failures
	// Retrying says the latest attempt failed and the source is tried
	// again at NextAttempt, with backoff, rather than at the next
	// periodic refresh. The store does not keep it: it is the running
	// Manager's schedule.
	Retrying       bool      `json:"retrying,omitempty"`
	NextAttempt    time.Time `json:"next_attempt,omitzero"`
	FailedAttempts int       `json:"failed_attempts,omitempty"` // attempts in a row that failed
}

// newSourceStatus is the status of source id of l from the store's record
// of it.
func newSourceStatus(id string, l *ListConfig, m store.ListMeta) SourceStatus {
	if !l.InUse() {
		// Whatever the store recorded from when the list was on, it is
		// not in use now.
		m.Status, m.Error, m.FailedSince = StatusDisabled, "", time.Time{}
	}
	return SourceStatus{
		ID: id, Vendor: l.Vendor, Kind: l.Kind, Enabled: l.InUse(), OptIn: l.OptInOnly(), Breaks: l.Breaks,
		List: m.List, Source: m.Source, ETag: m.ETag, LastModified: m.LastModified,
		FetchedAt: m.FetchedAt, CheckedAt: m.CheckedAt, Size: m.Size, SHA256: m.SHA256, Format: m.Format,
		Entries: m.Entries, Rejected: m.Rejected, Status: m.Status, Error: m.Error,
		HasCopy: m.HasCopy, FailedSince: m.FailedSince,
	}
}

// builtinStatus is the status of a "builtin:NAME" source: always a good
// copy, the one inside the binary. An unknown name (which validation
// refuses) shows as failed without a copy.
func builtinStatus(id string, l *ListConfig, src string) SourceStatus {
	st := SourceStatus{ID: id, Vendor: l.Vendor, Kind: l.Kind, List: l.Name, Source: src,
		Enabled: l.InUse(), OptIn: l.OptInOnly(), Breaks: l.Breaks}
	body, err := readBuiltin(src)
	if err != nil {
		st.Status, st.Error = StatusFailedNoCopy, err.Error()
		return st
	}
	ps, _ := Parse(bytes.NewReader(body), ParseOptions{Source: src, Format: l.Format, MaxRejected: -1, Allow: l.Allow()}, func(Rule) {})
	sum := sha256.Sum256(body)
	st.Size, st.SHA256, st.Format = len(body), hex.EncodeToString(sum[:]), string(ps.Format)
	st.Entries, st.Rejected, st.Status, st.HasCopy = ps.Entries, ps.Rejected, StatusBuiltin, true
	if !l.InUse() {
		st.Status = StatusDisabled
	}
	return st
}
