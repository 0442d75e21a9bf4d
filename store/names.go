package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Devices named from the dashboard, the API or the CLI: "d/<key>" -> the
// name, where the key is the device's MAC ("aa:bb:cc:dd:ee:ff") when it
// is known, else its address.

const namePrefix = "d/"

// PutDeviceName names the device with key (a MAC or an address).
func (s *Store) PutDeviceName(key, name string) error {
	return s.setShared("naming "+key, namePrefix+key, []byte(name), false)
}

// DeleteDeviceName forgets the name given to the device with key.
func (s *Store) DeleteDeviceName(key string) error {
	return s.setShared("forgetting the name of "+key, namePrefix+key, nil, true)
}

// ListDeviceNames returns every name given, by key.
func (s *Store) ListDeviceNames() (map[string]string, error) {
	out := map[string]string{}
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(namePrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				out[string(it.Item().Key()[len(namePrefix):])] = string(v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing device names: %w", err)
	}
	return out, nil
}
