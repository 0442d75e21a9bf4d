package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The lists' last compiled rules, kept beside Badger in one plain file,
// <store.dir>/lists.compiled, for the day Badger cannot be opened at all
// (a damaged directory): the server then blocks from this copy rather
// than from nothing. The blocklists package writes and reads its content;
// the store only keeps the file, written whole to a temporary name,
// synced and renamed, so a crash leaves the old copy or the new one.
const compiledFile = "lists.compiled"

// SaveCompiled replaces the compiled copy with what write writes. Like
// every write, it is skipped on a full disk or a store not open for
// writing (NotSaved).
func (s *Store) SaveCompiled(write func(io.Writer) error) error {
	s.checkDisk()
	s.mu.RLock()
	mode := s.mode
	s.mu.RUnlock()
	switch {
	case mode != ReadWrite:
		s.skipped.Add(1)
		return fmt.Errorf("saving the compiled lists: %w", ErrReadOnly)
	case s.lowDisk.Load():
		s.skipped.Add(1)
		return fmt.Errorf("saving the compiled lists: %w", ErrLowDisk)
	}
	path := filepath.Join(s.cfg.Dir, compiledFile)
	f, err := os.CreateTemp(s.cfg.Dir, compiledFile+".*")
	if err != nil {
		return fmt.Errorf("saving the compiled lists: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	w := bufio.NewWriterSize(f, 256<<10)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("saving the compiled lists: %w", err)
	}
	return nil
}

// ReadCompiled calls read with the compiled copy; ErrNotFound when there
// is none. It works whatever the store's mode.
func (s *Store) ReadCompiled(read func(io.Reader) error) error {
	f, err := os.Open(filepath.Join(s.cfg.Dir, compiledFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the compiled lists: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading the compiled lists: %w", err)
	}
	defer f.Close()
	return read(bufio.NewReaderSize(f, 256<<10))
}
