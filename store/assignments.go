package store

import (
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Devices moved between groups from the dashboard, the API or the CLI,
// kept until moved back: "m/<client>" -> JSON list of group names. The
// client is its identity in the log (its name, or its address).

const assignmentPrefix = "m/"

// PutAssignment puts client in exactly these groups (none: in no group,
// so the default group's), overriding the configuration's [[groups]].
func (s *Store) PutAssignment(client string, groups []string) error {
	if groups == nil {
		groups = []string{}
	}
	v, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	return s.setShared("storing the groups of "+client, assignmentPrefix+client, v, false)
}

// DeleteAssignment gives client back the groups the configuration gives it.
func (s *Store) DeleteAssignment(client string) error {
	return s.setShared("deleting the groups of "+client, assignmentPrefix+client, nil, true)
}

// ListAssignments returns every client's assigned groups.
func (s *Store) ListAssignments() (map[string][]string, error) {
	out := map[string][]string{}
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(assignmentPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var gs []string
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &gs) }); err != nil {
					return fmt.Errorf("%s: %w", it.Item().Key(), err)
				}
				out[string(it.Item().Key()[len(assignmentPrefix):])] = gs
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing group assignments: %w", err)
	}
	return out, nil
}
