package resolver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// localRecordTypes are the types [local] records may have.
var localRecordTypes = map[uint16]bool{
	dns.TypeA: true, dns.TypeAAAA: true, dns.TypeCNAME: true, dns.TypePTR: true,
	dns.TypeTXT: true, dns.TypeSRV: true, dns.TypeMX: true,
}

// hostsTTL is the TTL of answers from hosts files, dnsmasq's local-ttl
// spirit: short, since the file may change.
const hostsTTL = 60

// ParseLocalRecord reads one zone-file line ("printer.lan. 300 IN A
// 192.168.1.9"; a name without a final dot is taken as fully qualified).
func ParseLocalRecord(line string) (dns.RR, error) {
	rr, err := dns.NewRR(line)
	if err != nil {
		return nil, fmt.Errorf("want a zone-file line such as \"printer.lan. 300 IN A 192.168.1.9\", got %q: %w", line, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("want a record, got %q", line)
	}
	if !localRecordTypes[rr.Header().Rrtype] {
		return nil, fmt.Errorf("want a record of type A, AAAA, CNAME, PTR, TXT, SRV or MX, got %s in %q", dns.TypeToString[rr.Header().Rrtype], line)
	}
	if rr.Header().Class != dns.ClassINET {
		return nil, fmt.Errorf("want class IN, got %q", line)
	}
	rr.Header().Name = strings.ToLower(rr.Header().Name)
	return rr, nil
}

// RecordTable is the locally-answered records: from [local] records and
// hosts files, with PTRs for their addresses. It is immutable once built.
type RecordTable struct {
	byName map[string][]dns.RR // lowercase owner name → its records
	// tops are the top labels of the names ("lan", "arpa"): every query
	// asks has, and most (example.com) are turned away by a look at a
	// handful of short strings instead of a hash into a big map.
	tops []string
}

// Len returns the number of names with records.
func (t *RecordTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byName)
}

// has reports whether name (lowercase, fully qualified) has records.
func (t *RecordTable) has(name string) bool {
	if t == nil || len(t.byName) == 0 {
		return false
	}
	if !slices.Contains(t.tops, topLabel(name)) {
		return false
	}
	_, ok := t.byName[name]
	return ok
}

// topLabel returns the last label of a fully qualified name ("lan" of
// "printer.lan.").
func topLabel(name string) string {
	top := strings.TrimSuffix(name, ".")
	if i := strings.LastIndexByte(top, '.'); i >= 0 {
		top = top[i+1:]
	}
	return top
}

// answer returns the records of name for qtype: those of the type, or
// the name's CNAME (with what the table holds for its target, one step),
// or none (NODATA: the name exists with other types).
func (t *RecordTable) answer(name string, qtype uint16) []dns.RR {
	rrs := t.byName[name]
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, dns.Copy(rr))
		}
	}
	if len(out) > 0 || qtype == dns.TypeCNAME {
		return out
	}
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			out = append(out, dns.Copy(c))
			for _, target := range t.byName[strings.ToLower(c.Target)] {
				if target.Header().Rrtype == qtype {
					out = append(out, dns.Copy(target))
				}
			}
			break
		}
	}
	return out
}

// RecordSources builds the RecordTable from [local] records and hosts
// files, and notices when a hosts file changes.
type RecordSources struct {
	records    []dns.RR
	hostsFiles []string
	ptr        bool
	stamps     []fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewRecordSources returns the sources of a validated [local] section.
func NewRecordSources(cfg NetworkConfig) *RecordSources {
	s := &RecordSources{hostsFiles: cfg.HostsFiles, ptr: cfg.SynthesizePTR}
	for _, line := range cfg.Records {
		if rr, err := ParseLocalRecord(line); err == nil {
			s.records = append(s.records, rr)
		}
	}
	return s
}

// Load reads the hosts files and builds the table. A hosts file that
// cannot be read is an error: the caller keeps the previous table.
func (s *RecordSources) Load() (*RecordTable, error) {
	t := &RecordTable{byName: map[string][]dns.RR{}}
	add := func(rr dns.RR) {
		name := rr.Header().Name
		for _, have := range t.byName[name] {
			if dns.IsDuplicate(have, rr) {
				return
			}
		}
		t.byName[name] = append(t.byName[name], rr)
	}
	stamps := make([]fileStamp, len(s.hostsFiles))
	var hosts []dns.RR
	for i, path := range s.hostsFiles {
		rrs, st, err := readHostsFile(path)
		if err != nil {
			return nil, err
		}
		stamps[i] = st
		hosts = append(hosts, rrs...)
	}
	all := append(slices.Clone(s.records), hosts...)
	for _, rr := range all {
		add(rr)
	}
	if s.ptr {
		// In the order records were given (hosts files in their order),
		// so a PTR with several names lists them the same way each time.
		for _, rr := range all {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			default:
				continue
			}
			if rev, err := dns.ReverseAddr(ip.String()); err == nil {
				add(&dns.PTR{Hdr: dns.RR_Header{Name: rev, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: rr.Header().Ttl}, Ptr: rr.Header().Name})
			}
		}
	}
	for name := range t.byName {
		if top := topLabel(name); !slices.Contains(t.tops, top) {
			t.tops = append(t.tops, top)
		}
	}
	s.stamps = stamps
	return t, nil
}

// Changed reports whether a hosts file changed (time or size) since the
// last Load.
func (s *RecordSources) Changed() bool {
	if len(s.stamps) != len(s.hostsFiles) {
		return len(s.hostsFiles) > 0
	}
	for i, path := range s.hostsFiles {
		fi, err := os.Stat(path)
		if err != nil || !fi.ModTime().Equal(s.stamps[i].mod) || fi.Size() != s.stamps[i].size {
			return true
		}
	}
	return false
}

// maxHostsFile bounds one hosts file; a bigger one is a blocklist in the
// wrong place.
const maxHostsFile = 16 << 20

// readHostsFile reads /etc/hosts-style lines: an address, then names.
// Lines that do not parse are skipped, as the system's resolver does.
func readHostsFile(path string) ([]dns.RR, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("reading hosts file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("reading hosts file: %w", err)
	}
	if fi.Size() > maxHostsFile {
		return nil, fileStamp{}, fmt.Errorf("hosts file %s: larger than %d bytes", path, maxHostsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("reading hosts file: %w", err)
	}
	rrs, err := parseHosts(data)
	return rrs, fileStamp{mod: fi.ModTime(), size: fi.Size()}, err
}

func parseHosts(data []byte) ([]dns.RR, error) {
	var out []dns.RR
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil || addr.Zone() != "" {
			continue
		}
		addr = addr.Unmap()
		if addr.IsUnspecified() {
			continue // "0.0.0.0 name" is a blocklist line, not a host
		}
		for _, name := range fields[1:] {
			fq, ok := hostName(name)
			if !ok {
				continue
			}
			hdr := dns.RR_Header{Name: fq, Class: dns.ClassINET, Ttl: hostsTTL}
			if addr.Is4() {
				hdr.Rrtype = dns.TypeA
				out = append(out, &dns.A{Hdr: hdr, A: addr.AsSlice()})
			} else {
				hdr.Rrtype = dns.TypeAAAA
				out = append(out, &dns.AAAA{Hdr: hdr, AAAA: addr.AsSlice()})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, errors.New("hosts file: a line longer than 64 KiB")
	}
	return out, nil
}

// hostName returns a hosts file's name lowercased and fully qualified, if
// it is a host name: letters, digits, '-' and '_' in dot-separated labels
// of 1 to 63, 253 in all (no escapes, which a hosts file cannot mean).
func hostName(name string) (string, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || len(name) > 253 {
		return "", false
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return "", false
		}
		if label++; label > 63 {
			return "", false
		}
	}
	return name + ".", true
}
