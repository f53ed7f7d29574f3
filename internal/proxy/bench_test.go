package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// benchSetup builds a real vault (the Secret Service when a D-Bus session
// exists, as under scripts/bench; else the encrypted file), one secret bound
// to a local upstream, and a proxy in front of it, both on 127.0.0.1.
func benchSetup(b *testing.B) (upstreamURL, proxyURL, token, backend string) {
	b.Helper()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`)
	})
	p := setupProxy(b, up, "sk_bench_0123456789abcdefghijklmnop")
	// Init's Argon2id used 64 MiB; return it now, so that the runtime's
	// scavenger does not do it (and get counted) while requests are timed.
	runtime.GC()
	debug.FreeOSMemory()
	return p.upstream, p.proxy, p.token, p.store.Config.Backend
}

// testProxy is a proxy in front of one upstream, with the secret KEY bound
// to it.
type testProxy struct {
	upstream, proxy, token string
	store                  *vault.Store
}

func setupProxy(tb testing.TB, handler http.Handler, value string) *testProxy {
	tb.Helper()
	up := httptest.NewServer(handler)
	tb.Cleanup(up.Close)
	st, sel := newTestVault(tb, up.URL, value)
	// Audited as `proxy start` does it: through the runtime's batching
	// Writer.
	rt := serve.New(serve.Options{Open: func() (*vault.Store, error) { return st, nil }})
	srv := &Server{Runtime: rt, Token: "bench-token", Selection: sel, Version: "bench"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	tb.Cleanup(func() {
		// As serve.Serve stops: handlers finish (a whole answer queues
		// its audit record after the client has it) before the runtime
		// closes.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			tb.Error(err)
		}
		if err := rt.Close(); err != nil {
			tb.Error(err)
		}
	})
	return &testProxy{upstream: up.URL, proxy: "http://" + ln.Addr().String() + "/proxy", token: "bench-token", store: st}
}

// newTestVault builds a real vault (the Secret Service when a D-Bus session
// exists, else the encrypted file) in a temporary home, with the secret KEY
// holding value and bound to upstream (http://HOST:PORT), which the default
// workspace allowlists.
func newTestVault(tb testing.TB, upstream, value string) (*vault.Store, vault.Selection) {
	tb.Helper()
	root := tb.TempDir()
	dirs := home.Dirs{Config: root, Data: root, State: root, Explicit: true}
	want := "file"
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		want = "keychain"
	}
	pass := func(bool) ([]byte, error) { return []byte("benchmark passphrase"), nil }
	opts := vault.Options{Getenv: os.Getenv, VaultPassphrase: pass}
	ctx := context.Background()
	st, _, err := vault.Init(ctx, dirs, vault.InitOptions{Options: opts, Backend: want,
		AdminPassphrase: func() ([]byte, error) { return []byte("admin passphrase"), nil }})
	if err != nil {
		tb.Fatal(err)
	}
	sel := vault.Selection{Workspace: vault.DefaultName, Project: vault.DefaultName}
	if _, err := st.PutSecrets(ctx, sel, []vault.Put{{Name: "KEY", Value: secret.New([]byte(value)), Source: "set"}}, vault.Upsert); err != nil {
		tb.Fatal(err)
	}
	hostport := strings.TrimPrefix(upstream, "http://")
	tgt, _ := policy.ParseTarget(hostport)
	bind, _ := policy.NewBinding(tgt, nil, nil, time.Now())
	err = st.Update(ctx, func(ix *vault.Index) error {
		w := ix.Workspaces[vault.DefaultName]
		w.Allowlist = append(w.Allowlist, policy.AllowEntry{Host: tgt.Host, Port: tgt.Port, AllowHTTP: true, AllowPrivate: true})
		s := w.Projects[vault.DefaultName].Secrets["KEY"]
		s.Bindings = append(s.Bindings, bind)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return st, sel
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func get(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func requests(upstream, proxy, token string) (direct, proxied func() *http.Request) {
	direct = func() *http.Request {
		r, _ := http.NewRequest("GET", upstream+"/v1/balance", nil)
		r.Header.Set("Authorization", "Bearer sk_bench_0123456789abcdefghijklmnop")
		return r
	}
	proxied = func() *http.Request {
		r, _ := http.NewRequest("GET", proxy, nil)
		r.Header.Set(HeaderToken, token)
		r.Header.Set(HeaderTargetURL, upstream+"/v1/balance")
		r.Header.Set("X-AS-Inject-Bearer", "KEY")
		return r
	}
	return
}

// bareProxy is the floor any proxy on this machine pays: the standard
// library's reverse proxy with no policy, injection, redaction or audit.
func bareProxy(b *testing.B, upstream string) func() *http.Request {
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	return func() *http.Request {
		r, _ := http.NewRequest("GET", srv.URL+"/v1/balance", nil)
		r.Header.Set("Authorization", "Bearer sk_bench_0123456789abcdefghijklmnop")
		return r
	}
}

// BenchmarkProxyLatency: a warm proxied request against the same request
// sent directly and through a bare reverse proxy, interleaved, values
// cached. Reports p50s and the added p50 of each.
func BenchmarkProxyLatency(b *testing.B) {
	upstream, proxy, token, backend := benchSetup(b)
	c := newClient()
	direct, proxied := requests(upstream, proxy, token)
	bare := bareProxy(b, upstream)
	for range 200 { // warm connections and the value cache
		for _, mk := range []func() *http.Request{direct, proxied, bare} {
			if err := get(c, mk()); err != nil {
				b.Fatal(err)
			}
		}
	}
	var d, p, r []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		get(c, direct())
		t1 := time.Now()
		if err := get(c, proxied()); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		get(c, bare())
		d, p, r = append(d, t1.Sub(t0)), append(p, t2.Sub(t1)), append(r, time.Since(t2))
	}
	b.StopTimer()
	dp, pp, rp := p50(d), p50(p), p50(r)
	b.ReportMetric(ms(dp), "direct_p50_ms")
	b.ReportMetric(ms(pp), "proxy_p50_ms")
	b.ReportMetric(ms(pp-dp), "added_p50_ms")
	b.ReportMetric(ms(rp-dp), "bare_added_p50_ms")
	b.Logf("backend %s", backend)
}

// BenchmarkProxyThroughput16: requests per second at 16 concurrent
// clients, direct, through our proxy and through a bare reverse proxy.
//
// Client, proxy and upstream share this process and the machine's cores,
// so throughput is CPU-bound: every path's rate is about the cores divided
// by the CPU time one request costs on that path. A proxy spends about as
// much CPU per request as client and upstream together (it is a server
// and a client), which puts even a proxy that does nothing near 50% of
// direct. The benchmark therefore also reports the CPU time per request of
// each path (process user+system time over the run), and the bare proxy's
// ratio as the floor of what any proxy reaches here.
//
// The three paths run in interleaved rounds and the ratios are the median
// of the per-round ratios, so load from other processes that comes and
// goes affects all three alike.
func BenchmarkProxyThroughput16(b *testing.B) {
	upstream, proxy, token, _ := benchSetup(b)
	c := newClient()
	direct, proxied := requests(upstream, proxy, token)
	bare := bareProxy(b, upstream)
	run := func(mk func() *http.Request, n int) (rate, cpuPerReq float64) {
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0 := cpuTime()
		start := time.Now()
		for range 16 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := get(c, mk()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		wall := time.Since(start)
		return float64(n) / wall.Seconds(), float64((cpuTime() - cpu0).Microseconds()) / float64(n)
	}
	paths := []func() *http.Request{direct, proxied, bare}
	for _, mk := range paths {
		run(mk, 500) // warm connections, the value cache and the redactor
	}
	const rounds = 7
	perRound := max(b.N, 2000) / rounds
	var rates, cpus [3][]float64
	b.ResetTimer()
	for range rounds {
		for i, mk := range paths {
			r, c := run(mk, perRound)
			rates[i], cpus[i] = append(rates[i], r), append(cpus[i], c)
		}
	}
	b.StopTimer()
	var proxyRatio, bareRatio []float64
	for r := range rounds {
		proxyRatio = append(proxyRatio, rates[1][r]/rates[0][r])
		bareRatio = append(bareRatio, rates[2][r]/rates[0][r])
	}
	b.ReportMetric(median(rates[0]), "direct_req/s")
	b.ReportMetric(median(rates[1]), "proxy_req/s")
	b.ReportMetric(median(rates[2]), "bare_req/s")
	b.ReportMetric(median(proxyRatio), "proxy/direct")
	b.ReportMetric(median(bareRatio), "bare/direct")
	b.ReportMetric(median(cpus[0]), "direct_cpu_us/req")
	b.ReportMetric(median(cpus[1]), "proxy_cpu_us/req")
	b.ReportMetric(median(cpus[2]), "bare_cpu_us/req")
}

// cpuTime is the user+system time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkProxyAllocs: heap allocations and bytes per request that a
// proxy adds, ours and the bare reverse proxy's: a proxied request's
// allocations in this process (client, proxy and upstream) less those of
// the same request sent directly, one request at a time, values cached.
func BenchmarkProxyAllocs(b *testing.B) {
	upstream, proxy, token, _ := benchSetup(b)
	c := newClient()
	direct, proxied := requests(upstream, proxy, token)
	bare := bareProxy(b, upstream)
	paths := []func() *http.Request{direct, proxied, bare}
	for range 200 {
		for _, mk := range paths {
			if err := get(c, mk()); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := max(b.N, 1000)
	var allocs, bytes [3]float64
	b.ResetTimer()
	for i, mk := range paths {
		// The audit writer and the transports' goroutines allocate too:
		// every request's share of theirs is its own.
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range n {
			if err := get(c, mk()); err != nil {
				b.Fatal(err)
			}
		}
		runtime.ReadMemStats(&m1)
		allocs[i] = float64(m1.Mallocs-m0.Mallocs) / float64(n)
		bytes[i] = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n)
	}
	b.StopTimer()
	b.ReportMetric(allocs[1]-allocs[0], "proxy_allocs/req")
	b.ReportMetric(allocs[2]-allocs[0], "bare_allocs/req")
	b.ReportMetric(bytes[1]-bytes[0], "proxy_B/req")
	b.ReportMetric(bytes[2]-bytes[0], "bare_B/req")
}
