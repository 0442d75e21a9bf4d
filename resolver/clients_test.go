package resolver

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestClientsIdentify(t *testing.T) {
	cfg := []ClientConfig{
		{Name: "phone", Addresses: MustParseAddrOrPrefixes("192.168.1.23", "fd00::23"), MACs: MustParseMACs("aa:bb:cc:dd:ee:01")},
		{Name: "iot", Addresses: MustParseAddrOrPrefixes("192.168.50.0/24")},
		{Name: "one-of-iot", Addresses: MustParseAddrOrPrefixes("192.168.50.0/28")},
	}
	if err := ValidateClients(cfg); err != nil {
		t.Fatal(err)
	}
	cl := NewClients(cfg, IdentifyConfig{TrustedForwarders: []netip.Prefix{netip.MustParsePrefix("192.168.1.1/32")}})

	withOpts := func(opts ...dns.EDNS0) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("x.example.", dns.TypeA)
		if len(opts) > 0 {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = opts
		}
		return m
	}
	mac := &dns.EDNS0_LOCAL{Code: ednsMACBinary, Data: []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01}}
	macText := &dns.EDNS0_LOCAL{Code: ednsMACText, Data: []byte("aa:bb:cc:dd:ee:01")}
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP("192.168.50.20").To4()}
	ecs24 := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.168.50.0").To4()}
	cases := []struct {
		name, from string
		msg        *dns.Msg
		wantName   string
		wantAddr   string
		wantMAC    string
	}{
		{"by address", "192.168.1.23", withOpts(), "phone", "192.168.1.23", ""},
		{"by IPv6 address", "fd00::23", withOpts(), "phone", "fd00::23", ""},
		{"by prefix, longest wins", "192.168.50.5", withOpts(), "one-of-iot", "192.168.50.5", ""},
		{"by wider prefix", "192.168.50.200", withOpts(), "iot", "192.168.50.200", ""},
		{"unknown", "10.9.9.9", withOpts(), "", "10.9.9.9", ""},
		{"MAC from trusted forwarder", "192.168.1.1", withOpts(mac), "phone", "192.168.1.1", "aa:bb:cc:dd:ee:01"},
		{"text MAC from trusted forwarder", "192.168.1.1", withOpts(macText), "phone", "192.168.1.1", "aa:bb:cc:dd:ee:01"},
		{"ECS from trusted forwarder", "192.168.1.1", withOpts(ecs), "iot", "192.168.50.20", ""},
		{"partial ECS is a network, not a device", "192.168.1.1", withOpts(ecs24), "", "192.168.1.1", ""},
		{"MAC from anyone else ignored", "10.9.9.9", withOpts(mac), "", "10.9.9.9", ""},
		{"ECS from anyone else ignored", "192.168.1.23", withOpts(ecs), "phone", "192.168.1.23", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cl.Identify(netip.MustParseAddr(tc.from), tc.msg)
			if got.Name != tc.wantName || got.Addr.String() != tc.wantAddr || got.MAC != tc.wantMAC {
				t.Errorf("got %+v; want name %q addr %s mac %q", got, tc.wantName, tc.wantAddr, tc.wantMAC)
			}
		})
	}
}

func TestValidateClients(t *testing.T) {
	// Addresses and MACs that do not parse never get here (the decoder
	// refuses them, TestAddrOrPrefixText); Validate still refuses values
	// built by hand that parsing could not have produced.
	err := ValidateClients([]ClientConfig{
		{Name: "a", Addresses: []AddrOrPrefix{{}}},
		{Name: "a", MACs: MustParseMACs("aa:bb:cc:dd:ee:ff")},
		{Name: "", Addresses: MustParseAddrOrPrefixes("10.0.0.1")},
		{Name: "b"},
		{Name: "c", Addresses: []AddrOrPrefix{AddrOrPrefix(netip.MustParsePrefix("10.1.2.3/8"))}},
	})
	for _, want := range []string{"clients[0] (a).addresses[0]: want an IP address or prefix", "clients[1] (a).name", "clients[2].name",
		"clients[3] (b): want addresses or macs", `clients[4] (c).addresses[0]: want an IP address or prefix such as "192.168.1.23" or "192.168.1.0/24", got "10.1.2.3/8"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestColonMAC(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"aa:bb:cc:dd:ee:08", true}, {"00:11:22:33:44:55", true},
		{"AA:BB:CC:DD:EE:08", false}, {"aa-bb-cc-dd-ee-08", false}, {"aa:bb:cc:dd:ee", false}, {"", false}, {"aa:bb:cc:dd:ee:0g", false},
	} {
		hw, ok := colonMAC(tc.in)
		if ok != tc.ok {
			t.Errorf("colonMAC(%q) ok %v, want %v", tc.in, ok, tc.ok)
		}
		if ok && net.HardwareAddr(hw[:]).String() != tc.in {
			t.Errorf("colonMAC(%q) = %v", tc.in, hw)
		}
	}
	if n := testing.AllocsPerRun(100, func() { colonMAC("aa:bb:cc:dd:ee:08") }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// A device named by hand is named by its MAC (from the neighbour table or
// a lease) or its address; a [[clients]] entry still wins, and the name
// it gave itself loses.
func TestClientsNamedByHand(t *testing.T) {
	learned := fakeNeighborhood{
		netip.MustParseAddr("192.168.1.20"): {"android-5f2a", "aa:bb:cc:00:00:01"},
		netip.MustParseAddr("192.168.1.21"): {"roku", ""},
		netip.MustParseAddr("192.168.1.22"): {"tv-lease", "aa:bb:cc:00:00:03"},
	}
	c := NewClients([]ClientConfig{{Name: "configured-tv", MACs: MustParseMACs("aa:bb:cc:00:00:03")}}, IdentifyConfig{}).
		Learning(learned).Naming(map[string]string{"aa:bb:cc:00:00:01": "kids-tablet", "192.168.1.21": "living-room-roku",
		"aa:bb:cc:00:00:03": "not-this", "192.168.1.99": "printer"})
	for addr, want := range map[string]string{
		"192.168.1.20": "kids-tablet", "192.168.1.21": "living-room-roku", "192.168.1.22": "configured-tv", "192.168.1.99": "printer", "192.168.1.98": "",
	} {
		cl := Client{Addr: netip.MustParseAddr(addr)}
		c.complete(&cl)
		if cl.Name != want {
			t.Errorf("%s: named %q, want %q", addr, cl.Name, want)
		}
	}
}

type fakeNeighborhood map[netip.Addr][2]string

func (f fakeNeighborhood) Lookup(a netip.Addr) (string, string) { v := f[a]; return v[0], v[1] }
