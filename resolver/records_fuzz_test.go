package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseHosts: any bytes parse without a panic into records with
// valid owner names and addresses of their type.
func FuzzParseHosts(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.168.1.20 tv.lan TV # c\n"))
	f.Add([]byte("0.0.0.0 ads.example\nfe80::1%eth0 router\n\n#\n 10.0.0.1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rrs, err := parseHosts(data)
		if err != nil {
			return
		}
		for _, rr := range rrs {
			if _, ok := dns.IsDomainName(rr.Header().Name); !ok || !dns.IsFqdn(rr.Header().Name) {
				t.Fatalf("bad owner %q", rr.Header().Name)
			}
			switch rr := rr.(type) {
			case *dns.A:
				if rr.A.To4() == nil {
					t.Fatalf("A with %v", rr.A)
				}
			case *dns.AAAA:
				if len(rr.AAAA) != 16 {
					t.Fatalf("AAAA with %v", rr.AAAA)
				}
			default:
				t.Fatalf("unexpected %T", rr)
			}
			if _, err := dns.NewRR(rr.String()); err != nil {
				t.Fatalf("%q does not read back: %v", rr.String(), err)
			}
		}
	})
}
