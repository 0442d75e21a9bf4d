package neighbors

import "testing"

func TestVendorOf(t *testing.T) {
	for _, tc := range []struct {
		mac  string
		want HardwareVendor
	}{
		{"a4:45:19:01:02:03", HardwareVendor{Name: "Xiaomi Communications Co Ltd"}},
		{"A4-45-19-01-02-03", HardwareVendor{Name: "Xiaomi Communications Co Ltd"}},
		{"00:d0:ef:00:00:01", HardwareVendor{Name: "IGT"}},
		{"02:fc:00:00:00:05", HardwareVendor{Randomized: true}}, // locally administered
		{"da:a1:19:00:00:01", HardwareVendor{Randomized: true}},
		{"01:00:5e:00:00:01", HardwareVendor{}}, // multicast
		{"not a mac", HardwareVendor{}},
		{"fc:ff:ff:00:00:00", HardwareVendor{}}, // unregistered
	} {
		if got := VendorOf(tc.mac); got != tc.want {
			t.Errorf("VendorOf(%q) = %+v, want %+v", tc.mac, got, tc.want)
		}
	}
	if n := len(loadOUI().prefixes); n < 30000 {
		t.Errorf("%d prefixes in the embedded table; the registry has over 30,000", n)
	}
}

func BenchmarkVendorOf(b *testing.B) {
	loadOUI()
	for b.Loop() {
		VendorOf("a4:45:19:01:02:03")
	}
}
