// Package e2e drives the built agentsecrets binary as a user would: real
// processes, a real Secret Service (gnome-keyring in a private D-Bus
// session, see scripts/with-secret-service) and the encrypted file backend.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// binary is the agentsecrets executable built once for the whole package,
// agentsecrets-server beside it.
var binary string

func TestMain(m *testing.M) {
	// Re-executed as a helper process of a benchmark, this binary serves
	// and never tests (xproc_bench_test.go).
	if mode := os.Getenv(xprocServeEnv); mode != "" {
		os.Exit(xprocServe(mode))
	}
	dir, err := os.MkdirTemp("", "agentsecrets-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agentsecrets")
	// agentsecrets-server beside it, as installed: `agentsecrets server`
	// hands over to it.
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "..", "../cmd/agentsecrets-server")
	// As make install and the releases build it.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agentsecrets:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Vault is one throwaway AGENTSECRETS_HOME plus the passphrase files a
// scripted user would keep next to it.
type Vault struct {
	t         *testing.T
	Home      string
	Dir       string // working directory for commands
	AdminFile string
	VaultFile string // vault passphrase file (file backend)
	Backend   string
	ExtraEnv  []string
	// Broker is the daemon's socket when the suite runs through a broker
	// (viaBroker): every command is then its client.
	Broker string
}

const (
	adminPassphrase = "correct horse battery staple"
	vaultPassphrase = "vault passphrase for tests"
)

// requireKeychain skips or fails a keychain test depending on whether the
// suite runs under `make test` (which always provides a Secret Service).
func requireKeychain(t testing.TB) {
	t.Helper()
	if viaBroker() {
		t.Skip("through the broker, values live in the daemon's encrypted file, never a keychain")
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return
	}
	if os.Getenv("AGENTSECRETS_TEST_REQUIRE_KEYCHAIN") != "" {
		t.Fatal("no Secret Service: run the suite with `make test` (scripts/with-secret-service)")
	}
	t.Skip("no D-Bus session: run `make test` to include the Secret Service tests")
}

// NewVault creates a temp home and runs init with the given backend.
func NewVault(t *testing.T, backend string) *Vault {
	t.Helper()
	if backend == "keychain" {
		requireKeychain(t)
	}
	root := t.TempDir()
	v := &Vault{t: t, Home: filepath.Join(root, "home"), Dir: filepath.Join(root, "work"),
		AdminFile: filepath.Join(root, "admin.pass"), VaultFile: filepath.Join(root, "vault.pass"), Backend: backend}
	must(t, os.MkdirAll(v.Dir, 0o755))
	must(t, os.WriteFile(v.AdminFile, []byte(adminPassphrase+"\n"), 0o600))
	must(t, os.WriteFile(v.VaultFile, []byte(vaultPassphrase+"\n"), 0o600))
	if viaBroker() {
		v.Broker = newBrokerDaemon(t, v.Home, strconv.Itoa(os.Getuid())).Socket
	}
	r := v.Run("init", "--backend", backend, "--admin-passphrase-file", v.AdminFile)
	r.OK(t)
	return v
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Env is the environment every command of this vault runs with.
func (v *Vault) Env() []string {
	env := []string{
		"AGENTSECRETS_HOME=" + v.Home,
		"AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + v.VaultFile,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Dir(v.Home),
	}
	for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
		if val := os.Getenv(k); val != "" {
			env = append(env, k+"="+val)
		}
	}
	// Never a broker installed on the machine running the tests: its
	// vault is a person's, not a test's.
	broker := "none"
	if v.Broker != "" {
		broker = "unix:" + v.Broker
	}
	env = append(env, "AGENTSECRETS_BROKER="+broker)
	return append(env, v.ExtraEnv...)
}

// Result is one finished command.
type Result struct {
	Args   []string
	Stdout []byte
	Stderr []byte
	Code   int
}

// Run runs the binary with args and no stdin.
func (v *Vault) Run(args ...string) *Result { return v.RunIn(nil, args...) }

// RunIn runs the binary with stdin.
func (v *Vault) RunIn(stdin []byte, args ...string) *Result {
	v.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = v.Env()
	cmd.Dir = v.Dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return capture(v.t, cmd, args)
}

// capture runs cmd to the end with its output in buffers. A non-zero exit
// is a Result; failing to run at all fails the test.
func capture(t testing.TB, cmd *exec.Cmd, args []string) *Result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return rbResult(t, args, cmd.Run(), &out, &errb)
}

// rbResult turns a finished command's error and output into a Result.
func rbResult(t testing.TB, args []string, err error, out, errb *bytes.Buffer) *Result {
	t.Helper()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return &Result{Args: args, Stdout: out.Bytes(), Stderr: errb.Bytes(), Code: code}
}

// OK fails the test unless the command succeeded.
func (r *Result) OK(t *testing.T) *Result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("agentsecrets %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// JSON decodes stdout into a generic map.
func (r *Result) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Stdout, &m); err != nil {
		t.Fatalf("agentsecrets %s: stdout is not one JSON object: %v\n%s", strings.Join(r.Args, " "), err, r.Stdout)
	}
	return m
}

// ErrorCode asserts a failure with the given code and exit status, a
// message and a hint, and returns the error object.
func (r *Result) ErrorCode(t *testing.T, code string, exit int) map[string]any {
	t.Helper()
	if r.Code != exit {
		t.Fatalf("agentsecrets %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, exit, r.Stdout, r.Stderr)
	}
	e, ok := r.JSON(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.Stdout)
	}
	if e["code"] != code {
		t.Fatalf("agentsecrets %s: code %v, want %s (%s)", strings.Join(r.Args, " "), e["code"], code, r.Stdout)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error without message: %s", r.Stdout)
	}
	if hint, _ := e["hint"].(string); hint == "" {
		t.Fatalf("error without message or hint: %s", r.Stdout)
	}
	return e
}
