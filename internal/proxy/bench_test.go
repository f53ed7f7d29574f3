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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// benchSetup builds a real vault (the Secret Service when a D-Bus session
// exists, as under scripts/bench; else the encrypted file), one secret bound
// to a local upstream, and a proxy in front of it, both on 127.0.0.1.
func benchSetup(b *testing.B) (upstreamURL, proxyURL, token, backend string) {
	b.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`)
	}))
	b.Cleanup(up.Close)
	root := b.TempDir()
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
		b.Fatal(err)
	}
	sel := vault.Selection{Workspace: vault.DefaultName, Project: vault.DefaultName}
	if _, err := st.PutSecrets(ctx, sel, []vault.Put{{Name: "KEY", Value: []byte("sk_bench_0123456789abcdefghijklmnop"), Source: "set"}}, vault.Upsert); err != nil {
		b.Fatal(err)
	}
	hostport := strings.TrimPrefix(up.URL, "http://")
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
		b.Fatal(err)
	}
	brk := broker.New(broker.Config{Store: st, Audit: audit.Open(filepath.Join(root, "audit"), audit.Options{})})
	srv := &Server{Broker: brk, Token: "bench-token", Selection: sel, Version: "bench"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close(); srv.Drain() })
	return up.URL, "http://" + ln.Addr().String() + "/proxy", "bench-token", st.Config.Backend
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
// clients, proxied and direct, measured one after the other in one run.
func BenchmarkProxyThroughput16(b *testing.B) {
	upstream, proxy, token, _ := benchSetup(b)
	c := newClient()
	direct, proxied := requests(upstream, proxy, token)
	run := func(mk func() *http.Request, n int) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if err := get(c, mk()); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds()
	}
	bare := bareProxy(b, upstream)
	run(direct, 500)
	run(proxied, 500)
	run(bare, 500)
	b.ResetTimer()
	n := max(b.N, 2000)
	dr := run(direct, n)
	pr := run(proxied, n)
	br := run(bare, n)
	b.StopTimer()
	b.ReportMetric(dr, "direct_req/s")
	b.ReportMetric(pr, "proxy_req/s")
	b.ReportMetric(pr/dr, "proxy/direct")
	b.ReportMetric(br/dr, "bare/direct")
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
