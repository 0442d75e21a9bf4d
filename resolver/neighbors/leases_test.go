package neighbors

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseLeases(t *testing.T) {
	type want struct{ addr, mac, name string }
	for _, tc := range []struct {
		format LeaseFormat
		text   string
		want   []want
	}{
		{LeasesDnsmasq, `1764612000 a4:45:19:01:02:03 192.168.1.23 Redmi-Note-12 01:a4:45:19:01:02:03
1764612000 da:a1:19:00:00:01 192.168.1.24 * *
duid 00:01:00:01:2c:1f:aa:bb:cc:dd:ee:ff
1764612000 12345 fd00::23 redmi-note-12 00:01:00:01:aa
garbage
`, []want{{"192.168.1.23", "a4:45:19:01:02:03", "redmi-note-12"}, {"192.168.1.24", "da:a1:19:00:00:01", ""}, {"fd00::23", "", "redmi-note-12"}}},
		{LeasesISC, `# The format of this file is documented in the dhcpd.leases(5) manual page.
lease 192.168.1.30 {
  starts 1 2026/11/30 10:00:00;
  ends 1 2026/11/30 22:00:00;
  binding state active;
  hardware ethernet 50:ec:50:aa:bb:cc;
  client-hostname "Mi-Robot";
}
lease 192.168.1.31 {
  binding state free;
  hardware ethernet 00:11:22:33:44:55;
}
lease 192.168.1.30 {
  binding state active;
  hardware ethernet 50:ec:50:aa:bb:cc;
  client-hostname "mi-robot-2";
}
`, []want{{"192.168.1.30", "50:ec:50:aa:bb:cc", "mi-robot-2"}}},
		{LeasesKea, `address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context
192.168.1.40,a4:45:19:00:00:40,,3600,1764612000,1,0,0,galaxy-tab,0,
192.168.1.41,00:11:22:33:44:41,,3600,1764612000,1,0,0,gone,2,
192.168.1.40,a4:45:19:00:00:40,,3600,1764615600,1,0,0,galaxy-tab-s9,0,
`, []want{{"192.168.1.40", "a4:45:19:00:00:40", "galaxy-tab-s9"}}},
		{LeasesOdhcpd, `# br-lan 000100012c1faabbccddeeff 5a3c2e1f pixel-8 1764612000 4a 128 fd12:3456::1a2/128 2001:db8::1a2/128
# br-lan a44519010203 ipv4 redmi 1764612000 c0a80105 32 192.168.1.5/32
# br-lan 0001 1 - -1 0 128
`, []want{{"fd12:3456::1a2", "", "pixel-8"}, {"2001:db8::1a2", "", "pixel-8"}, {"192.168.1.5", "a4:45:19:01:02:03", "redmi"}}},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			if got := DetectLeaseFormat([]byte(tc.text)); got != tc.format {
				t.Errorf("detected %s, want %s", got, tc.format)
			}
			got := ParseLeases([]byte(tc.text))
			if len(got) != len(tc.want) {
				t.Fatalf("%d leases %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].Addr != netip.MustParseAddr(w.addr) || got[i].MAC != w.mac || got[i].Hostname != w.name {
					t.Errorf("lease %d: %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
	if got := ParseLeases([]byte("1764612000 a4:45:19:01:02:03 192.168.1.23 x *\n")); !got[0].Expires.Equal(time.Unix(1764612000, 0)) {
		t.Errorf("expiry %v", got[0].Expires)
	}
}

func TestParseNeighbors(t *testing.T) {
	got := ParseNeighbors([]byte(`IP address       HW type     Flags       HW address            Mask     Device
192.168.1.23     0x1         0x2         a4:45:19:01:02:03     *        br-lan
192.168.1.99     0x1         0x0         00:00:00:00:00:00     *        br-lan
192.168.1.50     0x1         0x6         50:EC:50:AA:BB:CC     *        br-lan
`))
	want := map[netip.Addr]string{
		netip.MustParseAddr("192.168.1.23"): "a4:45:19:01:02:03",
		netip.MustParseAddr("192.168.1.50"): "50:ec:50:aa:bb:cc",
	}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for a, m := range want {
		if got[a] != m {
			t.Errorf("%s: %q, want %q", a, got[a], m)
		}
	}
}

func FuzzParseLeases(f *testing.F) {
	f.Add([]byte("1764612000 a4:45:19:01:02:03 192.168.1.23 Redmi *\n"))
	f.Add([]byte("lease 10.0.0.1 {\n hardware ethernet 00:11:22:33:44:55;\n client-hostname \"x\";\n}\n"))
	f.Add([]byte("address,hwaddr,hostname,state\n10.0.0.2,00:11:22:33:44:55,y,0\n"))
	f.Add([]byte("# br-lan 001122334455 ipv4 z 1 0 32 10.0.0.3/32\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range ParseLeases(data) {
			if !l.Addr.IsValid() {
				t.Fatalf("invalid address in %+v", l)
			}
			if l.Hostname != "" && validHostname(l.Hostname) != l.Hostname {
				t.Fatalf("hostname %q not normalised", l.Hostname)
			}
		}
		ParseNeighbors(data)
	})
}
