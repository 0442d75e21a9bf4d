package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-dns/vigil"
	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/blocklists/blockliststest"
	"github.com/vigil-dns/vigil/blocklists/curated"
)

// shippedMatcher builds the shipped config.toml's lists with the real
// Builder and Matcher, each URL source read from its local copy and each
// builtin: source from the binary. skip names lists left out.
func shippedMatcher(t testing.TB, skip ...string) *blocklists.Matcher {
	t.Helper()
	data := blockliststest.SharedData(t)
	cfg, err := parseConfig(vigil.DefaultConfig, "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := blocklists.NewBuilder()
	for _, l := range cfg.Lists {
		if slices.Contains(skip, l.Name) || !l.IsEnabled() {
			continue
		}
		idx, err := b.AddList(blocklists.ListInfo{Name: l.Name, Vendor: l.Vendor, Allow: l.Allow()})
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range l.Sources {
			var body []byte
			switch {
			case blocklists.IsBuiltin(src):
				body, err = curated.Read(strings.TrimPrefix(src, blocklists.BuiltinScheme))
			case blocklists.IsURL(src):
				path, ok := blockliststest.LocalCopy(data, src)
				if !ok {
					t.Fatalf("%s: no copy of it in the shared data set", src)
				}
				body, err = os.ReadFile(path)
			default:
				t.Fatalf("list %s: source %s is neither a URL nor builtin:", l.Name, src)
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := blocklists.Parse(bytes.NewReader(body), blocklists.ParseOptions{Source: src, Format: l.Format, MaxRejected: 0, Allow: l.Allow()},
				func(r blocklists.Rule) { b.Add(idx, r) })
			if err != nil || st.Entries == 0 {
				t.Fatalf("%s: %d entries, %v", src, st.Entries, err)
			}
		}
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// knownTelemetry are names the shipped configuration must keep blocking:
// the examples, names next to an allowed one (so the allowlist is
// seen to be narrow), and one telemetry host per vendor list.
var knownTelemetry = []string{
	// Xiaomi
	"tracking.intl.miui.com", "data.mistat.xiaomi.com", "api.micloud.xiaomi.net", "statusapi.micloud.xiaomi.net",
	"sub.resolver.msg.global.xiaomi.net", "api.xmpush.global.xiaomi.com",
	// Huawei
	"metrics1.data.dbankcloud.cn", "logservice1.hicloud.com", "grs.hicloud.com",
	// OPPO / Realme / OnePlus
	"ums-telemetry-cn.heytapmobi.com", "obus-dc-eu.heytapmobile.com", "eap-log-in.allawnos.com", "cota-service-sg.allawnos.com",
	// Vivo
	"stsdk.vivoglobal.com", "in-adlog.vivoglobal.com",
	// Samsung
	"nmetrics.samsung.com", "diagmon-serviceapi.samsungdm.com", "acr-eu-prd.samsungcloud.tv",
	// Apple
	"metrics.icloud.com", "iadsdk.apple.com", "xp-cdn.apple.com", "sub.xp.apple.com",
	// Microsoft
	"vortex.data.microsoft.com", "watson.microsoft.com", "collection.location.live.net", "telemetry.officeapps.live.com",
	"assets.activity.windows.com",
	// Amazon, TikTok, LG, Roku
	"device-metrics-us.amazon.com", "gplog-sg.byteoversea.com", "af-ad-lgsmartad-com.aws-prd.net", "logs.roku.com",
}

// functionalExamples are the functional endpoints (each blocked by
// the vendor lists before functional.txt).
var functionalExamples = []string{
	"find.api.micloud.xiaomi.net", "us.find.api.micloud.xiaomi.net", "resolver.msg.global.xiaomi.net",
	"register.xmpush.global.xiaomi.com", "api.device.xiaomi.net",
	"conn-service-eu-01.allawnos.com", "conn-service-in-04.allawnos.com", "conn-service-gl-01.allawntech.com", "conn-service-cn-08.allawntech.com",
	"location.live.net", "inference.location.live.net", "activity.windows.com", "xp.apple.com",
}

// TestShippedConfigKeepsFunctionsAndBlocksTelemetry: with the shipped
// config.toml over the local copies of its lists, every functional name of
// the issue and every rule of functional.txt is allowed, and known
// telemetry is still blocked.
func TestShippedConfigKeepsFunctionsAndBlocksTelemetry(t *testing.T) {
	with, without := shippedMatcher(t), shippedMatcher(t, "functional")
	for _, n := range functionalExamples {
		if v, ok := without.Match(n); !ok || !v.Blocked {
			t.Errorf("%s: not blocked by the vendor lists; the issue's example has gone stale", n)
		}
		if v, ok := with.Match(n); ok && v.Blocked {
			t.Errorf("%s: blocked by %s (%s), want allowed", n, v.List.Name, v.Rule)
		}
	}
	entries, err := curated.Metadata("functional")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, n := range []string{e.Name, "sub." + e.Name} {
			v, ok := with.Match(n)
			allowed := ok && !v.Blocked && v.List.Name == "functional"
			if n == e.Name && !allowed || n != e.Name && e.Suffix && !allowed {
				t.Errorf("%s (functional.txt:%d %s): got %+v %v, want allowed by functional", n, e.Line, e.Rule, v, ok)
			}
		}
	}
	for _, n := range knownTelemetry {
		if v, ok := with.Match(n); !ok || !v.Blocked {
			t.Errorf("%s: not blocked (%+v %v), want blocked", n, v, ok)
		}
	}
}

// TestMeasureFunctionalAllowlist is the measurement: how many of
// the Umbrella top 2,000 and top 10,000 names the shipped configuration
// blocks with and without functional.txt, and per vendor how many of
// functional.txt's names a deny list would block (the ones it rescues).
// Run with -v to see the figures:
//
//	go test -run TestMeasureFunctionalAllowlist -v ./cmd/vigil/
func TestMeasureFunctionalAllowlist(t *testing.T) {
	with, without := shippedMatcher(t), shippedMatcher(t, "functional")
	f, err := os.Open(filepath.Join(blockliststest.SharedData(t), "queries", "umbrella-top-100k.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var top []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(top) < 10000 {
		if n := strings.ToLower(strings.TrimSpace(sc.Text())); n != "" {
			top = append(top, n)
		}
	}
	if len(top) < 10000 {
		t.Fatalf("only %d names in the Umbrella list", len(top))
	}
	blockedIn := func(m *blocklists.Matcher, names []string) (n int, which []string) {
		for _, name := range names {
			if v, ok := m.Match(name); ok && v.Blocked {
				n++
				which = append(which, name)
			}
		}
		return n, which
	}
	for _, k := range []int{2000, 10000} {
		before, bNames := blockedIn(without, top[:k])
		after, aNames := blockedIn(with, top[:k])
		var rescued []string
		for _, n := range bNames {
			if !slices.Contains(aNames, n) {
				rescued = append(rescued, n)
			}
		}
		t.Logf("Umbrella top %d: %d blocked without functional.txt, %d with it; rescued: %s", k, before, after, strings.Join(rescued, " "))
		if after > before {
			t.Errorf("top %d: the allowlist made more names blocked (%d > %d)", k, after, before)
		}
	}
	entries, err := curated.Metadata("functional")
	if err != nil {
		t.Fatal(err)
	}
	type tally struct{ entries, rescued int }
	perVendor := map[string]*tally{}
	perCategory := map[string]int{}
	var vendors []string
	for _, e := range entries {
		tl := perVendor[e.Vendor]
		if tl == nil {
			tl = &tally{}
			perVendor[e.Vendor] = tl
			vendors = append(vendors, e.Vendor)
		}
		tl.entries++
		perCategory[e.Category]++
		if v, ok := without.Match(e.Name); ok && v.Blocked {
			tl.rescued++
		}
	}
	total := 0
	for _, vn := range vendors {
		tl := perVendor[vn]
		total += tl.rescued
		t.Logf("%-12s %3d functional entries, %3d rescued from a deny list", vn, tl.entries, tl.rescued)
	}
	var cats []string
	for _, c := range curated.Categories {
		if perCategory[c] > 0 {
			cats = append(cats, fmt.Sprintf("%s %d", c, perCategory[c]))
		}
	}
	t.Logf("%d entries (%s), %d rescued", len(entries), strings.Join(cats, ", "), total)
}

// `vigil explain` says a functional endpoint is one, in one sentence each
// way: kept working by the allowlist, or blocked anyway by an $important
// rule (the cloud tier turned on).
func TestExplainTellsFunctionalEndpoints(t *testing.T) {
	cfgPath := writeTestConfig(t, "127.0.0.1:9", `
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||api.micloud.xiaomi.net^"]
[[lists]]
name = "xiaomi-cloud"
vendor = "Xiaomi"
entries = ["||micloud.xiaomi.net^$important"]
[[lists]]
name = "functional"
kind = "allow"
sources = ["builtin:functional"]
`)
	kept := cli(t, cfgPath, "explain", "find.api.micloud.xiaomi.net")
	if !strings.Contains(kept, "BLOCKED by list \"xiaomi-cloud\"") || !strings.Contains(kept, "note: a known functional endpoint (find-device, Xiaomi)") ||
		!strings.Contains(kept, "It is blocked anyway: rule ||micloud.xiaomi.net^$important beats the functional allowlist") || strings.Contains(kept, "..") {
		t.Errorf("explain with the cloud tier on:\n%s", kept)
	}
	body, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, bytes.Replace(body, []byte(`entries = ["||micloud.xiaomi.net^$important"]`), []byte(`enabled = false
entries = ["||micloud.xiaomi.net^$important"]`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(t, cfgPath, "explain", "find.api.micloud.xiaomi.net")
	if !strings.Contains(out, "allowed by list \"functional\"") || !strings.Contains(out, "a known functional endpoint (find-device, Xiaomi), kept working: ") ||
		strings.Contains(out, "..") {
		t.Errorf("explain with the cloud tier off:\n%s", out)
	}
}
