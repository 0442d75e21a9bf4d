package resolver

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// FuzzServerAnswer feeds raw bytes to the packet path (Server.respond), as a UDP and as a
// TCP query: it must never panic, and any reply must parse, be a response
// and, when the query had a parsable header, carry its ID.
func FuzzServerAnswer(f *testing.F) {
	echo := HandlerFunc(func(_ context.Context, q *Query) (*Response, error) {
		m := new(dns.Msg)
		m.SetReply(q.Msg)
		if q.Type == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		}
		return &Response{Msg: m, Source: SourceUpstream}, nil
	})
	cfg := DefaultServerConfig()
	s := NewServer(cfg, ServerDeps{Handler: NewLocal(LocalConfig{BlockBypass: true, HealthName: "health.vigil.", ChaosIdentity: "vigil"}, echo), Log: zap.NewNop()})
	client := netip.MustParseAddr("127.0.0.1")
	for _, build := range []func() *dns.Msg{
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("example.com.", dns.TypeA); return m },
		func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("a.example.", dns.TypeAAAA)
			m.SetEdns0(4096, true)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 0, 0, 0)})
			return m
		},
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("x.", dns.TypeANY); return m },
	} {
		b, _ := build().Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // pointer loop
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 8, 0, 8, 0, 4, 0, 1, 24})
	rb := newReaderBufs(0, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, proto := range []Proto{ProtoUDP, ProtoTCP} {
			reply := s.respond(pkt, client, proto, nil, rb)
			if reply == nil {
				continue
			}
			m := new(dns.Msg)
			if err := m.Unpack(reply); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if !m.Response {
				t.Fatal("reply without QR")
			}
			if len(pkt) >= 2 && m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
				t.Fatalf("reply ID %d, query ID %d", m.Id, uint16(pkt[0])<<8|uint16(pkt[1]))
			}
			if proto == ProtoUDP && len(reply) > cfg.MaxUDPSize {
				t.Fatalf("UDP reply of %d bytes", len(reply))
			}
		}
	})
}
