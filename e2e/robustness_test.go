//go:build unix

package e2e

// Robustness: what happens to the vault when agentsecrets runs many times at
// once, is killed in the middle of a write, is fed bad input, or runs where
// it cannot write or reach a keychain. Every test drives the real binary.
// Commands run in a new session (Setsid) so that none of them can open the
// controlling terminal of whoever runs `go test` and wait for a prompt.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// rbTimeout bounds every command: a hang is a failure, not a stuck suite.
const rbTimeout = 90 * time.Second

// rbCommand prepares the binary with env, dir and stdin, in a new session
// without a controlling terminal.
func rbCommand(ctx context.Context, env []string, dir string, stdin []byte, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, &out, &errb
}

// rbRun runs one command to completion.
func rbRun(t *testing.T, env []string, dir string, stdin []byte, args ...string) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
	defer cancel()
	cmd, out, errb := rbCommand(ctx, env, dir, stdin, args...)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("agentsecrets %s: still running after %s", strings.Join(args, " "), rbTimeout)
	}
	return rbResult(t, args, err, out, errb)
}

// run and runIn are v.Run and v.RunIn in a new session.
func (v *Vault) rbRun(args ...string) *Result { return rbRun(v.t, v.Env(), v.Dir, nil, args...) }
func (v *Vault) rbRunIn(stdin []byte, args ...string) *Result {
	return rbRun(v.t, v.Env(), v.Dir, stdin, args...)
}

// rbHint asserts the error object has a non-empty hint (ErrorCode accepts a
// missing one) and returns it.
func rbHint(t *testing.T, r *Result, e map[string]any) string {
	t.Helper()
	h, _ := e["hint"].(string)
	if strings.TrimSpace(h) == "" {
		t.Fatalf("agentsecrets %s: error without a hint: %s", strings.Join(r.Args, " "), r.Stdout)
	}
	return h
}

// rbSnapshot records every file and directory under root: relative name,
// permissions and the sha256 of the content. The lock file is left out (a
// command may create it) but must be empty: it is a lock, not data.
func rbSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = fmt.Sprintf("dir %o", info.Mode().Perm())
			return nil
		}
		if rel == "lock" {
			if info.Size() != 0 {
				t.Errorf("%s is %d bytes, want an empty lock file", p, info.Size())
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = fmt.Sprintf("%s %o %x", info.Mode().Type(), info.Mode().Perm(), sum)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// rbSameSnapshot fails with the list of differences.
func rbSameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, b := range before {
		if a, ok := after[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if a != b {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "created "+k)
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("%s changed files: %s", what, strings.Join(diffs, ", "))
	}
}

// rbSecrets decodes `secrets list` into name -> version.
func rbSecrets(t *testing.T, r *Result) map[string]int {
	t.Helper()
	var res struct {
		Project string `json:"project"`
		Secrets []struct {
			Name    string `json:"name"`
			Version int    `json:"version"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(r.Stdout, &res); err != nil || res.Secrets == nil {
		t.Fatalf("agentsecrets %s: not a secrets list (%v): %s", strings.Join(r.Args, " "), err, r.Stdout)
	}
	out := map[string]int{}
	for _, s := range res.Secrets {
		out[s.Name] = s.Version
	}
	return out
}

// rbHealthy runs doctor and requires healthy:true.
func rbHealthy(t *testing.T, v *Vault) map[string]any {
	t.Helper()
	m := v.rbRun("doctor").OK(t).JSON(t)
	if m["healthy"] != true {
		t.Fatalf("doctor is not healthy: %v", m)
	}
	return m
}

// rbStore opens the vault of v in the test process. It is the oracle that
// proves values reached the backend; the CLI deliberately has no command
// that prints one.
func rbStore(t *testing.T, v *Vault) *vault.Store {
	t.Helper()
	getenv := func(k string) string {
		if k == "AGENTSECRETS_HOME" {
			return v.Home
		}
		return os.Getenv(k)
	}
	dirs, err := home.Resolve(getenv)
	must(t, err)
	st, err := vault.Open(dirs, vault.Options{Getenv: getenv,
		VaultPassphrase: func(bool) ([]byte, error) { return []byte(vaultPassphrase), nil }})
	must(t, err)
	return st
}

func rbDefault() vault.Selection {
	return vault.Selection{Workspace: vault.DefaultName, Project: vault.DefaultName}
}

func rbRandomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return hex.EncodeToString(b)
}

// rbTemps lists leftover temp files of interrupted writes.
func rbTemps(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	must(t, err)
	return matches
}

// rbLockFree proves nobody holds the vault lock: a killed writer must not
// leave it taken.
func rbLockFree(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	must(t, err)
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the vault lock is still held after the writer died: %v", err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

func TestConcurrentSets(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			v := NewVault(t, backend)
			const n = 20
			ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
			defer cancel()
			type proc struct {
				cmd       *exec.Cmd
				out, errb *bytes.Buffer
				name      string
				value     string
			}
			procs := make([]proc, n)
			for i := range procs {
				p := &procs[i]
				p.name = fmt.Sprintf("NAME_%d", i)
				p.value = "value-" + strconv.Itoa(i) + "-" + rbRandomHex(t, 16)
				p.cmd, p.out, p.errb = rbCommand(ctx, v.Env(), v.Dir, []byte(p.value+"\n"), "secrets", "set", p.name, "--from-stdin")
			}
			start := time.Now()
			for i := range procs {
				must(t, procs[i].cmd.Start())
			}
			for i := range procs {
				p := &procs[i]
				r := rbResult(t, p.cmd.Args[1:], p.cmd.Wait(), p.out, p.errb)
				r.OK(t)
				var res struct {
					Secrets []vault.PutResult `json:"secrets"`
				}
				must(t, json.Unmarshal(r.Stdout, &res))
				if len(res.Secrets) != 1 || res.Secrets[0] != (vault.PutResult{Name: p.name, Version: 1, Action: "created"}) {
					t.Errorf("%s: unexpected result %s", p.name, r.Stdout)
				}
			}
			t.Logf("%d concurrent sets (%s backend) finished in %s", n, backend, time.Since(start).Round(time.Millisecond))

			got := rbSecrets(t, v.rbRun("secrets", "list").OK(t))
			if len(got) != n {
				t.Errorf("secrets list has %d secrets, want %d: %v", len(got), n, got)
			}
			for _, p := range procs {
				if got[p.name] != 1 {
					t.Errorf("%s: version %d, want 1", p.name, got[p.name])
				}
			}
			rbHealthy(t, v)

			// No lost update in the backend either: every value is there.
			st := rbStore(t, v)
			for _, p := range procs {
				val, err := st.Value(context.Background(), rbDefault(), p.name)
				if err != nil {
					t.Errorf("%s: value not in the %s backend: %v", p.name, backend, err)
				} else if !val.Equal(secret.New([]byte(p.value))) {
					t.Errorf("%s: the backend holds another value than the one set", p.name)
				}
			}
			if temps := rbTemps(t, v.Home); len(temps) > 0 {
				t.Errorf("temp files left after clean runs: %v", temps)
			}
		})
	}
}

// TestKillMidWrite kills writers with SIGKILL at random points, biased
// towards the end of a run where the files are written, and checks after
// each kill that the index is whole, readable and unlocked.
func TestKillMidWrite(t *testing.T) {
	t.Run("file", func(t *testing.T) { rbKillLoop(t, "file", 30, 2000, 512) })
	t.Run("keychain", func(t *testing.T) { rbKillLoop(t, "keychain", 6, 60, 32) })
}

func rbWriteEnv(t *testing.T, path, prefix string, n, valueBytes int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s_%04d=%s\n", prefix, i, rbRandomHex(t, valueBytes))
	}
	must(t, os.WriteFile(path, []byte(b.String()), 0o600))
}

func rbKillLoop(t *testing.T, backend string, iterations, entries, valueBytes int) {
	v := NewVault(t, backend)
	envDir := t.TempDir()

	// Measure one un-killed run of each kind of write. For the file backend
	// a large vault first makes every later write (re-encrypt, fsync,
	// rename) take long enough to be hit.
	first := filepath.Join(envDir, "first.env")
	rbWriteEnv(t, first, "BIG", entries, valueBytes)
	t0 := time.Now()
	v.rbRun("secrets", "import", first).OK(t)
	importTime := time.Since(t0)
	t0 = time.Now()
	v.rbRunIn([]byte("measure\n"), "secrets", "set", "MEASURE", "--from-stdin").OK(t)
	setTime := time.Since(t0)
	t.Logf("%s backend: import of %d entries %s, set %s", backend, entries, importTime.Round(time.Millisecond), setTime.Round(time.Millisecond))

	killed, finished, maxTemps, caughtWriting := 0, 0, 0, 0
	for i := range iterations {
		var args []string
		var stdin []byte
		d := setTime
		if i%2 == 0 {
			args = []string{"secrets", "set", fmt.Sprintf("K_%d", i), "--from-stdin"}
			stdin = []byte("kill-test-" + rbRandomHex(t, 16))
		} else {
			// The file backend rewrites every value of the big file; the
			// keychain gets new names so that each import really writes.
			prefix := "BIG"
			if backend == "keychain" {
				prefix = fmt.Sprintf("KC%d", i)
			}
			p := filepath.Join(envDir, fmt.Sprintf("kill-%d.env", i))
			rbWriteEnv(t, p, prefix, entries, valueBytes)
			args = []string{"secrets", "import", p}
			d = importTime
		}
		// Three ways to pick the moment: anywhere in the run, in its second
		// half (where the files are written), or the instant a temp file
		// appears, i.e. certainly between create and rename.
		var delay time.Duration
		watch := i%3 == 2
		switch {
		case watch:
		case i%3 == 0:
			delay = time.Duration(mrand.Int64N(int64(d) + 1))
		default:
			delay = d/2 + time.Duration(mrand.Int64N(int64(d)*6/10+1))
		}
		ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
		cmd, out, errb := rbCommand(ctx, v.Env(), v.Dir, stdin, args...)
		must(t, cmd.Start())
		exited := make(chan struct{})
		var err error
		go func() { err = cmd.Wait(); close(exited) }()
		if watch {
			t0 := time.Now()
		poll:
			for {
				select {
				case <-exited:
					break poll
				default:
				}
				if len(rbTemps(t, v.Home)) > 0 {
					caughtWriting++
					break
				}
				if time.Since(t0) > rbTimeout {
					t.Fatalf("%v: no temp file appeared", args)
				}
				runtime.Gosched()
			}
			delay = time.Since(t0)
		} else {
			select {
			case <-exited:
			case <-time.After(delay):
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		cancel()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			killed++
		} else {
			// It finished before the signal: then it must have succeeded.
			rbResult(t, args, err, out, errb).OK(t)
			finished++
		}
		maxTemps = max(maxTemps, len(rbTemps(t, v.Home)))

		b, err := os.ReadFile(filepath.Join(v.Home, "index.json"))
		must(t, err)
		if !json.Valid(b) {
			t.Fatalf("kill %d (%s after %s): index.json is not valid JSON", i, args[1], delay)
		}
		rbLockFree(t, filepath.Join(v.Home, "lock"))
		r := v.rbRun("secrets", "list")
		if r.Code != 0 {
			t.Fatalf("kill %d (%s after %s): secrets list failed: exit %d %s", i, args[1], delay, r.Code, r.Stdout)
		}
		rbSecrets(t, r)
	}
	t.Logf("%s backend: %d killed (%d while a temp file existed), %d finished first; up to %d temp files left at once",
		backend, killed, caughtWriting, finished, maxTemps)
	if killed == 0 {
		t.Errorf("no run was killed; the test did not test anything")
	}
	rbHealthy(t, v)

	// Every name the index lists has its value: values are written before
	// the index, so a kill never leaves a name without a value.
	list := rbSecrets(t, v.rbRun("secrets", "list").OK(t))
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range list {
			if !yield(n) {
				return
			}
		}
	})
	if backend == "file" && len(names) > 40 {
		// Each read decrypts the whole (large) file: check a sample.
		mrand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		names = names[:40]
	}
	st := rbStore(t, v)
	for _, n := range names {
		if _, err := st.Value(context.Background(), rbDefault(), n); err != nil {
			t.Errorf("%s is listed but its value is missing: %v", n, err)
		}
	}

	// A leftover temp file, real or planted, is removed by the next write,
	// which also proves the lock was released by the killed processes.
	planted := filepath.Join(v.Home, ".tmp-index.json-planted")
	must(t, os.WriteFile(planted, []byte("{half a write"), 0o600))
	t0 = time.Now()
	v.rbRunIn([]byte("after\n"), "secrets", "set", "AFTER", "--from-stdin").OK(t)
	if el := time.Since(t0); el > 15*time.Second {
		t.Errorf("secrets set after the kills took %s (waiting for a lock?)", el)
	}
	if temps := rbTemps(t, v.Home); len(temps) > 0 {
		t.Errorf("temp files not removed by the next write: %v", temps)
	}
	if rbSecrets(t, v.rbRun("secrets", "list").OK(t))["AFTER"] != 1 {
		t.Errorf("AFTER is not listed with version 1")
	}
	rbHealthy(t, v)
}

func TestBadInput(t *testing.T) {
	v := NewVault(t, "file")
	v.rbRunIn([]byte("existing value\n"), "secrets", "set", "A", "--from-stdin").OK(t)
	wrongAdmin := filepath.Join(filepath.Dir(v.Home), "wrong-admin.pass")
	must(t, os.WriteFile(wrongAdmin, []byte("not the admin passphrase\n"), 0o600))
	badEnv := filepath.Join(filepath.Dir(v.Home), "bad.env")
	must(t, os.WriteFile(badEnv, []byte("OK_NAME=fine\nBROKEN=\"never closed\n"), 0o600))
	badLinkDir := filepath.Join(filepath.Dir(v.Home), "badlink")
	must(t, os.MkdirAll(filepath.Join(badLinkDir, ".agentsecrets"), 0o755))
	must(t, os.WriteFile(filepath.Join(badLinkDir, ".agentsecrets", "project.json"), []byte(`{"workspace": "default", "project": `), 0o644))
	argValue := "argv-value-" + rbRandomHex(t, 8)

	cases := []struct {
		name  string
		stdin []byte
		dir   string
		args  []string
		code  string
		exit  int
		hint  string // substring the hint must contain
	}{
		{name: "unknown secret", args: []string{"secrets", "delete", "NOPE"}, code: "not_found", exit: 3},
		{name: "delete is all or nothing", args: []string{"secrets", "delete", "A", "NOPE"}, code: "not_found", exit: 3},
		{name: "invalid name", stdin: []byte("x\n"), args: []string{"secrets", "set", "9bad", "--from-stdin"}, code: "usage", exit: 2},
		{name: "empty value", stdin: []byte{}, args: []string{"secrets", "set", "EMPTY", "--from-stdin"}, code: "usage", exit: 2},
		{name: "newline only", stdin: []byte("\n"), args: []string{"secrets", "set", "EMPTY", "--from-stdin"}, code: "usage", exit: 2},
		{name: "NUL in value", stdin: []byte("a\x00b"), args: []string{"secrets", "set", "NUL", "--from-stdin"}, code: "usage", exit: 2},
		{name: "value too large", stdin: bytes.Repeat([]byte("x"), 70<<10), args: []string{"secrets", "set", "BIG", "--from-stdin"}, code: "too_large", exit: 10},
		{name: "two value sources", stdin: []byte("x"), args: []string{"secrets", "set", "X", "--from-stdin", "--from-file", badEnv}, code: "usage", exit: 2},
		{name: "missing --from-file", args: []string{"secrets", "set", "X", "--from-file", "/nonexistent/value"}, code: "not_found", exit: 3},
		{name: "malformed --input", stdin: []byte(`{"names":`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "--input not an object", stdin: []byte(`["X"]`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "--input unknown key", stdin: []byte(`{"names":["X=1"],"bogus":1}`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "--input wrong type", stdin: []byte(`{"names":5}`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "--input wrong element type", stdin: []byte(`{"names":[true]}`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "--input trailing data", stdin: []byte(`{"names":["X=1"]} {}`), args: []string{"secrets", "set", "--input", "-"}, code: "usage", exit: 2},
		{name: "unknown command", args: []string{"frobnicate"}, code: "usage", exit: 2},
		{name: "unknown subcommand", args: []string{"secrets", "frobnicate"}, code: "usage", exit: 2},
		{name: "unknown flag", args: []string{"secrets", "list", "--frobnicate"}, code: "usage", exit: 2},
		{name: "bad --format", args: []string{"secrets", "list", "--format", "yaml"}, code: "usage", exit: 2},
		{name: "bind without approval", args: []string{"secrets", "bind", "A", "api.example.com"}, code: "approval_required", exit: 5, hint: "--passphrase-file"},
		{name: "bind with wrong passphrase", args: []string{"secrets", "bind", "A", "api.example.com", "--passphrase-file", wrongAdmin}, code: "denied", exit: 4},
		{name: "bind with missing passphrase file", args: []string{"secrets", "bind", "A", "api.example.com", "--passphrase-file", "/nonexistent/pass"}, code: "not_found", exit: 3},
		{name: "bind unknown secret", args: []string{"secrets", "bind", "NOPE", "api.example.com", "--passphrase-file", v.AdminFile}, code: "not_found", exit: 3},
		{name: "allowlist without approval", args: []string{"workspace", "allowlist", "add", "api.example.com"}, code: "approval_required", exit: 5},
		{name: "generate too short", args: []string{"secrets", "generate", "X", "--length", "3"}, code: "usage", exit: 2},
		{name: "generate over existing", args: []string{"secrets", "generate", "A"}, code: "conflict", exit: 6, hint: "--overwrite"},
		{name: "delete project with secrets", args: []string{"project", "delete", "default"}, code: "conflict", exit: 6, hint: "--force"},
		{name: "use unknown project", args: []string{"project", "use", "nope"}, code: "not_found", exit: 3},
		{name: "switch to unknown workspace", args: []string{"workspace", "switch", "nope"}, code: "not_found", exit: 3},
		{name: "set in unknown project", args: []string{"secrets", "set", "A=" + argValue, "--project", "nope"}, code: "not_found", exit: 3},
		{name: "malformed project link", dir: filepath.Join(badLinkDir), args: []string{"secrets", "list"}, code: "usage", exit: 2},
		{name: "select matches nothing", args: []string{"secrets", "list", "--select", "nothing.here"}, code: "usage", exit: 2, hint: "project, secrets, workspace"},
		{name: "import missing file", args: []string{"secrets", "import", "/nonexistent"}, code: "not_found", exit: 3},
		{name: "import malformed file", args: []string{"secrets", "import", badEnv}, code: "usage", exit: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := v.Dir
			if c.dir != "" {
				dir = c.dir
			}
			before := rbSnapshot(t, v.Home)
			r := rbRun(t, v.Env(), dir, c.stdin, c.args...)
			e := r.ErrorCode(t, c.code, c.exit)
			hint := rbHint(t, r, e)
			if c.hint != "" && !strings.Contains(hint, c.hint) {
				t.Errorf("hint %q does not mention %q", hint, c.hint)
			}
			if bytes.Contains(r.Stdout, []byte(argValue)) || bytes.Contains(r.Stderr, []byte(argValue)) {
				t.Errorf("the value given in argv came back in the error: %s", r.Stdout)
			}
			rbSameSnapshot(t, "agentsecrets "+strings.Join(c.args, " "), before, rbSnapshot(t, v.Home))
		})
	}
	// The vault is still whole after all of it.
	if got := rbSecrets(t, v.rbRun("secrets", "list").OK(t)); len(got) != 1 || got["A"] != 1 {
		t.Errorf("after bad input the vault holds %v, want only A v1", got)
	}
	rbHealthy(t, v)
}

// rbBareEnv is an environment built by hand: no D-Bus session, nothing from
// the test process but PATH.
func rbBareEnv(root, agHome string, extra ...string) []string {
	env := []string{
		"AGENTSECRETS_HOME=" + agHome,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + root,
	}
	return append(env, extra...)
}

func rbPassFiles(t *testing.T, root string) (admin, vaultFile string) {
	admin, vaultFile = filepath.Join(root, "admin.pass"), filepath.Join(root, "vault.pass")
	must(t, os.WriteFile(admin, []byte(adminPassphrase+"\n"), 0o600))
	must(t, os.WriteFile(vaultFile, []byte(vaultPassphrase+"\n"), 0o600))
	return admin, vaultFile
}

func TestUnwritableHome(t *testing.T) {
	t.Run("parent is a file", func(t *testing.T) {
		root := t.TempDir()
		admin, vf := rbPassFiles(t, root)
		x := filepath.Join(root, "x")
		must(t, os.MkdirAll(x, 0o755))
		must(t, os.WriteFile(filepath.Join(x, "file"), []byte("not a directory\n"), 0o644))
		agHome := filepath.Join(x, "file", "home")
		env := rbBareEnv(root, agHome, "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vf)
		before := rbSnapshot(t, x)

		r := rbRun(t, env, root, nil, "init", "--backend", "file", "--admin-passphrase-file", admin)
		e := r.ErrorCode(t, "unavailable", 7)
		if h := rbHint(t, r, e); !strings.Contains(h, "AGENTSECRETS_HOME") {
			t.Errorf("hint %q does not mention AGENTSECRETS_HOME", h)
		}
		rbSameSnapshot(t, "init", before, rbSnapshot(t, x))

		// Other commands say there is no vault, without crashing.
		st := rbRun(t, env, root, nil, "status").OK(t).JSON(t)
		if st["initialised"] != false {
			t.Errorf("status: initialised %v, want false", st["initialised"])
		}
		rbRun(t, env, root, nil, "secrets", "list").ErrorCode(t, "not_found", 3)
		rbSameSnapshot(t, "status and list", before, rbSnapshot(t, x))
	})
	t.Run("read-only parent", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory permissions")
		}
		root := t.TempDir()
		admin, vf := rbPassFiles(t, root)
		ro := filepath.Join(root, "ro")
		must(t, os.MkdirAll(ro, 0o700))
		must(t, os.Chmod(ro, 0o500))
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
		env := rbBareEnv(root, filepath.Join(ro, "home"), "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vf)
		r := rbRun(t, env, root, nil, "init", "--backend", "file", "--admin-passphrase-file", admin)
		e := r.ErrorCode(t, "unavailable", 7)
		if h := rbHint(t, r, e); !strings.Contains(h, "AGENTSECRETS_HOME") {
			t.Errorf("hint %q does not mention AGENTSECRETS_HOME", h)
		}
		if entries, _ := os.ReadDir(ro); len(entries) != 0 {
			t.Errorf("init created %v", entries)
		}
	})
}

// rbBusProcesses lists the PIDs of D-Bus and keyring daemons.
func rbBusProcesses(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, name := range []string{"dbus-daemon", "dbus-launch", "gnome-keyring-daemon", "gnome-keyring-d"} {
		b, err := exec.Command("pgrep", "-x", name).Output()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Skipf("pgrep: %v", err)
		}
		for _, pid := range strings.Fields(string(b)) {
			out[pid] = true
		}
	}
	return out
}

// rbStrayDaemons returns daemons started since before that carry marker in
// their environment, i.e. were started on behalf of our command.
func rbStrayDaemons(t *testing.T, before map[string]bool, marker string) []string {
	t.Helper()
	var stray []string
	for pid := range rbBusProcesses(t) {
		if before[pid] {
			continue
		}
		env, err := os.ReadFile("/proc/" + pid + "/environ")
		if err != nil {
			t.Logf("new bus process %s (environment unreadable: %v)", pid, err)
			continue
		}
		if bytes.Contains(env, []byte(marker)) {
			stray = append(stray, pid)
		} else {
			t.Logf("new bus process %s, not ours (another test run?)", pid)
		}
	}
	return stray
}

func TestMissingSecretService(t *testing.T) {
	root := t.TempDir()
	admin, vf := rbPassFiles(t, root)
	runtimeDir := filepath.Join(root, "runtime")
	must(t, os.MkdirAll(runtimeDir, 0o700))
	agHome := filepath.Join(root, "home")
	env := rbBareEnv(root, agHome, "DBUS_SESSION_BUS_ADDRESS=", "XDG_RUNTIME_DIR="+runtimeDir,
		"AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vf)

	t.Run("keychain", func(t *testing.T) {
		before := rbBusProcesses(t)
		t0 := time.Now()
		r := rbRun(t, env, root, nil, "init", "--backend", "keychain", "--admin-passphrase-file", admin)
		elapsed := time.Since(t0)
		e := r.ErrorCode(t, "unavailable", 7)
		if h := rbHint(t, r, e); !strings.Contains(h, "--backend file") {
			t.Errorf("hint %q does not mention --backend file", h)
		}
		// Well under the 5 s keychain timeout: nothing waited for a bus.
		if elapsed > 3*time.Second {
			t.Errorf("init --backend keychain took %s without a Secret Service, want a fast failure", elapsed)
		}
		if stray := rbStrayDaemons(t, before, agHome); len(stray) > 0 {
			t.Errorf("init autolaunched D-Bus or keyring processes %v", stray)
		}
		if _, err := os.Lstat(agHome); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("init created %s (err %v)", agHome, err)
		}
		if entries, _ := os.ReadDir(runtimeDir); len(entries) != 0 {
			t.Errorf("init wrote into XDG_RUNTIME_DIR: %v", entries)
		}
	})
	t.Run("auto", func(t *testing.T) {
		before := rbBusProcesses(t)
		t0 := time.Now()
		m := rbRun(t, env, root, nil, "init", "--backend", "auto", "--admin-passphrase-file", admin).OK(t).JSON(t)
		// No time bound here: init derives two Argon2id keys, which is slow
		// on a busy machine. The reason below proves the bus was never tried.
		t.Logf("init --backend auto took %s", time.Since(t0).Round(time.Millisecond))
		if m["created"] != true || m["backend"] != "file" {
			t.Errorf("init --backend auto: created %v backend %v, want true file", m["created"], m["backend"])
		}
		reason, _ := m["backend_reason"].(string)
		if !strings.Contains(reason, "auto") || !strings.Contains(reason, "keychain") || !strings.Contains(reason, "D-Bus") {
			t.Errorf("backend_reason %q does not say that auto found no keychain (no D-Bus)", reason)
		}
		if stray := rbStrayDaemons(t, before, agHome); len(stray) > 0 {
			t.Errorf("init autolaunched D-Bus or keyring processes %v", stray)
		}
		st := rbRun(t, env, root, nil, "status").OK(t).JSON(t)
		if b, _ := st["backend"].(map[string]any); b["kind"] != "file" || b["reason"] != reason {
			t.Errorf("status backend %v, want file with the init reason", st["backend"])
		}
	})
}

func TestInitIdempotent(t *testing.T) {
	v := NewVault(t, "file")
	v.rbRunIn([]byte("kept\n"), "secrets", "set", "KEPT", "--from-stdin").OK(t)
	before := rbSnapshot(t, v.Home)
	for _, args := range [][]string{
		{"init", "--backend", "file", "--admin-passphrase-file", v.AdminFile},
		{"init"}, // no passphrase source: an existing vault needs none
		{"init", "--backend", "keychain", "--admin-passphrase-file", v.AdminFile},
	} {
		m := v.rbRun(args...).OK(t).JSON(t)
		if m["created"] != false || m["backend"] != "file" {
			t.Errorf("%v: created %v backend %v, want false file", args, m["created"], m["backend"])
		}
		warnings, _ := m["warnings"].([]any)
		if len(warnings) == 0 {
			t.Errorf("%v: no warning that a vault exists: %v", args, m)
		}
		if slices.Contains(args, "keychain") && len(warnings) < 2 {
			t.Errorf("%v: no warning that the existing vault uses another backend: %v", args, warnings)
		}
		rbSameSnapshot(t, fmt.Sprint(args), before, rbSnapshot(t, v.Home))
	}
	if rbSecrets(t, v.rbRun("secrets", "list").OK(t))["KEPT"] != 1 {
		t.Errorf("KEPT lost after a second init")
	}
}

func TestWorksFromAnyDirectory(t *testing.T) {
	v := NewVault(t, "file")
	v.rbRun("project", "create", "app").OK(t)
	v.rbRunIn([]byte("d\n"), "secrets", "set", "IN_DEFAULT", "--from-stdin").OK(t)
	v.rbRunIn([]byte("a\n"), "secrets", "set", "IN_APP", "--from-stdin", "--project", "app").OK(t)

	repo := filepath.Join(v.Dir, "repo")
	nested := filepath.Join(repo, "a", "b", "c")
	must(t, os.MkdirAll(nested, 0o755))
	env := v.Env()

	m := rbRun(t, env, repo, nil, "project", "use", "app", "--link").OK(t).JSON(t)
	link := filepath.Join(repo, ".agentsecrets", "project.json")
	if m["link_file"] != link {
		t.Errorf("link_file %v, want %s", m["link_file"], link)
	}
	b, err := os.ReadFile(link)
	must(t, err)
	var sel vault.Selection
	if err := json.Unmarshal(b, &sel); err != nil || sel != (vault.Selection{Workspace: "default", Project: "app"}) {
		t.Fatalf("%s holds %s (%v)", link, b, err)
	}

	listIn := func(dir string, extra ...string) (string, map[string]int) {
		t.Helper()
		r := rbRun(t, env, dir, nil, append([]string{"secrets", "list"}, extra...)...).OK(t)
		return r.JSON(t)["project"].(string), rbSecrets(t, r)
	}
	statusIn := func(dir string, extra ...string) map[string]any {
		t.Helper()
		return rbRun(t, env, dir, nil, append([]string{"status"}, extra...)...).OK(t).JSON(t)
	}

	// From a nested directory the link wins.
	proj, secrets := listIn(nested)
	if proj != "app" || secrets["IN_APP"] != 1 || len(secrets) != 1 {
		t.Errorf("from %s: project %s secrets %v, want app with IN_APP", nested, proj, secrets)
	}
	st := statusIn(nested)
	if st["project"] != "app" || st["project_source"] != "link" || st["link_file"] != link {
		t.Errorf("status from %s: project %v source %v link %v", nested, st["project"], st["project_source"], st["link_file"])
	}
	rbRun(t, env, nested, []byte("n\n"), "secrets", "set", "FROM_NESTED", "--from-stdin").OK(t)
	if _, secrets := listIn(nested); secrets["FROM_NESTED"] != 1 {
		t.Errorf("a set from the linked directory did not land in app: %v", secrets)
	}

	// From / the user's current project applies (the link did not change it).
	proj, secrets = listIn("/")
	if proj != "default" || secrets["IN_DEFAULT"] != 1 || len(secrets) != 1 {
		t.Errorf("from /: project %s secrets %v, want default with IN_DEFAULT", proj, secrets)
	}
	if st := statusIn("/"); st["project"] != "default" || st["project_source"] != "current" {
		t.Errorf("status from /: project %v source %v, want default current", st["project"], st["project_source"])
	}

	// An explicit --project wins over the link.
	proj, secrets = listIn(nested, "--project", "default")
	if proj != "default" || secrets["IN_DEFAULT"] != 1 {
		t.Errorf("from %s with --project default: project %s secrets %v", nested, proj, secrets)
	}
	if st := statusIn(nested, "--project", "default"); st["project"] != "default" || st["project_source"] != "flag" {
		t.Errorf("status with --project: project %v source %v, want default flag", st["project"], st["project_source"])
	}

	// Changing the user's current project does not override the link.
	rbRun(t, env, "/", nil, "project", "create", "other", "--use").OK(t)
	if proj, _ := listIn(nested); proj != "app" {
		t.Errorf("after project use other, the linked directory uses %s, want app", proj)
	}
	if proj, _ := listIn("/"); proj != "other" {
		t.Errorf("after project use other, / uses %s, want other", proj)
	}
}
