package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	var last error
	for attempt := 0; ; attempt++ {
		req, err := request(ctx, d, m)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return nil
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				return fmt.Errorf("destination %s answered %s", d.Name, resp.Status)
			}
			last = fmt.Errorf("destination %s answered %s", d.Name, resp.Status)
		} else {
			last = fmt.Errorf("destination %s: %w", d.Name, unwrapURL(err))
		}
		if attempt >= len(backoff) {
			return fmt.Errorf("%w (gave up after %d attempts)", last, attempt+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff[attempt]):
		}
	}
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
