//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import "os"

// lockShared opens dir; there is no lock to take here.
func lockShared(dir string) (*os.File, error) { return os.Open(dir) }
