package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Alert is one thing worth telling: a webhook body carries these fields.
type Alert struct {
	Rule    string    `json:"rule"`
	Client  string    `json:"client,omitempty"` // the device's name, or its address or MAC
	Vendor  string    `json:"vendor,omitempty"`
	Name    string    `json:"name,omitempty"` // the name looked up that showed it
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	// Link is the dashboard's page for it ("#/device/tv").
	Link string `json:"link,omitempty"`
	// ID names it in the history; Acked says the user has seen it.
	ID    string `json:"id,omitempty"`
	Acked bool   `json:"acked,omitempty"`
}

// message is what one delivery carries: one alert, or a digest of several.
type message struct {
	Alert
	// Alerts are the digest's alerts; empty for a single alert.
	Alerts []Alert `json:"alerts,omitempty"`
}

func single(a Alert) message { return message{Alert: a} }

func digest(as []Alert, now time.Time) message {
	if len(as) == 1 {
		return single(as[0])
	}
	var lines []string
	for _, a := range as {
		lines = append(lines, "• "+a.Message)
	}
	return message{Alert: Alert{Rule: "digest", Time: now,
		Message: fmt.Sprintf("%d new things on your network:\n%s", len(as), strings.Join(lines, "\n"))}, Alerts: as}
}

// title is a message's one-line summary.
func (m message) title() string {
	if m.Rule == "digest" {
		return fmt.Sprintf("Vigil: %d new things", len(m.Alerts))
	}
	return "Vigil: " + strings.ReplaceAll(m.Rule, "_", " ")
}

// SignatureHeader carries a webhook body's HMAC-SHA256 under the
// destination's secret: "sha256=HEX".
const SignatureHeader = "X-Vigil-Signature"

// Sign returns the signature header's value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// request builds the HTTP request of m for d.
func request(ctx context.Context, d DestinationConfig, m message) (*http.Request, error) {
	var (
		body   []byte
		err    error
		target = d.URL
		header = http.Header{}
		method = http.MethodPost
	)
	switch d.Kind {
	case KindWebhook:
		body, err = json.Marshal(m)
		header.Set("Content-Type", "application/json")
		if d.Secret != "" {
			header.Set(SignatureHeader, Sign(d.Secret, body))
		}
	case KindNtfy:
		body = []byte(m.Message)
		header.Set("Title", m.title())
		header.Set("Tags", "warning")
		if m.Link != "" {
			header.Set("X-Click", m.Link)
		}
		if d.Token != "" {
			header.Set("Authorization", "Bearer "+d.Token)
		}
	case KindGotify:
		target = strings.TrimSuffix(d.URL, "/") + "/message"
		body, err = json.Marshal(map[string]any{"title": m.title(), "message": m.Message, "priority": 5})
		header.Set("Content-Type", "application/json")
		header.Set("X-Gotify-Key", d.Token)
	case KindSlack:
		body, err = json.Marshal(map[string]string{"text": "*" + m.title() + "*\n" + m.Message})
		header.Set("Content-Type", "application/json")
	case KindMatrix:
		// The transaction ID makes a retried send one message.
		txn := fmt.Sprintf("vigil-%d", m.Time.UnixNano())
		target = strings.TrimSuffix(d.URL, "/") + "/_matrix/client/v3/rooms/" + url.PathEscape(d.Room) + "/send/m.room.message/" + txn
		body, err = json.Marshal(map[string]string{"msgtype": "m.text", "body": m.title() + "\n" + m.Message})
		header.Set("Content-Type", "application/json")
		header.Set("Authorization", "Bearer "+d.Token)
		method = http.MethodPut
	default:
		return nil, fmt.Errorf("unknown destination kind %q", d.Kind)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "vigil-alerts")
	return req, nil
}

// deliver sends m to d, trying again after each of backoff's waits when
// the receiver is unreachable or answers 5xx or 429. The error never holds
// the destination's secret or token.
func deliver(ctx context.Context, client *http.Client, d DestinationConfig, m message, backoff []time.Duration) error {
	for attempt := 0; ; attempt++ {
		retry, err := attemptOnce(ctx, client, d, m)
		if err == nil {
			return nil
		}
		if !retry {
			return err
		}
		if attempt >= len(backoff) {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff[attempt]):
		}
	}
}

// attemptOnce sends m to d once; retry says whether trying again may help
// (the receiver was unreachable, or answered 5xx or 429).
func attemptOnce(ctx context.Context, client *http.Client, d DestinationConfig, m message) (retry bool, err error) {
	if d.Kind == KindSMTP {
		if err := sendMail(ctx, d, m); err != nil {
			return true, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		return false, nil
	}
	req, err := request(ctx, d, m)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, fmt.Errorf("destination %s: %w", d.Name, unwrapURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
		return false, fmt.Errorf("destination %s answered %s", d.Name, resp.Status)
	}
	return true, fmt.Errorf("destination %s answered %s", d.Name, resp.Status)
}

// unwrapURL drops the URL from a transport error: a token may be in it.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if u, ok := err.(interface{ Unwrap() error }); ok {
		ue = u
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// sendMail sends m as an email through d's SMTP server: STARTTLS first
// when asked, then PLAIN login when a username is set (net/smtp refuses
// it over a plain connection to another host).
func sendMail(ctx context.Context, d DestinationConfig, m message) error {
	u, err := url.Parse(d.URL)
	if err != nil {
		return err
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	c, err := smtp.NewClient(conn, u.Hostname())
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if d.StartTLS {
		if err := c.StartTLS(&tls.Config{ServerName: u.Hostname()}); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if d.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", d.Username, d.Password, u.Hostname())); err != nil {
			return fmt.Errorf("logging in: %w", err)
		}
	}
	if err := c.Mail(d.From); err != nil {
		return err
	}
	for _, to := range d.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		d.From, strings.Join(d.To, ", "), m.title(), m.Time.Format(time.RFC1123Z))
	b.WriteString(strings.ReplaceAll(m.Message, "\n", "\r\n"))
	b.WriteString("\r\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
