package serve

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// minHeapGoal is the smallest heap a long-running front end lets the
// garbage collector aim for.
//
// Go aims for twice the live heap, and at least 4 MB. A proxy under load
// holds about 1 MB live (connections, pooled buffers, the requests in
// flight) and turns over about 9 KB per request, so at 4 MB it collected
// every 240 requests and the collections cost 7.4 µs of its CPU per
// request, a tenth of the whole. Aiming for 8 MB, it collects every 630
// requests, for 3.0 µs per request (both with GODEBUG=gctrace=1 under
// BenchmarkProxyXProc's 16 clients), and holds 4 MB more while little is
// live. A live heap of 4 MB or more gets Go's own goal, so a proxy that
// holds much (a large answer, many streams) grows no more than without.
const minHeapGoal = 8 << 20

// TuneGC keeps the garbage collector's heap goal at minHeapGoal or above,
// from now until the returned function is called, which restores Go's
// default. After every collection it sets the GC percentage
// (debug.SetGCPercent) that makes the next goal minHeapGoal for the heap
// just found live, between 100 (Go's default) and 200. It does nothing
// when the user set GOGC or GOMEMLIMIT: their setting stands.
//
// The GC percentage belongs to the process: TuneGC is for commands that
// serve until they exit (`proxy start`, `broker run`), not for a library
// or a test that runs servers side by side.
//
// The live heap is read from runtime.MemStats (see liveHeap), not from
// runtime/metrics: that package's initialisation would run in every
// process of this executable, one-shot commands included (0.13 ms by
// GODEBUG=inittrace=1).
func TuneGC(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	t := &gcTuner{percent: 100}
	t.tune()
	t.arm()
	return t.stop
}

// gcTuner sets the GC percentage after every collection.
type gcTuner struct {
	mu      sync.Mutex
	stopped bool
	percent int // as last set
}

// gcSentinel is garbage from the moment it is made: the cleanup attached
// to it runs once the next collection has found it unreachable. It holds
// a pointer so that it is not packed into a block with other small
// objects, whose lifetime would then be its own.
type gcSentinel struct{ _ *byte }

// arm runs t.cycle after the next collection.
func (t *gcTuner) arm() {
	runtime.AddCleanup(&gcSentinel{}, (*gcTuner).cycle, t)
}

// cycle runs after a collection: it sets the percentage for the heap that
// collection found live and arms itself for the next.
func (t *gcTuner) cycle() {
	if t.tune() {
		t.arm()
	}
}

// tune sets the percentage for the live heap, unless stopped; it reports
// whether it is still running.
func (t *gcTuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if p := gcPercentFor(liveHeap(ms.NextGC, t.percent)); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

// stop restores Go's default; the cleanup armed last finds t stopped.
func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && t.percent != 100 {
		debug.SetGCPercent(100)
	}
	t.stopped, t.percent = true, 100
}

// liveHeap is the live heap the last collection found, from the goal it
// set for the next (MemStats.NextGC) at the percentage then in force:
// Go aims for live × (1 + percent/100), plus the stacks and globals times
// percent/100, so this is a little above the live heap, and at a steady
// live heap the goal gcPercentFor then gives is minHeapGoal exactly.
// HeapAlloc would not do: until the heap is swept it still counts the
// garbage just found. A goal at Go's floor (4 MB × percent/100) gives at
// most 8/3 MB here, which gcPercentFor answers with 200, as it should for
// a heap that small.
func liveHeap(nextGC uint64, percent int) uint64 {
	return nextGC * 100 / uint64(100+percent)
}

// gcPercentFor returns the GC percentage whose goal for a live heap of
// live bytes is minHeapGoal (Go aims for live × (1 + percent/100)), kept
// between 100 and 200. At 200 Go's own floor of 4 MB × percent/100 is
// minHeapGoal too, which covers a heap too small to measure.
func gcPercentFor(live uint64) int {
	if live >= minHeapGoal/2 {
		return 100
	}
	if live <= minHeapGoal/3 {
		return 200
	}
	// Rounded up, so the goal is never below minHeapGoal.
	return int((100*(minHeapGoal-live) + live - 1) / live)
}
