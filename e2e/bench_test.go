package e2e

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkListVsStart measures `secrets list` over 1,000 secrets as a ratio
// to `agentsecrets --version` (bare process start), both timed in the same
// run, interleaved, so machine load affects both alike. The list runs with
// no vault passphrase and no D-Bus session: if it touched the backend it
// would fail, which proves it reads only the index.
func BenchmarkListVsStart(b *testing.B) {
	root := b.TempDir()
	home := filepath.Join(root, "home")
	pass := filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var env strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&env, "SECRET_%04d=value-%d-%d\n", i, i, time.Now().UnixNano())
	}
	envFile := filepath.Join(root, "big.env")
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	setup := []string{"AGENTSECRETS_HOME=" + home, "AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + pass, "PATH=" + os.Getenv("PATH")}
	for _, args := range [][]string{
		{"init", "--backend", "file", "--admin-passphrase-file", adminPassFile(b, root)},
		{"secrets", "import", envFile},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = setup
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	bare := []string{"AGENTSECRETS_HOME=" + home, "PATH=" + os.Getenv("PATH")}
	run := func(args ...string) time.Duration {
		cmd := exec.Command(binary, args...)
		cmd.Env = bare
		start := time.Now()
		out, err := cmd.Output()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return d
	}
	if n := strings.Count(string(mustOutput(b, bare, "secrets", "list", "--select", "secrets.#.name")), "SECRET_"); n != 1000 {
		b.Fatalf("list shows %d secrets, want 1000", n)
	}
	var start, list []time.Duration
	var pairs []float64
	for range 5 { // warm the page cache
		run("--version")
		run("secrets", "list")
	}
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, and keep each pair's ratio: load
		// that changes between pairs does not move the p50 of the ratios.
		var s, l time.Duration
		if i%2 == 0 {
			s, l = run("--version"), run("secrets", "list")
		} else {
			l, s = run("secrets", "list"), run("--version")
		}
		start, list, pairs = append(start, s), append(list, l), append(pairs, float64(l)/float64(s))
	}
	b.StopTimer()
	ps, pl := median(start), median(list)
	slices.Sort(pairs)
	b.ReportMetric(float64(ps.Microseconds())/1000, "start_p50_ms")
	b.ReportMetric(float64(pl.Microseconds())/1000, "list_p50_ms")
	b.ReportMetric(float64(pl)/float64(ps), "list/start")
	b.ReportMetric(pairs[len(pairs)/2], "pair_list/start_p50")
}

func mustOutput(b *testing.B, env []string, args ...string) []byte {
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchVault is a vault for process benchmarks: the Secret Service when a
// D-Bus session exists (scripts/bench runs under one), else the file
// backend. It holds KEY bound to up.
func benchVault(b *testing.B, up *httptest.Server, value string) []string {
	return benchVaultOn(b, up, value, os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" || os.Getenv("XDG_RUNTIME_DIR") != "")
}

// benchVaultOn is benchVault on the Secret Service if keychain is set,
// else on the encrypted file.
func benchVaultOn(b *testing.B, up *httptest.Server, value string, keychain bool) []string {
	return benchVaultURL(b, up.URL, value, keychain)
}

// benchVaultURL is benchVaultOn for an upstream at upURL (http:// or
// https://host:port), which may be another process.
func benchVaultURL(b *testing.B, upURL, value string, keychain bool) []string {
	root := b.TempDir()
	pass := filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{"AGENTSECRETS_HOME=" + filepath.Join(root, "home"), "AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + pass, "PATH=" + os.Getenv("PATH")}
	admin := adminPassFile(b, root)
	backend := "file"
	if keychain {
		backend = "keychain"
		for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
			if v := os.Getenv(k); v != "" {
				env = append(env, k+"="+v)
			}
		}
	}
	hostport := strings.TrimPrefix(strings.TrimPrefix(upURL, "http://"), "https://")
	for _, args := range [][]string{
		{"init", "--backend", backend, "--admin-passphrase-file", admin},
		{"workspace", "allowlist", "add", hostport, "--allow-http", "--allow-private", "--passphrase-file", admin},
	} {
		mustRun(b, env, nil, args...)
	}
	mustRun(b, env, []byte(value), "secrets", "set", "KEY", "--from-stdin")
	mustRun(b, env, nil, "secrets", "bind", "KEY", hostport, "--passphrase-file", admin)
	b.Logf("backend %s", backend)
	return env
}

func mustRun(b *testing.B, env []string, stdin []byte, args ...string) []byte {
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

// BenchmarkCallVsCurl: `agentsecrets call` end to end (process start,
// value from the backend, request, JSON out) against curl sending the same
// request with the value on its command line, interleaved in one run.
//
// Machine load from other processes comes and goes within a run, so each
// iteration times one call and one curl back to back (alternating which
// goes first) and call/curl is reported two ways: the ratio of the p50s
// and the p50 of the per-pair ratios, which load changes between pairs do
// not move. `agentsecrets --version` is timed in the same loop: start_p50
// is what every agentsecrets process pays before doing anything (runtime
// and package init, kong's grammar), so call_p50 - start_p50 is the work of
// call itself.
func BenchmarkCallVsCurl(b *testing.B) { benchCallVsCurl(b, false) }

// BenchmarkCallVsCurlTLS is BenchmarkCallVsCurl against an https upstream,
// as real APIs are: both processes load the system's TLS roots (the
// machine's bundle, with the test server's certificate added, through
// SSL_CERT_FILE and curl's --cacert) and make a TLS handshake per request.
func BenchmarkCallVsCurlTLS(b *testing.B) { benchCallVsCurl(b, true) }

func benchCallVsCurl(b *testing.B, useTLS bool) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Skip("curl is not installed")
	}
	const value = "sk_bench_call_0123456789abcdef"
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`)
	}))
	var curlTLS []string
	if useTLS {
		up.StartTLS()
	} else {
		up.Start()
	}
	defer up.Close()
	env := benchVault(b, up, value)
	if useTLS {
		bundle := filepath.Join(b.TempDir(), "roots.pem")
		// The system's roots, if this machine has the usual bundle, so
		// that loading them costs what it costs a user.
		roots, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})...)
		if err := os.WriteFile(bundle, roots, 0o600); err != nil {
			b.Fatal(err)
		}
		env = append(env, "SSL_CERT_FILE="+bundle)
		curlTLS = []string{"--cacert", bundle}
	}
	target := up.URL + "/v1/balance"
	timeIt := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	call := func() time.Duration { return timeIt(binary, "call", "--url", target, "--bearer", "KEY") }
	curlArgs := append([]string{"-sf", "-H", "Authorization: Bearer " + value}, curlTLS...)
	curlIt := func() time.Duration { return timeIt(curl, append(curlArgs, target)...) }
	for range 5 { // warm the page cache and the keyring daemon
		call()
		curlIt()
		timeIt(binary, "--version")
	}
	var calls, curls, starts []time.Duration
	var pairs []float64
	b.ResetTimer()
	for i := range b.N {
		var c, u time.Duration
		if i%2 == 0 {
			c, u = call(), curlIt()
		} else {
			u, c = curlIt(), call()
		}
		calls, curls, pairs = append(calls, c), append(curls, u), append(pairs, float64(c)/float64(u))
		starts = append(starts, timeIt(binary, "--version"))
	}
	b.StopTimer()
	pc, pu, ps := median(calls), median(curls), median(starts)
	slices.Sort(pairs)
	b.ReportMetric(float64(pc.Microseconds())/1000, "call_p50_ms")
	b.ReportMetric(float64(pu.Microseconds())/1000, "curl_p50_ms")
	b.ReportMetric(float64(ps.Microseconds())/1000, "start_p50_ms")
	b.ReportMetric(float64(pc)/float64(pu), "call/curl")
	b.ReportMetric(pairs[len(pairs)/2], "pair_call/curl_p50")
}

// BenchmarkProxyStreamRSS streams a 100 MB response through a proxy
// process and reports the proxy's peak resident memory (Linux).
func BenchmarkProxyStreamRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	const size = 100 << 20
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	// No run of half the value occurs in the body: that would be a partial
	// echo, redacted (and counted) on every 16 bytes.
	env := benchVault(b, up, "sk_bench_stream_Zq8Kd2Lp0xWv7Y9t")
	cmd, proxyAddr, token := launchProxy(b, env, "", "--max-response", "1073741824")
	b.ResetTimer()
	var total int64
	start := time.Now()
	for range b.N {
		req, _ := http.NewRequest("GET", "http://"+proxyAddr+"/proxy", nil)
		req.Header.Set("X-AS-Session-Token", token)
		req.Header.Set("X-AS-Target-URL", up.URL+"/big")
		req.Header.Set("X-AS-Inject-Bearer", "KEY")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != size {
			b.Fatalf("got %d bytes", n)
		}
		total += n
	}
	elapsed := time.Since(start)
	b.StopTimer()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%f", &kb)
			b.ReportMetric(kb/1024, "peak_rss_MB")
		}
	}
	b.ReportMetric(float64(total)/elapsed.Seconds()/1e6, "MB/s")
}

// adminPassFile writes the admin passphrase, which init requires to differ
// from the vault's, to a private file under root.
func adminPassFile(tb testing.TB, root string) string {
	tb.Helper()
	p := filepath.Join(root, "admin.pass")
	if err := os.WriteFile(p, []byte("benchmark admin passphrase\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// timedProxyGet sends one GET through the explicit proxy at addr,
// injecting KEY as a bearer token, reads the whole answer and returns how
// long that took.
func timedProxyGet(b *testing.B, client *http.Client, addr, token, target string) time.Duration {
	req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
	req.Header.Set("X-AS-Session-Token", token)
	req.Header.Set("X-AS-Target-URL", target)
	req.Header.Set("X-AS-Inject-Bearer", "KEY")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 200 {
		b.Fatalf("proxy at %s: %d", addr, resp.StatusCode)
	}
	return d
}
