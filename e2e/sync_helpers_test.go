package e2e

// Reusable setup of the sync tests: a real `agentsecrets server` process,
// an account created on one device, and more devices (each its own
// AGENTSECRETS_HOME, keychain or file backend) signed in to it. Other
// suites (PostgreSQL, replicas, a malicious server, benchmarks) build on
// StartSyncServer, NewSyncAccount and (*SyncAccount).NewDevice.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SyncServer is one running `agentsecrets server` process.
type SyncServer struct {
	t    testing.TB
	URL  string
	DB   string // the --db value
	Path string // the SQLite file, "" for PostgreSQL
	Home string // the server process's AGENTSECRETS_HOME
	Logs *lockedBuffer
	// Listen is the address it listens on: 127.0.0.1:0 until the first
	// start picks a port, which a restart keeps (devices keep the URL).
	Listen string
	cmd    *exec.Cmd
	done   chan struct{}
}

// StartSyncServer starts a server on 127.0.0.1 (a free port) with open
// signup. db is a --db value; "" means a new SQLite file in a temp dir.
// The server is stopped when the test ends.
func StartSyncServer(t testing.TB, db string, extra ...string) *SyncServer {
	t.Helper()
	root := t.TempDir()
	s := &SyncServer{t: t, DB: db, Home: filepath.Join(root, "server-home"), Logs: &lockedBuffer{}, Listen: "127.0.0.1:0"}
	if s.DB == "" {
		s.Path = filepath.Join(root, "server.db")
		s.DB = "sqlite:" + s.Path
	}
	s.start(extra...)
	t.Cleanup(s.Stop)
	return s
}

func (s *SyncServer) start(extra ...string) {
	s.t.Helper()
	args := append([]string{"server", "--listen", s.Listen, "--db", s.DB, "--signup", "open"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"AGENTSECRETS_HOME=" + s.Home, "PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.Home)}
	pr, pw, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = pw
	cmd.Stdout = s.Logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	pw.Close()
	s.cmd, s.done = cmd, make(chan struct{})
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			s.Logs.Write(append(append([]byte{}, line...), '\n'))
			var rec struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if !sent && json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.URL != "" {
				url <- rec.URL
				sent = true
			}
		}
		pr.Close()
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case s.URL = <-url:
		s.Listen = strings.TrimPrefix(s.URL, "http://")
	case <-s.done:
		s.t.Fatalf("agentsecrets server exited before listening:\n%s", s.Logs.Bytes())
	case <-time.After(30 * time.Second):
		s.t.Fatalf("agentsecrets server did not start:\n%s", s.Logs.Bytes())
	}
}

// Stop ends the server gracefully (SIGTERM) and waits for it.
func (s *SyncServer) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Start starts a stopped server again, on the same address and database.
func (s *SyncServer) Start() {
	s.t.Helper()
	if s.cmd == nil {
		s.start()
	}
}

// SyncAccount is an account on a SyncServer: its email, password file and
// recovery kit (which a new device signs in with).
type SyncAccount struct {
	Server       *SyncServer
	Email        string
	PasswordFile string
	KitFile      string
	// First is the device that created the account.
	First *Vault
}

const syncPassword = "orbit lantern quietly seventeen harbour"

// NewSyncAccount creates a vault (backend keychain or file), creates an
// account on srv from it and returns the account; First is that device.
func NewSyncAccount(t *testing.T, srv *SyncServer, backend string) *SyncAccount {
	t.Helper()
	a, r := CreateSyncAccount(t, srv, backend, "dev-"+strings.ToLower(randomB64(t, 6))+"@example.com")
	r.OK(t)
	return a
}

// CreateSyncAccount runs `account create` for email on a new vault and
// returns the account with the command's result (which may be an error:
// a closed server refuses an email nobody invited).
func CreateSyncAccount(t *testing.T, srv *SyncServer, backend, email string) (*SyncAccount, *Result) {
	t.Helper()
	dev := NewVault(t, backend)
	root := filepath.Dir(dev.Home)
	a := &SyncAccount{Server: srv, Email: email,
		PasswordFile: filepath.Join(root, "account.pass"), KitFile: filepath.Join(root, "recovery-kit.txt"), First: dev}
	must(t, os.WriteFile(a.PasswordFile, []byte(syncPassword+"\n"), 0o600))
	r := dev.Run("account", "create", "--server", srv.URL, "--email", a.Email, "--password-file", a.PasswordFile,
		"--recovery-kit-file", a.KitFile, "--device-name", "device-a")
	return a, r
}

// NewDevice creates another vault and signs it in to the account with the
// password and the recovery kit, as a new developer's machine would.
func (a *SyncAccount) NewDevice(t *testing.T, backend, name string) *Vault {
	t.Helper()
	dev := NewVault(t, backend)
	a.Login(t, dev, name).OK(t)
	return dev
}

// Login runs `login` on dev for the account.
func (a *SyncAccount) Login(t *testing.T, dev *Vault, name string) *Result {
	t.Helper()
	return dev.Run("login", "--server", a.Server.URL, "--email", a.Email, "--password-file", a.PasswordFile,
		"--account-key-file", a.KitFile, "--device-name", name)
}

// TwoDevices is the usual sync setup: a server on a new SQLite file, an
// account, device A (which created it) and device B (signed in with the
// recovery kit).
func TwoDevices(t *testing.T, backend string) (*SyncServer, *SyncAccount, *Vault, *Vault) {
	t.Helper()
	return TwoDevicesOn(t, StartSyncServer(t, ""), backend)
}

// TwoDevicesOn is TwoDevices against a server the caller started (another
// database, a replica, a recording or tampering proxy in front).
func TwoDevicesOn(t *testing.T, srv *SyncServer, backend string) (*SyncServer, *SyncAccount, *Vault, *Vault) {
	t.Helper()
	acct := NewSyncAccount(t, srv, backend)
	b := acct.NewDevice(t, backend, "device-b")
	return srv, acct, acct.First, b
}

// secretStates maps name → state of a `secrets diff` result.
func secretStates(t *testing.T, r *Result) map[string]string {
	t.Helper()
	var res struct {
		Secrets []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(r.OK(t).Stdout, &res); err != nil {
		t.Fatalf("%v: %s", err, r.Stdout)
	}
	out := map[string]string{}
	for _, s := range res.Secrets {
		out[s.Name] = s.State
	}
	return out
}

// field reads one top-level JSON value of a result as raw JSON text.
func field(t *testing.T, r *Result, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Stdout, &m); err != nil {
		t.Fatalf("%v: %s", err, r.Stdout)
	}
	return string(bytes.TrimSpace(m[name]))
}
