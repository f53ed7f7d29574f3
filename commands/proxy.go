package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/proxy"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// ProxyCmd groups the local proxy commands.
type ProxyCmd struct {
	Start  ProxyStartCmd  `cmd:"" help:"Run the local proxy on 127.0.0.1 (foreground, or --background)."`
	Stop   ProxyStopCmd   `cmd:"" help:"Stop a background proxy."`
	Status ProxyStatusCmd `cmd:"" help:"Check whether the proxy is running and answering."`
	Logs   ProxyLogsCmd   `cmd:"" help:"Show audit records (names, hosts, decisions — never values)."`
}

// DefaultProxyPort is the original AgentSecrets port.
const DefaultProxyPort = 8765

// proxyState is written next to the audit log while a proxy runs.
type proxyState struct {
	PID       int       `json:"pid"`
	Address   string    `json:"address"`
	TokenFile string    `json:"token_file"`
	StartedAt time.Time `json:"started_at"`
	Workspace string    `json:"workspace"`
	Project   string    `json:"project"`
}

// The proxy's files live in the state directory of the user's home, also
// when a broker serves it: the home need not hold a vault then.
func statePath(d home.Dirs) string { return filepath.Join(d.State, "proxy.json") }
func tokenPath(d home.Dirs) string { return filepath.Join(d.State, "proxy.token") }
func pidPath(d home.Dirs) string   { return filepath.Join(d.State, "proxy.pid") }

type ProxyStartCmd struct {
	Port        int    `default:"8765" help:"Port on 127.0.0.1 (0 picks a free one; status shows it)." json:"port,omitempty"`
	Background  bool   `help:"Detach, write a pid file, and return once the proxy answers." json:"background,omitempty"`
	MaxResponse int64  `default:"268435456" placeholder:"BYTES" help:"Largest response body passed through, after decompression." json:"max_response,omitempty"`
	Timeout     string `default:"30s" placeholder:"DURATION" help:"Per-request upstream timeout." json:"timeout,omitempty"`
	Scope
}

// ProxyStatusResult describes a proxy.
type ProxyStatusResult struct {
	Running   bool      `json:"running"`
	Address   string    `json:"address"`
	TokenFile string    `json:"token_file"`
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Workspace string    `json:"workspace,omitempty"`
	Project   string    `json:"project,omitempty"`
	Notes
	// probed marks the answer of `proxy status`, which exits non-zero when
	// no proxy answers; `proxy start` reports a stopped proxy as a result.
	probed bool
}

// Failure ends `proxy status` with unavailable when no proxy answers.
func (r *ProxyStatusResult) Failure() errcode.Code {
	if !r.probed || r.Running {
		return ""
	}
	return errcode.Unavailable
}

func (r *ProxyStatusResult) WriteText(w io.Writer) error {
	if !r.Running {
		fmt.Fprintln(w, "proxy: not running (start it with `agentsecrets proxy start --background`)")
		return nil
	}
	fmt.Fprintf(w, "proxy: running at http://%s (pid %d) for %s/%s\ntoken: %s\n", r.Address, r.PID, r.Workspace, r.Project, r.TokenFile)
	return nil
}

func (c *ProxyStartCmd) Run(env *Env) (*ProxyStatusResult, error) {
	if c.Port < 0 || c.Port > 65535 {
		return nil, errcode.Errorf(errcode.Usage, "--port must be 0-65535 (0 picks a free port)")
	}
	timeout, err := broker.ParseTimeout(c.Timeout)
	if err != nil {
		return nil, err
	}
	// With a broker, values and policy are the daemon's: this process only
	// listens and forwards (brokerproxy.go).
	sock, err := brokerd.Resolve(env.Getenv)
	if err != nil {
		return nil, err
	}
	var dirs home.Dirs
	var st *vault.Store
	var sel Selected
	if sock == "" {
		if st, _, sel, err = env.openProject(c.Scope); err != nil {
			return nil, err
		}
		dirs = st.Dirs
	} else if dirs, err = env.Dirs(); err != nil {
		return nil, err
	}
	if running, _ := probeProxy(dirs); running != nil && running.Running {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "a proxy is already running at %s", running.Address), "run `agentsecrets proxy stop` first")
	}
	if c.Background {
		return c.background(env, dirs)
	}
	if err := dirs.Ensure(); err != nil {
		return nil, err
	}
	if sock != "" {
		return c.forwardToBroker(env, dirs, sock, timeout)
	}
	defer serve.TuneGC(env.Getenv)()
	rt := serve.New(serve.Options{Open: func() (*vault.Store, error) { return st, nil }, MaxResponse: c.MaxResponse, Timeout: timeout, Now: env.Now})
	// A proxy that cannot read the vault's values would listen and fail
	// every call (a detached one has no terminal to ask on): refuse now.
	if err := rt.Check(env.ctx()); err != nil {
		return nil, err
	}
	return c.listen(env, dirs, func(ln *serve.Listener) (vault.Selection, func(context.Context) error, error) {
		front := &proxy.Server{Runtime: rt, Token: ln.Token, Selection: sel.Selection, Version: buildinfo.Version()}
		return sel.Selection, func(ctx context.Context) error {
			serr := serve.Serve(ctx, ln, front.Handler(), serve.ServerOptions{ReadTimeout: 2 * time.Minute, ShutdownGrace: proxyShutdownGrace})
			// Every record of an answered request reaches the log,
			// whatever ended the server.
			cerr := rt.Close()
			if serr != nil {
				return serr
			}
			return cerr
		}, nil
	})
}

// proxyShutdownGrace is how long a stopping proxy lets requests finish.
const proxyShutdownGrace = 10 * time.Second

// listen runs a proxy on 127.0.0.1:--port until Ctrl-C or SIGTERM: the
// token file, the state and pid files `proxy status` and `stop` read, and
// the server start makes for the listener (which also says which project
// requests use).
func (c *ProxyStartCmd) listen(env *Env, dirs home.Dirs, start func(*serve.Listener) (vault.Selection, func(context.Context) error, error)) (*ProxyStatusResult, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port))
	ln, err := serve.Listen(addr, "choose another --port", func(string) string { return tokenPath(dirs) })
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, portInUse(c.Port, "")
	}
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	defer os.Remove(ln.TokenFile)
	sel, run, err := start(ln)
	if err != nil {
		return nil, err
	}
	state := proxyState{PID: os.Getpid(), Address: ln.Addr().String(), TokenFile: ln.TokenFile, StartedAt: env.Now().UTC(),
		Workspace: sel.Workspace, Project: sel.Project}
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := serve.WritePrivate(statePath(dirs), b); err != nil {
		return nil, err
	}
	defer os.Remove(statePath(dirs))
	if err := serve.WritePrivate(pidPath(dirs), []byte(strconv.Itoa(state.PID)+"\n")); err != nil {
		return nil, err
	}
	defer os.Remove(pidPath(dirs))

	fmt.Fprintf(env.IO.Err, "agentsecrets proxy listening on http://%s (token in %s); Ctrl-C stops it\n", state.Address, state.TokenFile)
	ctx, stop := signal.NotifyContext(env.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfile, err := startCPUProfile(env)
	if err != nil {
		return nil, err
	}
	stopTrace, err := startTrace(env)
	if err != nil {
		stopProfile()
		return nil, err
	}
	err = run(ctx)
	// The profile and trace are written whatever ended the server: a
	// failed run is the one worth looking at.
	if terr := stopTrace(); err == nil {
		err = terr
	}
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	return &ProxyStatusResult{Running: false, Address: state.Address, TokenFile: state.TokenFile, PID: state.PID,
		Workspace: sel.Workspace, Project: sel.Project}, nil
}

// EnvCPUProfile names a file that a running proxy writes a pprof CPU
// profile to, from listening until it stops: how its cost per request is
// found under real load (scripts/bench). Unset, nothing is profiled. The
// profile holds stacks and function names, never a request or a value.
const EnvCPUProfile = "AGENTSECRETS_CPUPROFILE"

// startCPUProfile starts the CPU profile EnvCPUProfile asks for, and
// returns what ends it and closes the file.
func startCPUProfile(env *Env) (func() error, error) {
	return startDiagnostic(env, EnvCPUProfile, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// EnvTrace names a file that a running proxy writes a runtime execution
// trace to, from listening until it stops: where a request's latency goes
// between goroutines, threads and system calls, which a CPU profile cannot
// show (`go tool trace FILE`). Unset, nothing is traced. Like the profile,
// the trace holds stacks, function names and scheduling events, never a
// request or a value.
const EnvTrace = "AGENTSECRETS_TRACE"

// startTrace starts the execution trace EnvTrace asks for, and returns
// what ends it and closes the file.
func startTrace(env *Env) (func() error, error) {
	return startDiagnostic(env, EnvTrace, trace.Start, trace.Stop)
}

// startDiagnostic starts writing what start writes to the file the
// variable name names (relative to the working directory, mode 600), if
// set, and returns what stops it and closes the file.
func startDiagnostic(env *Env, name string, start func(io.Writer) error, stop func()) (func() error, error) {
	path := env.Getenv(name)
	if path == "" {
		return func() error { return nil }, nil
	}
	if !filepath.IsAbs(path) && env.Cwd != "" {
		path = filepath.Join(env.Cwd, path)
	}
	f, err := atomicfile.OpenRegular(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "%s: open %s: %v", name, path, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, errcode.Errorf(errcode.Internal, "%s: %v", name, err)
	}
	return func() error {
		stop()
		if err := f.Close(); err != nil {
			return errcode.Errorf(errcode.Internal, "%s: write %s: %v", name, path, err)
		}
		return nil
	}, nil
}

// background re-runs this binary as a detached `proxy start` and waits
// until it answers.
func (c *ProxyStartCmd) background(env *Env, dirs home.Dirs) (*ProxyStatusResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"proxy", "start", "--port", strconv.Itoa(c.Port), "--timeout", c.Timeout,
		"--max-response", strconv.FormatInt(c.MaxResponse, 10)}
	if c.Workspace != "" {
		args = append(args, "--workspace", c.Workspace)
	}
	if c.Project != "" {
		args = append(args, "--project", c.Project)
	}
	// The detached child has no terminal: a file vault's passphrase comes
	// from the same file, passed on as its path (never its contents).
	if env.globals != nil && env.globals.VaultPassphraseFile != "" {
		path := env.globals.VaultPassphraseFile
		if !filepath.IsAbs(path) && env.Cwd != "" {
			path = filepath.Join(env.Cwd, path)
		}
		args = append(args, "--vault-passphrase-file", path)
	}
	// The child's error is read back from the log as JSON, whatever
	// format the caller's environment asks for.
	args = append(args, "--json")
	if err := dirs.Ensure(); err != nil {
		return nil, err
	}
	// A busy port is the common failure: said here, before a child is
	// started, rather than found in the log.
	if c.Port != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)))
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, portInUse(c.Port, "--background ")
		}
		if err == nil {
			ln.Close()
		}
	}
	logPath := filepath.Join(dirs.State, "proxy.log")
	logf, err := atomicfile.OpenRegular(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("proxy log: %w", err)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = env.Cwd
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "start the proxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, childStartError(logPath, logStart)
		case <-time.After(50 * time.Millisecond):
		}
		if res, _ := probeProxy(dirs); res != nil && res.Running && res.PID == cmd.Process.Pid {
			cmd.Process.Release()
			return res, nil
		}
	}
	cmd.Process.Kill()
	return nil, errcode.WithHint(errcode.New(errcode.Timeout, "the proxy did not answer within 10s"), "see "+logPath)
}

// portInUse is the error of a proxy whose --port another program holds.
// flags are the start command's flags to repeat in the hint.
func portInUse(port int, flags string) error {
	return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "port %d on 127.0.0.1 is in use by another program", port),
		"run `agentsecrets proxy start "+flags+"--port 0` to pick a free port, or stop what listens on "+strconv.Itoa(port))
}

// maxChildLog is how much of what a detached proxy wrote at start is read
// back for its error.
const maxChildLog = 64 << 10

// childStartError is the error a detached proxy that exited at start
// reported (the last JSON error it wrote to the log after offset), with
// its hint made to repeat --background; else a pointer to the log. The
// child's error went through its own scrub and output guard, and goes
// through the parent's again.
func childStartError(logPath string, offset int64) error {
	fallback := errcode.WithHint(errcode.New(errcode.Unavailable, "the proxy exited at start"), "see "+logPath)
	f, err := os.Open(logPath)
	if err != nil {
		return fallback
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, maxChildLog))
	if err != nil {
		return fallback
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var env errcode.Envelope
		if json.Unmarshal(lines[i], &env) != nil || env.Error.Code == "" {
			continue
		}
		hint := strings.ReplaceAll(env.Error.Hint, "agentsecrets proxy start ", "agentsecrets proxy start --background ")
		return errcode.WithHint(errcode.New(errcode.Lookup(env.Error.Code).Code, "the proxy exited at start: "+env.Error.Message), hint)
	}
	return fallback
}

// probeProxy reads the state file and asks the proxy for /health.
func probeProxy(dirs home.Dirs) (*ProxyStatusResult, error) {
	b, err := os.ReadFile(statePath(dirs))
	if err != nil {
		return &ProxyStatusResult{TokenFile: tokenPath(dirs), Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultProxyPort))}, nil
	}
	var s proxyState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "proxy state file is corrupt")
	}
	res := &ProxyStatusResult{Address: s.Address, TokenFile: s.TokenFile, PID: s.PID, StartedAt: s.StartedAt, Workspace: s.Workspace, Project: s.Project}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + s.Address + "/health")
	if err != nil {
		res.warn("a proxy state file exists but nothing answers at %s; it was not stopped cleanly", s.Address)
		return res, nil
	}
	defer resp.Body.Close()
	res.Running = resp.StatusCode == http.StatusOK
	if !res.Running {
		// /health names what is wrong (a vault it cannot open); the
		// message is the proxy's own, which quotes no value.
		var env errcode.Envelope
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&env)
		res.warn("the proxy at %s answers but is not healthy: %s", s.Address, env.Error.Message)
	}
	return res, nil
}

type ProxyStopCmd struct{}

// ProxyStopResult reports what stop did.
type ProxyStopResult struct {
	Stopped    bool `json:"stopped"`
	WasRunning bool `json:"was_running"`
	PID        int  `json:"pid,omitempty"`
}

func (c *ProxyStopCmd) Run(env *Env) (*ProxyStopResult, error) {
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	res, err := probeProxy(dirs)
	if err != nil {
		return nil, err
	}
	if res.PID == 0 {
		return &ProxyStopResult{}, nil
	}
	out := &ProxyStopResult{WasRunning: res.Running, PID: res.PID}
	p, err := os.FindProcess(res.PID)
	if err == nil && res.Running {
		if err := terminate(p); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "stop proxy pid %d: %v", res.PID, err)
		}
		for i := 0; i < 100; i++ {
			if r, _ := probeProxy(dirs); r == nil || !r.Running {
				out.Stopped = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !out.Stopped {
			return nil, errcode.Errorf(errcode.Timeout, "proxy pid %d did not stop within 10s", res.PID)
		}
	}
	// A proxy that died without cleaning up leaves its files behind.
	os.Remove(statePath(dirs))
	os.Remove(tokenPath(dirs))
	os.Remove(pidPath(dirs))
	return out, nil
}

type ProxyStatusCmd struct{}

func (c *ProxyStatusCmd) Run(env *Env) (*ProxyStatusResult, error) {
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	res, err := probeProxy(dirs)
	if err != nil {
		return nil, err
	}
	res.probed = true
	return res, nil
}

type ProxyLogsCmd struct {
	Last     int    `default:"50" help:"Show only the last N matching records (0: all)." json:"last,omitempty"`
	Secret   string `placeholder:"NAME" help:"Only records that used this secret." json:"secret,omitempty"`
	Host     string `placeholder:"HOST" help:"Only records for this host." json:"host,omitempty"`
	Decision string `enum:",allowed,blocked,redacted,error" default:"" help:"Only this decision: allowed, blocked, redacted or error." json:"decision,omitempty"`
	Since    string `placeholder:"TIME" help:"Only records at or after this time (RFC 3339, or a duration like 1h meaning that long ago)." json:"since,omitempty"`
}

// ProxyLogsResult holds audit records, oldest first.
type ProxyLogsResult struct {
	Records []audit.Record `json:"records"`
}

func (c *ProxyLogsCmd) Run(env *Env) (*ProxyLogsResult, error) {
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	f := audit.Filter{Last: c.Last, Secret: c.Secret, Host: c.Host, Decision: c.Decision}
	if env.daemon {
		// The broker's log holds every client's records; each reads its own.
		var own audit.Record
		audit.StampClient(env.ctx(), &own)
		if own.ClientUID == "" {
			return nil, errcode.New(errcode.Internal, "the broker ran proxy logs for no client")
		}
		f.ClientUID = own.ClientUID
	}
	if f.Since, err = parseSince(env, c.Since); err != nil {
		return nil, err
	}
	recs, err := audit.Open(st.Dirs.State, audit.Options{}).Read(f)
	if err != nil {
		return nil, err
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return &ProxyLogsResult{Records: recs}, nil
}

func (r *ProxyLogsResult) WriteText(w io.Writer) error {
	if len(r.Records) == 0 {
		fmt.Fprintln(w, "no audit records")
		return nil
	}
	// Short columns first, the open-ended target, secrets and reason last;
	// the year and the front end are in --json.
	var buf bytes.Buffer
	t := newTable(&buf)
	fmt.Fprintln(t, "TIME\tDECISION\tMETHOD\tSTATUS\tTARGET\tSECRETS\tREASON")
	for _, rec := range r.Records {
		status := "-"
		if rec.Status != 0 {
			status = strconv.Itoa(rec.Status)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s%s\t%s\t%s\n", rec.Time.Format("01-02 15:04:05"), rec.Decision, rec.Method, status,
			rec.Host, rec.Path, listWords(rec.Secrets, "-"), rec.Reason)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	return writeTableLines(w, buf.Bytes(), func(line int) string {
		if line > 0 && r.Records[line-1].Decision == audit.DecisionBlocked {
			return styleError
		}
		return ""
	})
}

// AuditCmd groups audit commands.
type AuditCmd struct {
	Verify AuditVerifyCmd `cmd:"" help:"Check the audit log's hash chain across rotated files."`
}

type AuditVerifyCmd struct{}

// AuditVerifyResult is the chain check. OK false names the first problem.
type AuditVerifyResult struct {
	audit.Verification
}

func (c *AuditVerifyCmd) Run(env *Env) (*AuditVerifyResult, error) {
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	v, err := audit.Open(st.Dirs.State, audit.Options{}).Verify()
	if err != nil {
		return nil, err
	}
	return &AuditVerifyResult{*v}, nil
}

// Failure ends `audit verify` with check_failed when the chain is broken,
// after the result names the first problem.
func (r *AuditVerifyResult) Failure() errcode.Code {
	if r.OK {
		return ""
	}
	return errcode.CheckFailed
}

func (r *AuditVerifyResult) WriteText(w io.Writer) error {
	if r.OK {
		fmt.Fprintf(w, "audit log intact: %d records in %d files\n", r.Records, len(r.Files))
		return nil
	}
	p := r.Problem
	fmt.Fprintf(w, "audit log BROKEN: %s at %s line %d: %s\n", p.Kind, p.File, p.Line, p.Detail)
	return nil
}
