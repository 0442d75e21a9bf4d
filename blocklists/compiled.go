package blocklists

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store"
)

// The last compiled rules of the stored sources, kept by the store outside
// Badger (store.SaveCompiled): when Badger cannot be opened at all, the
// lists are compiled from this copy instead of from nothing. It is
// rewritten only when what the sources hold changes (their fingerprint),
// not at every rebuild (an exception added, a name allowed).
//
// Format: compiledMagic, the 32-byte fingerprint, then an S2 stream of
// sections, one per source: uvarint length and source ID, then per rule
// the uvarint length of its name plus one, a flags byte and the name, and
// a 0 to end the section; a zero-length ID ends the stream. Written as the
// source is parsed, so no source's rules are held in memory.
const compiledMagic = "VIGILRC1"

// compiledStore is what a store offers for the copy (*store.Store).
type compiledStore interface {
	SaveCompiled(write func(io.Writer) error) error
	ReadCompiled(read func(io.Reader) error) error
	Status() store.Status
}

const (
	ruleSuffix = 1 << iota
	ruleBelowOnly
	ruleAllow
	ruleImportant
	ruleBadFilter
	ruleAdblock
)

func ruleFlags(r Rule) byte {
	var f byte
	set := func(bit byte, on bool) {
		if on {
			f |= bit
		}
	}
	set(ruleSuffix, r.Suffix)
	set(ruleBelowOnly, r.BelowOnly)
	set(ruleAllow, r.Allow)
	set(ruleImportant, r.Important)
	set(ruleBadFilter, r.BadFilter)
	set(ruleAdblock, r.Adblock)
	return f
}

func flagsRule(f byte, name string) Rule {
	return Rule{Name: name, Suffix: f&ruleSuffix != 0, BelowOnly: f&ruleBelowOnly != 0, Allow: f&ruleAllow != 0,
		Important: f&ruleImportant != 0, BadFilter: f&ruleBadFilter != 0, Adblock: f&ruleAdblock != 0}
}

// storedSources maps the stored sources (URLs and files) of the lists in
// use to their list's index in the builder, given the indexes by list.
func (m *Manager) storedSources(listIdx map[string]int) map[string]int {
	out := map[string]int{}
	for _, l := range m.conf.Load().lists {
		idx, ok := listIdx[l.Name]
		if !ok {
			continue
		}
		for _, src := range l.Sources {
			if !IsBuiltin(src) {
				out[SourceID(l.Name, src)] = idx
			}
		}
	}
	return out
}

// fingerprint sums up what the stored sources hold.
func (m *Manager) fingerprint(ids map[string]int) [32]byte {
	h := sha256.New()
	for _, l := range m.conf.Load().lists {
		for _, src := range l.Sources {
			id := SourceID(l.Name, src)
			if _, ok := ids[id]; !ok {
				continue
			}
			meta, _ := m.store.GetListMeta(id)
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\n", id, meta.SHA256, meta.Entries, ids[id])
		}
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

// compiledUnavailable reports whether the store cannot be read at all, so
// the lists come from the compiled copy.
func (m *Manager) compiledUnavailable() bool {
	cs, ok := m.store.(compiledStore)
	return ok && cs.Status().Mode == store.Unavailable
}

// addCompiled adds the compiled copy's rules of the sources in ids to b.
func (m *Manager) addCompiled(b *Builder, ids map[string]int) (int, error) {
	cs, ok := m.store.(compiledStore)
	if !ok {
		return 0, nil
	}
	added := 0
	err := cs.ReadCompiled(func(r io.Reader) error {
		var head [len(compiledMagic) + 32]byte
		if _, err := io.ReadFull(r, head[:]); err != nil || string(head[:len(compiledMagic)]) != compiledMagic {
			return errors.New("not a compiled lists file")
		}
		return readCompiled(s2.NewReader(r), func(id string, rule Rule) {
			if idx, ok := ids[id]; ok {
				b.Add(idx, rule)
				added++
			}
		})
	})
	return added, err
}

// readCompiled reads sections until the end marker.
func readCompiled(r io.ByteReader, add func(id string, rule Rule)) error {
	var buf []byte
	read := func(n uint64) ([]byte, error) {
		if n > 1<<16 {
			return nil, errors.New("damaged compiled lists")
		}
		buf = buf[:0]
		for range n {
			c, err := r.ReadByte()
			if err != nil {
				return nil, err
			}
			buf = append(buf, c)
		}
		return buf, nil
	}
	for {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		idb, err := read(n)
		if err != nil {
			return err
		}
		id := string(idb)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			f, err := r.ReadByte()
			if err != nil {
				return err
			}
			name, err := read(n - 1)
			if err != nil {
				return err
			}
			add(id, flagsRule(f, string(name)))
		}
	}
}

// saveCompiled rewrites the compiled copy when the stored sources changed
// since it was written. Only a store open for writing is asked.
func (m *Manager) saveCompiled(ids map[string]int) {
	cs, ok := m.store.(compiledStore)
	if !ok || cs.Status().Mode != store.ReadWrite {
		return
	}
	m.compiledMu.Lock()
	defer m.compiledMu.Unlock()
	fp := m.fingerprint(ids)
	if m.savedFP == nil {
		// First rebuild since start: the file may be current already.
		_ = cs.ReadCompiled(func(r io.Reader) error {
			var head [len(compiledMagic) + 32]byte
			if _, err := io.ReadFull(r, head[:]); err == nil && string(head[:len(compiledMagic)]) == compiledMagic {
				m.savedFP = bytes.Clone(head[len(compiledMagic):])
			}
			return nil
		})
	}
	if bytes.Equal(m.savedFP, fp[:]) {
		return
	}
	err := cs.SaveCompiled(func(w io.Writer) error {
		if _, err := io.WriteString(w, compiledMagic); err != nil {
			return err
		}
		if _, err := w.Write(fp[:]); err != nil {
			return err
		}
		zw := s2.NewWriter(w)
		if err := m.writeCompiled(zw, ids); err != nil {
			return err
		}
		return zw.Close()
	})
	switch {
	case store.NotSaved(err):
	case err != nil:
		m.log.Warn("saving the compiled lists (the copy used when the store cannot be opened)", zap.Error(err))
	default:
		m.savedFP = fp[:]
	}
}

func (m *Manager) writeCompiled(w io.Writer, ids map[string]int) error {
	var buf []byte
	var werr error
	put := func(b []byte) {
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	for _, l := range m.conf.Load().lists {
		for _, src := range l.Sources {
			id := SourceID(l.Name, src)
			if _, ok := ids[id]; !ok {
				continue
			}
			if _, err := m.store.GetListMeta(id); err != nil {
				continue // no stored copy
			}
			buf = binary.AppendUvarint(buf[:0], uint64(len(id)))
			put(append(buf, id...))
			err := m.store.ReadListBody(id, func(r io.Reader) error {
				_, err := Parse(r, ParseOptions{Source: src, Format: l.Format, MaxRejected: -1, Allow: l.Allow()}, func(r Rule) {
					buf = binary.AppendUvarint(buf[:0], uint64(len(r.Name))+1)
					buf = append(buf, ruleFlags(r))
					put(append(buf, r.Name...))
				})
				return err
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			put([]byte{0})
		}
	}
	put([]byte{0})
	return werr
}
