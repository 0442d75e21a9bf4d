//go:build linux || darwin || freebsd || dragonfly

package store

import "golang.org/x/sys/unix"

// freeBytes returns the bytes available to unprivileged writers on the
// file system holding dir.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	if st.Bavail <= 0 { // int64 on the BSDs, where it goes negative past the reserve
		return 0, nil
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
