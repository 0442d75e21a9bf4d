package main

import (
	"maps"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// nameStore is the part of the store that keeps the names given to
// devices by hand (*store.Store).
type nameStore interface {
	PutDeviceName(key, name string) error
	DeleteDeviceName(key string) error
	ListDeviceNames() (map[string]string, error)
}

// deviceNames are the names given to devices from the dashboard, the API
// or the CLI, by MAC or address, kept in the store; apply puts a change
// in force (the server's client identification is rebuilt).
type deviceNames struct {
	store nameStore
	log   *zap.Logger
	apply func() // nil until the server runs

	mu    sync.Mutex // one change at a time
	names atomic.Pointer[map[string]string]
}

func newDeviceNames(st nameStore, log *zap.Logger) *deviceNames {
	n := &deviceNames{store: st, log: log}
	names, err := st.ListDeviceNames()
	if err != nil {
		log.Warn("reading the names given to devices: going without them", zap.Error(err))
		names = map[string]string{}
	}
	n.names.Store(&names)
	return n
}

// Names returns the names given, by MAC or address; not to be changed.
func (n *deviceNames) Names() map[string]string { return *n.names.Load() }

// SetName names the device with key (a MAC or an address).
func (n *deviceNames) SetName(key, name string) error {
	return n.change(key, func(m map[string]string) error {
		m[key] = name
		return n.store.PutDeviceName(key, name)
	})
}

// ForgetName forgets the name given to the device with key.
func (n *deviceNames) ForgetName(key string) error {
	return n.change(key, func(m map[string]string) error {
		delete(m, key)
		return n.store.DeleteDeviceName(key)
	})
}

func (n *deviceNames) change(key string, fn func(map[string]string) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	next := maps.Clone(n.Names())
	if err := fn(next); err != nil {
		return err
	}
	n.names.Store(&next)
	if n.apply != nil {
		n.apply()
	}
	return nil
}

// reload reads the names again from the store (a change from the fleet)
// and puts them in force.
func (n *deviceNames) reload() {
	n.mu.Lock()
	defer n.mu.Unlock()
	names, err := n.store.ListDeviceNames()
	if err != nil {
		n.log.Warn("reading the names given to devices", zap.Error(err))
		return
	}
	n.names.Store(&names)
	if n.apply != nil {
		n.apply()
	}
}
