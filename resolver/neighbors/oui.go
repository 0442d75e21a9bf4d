// Package neighbors learns who is on the local network without anyone
// typing it in: device names from DHCP lease files, hardware addresses
// from the kernel's neighbour table, and the hardware vendor from a MAC
// address's OUI (the IEEE registry, compiled into the binary).
package neighbors

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:generate go run ./internal/ouigen -in /usr/share/ieee-data/oui.csv -out oui.bin.gz

// ouiData is the IEEE MA-L registry as internal/ouigen compiles it.
//
//go:embed oui.bin.gz
var ouiData []byte

// ouiTable maps the first three bytes of a MAC to its registrant. It is
// read from ouiData on first use (some 0.5 MB in memory) and never
// changes after.
type ouiTable struct {
	prefixes []uint32 // sorted
	vendor   []uint16 // index into names, parallel to prefixes
	names    []string
}

var (
	ouiOnce   sync.Once
	ouiLoaded *ouiTable
)

func loadOUI() *ouiTable {
	ouiOnce.Do(func() {
		t, err := parseOUI(ouiData)
		if err != nil {
			panic(fmt.Sprintf("neighbors: the embedded OUI table is damaged: %v", err)) // a build defect, caught by the tests
		}
		ouiLoaded = t
	})
	return ouiLoaded
}

func parseOUI(data []byte) (*ouiTable, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(zr)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 0 || n > 1<<24 {
		return nil, fmt.Errorf("bad record count %q", line)
	}
	t := &ouiTable{prefixes: make([]uint32, n), vendor: make([]uint16, n)}
	var rec [5]byte
	for i := range n {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return nil, err
		}
		t.prefixes[i] = uint32(rec[0])<<16 | uint32(rec[1])<<8 | uint32(rec[2])
		t.vendor[i] = uint16(rec[3])<<8 | uint16(rec[4])
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	t.names = strings.Split(string(rest), "\n")
	for _, v := range t.vendor {
		if int(v) >= len(t.names) {
			return nil, fmt.Errorf("vendor index %d of %d", v, len(t.names))
		}
	}
	return t, nil
}

// HardwareVendor describes a MAC address's maker.
type HardwareVendor struct {
	// Name is the IEEE registrant of the address's OUI ("Xiaomi
	// Communications Co Ltd"); "" when unregistered or randomised.
	Name string `json:"name,omitempty"`
	// Randomized says the address is locally administered: phones and
	// laptops make up such addresses per network for privacy, so the
	// first three bytes name no maker and are not looked up.
	Randomized bool `json:"randomized,omitempty"`
}

// VendorOf returns the maker of a MAC address ("aa:bb:cc:dd:ee:ff").
func VendorOf(mac string) HardwareVendor {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw[0]&1 != 0 { // not a unicast device address
		return HardwareVendor{}
	}
	if hw[0]&2 != 0 {
		return HardwareVendor{Randomized: true}
	}
	t := loadOUI()
	p := uint32(hw[0])<<16 | uint32(hw[1])<<8 | uint32(hw[2])
	i := sort.Search(len(t.prefixes), func(i int) bool { return t.prefixes[i] >= p })
	if i < len(t.prefixes) && t.prefixes[i] == p {
		return HardwareVendor{Name: t.names[t.vendor[i]]}
	}
	return HardwareVendor{}
}
