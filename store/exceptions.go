package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Names allowed or blocked from the dashboard, the API or the CLI for one
// device, one group or everyone, for good or until a time:
// "x/<scope>\x00<name>" -> JSON Exception. The names allowed for everyone
// for good keep their older form ("a/<name>", allow.go).

const exceptionPrefix = "x/"

// Exception is one name allowed or blocked by hand.
type Exception struct {
	// Name is the domain name, normalised; the exception is for it alone
	// (not the names below it).
	Name string `json:"name"`
	// Scope is "" for everyone, "client:NAME" for one device (by name, or
	// by address when it has none), "group:NAME" for a group.
	Scope string `json:"scope,omitempty"`
	// Block is true for a name blocked, false for one allowed.
	Block bool `json:"block"`
	// Until is when the exception ends by itself; zero for never.
	Until time.Time `json:"until,omitzero"`
	// Added is when it was made.
	Added time.Time `json:"added"`
}

func exceptionKey(scope, name string) []byte {
	return []byte(exceptionPrefix + scope + "\x00" + name)
}

// PutException records e, replacing any exception for the same name and
// scope.
func (s *Store) PutException(e Exception) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.setShared("storing the exception for "+e.Name, string(exceptionKey(e.Scope, e.Name)), v, false)
}

// DeleteException forgets the exception for name in scope.
func (s *Store) DeleteException(scope, name string) error {
	return s.setShared("deleting the exception for "+name, string(exceptionKey(scope, name)), nil, true)
}

// ListExceptions returns every exception, by scope and name.
func (s *Store) ListExceptions() ([]Exception, error) {
	var out []Exception
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(exceptionPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var e Exception
				err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) })
				if err != nil {
					return fmt.Errorf("%q: %w", strings.ReplaceAll(string(it.Item().Key()), "\x00", "/"), err)
				}
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing exceptions: %w", err)
	}
	return out, nil
}
