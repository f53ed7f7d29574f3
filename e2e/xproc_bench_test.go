package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The three-process proxy benchmark. Users run a load client (the agent),
// the proxy and the API as three processes on one machine, so that is what
// BenchmarkProxyXProc measures: the benchmark process is the load client,
// the upstream is this test binary re-executed with xprocServeEnv set,
// which TestMain turns into a server instead of a test run, and the floor
// is e2e/testdata/proxyfloor, a bare httputil.ReverseProxy built on its
// own the way agentsecrets is (see its comment for why it is not this
// binary too).

const (
	// xprocServeEnv makes TestMain serve: "upstream" is the only mode.
	xprocServeEnv = "AGENTSECRETS_E2E_XPROC_SERVE"

	xprocBodySize = 100 << 20
	// xprocBodies is how many bodies each side streams per round of
	// BenchmarkProxyXProc.
	xprocBodies  = 3
	xprocBalance = `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`
	// No run of half this value occurs in the 100 MB body: that would be
	// a partial echo, redacted (and counted) on every 16 bytes.
	xprocValue = "sk_bench_xproc_Zq8Kd2Lp0xWv7Y9t"
)

// xprocServe is the whole life of a helper process: it prints its address
// on stdout and serves until killed. It returns an exit status.
func xprocServe(mode string) int {
	if mode != "upstream" {
		fmt.Fprintf(os.Stderr, "%s=%q: want upstream\n", xprocServeEnv, mode)
		return 2
	}
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096))
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/balance", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, xprocBalance)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(xprocBodySize))
		for sent := 0; sent < xprocBodySize; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	return 1
}

// proxyFloorBinary builds e2e/testdata/proxyfloor once per test run, with
// CGO_ENABLED=0 as TestMain builds agentsecrets, next to that binary.
var proxyFloorBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(binary), "proxyfloor")
	build := exec.Command("go", "build", "-o", bin, "./testdata/proxyfloor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the floor proxy: %v\n%s", err, out)
	}
	return bin, nil
})

// startFloor starts the floor proxy in front of upURL, with extra
// environment, and returns the side that sends requests through it and
// the process.
func startFloor(b *testing.B, upURL string, extra ...string) (*xprocSide, *exec.Cmd) {
	b.Helper()
	bin, err := proxyFloorBinary()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PROXYFLOOR_TARGET=" + upURL, "PROXYFLOOR_AUTH=Bearer " + xprocValue}, extra...)
	addr, pid := startServer(b, cmd, "floor")
	return &xprocSide{name: "floor", pid: pid, req: func(path string) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		return req
	}}, cmd
}

// startUpstream runs this test binary as the upstream and returns its base
// URL and process id.
func startUpstream(b *testing.B) (string, int) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{xprocServeEnv + "=upstream", "PATH=" + os.Getenv("PATH")}
	addr, pid := startServer(b, cmd, "upstream")
	return "http://" + addr, pid
}

// startServer starts a helper server process that prints its address as
// its first line, and stops it when the benchmark ends.
func startServer(b *testing.B, cmd *exec.Cmd, what string) (string, int) {
	b.Helper()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s printed no address: %v", what, err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid
}

// xprocSide is one way to the upstream: direct, through our proxy or
// through the floor.
type xprocSide struct {
	name string
	pid  int // the proxy process; 0 for direct
	req  func(path string) *http.Request
}

// do sends one request for path on c, reads the whole answer and returns
// its size, or an error for a failure or any status but 200.
func (s *xprocSide) do(c *http.Client, path string) (int64, error) {
	resp, err := c.Do(s.req(path))
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: status %d", s.name, path, resp.StatusCode)
	}
	return n, err
}

// xprocRig is the three-process set-up: an upstream process, our proxy
// (`agentsecrets proxy start`) and the floor (a bare ReverseProxy process),
// and a side for each way to the upstream.
type xprocRig struct {
	keychain            bool
	direct, ours, floor *xprocSide
	proxy               *exec.Cmd
	env, proxyArgs      []string
	upURL               string
	upPID               int
}

// newXProcRig starts the processes. The vault is on the Secret Service
// when DBUS_SESSION_BUS_ADDRESS is set (scripts/bench runs under
// scripts/with-secret-service), else the encrypted file; the log says
// which.
func newXProcRig(b *testing.B) *xprocRig {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	r := &xprocRig{keychain: os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "", proxyArgs: []string{"--max-response", "1073741824"}}
	r.upURL, r.upPID = startUpstream(b)
	r.floor, _ = startFloor(b, r.upURL)
	r.env = append(benchVaultURL(b, r.upURL, xprocValue, r.keychain), "AGENTSECRETS_BROKER=none")
	r.direct = &xprocSide{name: "direct", req: func(path string) *http.Request {
		req, _ := http.NewRequest("GET", r.upURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+xprocValue)
		return req
	}}
	r.startProxy(b)
	return r
}

// startProxy starts our proxy, with extra environment.
func (r *xprocRig) startProxy(b *testing.B, extra ...string) {
	r.proxy, r.ours = r.launch(b, "ours", binary, append(slices.Clone(r.env), extra...))
}

// launch starts `proxy start` of the executable bin in env and returns it
// and the side that sends requests through it.
func (r *xprocRig) launch(b *testing.B, name, bin string, env []string) (*exec.Cmd, *xprocSide) {
	cmd, addr, token := launchProxyOf(b, bin, env, "", r.proxyArgs...)
	return cmd, &xprocSide{name: name, pid: cmd.Process.Pid, req: func(path string) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
		req.Header.Set("X-AS-Session-Token", token)
		req.Header.Set("X-AS-Target-URL", r.upURL+path)
		req.Header.Set("X-AS-Inject-Bearer", "KEY")
		return req
	}}
}

// backend names the vault's backend for the log.
func (r *xprocRig) backend() string {
	if r.keychain {
		return "keychain (Secret Service)"
	}
	return "file"
}

// warm opens connections and fills the value cache and the redactor's
// state on every side, so no round pays for a first request.
func (r *xprocRig) warm(b *testing.B, one *http.Client) {
	for range 200 {
		for _, s := range []*xprocSide{r.direct, r.ours, r.floor} {
			if _, err := s.do(one, "/v1/balance"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, s := range []*xprocSide{r.ours, r.floor} {
		if res := xprocLoad(s, xprocClients, 200*time.Millisecond); res.err != nil {
			b.Fatal(res.err)
		}
	}
}

// latRun is how many requests in a row xprocLatencies counts for one side.
const latRun = 20

// xprocLatencies sends perSide requests for /v1/balance to each side on
// one and returns their durations by side. They go in runs of latRun to one
// side, as one agent sends them, the sides' runs interleaved in an order
// drawn from order each time (xprocRun).
//
// Runs, not turns: what a proxy does after answering (its audit writer's
// timer and batch) lands on the request that follows, which for an agent
// is its own next one. Taking turns request by request put that cost on
// the other sides instead and measured each side's place in the turn as
// well: with two identical proxies, a fixed rotation made the one after
// direct 9 µs slower in the median. Measured in runs, ours − floor was
// 0.12 to 0.14 ms where turns said 0.05 to 0.06.
//
// It also returns each proxy's CPU time per request over its runs (threads'
// run time from schedstat, in µs): at one client, what the Go runtime does
// between requests (waking and parking threads) is most of it, unlike
// under the 16-client load.
func xprocLatencies(b *testing.B, one *http.Client, sides []*xprocSide, perSide int, order *rand.Rand) (map[string][]time.Duration, map[string]float64) {
	lat := map[string][]time.Duration{}
	cpu, sent := map[string]time.Duration{}, map[string]int{}
	for range (perSide + latRun - 1) / latRun {
		for _, i := range order.Perm(len(sides)) {
			s := sides[i]
			var before time.Duration
			if s.pid != 0 {
				before = threadsCPU(b, s.pid)
			}
			lat[s.name] = append(lat[s.name], xprocRun(b, one, sides, i)...)
			if s.pid != 0 {
				cpu[s.name] += threadsCPU(b, s.pid) - before
				sent[s.name] += latRun + 1
			}
		}
	}
	perReq := map[string]float64{}
	for name, d := range cpu {
		perReq[name] = float64(d.Nanoseconds()) / 1000 / float64(sent[name])
	}
	return lat, perReq
}

// threadsCPU is the run time of all of pid's threads from
// /proc/PID/task/*/schedstat, in nanoseconds rather than /proc/PID/stat's
// 10 ms ticks, which a run of 21 requests would not fill. A kernel without
// schedstat gets the ticks, which sum up over the runs of a round.
func threadsCPU(b *testing.B, pid int) time.Duration {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if len(files) == 0 {
		d, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	var sum time.Duration
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that exited meanwhile
		}
		fields := strings.Fields(string(raw))
		if len(fields) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", f, raw)
		}
		sum += time.Duration(ns)
	}
	return sum
}

// xprocRun sends latRun+1 requests to sides[i] with every other side's
// proxy process stopped (SIGSTOP), and returns the durations of the last
// latRun: the first meets what the side left pending while it was stopped.
//
// Stopped, because on 2 cores what one proxy does in the background (the
// audit batch of its last run, a timer) otherwise runs during another
// side's run and slows that side instead: a build of ours whose timer woke
// every millisecond looked 14 to 25 µs faster than main with the others
// running, and was 25 µs slower with them stopped. Two identical builds
// measure the same p50 either way (0 to 5 µs apart over 20 rounds).
func xprocRun(b *testing.B, one *http.Client, sides []*xprocSide, i int) []time.Duration {
	for j, o := range sides {
		if j == i || o.pid == 0 {
			continue
		}
		if err := syscall.Kill(o.pid, syscall.SIGSTOP); err != nil {
			b.Fatalf("stop %s: %v", o.name, err)
		}
		defer syscall.Kill(o.pid, syscall.SIGCONT)
	}
	lat := make([]time.Duration, 0, latRun)
	for k := range latRun + 1 {
		t0 := time.Now()
		if _, err := sides[i].do(one, "/v1/balance"); err != nil {
			b.Fatal(err)
		}
		if k > 0 {
			lat = append(lat, time.Since(t0))
		}
	}
	return lat
}

// xprocClients is the load's concurrency: an agent fanning out requests.
const xprocClients = 16

// BenchmarkProxyXProc: our proxy (`agentsecrets proxy start`, its own
// process) against the floor, a bare httputil.ReverseProxy process that
// injects a fixed header (e2e/testdata/proxyfloor), between a load client
// (this process) and an upstream process, all on 127.0.0.1 (xprocRig; metric keychain is 1 on
// the Secret Service, 0 on the file backend). b.N is the number of rounds
// (scripts/bench: 5x); within each round ours and the floor alternate
// which goes first, and every figure is the median of the per-round
// figures:
//
//   - added p50 at 1 client, one keep-alive connection per side,
//     XPROC_LAT_REQS (400) requests per side (xprocLatencies: runs of 20
//     to one side with the other proxies stopped, in a random order of
//     sides): ours − direct, floor −
//     direct and ours − floor, in ms; and each proxy's CPU time per
//     request over those runs, in µs;
//   - throughput at 16 clients (a connection each) for XPROC_LOAD_SECONDS
//     (1.5) per side: ours ÷ floor;
//   - proxy CPU per request in that load (utime+stime deltas from
//     /proc/PID/stat ÷ requests), ours and floor, in µs, and ours ÷ floor;
//   - a 100 MB body, ours ÷ floor in MB/s (each side's median of three
//     bodies, alternating sides), and the peak RSS (VmHWM) of
//     each proxy while streaming it (the high-water mark is reset through
//     /proc/PID/clear_refs before; where that is refused, the figure is
//     the process's lifetime peak), beside ours' RSS just before (what
//     the small-request load left resident).
func BenchmarkProxyXProc(b *testing.B) {
	r := newXProcRig(b)
	ours, floor := r.ours, r.floor
	sides := []*xprocSide{r.direct, ours, floor}
	loadFor := benchSeconds("XPROC_LOAD_SECONDS", 1.5)
	latReqs := 400
	if n, err := strconv.Atoi(os.Getenv("XPROC_LAT_REQS")); err == nil && n > 0 {
		latReqs = n
	}
	one := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1}}
	r.warm(b, one)

	var addOurs, addFloor, oursOverFloor, directP50, rps, cpuOurs, cpuFloor, cpuRatio, mbps, oursMBps, floorMBps, oursRPS, floorRPS, cpu1Ours, cpu1Floor []float64
	peak, before := map[string]float64{}, map[string]float64{}
	order := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for round := range b.N {
		// Ours first in even rounds, the floor first in odd ones.
		pair := []*xprocSide{ours, floor}
		if round%2 == 1 {
			pair = []*xprocSide{floor, ours}
		}

		lat, cpu1 := xprocLatencies(b, one, sides, latReqs, order)
		pd, po, pf := ms(median(lat["direct"])), ms(median(lat["ours"])), ms(median(lat["floor"]))
		directP50, addOurs, addFloor, oursOverFloor = append(directP50, pd), append(addOurs, po-pd), append(addFloor, pf-pd), append(oursOverFloor, po-pf)
		cpu1Ours, cpu1Floor = append(cpu1Ours, cpu1["ours"]), append(cpu1Floor, cpu1["floor"])

		load := map[string]xprocLoadResult{}
		for _, s := range pair {
			res := xprocLoad(s, xprocClients, loadFor)
			if res.err != nil {
				b.Fatal(res.err)
			}
			load[s.name] = res
		}
		lo, lf := load["ours"], load["floor"]
		rps, oursRPS, floorRPS = append(rps, lo.rate()/lf.rate()), append(oursRPS, lo.rate()), append(floorRPS, lf.rate())
		cpuOurs, cpuFloor = append(cpuOurs, lo.cpuPerReq()), append(cpuFloor, lf.cpuPerReq())
		cpuRatio = append(cpuRatio, lo.cpuPerReq()/lf.cpuPerReq())

		// One body lasts about 80 ms, short enough for one preemption of
		// either side to move the round's ratio by a tenth: each side
		// streams xprocBodies bodies, alternating, and the round takes
		// each side's median.
		speeds := map[string][]float64{}
		big := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
		for range xprocBodies {
			for _, s := range pair {
				// Best effort: refused, VmHWM stays the lifetime peak.
				os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0)
				before[s.name] = max(before[s.name], procStatus(s.pid, "VmRSS"))
				t0 := time.Now()
				n, err := s.do(big, "/big")
				if err != nil || n != xprocBodySize {
					b.Fatalf("%s: 100 MB body: %d bytes, %v", s.name, n, err)
				}
				speeds[s.name] = append(speeds[s.name], float64(n)/time.Since(t0).Seconds()/1e6)
				peak[s.name] = max(peak[s.name], procStatus(s.pid, "VmHWM"))
			}
		}
		big.CloseIdleConnections()
		so, sf := mid(speeds["ours"]), mid(speeds["floor"])
		mbps, oursMBps, floorMBps = append(mbps, so/sf), append(oursMBps, so), append(floorMBps, sf)
	}
	b.StopTimer()

	b.Logf("backend %s; %d rounds; figures are medians of per-round figures", r.backend(), b.N)
	b.ReportMetric(boolMetric(r.keychain), "keychain")
	b.ReportMetric(mid(directP50), "direct_p50_ms")
	b.ReportMetric(mid(addOurs), "ours_added_p50_ms")
	b.ReportMetric(mid(addFloor), "floor_added_p50_ms")
	b.ReportMetric(mid(oursOverFloor), "ours-floor_p50_ms")
	b.ReportMetric(mid(cpu1Ours), "ours_cpu_us/req_1client")
	b.ReportMetric(mid(cpu1Floor), "floor_cpu_us/req_1client")
	b.ReportMetric(mid(rps), "rps16_ours/floor")
	b.ReportMetric(mid(oursRPS), "ours_rps16")
	b.ReportMetric(mid(floorRPS), "floor_rps16")
	b.ReportMetric(mid(cpuOurs), "ours_cpu_us/req")
	b.ReportMetric(mid(cpuFloor), "floor_cpu_us/req")
	b.ReportMetric(mid(cpuRatio), "cpu_ours/floor")
	b.ReportMetric(mid(mbps), "body_MBps_ours/floor")
	b.ReportMetric(mid(oursMBps), "ours_MB/s")
	b.ReportMetric(mid(floorMBps), "floor_MB/s")
	b.ReportMetric(peak["ours"], "ours_stream_rss_MB")
	b.ReportMetric(peak["floor"], "floor_stream_rss_MB")
	b.ReportMetric(before["ours"], "ours_rss_before_stream_MB")
}

// BenchmarkProxyXProcProfile writes a CPU profile of our proxy under the
// 16-client load of BenchmarkProxyXProc to XPROC_CPUPROFILE (unset, a
// temporary file: the run still checks the set-up works), through AGENTSECRETS_CPUPROFILE: XPROC_PROFILE_SECONDS (5) of
// load, then the proxy stops, which completes the file. scripts/bench runs
// it with -benchtime 1x and prints `go tool pprof -top` of the file.
// Before that, where strace is installed, it counts the system calls per
// request of ours and of the floor under the same load (logged, and
// reported as ours_syscalls/req and floor_syscalls/req).
func BenchmarkProxyXProcProfile(b *testing.B) {
	path := os.Getenv("XPROC_CPUPROFILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "proxy.pprof")
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	r := newXProcRig(b)
	r.warm(b, &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1}})
	syscalls := map[string]float64{} // reported at the end: ResetTimer drops metrics
	if _, err := exec.LookPath("strace"); err == nil {
		for _, s := range []*xprocSide{r.ours, r.floor} {
			var calls string
			calls, syscalls[s.name] = xprocSyscalls(b, s)
			b.Logf("syscalls per request, %s: %s", s.name, calls)
		}
	} else {
		b.Logf("no strace: syscalls not counted")
	}
	// One proxy per home: the profiled one replaces the first.
	r.proxy.Process.Signal(os.Interrupt)
	r.proxy.Wait()
	r.startProxy(b, "AGENTSECRETS_CPUPROFILE="+path)
	if res := xprocLoad(r.ours, xprocClients, 200*time.Millisecond); res.err != nil { // warm
		b.Fatal(res.err)
	}
	b.ResetTimer()
	var res xprocLoadResult
	for range b.N {
		if res = xprocLoad(r.ours, xprocClients, benchSeconds("XPROC_PROFILE_SECONDS", 5)); res.err != nil {
			b.Fatal(res.err)
		}
	}
	b.StopTimer()
	r.proxy.Process.Signal(os.Interrupt)
	if err := r.proxy.Wait(); err != nil {
		b.Fatalf("the profiled proxy: %v", err)
	}
	b.Logf("backend %s; CPU profile of the proxy under %d clients (%d requests in the last run) in %s", r.backend(), xprocClients, res.n, path)
	b.ReportMetric(res.cpuPerReq(), "ours_cpu_us/req")
	for name, n := range syscalls {
		b.ReportMetric(n, name+"_syscalls/req")
	}
}

// BenchmarkProxyXProcBody is the 100 MB body of BenchmarkProxyXProc on its
// own, for working on that path: b.N rounds, in each the body once through
// every side, the side that goes first rotating; it reports the medians of
// the per-round MB/s and of their ratios, each proxy's peak RSS while
// streaming, and CPU time per body (utime+stime from /proc/PID/stat over
// all rounds) of each proxy, of the upstream and of this process (the
// client) while that proxy streamed.
//
// With XPROC_BASE_BINARY set to another build of agentsecrets (the base
// tree's), a third side, "base", runs that build's proxy (its own vault
// home) beside ours and the floor, so old and new are measured in the same
// rounds. With XPROC_CPUPROFILE set, our proxy runs under
// AGENTSECRETS_CPUPROFILE and leaves its profile there when it stops; with
// XPROC_BODY_STRACE set (and strace installed), one more body through each
// side runs under strace first, and the log shows each side's system calls
// while streaming it (counts), then its reads and writes by file
// descriptor: calls, bytes and the mean size.
func BenchmarkProxyXProcBody(b *testing.B) {
	r := newXProcRig(b)
	profile := os.Getenv("XPROC_CPUPROFILE")
	if profile != "" {
		if abs, err := filepath.Abs(profile); err == nil {
			profile = abs
		}
		r.proxy.Process.Signal(os.Interrupt)
		r.proxy.Wait()
		r.startProxy(b, "AGENTSECRETS_CPUPROFILE="+profile)
	}
	sides := []*xprocSide{r.ours, r.floor}
	if bin := os.Getenv("XPROC_BASE_BINARY"); bin != "" {
		env := append(benchVaultURL(b, r.upURL, xprocValue, r.keychain), "AGENTSECRETS_BROKER=none")
		_, base := r.launch(b, "base", bin, env)
		sides = append(sides, base)
	}
	big := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	body := func(s *xprocSide) float64 {
		t0 := time.Now()
		n, err := s.do(big, "/big")
		if err != nil || n != xprocBodySize {
			b.Fatalf("%s: 100 MB body: %d bytes, %v", s.name, n, err)
		}
		return float64(n) / time.Since(t0).Seconds() / 1e6
	}
	for _, s := range sides {
		body(s) // warm: connections, the value cache, the reader's buffers
	}
	if _, err := exec.LookPath("strace"); err == nil && os.Getenv("XPROC_BODY_STRACE") != "" {
		for _, s := range sides {
			counts := straceDuring(b, s, func() { body(s) })
			b.Logf("%s, system calls while streaming the body:\n%s", s.name, counts)
			calls := straceDuring(b, s, func() { body(s) }, "-e", "trace=read,write,writev,recvfrom,sendto,sendmsg,recvmsg", "-s", "0")
			b.Logf("%s, reads and writes while streaming the body:\n%s", s.name, ioSizes(calls))
		}
	}
	speeds := map[string][]float64{}
	peak := map[string]float64{}
	// CPU time over all rounds, per side: the proxy's, the upstream's and
	// this process's (the client's) while that side streamed.
	cpu := map[string]*[3]time.Duration{}
	for _, s := range sides {
		cpu[s.name] = &[3]time.Duration{}
	}
	b.ResetTimer()
	for round := range b.N {
		for k := range sides {
			s := sides[(round+k)%len(sides)]
			os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0)
			pids := [3]int{s.pid, r.upPID, os.Getpid()}
			var before [3]time.Duration
			for i, pid := range pids {
				before[i], _ = procCPU(pid)
			}
			speeds[s.name] = append(speeds[s.name], body(s))
			for i, pid := range pids {
				after, _ := procCPU(pid)
				cpu[s.name][i] += after - before[i]
			}
			peak[s.name] = max(peak[s.name], procStatus(s.pid, "VmHWM"))
		}
	}
	b.StopTimer()
	big.CloseIdleConnections()
	if profile != "" {
		r.proxy.Process.Signal(os.Interrupt)
		if err := r.proxy.Wait(); err != nil {
			b.Fatalf("the profiled proxy: %v", err)
		}
		b.Logf("CPU profile of our proxy streaming the bodies in %s", profile)
	}
	ratio := func(x, y string) []float64 {
		var q []float64
		for i := range speeds[x] {
			q = append(q, speeds[x][i]/speeds[y][i])
		}
		return q
	}
	b.Logf("per-round ours/floor: %.3f", ratio("ours", "floor"))
	b.ReportMetric(mid(ratio("ours", "floor")), "body_MBps_ours/floor")
	if _, ok := speeds["base"]; ok {
		b.Logf("per-round base/floor: %.3f", ratio("base", "floor"))
		b.Logf("per-round ours/base: %.3f", ratio("ours", "base"))
		b.ReportMetric(mid(ratio("base", "floor")), "body_MBps_base/floor")
		b.ReportMetric(mid(ratio("ours", "base")), "body_MBps_ours/base")
	}
	perBody := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	for _, s := range sides {
		b.ReportMetric(mid(speeds[s.name]), s.name+"_MB/s")
		b.ReportMetric(peak[s.name], s.name+"_stream_rss_MB")
		c := cpu[s.name]
		b.ReportMetric(perBody(c[0]), s.name+"_cpu_ms/body")
		b.ReportMetric(perBody(c[1]), s.name+"_upstream_cpu_ms/body")
		b.ReportMetric(perBody(c[2]), s.name+"_client_cpu_ms/body")
	}
}

// ioSizes sums strace's lines of reads and writes (strace -f -e
// trace=...) by call and file descriptor: calls, bytes and mean size,
// most bytes first.
func ioSizes(trace []byte) string {
	type sum struct {
		key          string
		calls, bytes int64
	}
	sums := map[string]*sum{}
	pending := map[string]string{} // pid -> "call fd" of an unfinished call
	for _, line := range strings.Split(string(trace), "\n") {
		pid, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		var key string
		switch {
		case strings.HasPrefix(rest, "<... "):
			key = pending[pid]
			delete(pending, pid)
		default:
			call, args, ok := strings.Cut(rest, "(")
			if !ok {
				continue
			}
			fd, _, _ := strings.Cut(args, ",")
			key = call + " fd" + fd
			if strings.HasSuffix(rest, "<unfinished ...>") {
				pending[pid] = key
				continue
			}
		}
		i := strings.LastIndex(rest, "= ")
		if key == "" || i < 0 {
			continue
		}
		ret, _, _ := strings.Cut(rest[i+2:], " ")
		n, err := strconv.ParseInt(ret, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		if sums[key] == nil {
			sums[key] = &sum{key: key}
		}
		sums[key].calls++
		sums[key].bytes += n
	}
	var all []*sum
	for _, s := range sums {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *sum) int { return int(b.bytes - a.bytes) })
	var w strings.Builder
	for _, s := range all {
		fmt.Fprintf(&w, "  %-14s %7d calls %11d bytes, mean %d\n", s.key, s.calls, s.bytes, s.bytes/s.calls)
	}
	return w.String()
}

// BenchmarkProxyXProcTrace writes runtime execution traces of our proxy
// and of the floor (both through AGENTSECRETS_TRACE) under the 1-client
// load of BenchmarkProxyXProc, to ours.trace and floor.trace in
// XPROC_TRACE_DIR (unset, a temporary directory: the run still checks the
// set-up works), for `go tool trace`: where one request's latency goes
// between goroutines, threads and system calls in each. The sides are
// interleaved as in BenchmarkProxyXProc, XPROC_LAT_REQS (400) requests
// each per round.
func BenchmarkProxyXProcTrace(b *testing.B) {
	dir := os.Getenv("XPROC_TRACE_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		b.Fatal(err)
	}
	latReqs := 400
	if n, err := strconv.Atoi(os.Getenv("XPROC_LAT_REQS")); err == nil && n > 0 {
		latReqs = n
	}
	r := newXProcRig(b)
	// One proxy per home: the traced one replaces the first, and the
	// traced floor runs beside the untraced one.
	r.proxy.Process.Signal(os.Interrupt)
	r.proxy.Wait()
	oursTrace, floorTrace := filepath.Join(dir, "ours.trace"), filepath.Join(dir, "floor.trace")
	r.startProxy(b, "AGENTSECRETS_TRACE="+oursTrace)
	var floor *exec.Cmd
	r.floor, floor = startFloor(b, r.upURL, "AGENTSECRETS_TRACE="+floorTrace)
	one := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1}}
	r.warm(b, one)
	sides := []*xprocSide{r.direct, r.ours, r.floor}
	order := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		xprocLatencies(b, one, sides, latReqs, order)
	}
	b.StopTimer()
	for _, p := range []*os.Process{r.proxy.Process, floor.Process} {
		p.Signal(os.Interrupt)
	}
	if err := r.proxy.Wait(); err != nil {
		b.Fatalf("the traced proxy: %v", err)
	}
	if err := floor.Wait(); err != nil {
		b.Fatalf("the traced floor: %v", err)
	}
	for _, p := range []string{oursTrace, floorTrace} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			b.Fatalf("no trace in %s: %v", p, err)
		}
	}
	b.Logf("backend %s; execution traces of %d requests per side: %s, %s", r.backend(), latReqs*b.N, oursTrace, floorTrace)
}

// xprocSyscalls counts the system calls of s's process (all its threads)
// under the 16-client load with strace -c attached, and returns the calls
// per request, most frequent first ("write 2.00 read 2.00 ..."), and their
// total. strace slows the process down; the counts do not depend on that.
func xprocSyscalls(b *testing.B, s *xprocSide) (string, float64) {
	var res xprocLoadResult
	table := straceDuring(b, s, func() { res = xprocLoad(s, xprocClients, benchSeconds("XPROC_STRACE_SECONDS", 2)) })
	if res.err != nil {
		b.Fatal(res.err)
	}
	type count struct {
		name  string
		calls float64
	}
	var counts []count
	total := 0.0
	// Rows: % time, seconds, usecs/call, calls, [errors,] syscall.
	for _, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		calls, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		per := calls / float64(res.n)
		counts = append(counts, count{f[len(f)-1], per})
		total += per
	}
	slices.SortFunc(counts, func(a, b count) int {
		if a.calls != b.calls {
			if a.calls > b.calls {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	var w strings.Builder
	fmt.Fprintf(&w, "%.2f in all (%d requests):", total, res.n)
	for _, c := range counts {
		if c.calls >= 0.01 {
			fmt.Fprintf(&w, " %s %.2f", c.name, c.calls)
		}
	}
	return w.String(), total
}

// straceDuring runs work with strace attached to s's process (all its
// threads, -f) and returns strace's output: with -c, as for xprocSyscalls,
// a table of counts; with other flags (-e trace=read,write), one line per
// call.
func straceDuring(b *testing.B, s *xprocSide, work func(), flags ...string) []byte {
	out := filepath.Join(b.TempDir(), "strace-"+s.name)
	if len(flags) == 0 {
		flags = []string{"-c"}
	}
	st := exec.Command("strace", append(append([]string{"-f", "-o", out}, flags...), "-p", strconv.Itoa(s.pid))...)
	stderr, err := st.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Start(); err != nil {
		b.Fatal(err)
	}
	// strace says "Process N attached" per thread once it traces them.
	if _, err := bufio.NewReader(stderr).ReadString('\n'); err != nil {
		b.Fatalf("strace -p %d did not attach: %v", s.pid, err)
	}
	go io.Copy(io.Discard, stderr)
	time.Sleep(200 * time.Millisecond)
	work()
	st.Process.Signal(os.Interrupt)
	st.Wait()
	table, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return table
}

// xprocLoadResult is one load run against one side.
type xprocLoadResult struct {
	n       int           // requests answered 200
	elapsed time.Duration // wall time
	cpu     time.Duration // the proxy's utime+stime over the run
	err     error         // the first failure
}

func (r xprocLoadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }
func (r xprocLoadResult) cpuPerReq() float64 {
	return float64(r.cpu.Microseconds()) / float64(r.n)
}

// xprocLoad runs clients goroutines, a keep-alive connection each, sending
// small requests to s for dur, and reads the CPU s.pid spent meanwhile.
func xprocLoad(s *xprocSide, clients int, dur time.Duration) xprocLoadResult {
	var mu sync.Mutex
	var wg sync.WaitGroup
	res := xprocLoadResult{}
	cpu0, err := procCPU(s.pid)
	if err != nil {
		return xprocLoadResult{err: err}
	}
	start := time.Now()
	deadline := start.Add(dur)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer c.CloseIdleConnections()
			n := 0
			var failed error
			for failed == nil && time.Now().Before(deadline) {
				if _, failed = s.do(c, "/v1/balance"); failed == nil {
					n++
				}
			}
			mu.Lock()
			res.n += n
			if res.err == nil {
				res.err = failed
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	cpu1, err := procCPU(s.pid)
	if res.err == nil {
		res.err = err
	}
	res.cpu = cpu1 - cpu0
	if res.err == nil && res.n == 0 {
		res.err = fmt.Errorf("%s: no request answered in %v", s.name, dur)
	}
	return res
}

// procCPU is a process's user plus system CPU time from /proc/PID/stat.
// Linux reports it in USER_HZ ticks, which is 100 per second on every
// architecture (the kernel scales to it for user space).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'. utime and stime are
	// fields 14 and 15, so the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * (time.Second / 100), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mid is the median of v.
func mid(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func boolMetric(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// TestProxyCPUProfile: AGENTSECRETS_CPUPROFILE on `proxy start` leaves a
// pprof CPU profile (gzip-compressed protocol buffers, private to the user)
// once the proxy stops.
func TestProxyCPUProfile(t *testing.T) {
	v := NewVault(t, "file")
	v.RunIn([]byte("sk_profile_test_0123456789"), "secrets", "set", "KEY", "--from-stdin").OK(t)
	profile := filepath.Join(t.TempDir(), "proxy.pprof")
	v.ExtraEnv = []string{"AGENTSECRETS_CPUPROFILE=" + profile}
	cmd, addr, _ := launchProxy(t, v.Env(), v.Dir)
	if _, err := os.Stat(profile); err != nil {
		t.Fatalf("no profile file while the proxy runs: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("proxy stop: %v", err)
	}
	f, err := os.Open(profile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("the profile is not gzip (pprof): %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || len(raw) == 0 {
		t.Fatalf("the profile is empty or truncated: %d bytes, %v", len(raw), err)
	}
	if fi, _ := os.Stat(profile); fi.Mode().Perm() != 0o600 {
		t.Errorf("profile mode %o, want 600", fi.Mode().Perm())
	}
}

// TestProxyTrace: AGENTSECRETS_TRACE on `proxy start` leaves a runtime
// execution trace (private to the user) once the proxy stops, and the
// trace of a request that injected a value, echoed back, holds no form of
// it.
func TestProxyTrace(t *testing.T) {
	key := newCanary(t, "trace", "")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		io.WriteString(w, "echo "+r.Header.Get("Authorization"))
	})
	v := brokerVault(t, map[string]string{"KEY": string(key)}, up)
	path := filepath.Join(t.TempDir(), "proxy.trace")
	v.ExtraEnv = []string{"AGENTSECRETS_TRACE=" + path}
	cmd, addr, token := launchProxy(t, v.Env(), v.Dir)
	req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
	req.Header.Set("X-AS-Session-Token", token)
	req.Header.Set("X-AS-Target-URL", up.URL+"/v1/echo")
	req.Header.Set("X-AS-Inject-Bearer", "KEY")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("[REDACTED")) {
		t.Fatalf("proxied request: %d %q", resp.StatusCode, body)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("proxy stop: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every execution trace starts with this header.
	if !bytes.HasPrefix(raw, []byte("go 1.")) || !bytes.Contains(raw[:16], []byte(" trace")) {
		t.Fatalf("not an execution trace: %q", raw[:min(len(raw), 16)])
	}
	noValue(t, "the trace", raw, string(key))
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("trace mode %o, want 600", fi.Mode().Perm())
	}
}

// TestProxyGCGoal: a running proxy aims its garbage collector at 8 MB or
// more while little is live (serve.TuneGC), where Go alone aims for 4 MB,
// as GODEBUG=gctrace=1 shows for every collection it runs under load. On
// the keychain: a file vault's Argon2id leaves Go aiming for 128 MB, far
// more than this test allocates.
func TestProxyGCGoal(t *testing.T) {
	if viaBroker() {
		t.Skip("`proxy start` hands its connections to the broker daemon, whose collector is its own")
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		io.WriteString(w, `{"balance":1}`)
	})
	v := NewVault(t, "keychain")
	v.RunIn([]byte("sk_gc_goal_0123456789abcdef"), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "KEY", up.hostport(), "--surface", "header", "--passphrase-file", v.AdminFile).OK(t)
	v.ExtraEnv = []string{"GODEBUG=gctrace=1"}
	var gctrace bytes.Buffer
	cmd, addr, token, copied := launchProxyTo(t, binary, v.Env(), v.Dir, &gctrace)
	goal := regexp.MustCompile(`(?m)^gc \d+ .*, (\d+) MB goal`)
	// About 9 KB of garbage per request: 2,000 requests collect at least
	// twice at an 8 MB goal.
	proxyGets(t, addr, token, up.URL+"/v1/balance", 2000)
	cmd.Process.Signal(os.Interrupt)
	<-copied
	if err := cmd.Wait(); err != nil {
		t.Fatalf("proxy stop: %v", err)
	}
	cycles := goal.FindAllStringSubmatch(gctrace.String(), -1)
	if len(cycles) == 0 {
		t.Fatalf("no collection traced under load:\n%s", gctrace.String())
	}
	// The first collection may come before the proxy listens; the last
	// ran under load.
	if mb, _ := strconv.Atoi(cycles[len(cycles)-1][1]); mb < 8 {
		t.Fatalf("heap goal %d MB under load, want 8 or more:\n%s", mb, gctrace.String())
	}
}
