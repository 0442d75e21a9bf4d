package blocklists

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func bigMatcher(t *testing.T, n int, tag string, released func()) *Matcher {
	b := NewBuilder()
	b.released = released
	idx, _ := b.AddList(ListInfo{Name: "l"})
	for i := range n {
		b.Add(idx, Rule{Name: fmt.Sprintf("n%d.%s.example", i, tag), Suffix: true})
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Large matchers live in memory mappings outside the heap; replaced ones
// are unmapped once unreachable.
func TestOffHeapMatcherReleased(t *testing.T) {
	var released atomic.Int32
	for round := range 20 {
		m := bigMatcher(t, 20_000, fmt.Sprint(round), func() { released.Add(1) })
		if _, ok := m.Match(fmt.Sprintf("x.n7.%d.example.", round)); !ok {
			t.Fatalf("round %d: listed name not matched", round)
		}
		if _, ok := m.Match("n7.other.example."); ok {
			t.Fatal("unlisted name matched")
		}
	}
	var liveReleased atomic.Bool
	live := bigMatcher(t, 20_000, "live", func() { liveReleased.Store(true) })
	for deadline := time.Now().Add(5 * time.Second); released.Load() < 20 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
	}
	if n := released.Load(); n != 20 {
		t.Errorf("%d of 20 dropped matchers unmapped", n)
	}
	if _, ok := live.Match("a.n19999.live.example"); !ok || liveReleased.Load() {
		t.Error("the live matcher was released")
	}
	runtime.KeepAlive(live)
}

// Lookups on a matcher that is being replaced, with collections running,
// never read unmapped memory (which would crash the test binary).
func TestOffHeapMatcherSwapUnderLookups(t *testing.T) {
	var cur atomic.Pointer[Matcher]
	cur.Store(bigMatcher(t, 5_000, "0", nil))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cur.Load().Match(fmt.Sprintf("a.n%d.%d.example.", i%5000, i%7))
			}
		})
	}
	for round := range 30 {
		cur.Store(bigMatcher(t, 5_000, fmt.Sprint(round%7), nil))
		runtime.GC()
	}
	close(stop)
	wg.Wait()
}
