// Package blockliststest gives tests the shared data set of real public
// lists (../shared/data beside the repository, or $VIGIL_SHARED_DATA) and
// maps the shipped configuration's list URLs onto its copies. A user's
// clone has no shared data: tests that need it skip with a message.
package blockliststest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// SharedData returns the shared data set's directory, skipping the test
// when it is absent.
func SharedData(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("VIGIL_SHARED_DATA")
	if dir == "" {
		// This file is blocklists/blockliststest/shared.go; the data set sits
		// beside the repository's root, whichever package's test asks.
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, "SOURCES.md")); err != nil {
		tb.Skipf("real lists not found in %s (set VIGIL_SHARED_DATA); this test needs the shared data set", dir)
	}
	return dir
}

// LocalCopy maps a URL source of the shipped config onto the shared data
// set's copy of that list; ok is false for a source it has no copy of.
func LocalCopy(data, src string) (path string, ok bool) {
	switch base := src[strings.LastIndex(src, "/")+1:]; {
	case strings.Contains(src, "/hagezi/dns-blocklists/") && strings.Contains(src, "/adblock/"):
		return filepath.Join(data, "vendor", "hagezi-native", "adblock", base), true
	case strings.Contains(src, "/crazy-max/WindowsSpyBlocker/") && strings.Contains(src, "/data/hosts/"):
		// Kept as hosts-spy.txt for data/hosts/spy.txt.
		return filepath.Join(data, "vendor", "windowsspyblocker", "hosts-"+base), true
	}
	return "", false
}
