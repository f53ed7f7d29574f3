package proxy

import (
	"bufio"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bigBody is the size of the body BenchmarkProxyLargeBody streams.
const bigBody = 100 << 20

// bigUpstream serves bigBody bytes of text that echoes no value, with a
// Content-Length, or chunked (a body of unknown length, which the proxy
// streams) when the query has chunked=1.
func bigUpstream() http.Handler {
	// Base64 of random bytes, like a blob in a JSON payload: nothing like
	// the value (a partial echo would be redacted and change the length),
	// and no whitespace, whose canonical view costs the redactor far more
	// than the I/O this measures (English text runs at about a tenth of
	// the speed).
	raw := make([]byte, 3*(256<<10)/4)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	chunk := []byte(base64.StdEncoding.EncodeToString(raw))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(bigBody))
		}
		for left := bigBody; left > 0; left -= len(chunk) {
			if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	})
}

// BenchmarkProxyLargeBody streams a 100 MB response through our proxy and
// through a bare reverse proxy, alternating, and reports the MB/s of each,
// their ratio (median of per-round ratios), and for our proxy the high-water
// marks of the Go heap and of the process's RSS (VmHWM, reset before each
// transfer). Client, upstream and both proxies share this process, so the
// RSS figure is an upper bound on the proxy's own.
func BenchmarkProxyLargeBody(b *testing.B) {
	for _, mode := range []string{"length", "chunked"} {
		b.Run(mode, func(b *testing.B) {
			p := setupProxy(b, bigUpstream(), "sk_bench_0123456789abcdefghijklmnop")
			path := "/big"
			if mode == "chunked" {
				path += "?chunked=1"
			}
			// Init's Argon2id used 64 MiB: return it before measuring.
			runtime.GC()
			debug.FreeOSMemory()
			c := newClient()
			bare := bareProxy(b, p.upstream)
			ours := func() *http.Request {
				r, _ := http.NewRequest("GET", p.proxy, nil)
				r.Header.Set(HeaderToken, p.token)
				r.Header.Set(HeaderTargetURL, p.upstream+path)
				r.Header.Set("X-AS-Inject-Bearer", "KEY")
				return r
			}
			floor := func() *http.Request {
				r := bare()
				r.URL.Path, r.URL.RawQuery = "/big", strings.TrimPrefix(path, "/big?")
				return r
			}
			buf := make([]byte, 256<<10)
			fetch := func(mk func() *http.Request) float64 {
				start := time.Now()
				resp, err := c.Do(mk())
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, buf)
				resp.Body.Close()
				if err != nil || n != bigBody {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				return float64(n) / (1 << 20) / time.Since(start).Seconds()
			}
			fetch(ours) // warm the value cache and the redactor
			fetch(floor)
			var ourRates, bareRates, ratios []float64
			var heapPeak, rssPeak uint64
			b.ResetTimer()
			for range max(b.N, 3) {
				resetPeakRSS()
				stop := sampleHeap(&heapPeak)
				o := fetch(ours)
				stop()
				rssPeak = max(rssPeak, peakRSS())
				f := fetch(floor)
				ourRates, bareRates, ratios = append(ourRates, o), append(bareRates, f), append(ratios, o/f)
			}
			b.StopTimer()
			b.ReportMetric(median(ourRates), "proxy_MB/s")
			b.ReportMetric(median(bareRates), "bare_MB/s")
			b.ReportMetric(median(ratios), "proxy/bare")
			b.ReportMetric(float64(heapPeak)/(1<<20), "heap_peak_MB")
			b.ReportMetric(float64(rssPeak)/(1<<20), "rss_peak_MB")
		})
	}
}

// sampleHeap records the largest live-heap reading, every millisecond,
// until the returned stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for !done.Load() {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			time.Sleep(time.Millisecond)
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

// resetPeakRSS resets the kernel's record of this process's peak RSS
// (Linux; elsewhere the peak covers the whole run).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is this process's peak resident set size in bytes (VmHWM), or 0
// where /proc is not available.
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
