package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-dns/vigil"
)

// Decoding gives every value its final form; Validate only looks. Two
// decodings of the same text share nothing, so one can be validated and
// compared with the other.
func TestValidateDoesNotChangeConfig(t *testing.T) {
	extra := `
[[clients]]
name = "alice-phone"
addresses = ["192.168.1.23", "192.168.50.7/24"]
macs = ["AA-BB-CC-DD-EE-FF"]

[[lists]]
name = "mine"
kind = "allow"
entries = ["account.xiaomi.com"]
`
	for name, src := range map[string][]byte{
		"shipped":            vigil.DefaultConfig,
		"shipped and extras": append(bytes.Clone(vigil.DefaultConfig), extra...),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseConfig(src, "config.toml")
			if err != nil {
				t.Fatal(err)
			}
			want, err := parseConfig(src, "config.toml")
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Validate changed the configuration:\nbefore %+v\nafter  %+v", want, got)
			}
			if got.Log.Level != zapcore.InfoLevel || got.HTTP.Listen.String() != "127.0.0.1:8053" {
				t.Errorf("decoded log.level %v, http.listen %v", got.Log.Level, got.HTTP.Listen)
			}
		})
	}
}

// The configuration can be written back: encoded as TOML and decoded
// again, it is the same.
func TestConfigRoundTrip(t *testing.T) {
	cfg, err := parseConfig(vigil.DefaultConfig, "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	again, err := parseConfig(buf.Bytes(), "encoded.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if err := again.Validate(); err != nil {
		t.Fatal(err)
	}
	// Lists without a format decode as unset and are written as "auto".
	for i := range cfg.Lists {
		cfg.Lists[i].Format = again.Lists[i].Format
	}
	again.Source = cfg.Source
	if !reflect.DeepEqual(again, cfg) {
		t.Errorf("encoding and decoding changed the configuration:\nbefore %+v\nafter  %+v", cfg, again)
	}
}

// Type errors now come from the decoder: they name the file, the line, the
// key and what was expected. In [[array]] tables the line is the table's
// own, not the last table's.
func TestDecodeErrorsNameFileLineKey(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"upstream", "[upstream]\nservers = [\"9.9.9.9:53\", \"1.1.1.1:x\"]\n",
			`x.toml:2: key "upstream.servers": want ip:port such as "9.9.9.9:53" or "[2620:fe::fe]:53", got "1.1.1.1:x"`},
		{"bootstrap", "[upstream]\n\nbootstrap = [\"quic://1.1.1.1\"]\n",
			`x.toml:3: key "upstream.bootstrap": want udp://, tcp://, tls://, https:// or a bare ip:port, got scheme "quic"`},
		{"http listen", "[http]\nlisten = \"localhost:8053\"\n",
			`x.toml:2: key "http.listen": want ip:port such as "127.0.0.1:8053" (or "" for no API)`},
		{"log level", "[log]\nlevel = \"loud\"\n",
			`x.toml:2: key "log.level": want "debug", "info", "warn" or "error"`},
		{"list kind", "[[lists]]\nname = \"a\"\nkind = \"block\"\nentries = [\"a.example\"]\n\n[[lists]]\nname = \"b\"\nkind = \"deny\"\nentries = [\"b.example\"]\n",
			`x.toml:3: key "lists.kind": want "deny" or "allow", got "block"`},
		{"list format", "[[lists]]\nname = \"a\"\nformat = \"hosts\"\nentries = [\"a.example\"]\n\n[[lists]]\nname = \"b\"\nformat = \"abp\"\nentries = [\"b.example\"]\n",
			`x.toml:8: key "lists.format": want auto, hosts, domains, adblock, wildcard or dnsmasq, got "abp"`},
		{"client address", "[[clients]]\nname = \"a\"\naddresses = [\"300.1.1.1\"]\n\n[[clients]]\nname = \"b\"\naddresses = [\"10.0.0.1\"]\n",
			`x.toml:3: key "clients.addresses": want an IP address or prefix such as "192.168.1.23" or "192.168.1.0/24", got "300.1.1.1"`},
		{"client mac", "[[clients]]\nname = \"a\"\nmacs = [\"aa:bb:cc:dd:ee:ff\"]\n\n[[clients]]\nname = \"b\"\nmacs = [\"nope\"]\n",
			`x.toml:7: key "clients.macs": want a MAC address such as "aa:bb:cc:dd:ee:ff", got "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.body), "x.toml")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v\nwant   %s", err, tc.want)
			}
		})
	}
}

// What decoding accepts but the settings refuse keeps its index.
func TestValidateErrorsKeepIndex(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"bootstrap", "[upstream]\nbootstrap = [\"9.9.9.9:53\", \"tls://1.1.1.1\"]\n", `upstream.bootstrap[1]: want a plain DNS server ip:port, got "tls://1.1.1.1:853"`},
		{"log level", "[log]\nlevel = \"fatal\"\n", `log.level: want "debug", "info", "warn" or "error", got "fatal"`},
		{"forward zone", "[[forward]]\nzones = [\"lan\", \"a..b\"]\nservers = [\"192.168.1.1:53\"]\n", `forward[0].zones[1]: want a zone name such as "lan", got "a..b"`},
		{"forward servers", "[[forward]]\nzones = [\"lan\"]\n", `forward[0].servers: want at least one server`},
		{"rebind allow", "[local]\nrebind_allow = [\".\"]\n", `local.rebind_allow[0]: want a zone such as "lan", got "."`},
		{"list name", "[[lists]]\nname = \"a\"\nentries = [\"a.example\"]\n[[lists]]\nname = \"a\"\nkind = \"allow\"\nentries = [\"b.example\"]\n", `lists[1] (a).name: "a" is used by another list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tc.body), "x.toml")
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not mention %q", err, tc.want)
			}
		})
	}
}

// TestShippedConfigSpellsEveryKey: config.toml documents each setting by
// writing it out with its default, so a key missing from the file (which
// decodes to the same default and so escapes TestShippedConfigIsValid)
// is a setting users cannot find. Tables of arrays ([[lists]],
// [[clients]]) are examples, not settings, and are left out.
func TestShippedConfigSpellsEveryKey(t *testing.T) {
	var cfg Config
	md, err := toml.Decode(string(vigil.DefaultConfig), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(typ reflect.Type, path []string)
	walk = func(typ reflect.Type, path []string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := append(append([]string(nil), path...), name)
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				continue
			}
			if ft.Kind() == reflect.Struct && len(path) == 0 {
				walk(ft, key)
				continue
			}
			if !md.IsDefined(key...) {
				t.Errorf("config.toml does not spell out %s", strings.Join(key, "."))
			}
		}
	}
	walk(reflect.TypeOf(cfg), nil)
}
