package serve

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 200},
		{1 * mb, 200},
		{minHeapGoal / 3, 200},
		{3 * mb, 167},
		{minHeapGoal/2 - 1, 101},
		{minHeapGoal / 2, 100},
		{100 * mb, 100},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", c.live, got, c.want)
		}
	}
	// The percentage never leaves [100, 200], and below half of
	// minHeapGoal live it never aims under minHeapGoal: at 200 Go's own
	// floor (4 MB × 2) is minHeapGoal, below 200 the goal is
	// live × (1 + percent/100).
	for live := uint64(1); live < 2*minHeapGoal; live += 4093 {
		p := gcPercentFor(live)
		if p < 100 || p > 200 {
			t.Fatalf("gcPercentFor(%d) = %d", live, p)
		}
		if goal := live * uint64(100+p) / 100; live < minHeapGoal/2 && p < 200 && goal < minHeapGoal {
			t.Fatalf("live %d: percent %d aims for %d, below %d", live, p, goal, minHeapGoal)
		}
	}
}

// TestLiveHeap: the live heap read back from the goal Go set at each
// percentage, and what the tuner then sets, at Go's floor and above it.
func TestLiveHeap(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		nextGC  uint64
		percent int
		live    uint64
		set     int
	}{
		{4 * mb, 100, 2 * mb, 200},             // Go's floor at 100: small heap
		{minHeapGoal, 200, 8 * mb / 3, 200},    // Go's floor at 200
		{3 * mb * 267 / 100, 167, 3 * mb, 167}, // the tuner's own goal, steady
		{24 * mb, 200, 8 * mb, 100},            // much live at 200: back to Go's
		{100 * mb, 100, 50 * mb, 100},
	} {
		live := liveHeap(c.nextGC, c.percent)
		if diff := int64(live) - int64(c.live); diff < -1 || diff > 1 {
			t.Errorf("liveHeap(%d, %d) = %d, want %d", c.nextGC, c.percent, live, c.live)
		}
		if got := gcPercentFor(live); got != c.set {
			t.Errorf("goal %d at %d%%: sets %d, want %d", c.nextGC, c.percent, got, c.set)
		}
	}
}

// gcPercent is the GC percentage in force.
func gcPercent(t *testing.T) uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Skip("this runtime does not report /gc/gogc:percent")
	}
	return s[0].Value.Uint64()
}

// collectUntil runs collections until the GC percentage is want: the
// tuner runs after a collection, on the runtime's cleanup goroutine.
func collectUntil(t *testing.T, want uint64) {
	t.Helper()
	for range 500 {
		runtime.GC()
		if gcPercent(t) == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("GC percentage %d after 500 collections, want %d", gcPercent(t), want)
}

// TestTuneGC runs the tuner on this process's own collector: the
// percentage follows the live heap after each collection, and goes back
// to Go's default when the tuner stops, for good.
func TestTuneGC(t *testing.T) {
	if gcPercent(t) != 100 {
		t.Skip("GOGC is set for this test process")
	}
	stop := TuneGC(func(string) string { return "" })
	defer stop()
	collectUntil(t, 200) // a test binary holds far less than 2.7 MB

	held := make([]byte, minHeapGoal) // live: Go's own goal is above minHeapGoal
	for i := range held {
		held[i] = byte(i)
	}
	collectUntil(t, 100)
	runtime.KeepAlive(held)
	held = nil
	collectUntil(t, 200)

	stop()
	if got := gcPercent(t); got != 100 {
		t.Fatalf("GC percentage %d after stop, want 100", got)
	}
	for range 5 {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := gcPercent(t); got != 100 {
		t.Fatalf("GC percentage %d after stop and more collections, want 100", got)
	}
}

// TestTuneGCLeavesUserSetting: with GOGC or GOMEMLIMIT in the environment
// the tuner does nothing.
func TestTuneGCLeavesUserSetting(t *testing.T) {
	if gcPercent(t) != 100 {
		t.Skip("GOGC is set for this test process")
	}
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		stop := TuneGC(func(k string) string {
			if k == name {
				return "100"
			}
			return ""
		})
		for range 5 {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
		if got := gcPercent(t); got != 100 {
			t.Errorf("%s set: GC percentage %d, want 100 (untouched)", name, got)
		}
		stop()
	}
}
