package blocklists

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/vigil-dns/vigil"
)

func TestListKindText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ListKind
		text string
	}{
		{"deny", KindDeny, "deny"},
		{"allow", KindAllow, "allow"},
		{"", KindDeny, "deny"}, // unset is the documented default
	} {
		t.Run(tc.in, func(t *testing.T) {
			k := ListKind(9)
			if err := k.UnmarshalText([]byte(tc.in)); err != nil || k != tc.want {
				t.Fatalf("got %v, %v; want %v", k, err, tc.want)
			}
			if text, err := k.MarshalText(); err != nil || string(text) != tc.text {
				t.Errorf("MarshalText = %q, %v; want %q", text, err, tc.text)
			}
		})
	}
	// The spellings are exact, as they always were.
	for _, in := range []string{"block", "Deny", "ALLOW", " allow", "allowlist"} {
		t.Run("bad "+in, func(t *testing.T) {
			k := KindAllow
			err := k.UnmarshalText([]byte(in))
			want := `want "deny" or "allow", got "` + in + `"`
			if err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
			if k != KindAllow {
				t.Errorf("a failed UnmarshalText changed the kind to %v", k)
			}
		})
	}
	if _, err := ListKind(2).MarshalText(); err == nil {
		t.Error("an invalid kind was encoded")
	}
	var zero ListConfig
	if zero.Kind != KindDeny || zero.Allow() {
		t.Error("a list without a kind is not a denylist")
	}
}

func TestFormatText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
	}{
		{"auto", FormatAuto},
		{"", FormatAuto},
		{"hosts", FormatHosts},
		{"domains", FormatDomains},
		{"adblock", FormatAdblock},
		{"wildcard", FormatWildcard},
		{"dnsmasq", FormatDnsmasq},
		{"  Hosts ", FormatHosts}, // as ParseFormat always read it
		{"ADBLOCK", FormatAdblock},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var f Format
			if err := f.UnmarshalText([]byte(tc.in)); err != nil || f != tc.want {
				t.Fatalf("got %q, %v; want %q", f, err, tc.want)
			}
			if text, err := f.MarshalText(); err != nil || string(text) != string(tc.want) {
				t.Errorf("MarshalText = %q, %v; want %q", text, err, tc.want)
			}
		})
	}
	for _, in := range []string{"hostsfile", "abp", "auto detect"} {
		t.Run("bad "+in, func(t *testing.T) {
			f := FormatHosts
			err := f.UnmarshalText([]byte(in))
			want := `want auto, hosts, domains, adblock, wildcard or dnsmasq, got "` + in + `"`
			if err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
			if f != FormatHosts {
				t.Errorf("a failed UnmarshalText changed the format to %q", f)
			}
		})
	}
	if text, _ := Format("").MarshalText(); string(text) != "auto" {
		t.Errorf("unset format encodes as %q, want auto", text)
	}
}

// Values that decoding cannot produce are still refused, with the list's
// index and name.
func TestValidateListsRefusesHandBuiltValues(t *testing.T) {
	err := ValidateLists([]ListConfig{
		{Name: "a", Kind: ListKind(7), Entries: []string{"a.example"}},
		{Name: "b", Format: "HOSTS", Entries: []string{"b.example"}},
		{Name: "c", Kind: KindAllow, Format: FormatAdblock, Entries: []string{"||c.example^"}},
	})
	for _, want := range []string{
		`lists[0] (a).kind: want "deny" or "allow", got ListKind(7)`,
		`lists[1] (b).format: want auto, hosts, domains, adblock, wildcard or dnsmasq, got "HOSTS"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "lists[2]") {
		t.Errorf("a valid list refused: %v", err)
	}
}

// Decoding gives the lists their final form (kind and format included);
// ValidateLists only looks.
func TestValidateListsDoesNotChangeLists(t *testing.T) {
	src := append(bytes.Clone(vigil.DefaultConfig), `
[[lists]]
name = "mine"
vendor = "Allowed"
kind = "allow"
format = "Domains"
entries = ["account.xiaomi.com"]
`...)
	type sections struct {
		Updates UpdateConfig `toml:"blocklists"`
		Lists   []ListConfig `toml:"lists"`
	}
	decode := func() sections {
		var s sections
		if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	got, want := decode(), decode()
	if err := errors.Join(got.Updates.Validate(), ValidateLists(got.Lists)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("validation changed the lists:\nbefore %+v\nafter  %+v", want, got)
	}
	last := got.Lists[len(got.Lists)-1]
	if !last.Allow() || last.Format != FormatDomains || got.Lists[0].Format != FormatAuto || got.Lists[1].Kind != KindDeny {
		t.Errorf("decoded %+v, %+v, %+v", got.Lists[0], got.Lists[1], last)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(got); err != nil {
		t.Fatal(err)
	}
	var again sections
	if _, err := toml.NewDecoder(&buf).Decode(&again); err != nil {
		t.Fatalf("decoding the encoded lists: %v\n%s", err, buf.String())
	}
	// An unset format is written as "auto", which decodes to FormatAuto.
	for i := range got.Lists {
		if got.Lists[i].Format == "" {
			got.Lists[i].Format = FormatAuto
		}
	}
	if !reflect.DeepEqual(again, got) {
		t.Errorf("encoding and decoding changed the lists:\nbefore %+v\nafter  %+v", got, again)
	}
}

// enabled defaults to true; breaks takes labels from a fixed set only,
// each once, and a typo is a decoding error naming the key.
func TestEnabledAndBreaks(t *testing.T) {
	type sections struct {
		Lists []ListConfig `toml:"lists"`
	}
	decode := func(src string) ([]ListConfig, error) {
		var s sections
		_, err := toml.Decode(src, &s)
		return s.Lists, err
	}
	lists, err := decode(`
[[lists]]
name = "default"
entries = ["a.example"]

[[lists]]
name = "off"
enabled = false
breaks = ["push", "find-device", "updates", "app-login"]
entries = ["b.example"]

[[lists]]
name = "on"
enabled = true
entries = ["c.example"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateLists(lists); err != nil {
		t.Fatal(err)
	}
	if !lists[0].IsEnabled() || lists[1].IsEnabled() || !lists[2].IsEnabled() {
		t.Errorf("enabled: %v %v %v; want true false true", lists[0].IsEnabled(), lists[1].IsEnabled(), lists[2].IsEnabled())
	}
	if want := []Breakage{"push", "find-device", "updates", "app-login"}; !reflect.DeepEqual(lists[1].Breaks, want) {
		t.Errorf("breaks %v, want %v", lists[1].Breaks, want)
	}
	if _, err := decode("[[lists]]\nname = \"x\"\nbreaks = [\"pushes\"]\nentries = [\"a.example\"]\n"); err == nil ||
		!strings.Contains(err.Error(), `want one of push, find-device, updates, app-login, sync, app-store, streaming, voice-assistant, time-sync, got "pushes"`) {
		t.Errorf("a bad label: error %v", err)
	}
	if _, err := decode("[[lists]]\nname = \"x\"\nenabled = \"no\"\nentries = [\"a.example\"]\n"); err == nil {
		t.Error("enabled = \"no\" was accepted: it is a boolean")
	}
	err = ValidateLists([]ListConfig{
		{Name: "twice", Breaks: []Breakage{"push", "push"}, Entries: []string{"a.example"}},
		{Name: "built", Breaks: []Breakage{"Push"}, Entries: []string{"a.example"}},
	})
	for _, want := range []string{`lists[0] (twice).breaks[1]: "push" is listed twice`, `lists[1] (built).breaks[0]: want one of`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

// TestShippedConfigDocumentsListKeys: config.toml's [[lists]] comment
// documents exactly the keys a list has, and each "(default V)" it states
// is what the code does with the key unset.
func TestShippedConfigDocumentsListKeys(t *testing.T) {
	text := string(vigil.DefaultConfig)
	start := strings.Index(text, "# Lists. One [[lists]] table per list:\n")
	if start < 0 {
		t.Fatal("config.toml has no [[lists]] documentation block")
	}
	block := text[start:]
	block = block[:strings.Index(block, "\n#\n")]
	keyRE := regexp.MustCompile(`(?m)^#   ([a-z_]+) +(?:\(default (.+?)\))?`)
	documented := map[string]string{}
	for _, m := range keyRE.FindAllStringSubmatch(block, -1) {
		documented[m[1]] = m[2]
	}
	typ := reflect.TypeOf(ListConfig{})
	var keys []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("toml"), ",")
		if name == "-" {
			continue // not read from the file
		}
		keys = append(keys, name)
		if _, ok := documented[name]; !ok {
			t.Errorf("config.toml does not document the list key %q", name)
		}
	}
	for k := range documented {
		if !slices.Contains(keys, k) {
			t.Errorf("config.toml documents a list key %q that does not exist", k)
		}
	}
	type sections struct {
		Lists []ListConfig `toml:"lists"`
	}
	decode := func(extra string) ListConfig {
		var s sections
		src := "[[lists]]\nname = \"x\"\nentries = [\"a.example\"]\n" + extra
		if _, err := toml.Decode(src, &s); err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		return s.Lists[0]
	}
	unset := decode("")
	for key, def := range documented {
		if def == "" {
			continue
		}
		set := decode(key + " = " + def + "\n")
		if set.Kind != unset.Kind || orAuto(set.Format) != orAuto(unset.Format) ||
			set.IsEnabled() != unset.IsEnabled() || len(set.Breaks) != len(unset.Breaks) {
			t.Errorf("config.toml says %s defaults to %s, but unset it decodes as %+v and set as %+v", key, def, unset, set)
		}
	}
	if len(documented) == 0 || documented["enabled"] != "true" {
		t.Errorf("documented keys %v; want enabled with (default true)", documented)
	}
}

// orAuto is f with unset spelled as FormatAuto, which it means.
func orAuto(f Format) Format {
	if f == "" {
		return FormatAuto
	}
	return f
}
