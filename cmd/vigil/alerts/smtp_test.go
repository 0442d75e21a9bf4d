package alerts

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a minimal SMTP receiver on loopback: enough of RFC 5321
// for net/smtp's client (EHLO, MAIL, RCPT, DATA, QUIT), keeping each
// message.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
	rcpt [][]string
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 test ESMTP")
	var rcpt []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			rcpt = nil
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			rcpt = append(rcpt, strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.msgs, s.rcpt = append(s.msgs, b.String()), append(s.rcpt, rcpt)
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not here")
		}
	}
}

// An alert goes by email too, to every recipient, with a subject that
// says what happened.
func TestSMTPDestination(t *testing.T) {
	srv := newSMTPServer(t)
	d := DestinationConfig{Name: "mail", Kind: KindSMTP, URL: "smtp://" + srv.ln.Addr().String(), From: "vigil@home.example", To: []string{"me@home.example", "you@home.example"}}
	cfg := DefaultConfig()
	cfg.Destinations = []DestinationConfig{d}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := Alert{Rule: RuleNewDevice, Client: "tv", Message: "A new device, tv, is on the network", Time: time.Now()}
	if err := deliver(context.Background(), nil, d, single(a), nil); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.msgs) != 1 || !strings.Contains(srv.msgs[0], "Subject: Vigil: new device") || !strings.Contains(srv.msgs[0], a.Message) ||
		strings.Join(srv.rcpt[0], ",") != "me@home.example,you@home.example" {
		t.Errorf("got %q to %v", srv.msgs, srv.rcpt)
	}
}
