package resolver

import (
	"time"

	"encoding/binary"
	"errors"

	"github.com/klauspost/compress/s2"
	"github.com/miekg/dns"
)

// Cache snapshots let a restart begin warm (a router reboot need not send
// every device's first lookups upstream again). A snapshot holds each
// fresh entry with its absolute store and expiry times, so restored
// answers keep counting down their TTLs as if Vigil had never stopped.

const snapshotV1 = 1

// Snapshot encodes every fresh entry, S2-compressed. It takes each shard's
// lock in turn (lookups take none, so the query path is not held up).
func (c *Cache) Snapshot() []byte {
	now := c.now()
	b := []byte{snapshotV1}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.each(func(e *cacheEntry) {
			if now >= e.expires || e.key.view != 0 {
				return // a group's own upstreams' answers: the groups may differ at the next start
			}
			b = binary.AppendUvarint(b, uint64(len(e.key.name)))
			b = append(b, e.key.name...)
			b = binary.BigEndian.AppendUint16(b, e.key.qtype)
			b = binary.BigEndian.AppendUint16(b, e.key.cls)
			var flags byte
			if e.key.do {
				flags |= 1
			}
			if e.key.cd {
				flags |= 2
			}
			b = append(b, flags)
			b = binary.BigEndian.AppendUint64(b, uint64(e.stored))
			b = binary.BigEndian.AppendUint64(b, uint64(e.expires))
			b = binary.AppendUvarint(b, uint64(len(e.wire)))
			b = append(b, e.wire...)
		})
		sh.mu.Unlock()
	}
	return s2.Encode(nil, b)
}

var errSnapshot = errors.New("damaged cache snapshot")

// Restore loads a snapshot, skipping entries that have expired since, and
// returns how many it restored. Entries are charged against the byte
// budget like any other.
func (c *Cache) Restore(snap []byte) (int, error) {
	b, err := s2.Decode(nil, snap)
	if err != nil || len(b) == 0 || b[0] != snapshotV1 {
		return 0, errSnapshot
	}
	b = b[1:]
	now := c.now()
	n := 0
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l+21 {
			return n, errSnapshot
		}
		b = b[k:]
		key := cacheKey{name: string(b[:l])}
		b = b[l:]
		key.qtype, key.cls = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
		key.do, key.cd = b[4]&1 != 0, b[4]&2 != 0
		stored, expires := int64(binary.BigEndian.Uint64(b[5:])), int64(binary.BigEndian.Uint64(b[13:]))
		b = b[21:]
		l, k = binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return n, errSnapshot
		}
		wire := b[k : k+int(l)] // newCacheEntry copies it
		b = b[k+int(l):]
		if now >= expires || stored > now+int64(time.Minute) {
			// Expired, or stored after now: the clock went back since the
			// snapshot (a router booting without a real-time clock), and
			// the entry would look fresh until the clock caught up.
			continue
		}
		m := new(dns.Msg)
		if m.Unpack(wire) != nil {
			continue
		}
		e, err := newCacheEntry(key, wire, m, stored, expires)
		if err != nil {
			continue
		}
		e.hash = c.hashKey(key)
		c.insert(c.shardOf(e.hash), e, now)
		n++
	}
	return n, nil
}
