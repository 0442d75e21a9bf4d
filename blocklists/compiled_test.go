package blocklists

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

// Every rule shape survives the compiled copy's encoding.
func TestCompiledRuleFlagsRoundTrip(t *testing.T) {
	for _, r := range []Rule{
		{Name: "a.example"},
		{Name: "a.example", Suffix: true, Adblock: true},
		{Name: "a.example", Suffix: true, BelowOnly: true},
		{Name: "a.example", Allow: true, Important: true},
		{Name: "a.example", BadFilter: true, Adblock: true},
		{Name: "a.example", Suffix: true, BelowOnly: true, Allow: true, Important: true, BadFilter: true, Adblock: true},
	} {
		if got := flagsRule(ruleFlags(r), r.Name); got != r {
			t.Errorf("%+v came back as %+v", r, got)
		}
	}
}

// A damaged compiled copy is an error, never a crash or a hang.
func FuzzReadCompiled(f *testing.F) {
	var b []byte
	b = binary.AppendUvarint(b, 3)
	b = append(b, "src"...)
	b = binary.AppendUvarint(b, uint64(len("a.example"))+1)
	b = append(b, ruleSuffix)
	b = append(b, "a.example"...)
	b = append(b, 0, 0)
	f.Add(b)
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		_ = readCompiled(bufio.NewReader(bytes.NewReader(data)), func(string, Rule) { n++ })
		if n > len(data) {
			t.Fatalf("%d rules from %d bytes", n, len(data))
		}
	})
}
