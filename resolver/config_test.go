package resolver

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/vigil-dns/vigil"
)

func TestUpstreamSpecText(t *testing.T) {
	good := []struct {
		in   string
		want UpstreamSpec
		text string // MarshalText: the canonical spelling
	}{
		{"9.9.9.9:53", UpstreamSpec{Net: "udp", Addr: netip.MustParseAddrPort("9.9.9.9:53")}, "udp://9.9.9.9:53"},
		{"9.9.9.9", UpstreamSpec{Net: "udp", Addr: netip.MustParseAddrPort("9.9.9.9:53")}, "udp://9.9.9.9:53"},
		{"[2620:fe::fe]:53", UpstreamSpec{Net: "udp", Addr: netip.MustParseAddrPort("[2620:fe::fe]:53")}, "udp://[2620:fe::fe]:53"},
		{"[::ffff:1.2.3.4]:53", UpstreamSpec{Net: "udp", Addr: netip.MustParseAddrPort("1.2.3.4:53")}, "udp://1.2.3.4:53"},
		{"udp://127.0.0.1:5353", UpstreamSpec{Net: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5353")}, "udp://127.0.0.1:5353"},
		{"tcp://[2620:fe::fe]:53", UpstreamSpec{Net: "tcp", Addr: netip.MustParseAddrPort("[2620:fe::fe]:53")}, "tcp://[2620:fe::fe]:53"},
		{"tls://1.1.1.1", UpstreamSpec{Net: "tls", Addr: netip.MustParseAddrPort("1.1.1.1:853")}, "tls://1.1.1.1:853"},
		{"tls://dns.quad9.net:853", UpstreamSpec{Net: "tls", Host: "dns.quad9.net", Port: 853}, "tls://dns.quad9.net:853"},
		{"tls://dns.quad9.net", UpstreamSpec{Net: "tls", Host: "dns.quad9.net", Port: 853}, "tls://dns.quad9.net:853"},
		{"https://cloudflare-dns.com/dns-query", UpstreamSpec{Net: "https", Host: "cloudflare-dns.com", Port: 443, URL: "https://cloudflare-dns.com/dns-query"},
			"https://cloudflare-dns.com/dns-query"},
		{"https://1.1.1.1:8443/dns-query", UpstreamSpec{Net: "https", Host: "1.1.1.1", Port: 8443, Addr: netip.MustParseAddrPort("1.1.1.1:8443"), URL: "https://1.1.1.1:8443/dns-query"},
			"https://1.1.1.1:8443/dns-query"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			var got UpstreamSpec
			if err := got.UnmarshalText([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if err := got.check(); err != nil {
				t.Errorf("check: %v", err)
			}
			text, err := got.MarshalText()
			if err != nil || string(text) != tc.text {
				t.Errorf("MarshalText = %q, %v; want %q", text, err, tc.text)
			}
			var again UpstreamSpec
			if err := again.UnmarshalText(text); err != nil || again != got {
				t.Errorf("round trip of %q: %+v, %v", text, again, err)
			}
		})
	}
	bad := []struct{ in, want string }{
		{"quic://1.1.1.1", `want udp://, tcp://, tls://, https:// or a bare ip:port, got scheme "quic"`},
		{"udp://dns.quad9.net:53", `want ip:port such as "9.9.9.9:53" or "[2620:fe::fe]:53", got "udp://dns.quad9.net:53"`},
		{"1.1.1.1:x", `want ip:port such as "9.9.9.9:53" or "[2620:fe::fe]:53", got "1.1.1.1:x"`},
		{"1.2.3.4:0", `want a non-zero port, got "1.2.3.4:0"`},
		{"", `want ip:port such as "9.9.9.9:53" or "[2620:fe::fe]:53", got ""`},
		{"tls://", `want ip:port such as "9.9.9.9:53" or "[2620:fe::fe]:53", got "tls://"`},
		{"tls://bad name:853", `want tls://host:port such as "tls://dns.quad9.net:853", got "tls://bad name:853"`},
		{"https://", `want a DoH URL such as "https://dns.quad9.net/dns-query", got "https://"`},
		{"https://dns.example:0/dns-query", `want a valid port in "https://dns.example:0/dns-query"`},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.in, func(t *testing.T) {
			s := UpstreamSpec{Net: "tcp"}
			err := s.UnmarshalText([]byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if s != (UpstreamSpec{Net: "tcp"}) {
				t.Errorf("a failed UnmarshalText changed the value to %+v", s)
			}
		})
	}
}

func TestMustParseUpstreams(t *testing.T) {
	got := MustParseUpstreams("127.0.0.1:53", "tcp://127.0.0.1:5353")
	if len(got) != 2 || got[0].String() != "udp://127.0.0.1:53" || got[1].String() != "tcp://127.0.0.1:5353" {
		t.Errorf("got %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic on a bad address")
		}
	}()
	MustParseUpstreams("nope")
}

func TestAddrOrPrefixText(t *testing.T) {
	good := []struct{ in, prefix, text string }{
		{"192.168.1.23", "192.168.1.23/32", "192.168.1.23"},
		{"fd00::23", "fd00::23/128", "fd00::23"},
		{"::ffff:192.168.1.23", "192.168.1.23/32", "192.168.1.23"}, // clients are identified unmapped
		{"192.168.1.0/28", "192.168.1.0/28", "192.168.1.0/28"},
		{"192.168.1.7/24", "192.168.1.0/24", "192.168.1.0/24"}, // host bits cleared
		{"10.0.0.1/32", "10.0.0.1/32", "10.0.0.1"},
		{"fd00::/8", "fd00::/8", "fd00::/8"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			var a AddrOrPrefix
			if err := a.UnmarshalText([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if a.Prefix() != netip.MustParsePrefix(tc.prefix) {
				t.Errorf("prefix %s, want %s", a.Prefix(), tc.prefix)
			}
			if err := a.check(); err != nil {
				t.Errorf("check: %v", err)
			}
			text, err := a.MarshalText()
			if err != nil || string(text) != tc.text {
				t.Errorf("MarshalText = %q, %v; want %q", text, err, tc.text)
			}
		})
	}
	for _, in := range []string{"300.1.1.1", "10.0.0.0/33", "alice-phone", "", "10.0.0.1/", "192.168.1.23:53"} {
		t.Run("bad "+in, func(t *testing.T) {
			var a AddrOrPrefix
			err := a.UnmarshalText([]byte(in))
			want := `want an IP address or prefix such as "192.168.1.23" or "192.168.1.0/24", got "` + in + `"`
			if err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
		})
	}
	if text, err := (AddrOrPrefix{}).MarshalText(); err != nil || len(text) != 0 {
		t.Errorf("zero value: %q, %v", text, err)
	}
}

func TestMACText(t *testing.T) {
	want := MAC{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01}
	for _, in := range []string{"aa:bb:cc:dd:ee:01", "AA:BB:CC:DD:EE:01", "aa-bb-cc-dd-ee-01", "aabb.ccdd.ee01"} {
		t.Run(in, func(t *testing.T) {
			var m MAC
			if err := m.UnmarshalText([]byte(in)); err != nil || m != want {
				t.Fatalf("got %v, %v", m, err)
			}
			if text, err := m.MarshalText(); err != nil || string(text) != "aa:bb:cc:dd:ee:01" {
				t.Errorf("MarshalText = %q, %v", text, err)
			}
		})
	}
	// net.ParseMAC reads EUI-64 and InfiniBand addresses too; a MAC is 48 bits.
	for _, in := range []string{"nope", "", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00:11", "aa:bb:cc:dd:ee:gg"} {
		t.Run("bad "+in, func(t *testing.T) {
			var m MAC
			err := m.UnmarshalText([]byte(in))
			want := `want a MAC address such as "aa:bb:cc:dd:ee:ff", got "` + in + `"`
			if err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
		})
	}
}

func TestUpstreamConfigValidate(t *testing.T) {
	c := DefaultUpstreamConfig()
	c.Servers = append(MustParseUpstreams("tls://dns.quad9.net"), UpstreamSpec{}, UpstreamSpec{Net: "tcp"})
	c.Bootstrap = MustParseUpstreams("tls://1.1.1.1")
	err := c.Validate()
	for _, want := range []string{
		`upstream.servers[1]: want an upstream such as "9.9.9.9:53"`,
		`upstream.servers[2]: want ip:port such as "9.9.9.9:53"`,
		`upstream.bootstrap[0]: want a plain DNS server ip:port, got "tls://1.1.1.1:853"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	c.Bootstrap = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `upstream.servers[0]: "tls://dns.quad9.net:853" names a host: want upstream.bootstrap`) {
		t.Errorf("a named upstream without bootstrap: %v", err)
	}
	c = DefaultUpstreamConfig()
	c.Servers = nil
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "upstream.servers: want at least one server") {
		t.Errorf("no servers: %v", err)
	}
}

// resolverSections are the parts of the configuration file this package
// owns.
type resolverSections struct {
	Server    ServerConfig    `toml:"server"`
	Upstream  UpstreamConfig  `toml:"upstream"`
	Cache     CacheConfig     `toml:"cache"`
	RateLimit RateLimitConfig `toml:"ratelimit"`
	Blocking  BlockingConfig  `toml:"blocking"`
	Clients   []ClientConfig  `toml:"clients"`
	Identify  IdentifyConfig  `toml:"identify"`
}

func (s *resolverSections) validate() error {
	for _, v := range []interface{ Validate() error }{&s.Server, &s.Upstream, &s.Cache, &s.RateLimit, &s.Blocking} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return ValidateClients(s.Clients)
}

// Decoding gives the values their final form; Validate only looks. The
// shipped file has no clients and plain upstreams, so encrypted upstreams
// and clients are added.
func TestValidateDoesNotChangeConfig(t *testing.T) {
	src := append(bytes.Clone(vigil.DefaultConfig), `
[[clients]]
name = "alice-phone"
addresses = ["192.168.1.23", "fd00::23", "192.168.50.7/24", "::ffff:10.0.0.1"]
macs = ["AA-BB-CC-DD-EE-FF"]

[[clients]]
name = "tv"
macs = ["aa:bb:cc:dd:ee:01"]
`...)
	src = bytes.Replace(src, []byte(`servers = ["9.9.9.9:53", "1.1.1.1:53"]`),
		[]byte(`servers = ["9.9.9.9:53", "udp://1.1.1.1", "tcp://[2620:fe::fe]:53", "tls://dns.quad9.net", "https://cloudflare-dns.com/dns-query"]`), 1)
	if !bytes.Contains(src, []byte("tls://dns.quad9.net\"")) {
		t.Fatal("the shipped upstream.servers line changed; update this test")
	}
	decode := func() resolverSections {
		var s resolverSections
		if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	got, want := decode(), decode()
	if err := got.validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate changed the configuration:\nbefore %+v\nafter  %+v", want, got)
	}
	if len(got.Clients) != 2 || len(got.Upstream.Servers) != 5 {
		t.Fatalf("decoded %d clients, %d upstreams", len(got.Clients), len(got.Upstream.Servers))
	}
	// Written back and read again, the configuration is the same.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(got); err != nil {
		t.Fatal(err)
	}
	var again resolverSections
	if _, err := toml.NewDecoder(&buf).Decode(&again); err != nil {
		t.Fatalf("decoding the encoded configuration: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(again, got) {
		t.Errorf("encoding and decoding changed the configuration:\nbefore %+v\nafter  %+v", got, again)
	}
}

func TestBlockingChaosIdentityValidate(t *testing.T) {
	for _, tc := range []struct {
		identity string
		ok       bool
	}{
		{"", true},
		{"vigil", true},
		{strings.Repeat("x", 255), true},
		{strings.Repeat("x", 256), false},
		{"two\nlines", false},
		{"vigïl", false},
	} {
		c := DefaultBlockingConfig()
		c.ChaosIdentity = tc.identity
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("chaos_identity %q: error %v, want ok=%v", tc.identity, err, tc.ok)
		}
	}
}
