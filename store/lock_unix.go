//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockShared takes a shared lock on dir, as Badger's read-only open does
// (Badger's read-write open takes it exclusively), and returns what
// releases it.
func lockShared(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
