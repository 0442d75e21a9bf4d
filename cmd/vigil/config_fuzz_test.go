package main

import (
	"os"
	"testing"
)

// FuzzParseConfig feeds arbitrary text to the configuration loader: it
// must never panic, and a file it accepts must also validate or fail with
// an error (never both succeed and leave unchecked values behind).
func FuzzParseConfig(f *testing.F) {
	if shipped, err := os.ReadFile("../../config.toml"); err == nil {
		f.Add(string(shipped))
	}
	f.Add("[server]\nlisten = [\"127.0.0.1:53\"]\n")
	f.Add("[[lists]]\nname = \"x\"\nentries = [\"||a.example^\"]\n[[clients]]\nname=\"c\"\naddresses=[\"10.0.0.0/8\"]\n")
	f.Add("[upstream]\nservers = [\"tcp://[::1]:53\"]\ntimeout = \"1s\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := parseConfig([]byte(text), "fuzz.toml")
		if err != nil {
			return
		}
		_ = cfg.Validate()
	})
}
