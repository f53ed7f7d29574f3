package e2e

import (
	"context"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/home"
	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// syncServer is a real `agentsecrets server` process on SQLite on
// 127.0.0.1, its log in a file.
type syncServer struct {
	t    *testing.T
	URL  string
	addr string
	dir  string
	Log  string
	cmd  *exec.Cmd
}

func startSyncServer(t *testing.T, dir string) *syncServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	s := &syncServer{t: t, URL: "http://" + addr, addr: addr, dir: dir, Log: filepath.Join(dir, "server.log")}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *syncServer) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	must(s.t, err)
	defer logf.Close()
	s.cmd = exec.Command(binary, "server", "--listen", s.addr, "--db", "sqlite:"+filepath.Join(s.dir, "server.db"), "--signup", "open")
	s.cmd.Env = []string{"AGENTSECRETS_HOME=" + filepath.Join(s.dir, "home"), "PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}
	s.cmd.Stderr, s.cmd.Stdout = logf, logf
	must(s.t, s.cmd.Start())
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("server did not start; log:\n%s", readFile(s.t, s.Log))
}

func (s *syncServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func writePrivate(t *testing.T, p, content string) string {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// openVault opens a device's vault in this process, as the CLI does, to
// read what it stored (the canary needs the tokens).
func openVault(t *testing.T, v *Vault) *vault.Store {
	t.Helper()
	dirs, err := home.Resolve(func(k string) string {
		for _, kv := range v.Env() {
			if key, val, _ := strings.Cut(kv, "="); key == k {
				return val
			}
		}
		return ""
	})
	must(t, err)
	st, err := vault.Open(dirs, vault.Options{Getenv: os.Getenv, VaultPassphrase: func(bool) ([]byte, error) { return []byte(vaultPassphrase), nil }})
	must(t, err)
	return st
}

// TestAccountFlow is the account half of issue 10 end to end, on each
// backend: two devices of one account against a real server process, the
// faults of item 8 that concern accounts, and a canary scan of every
// output, every file of both homes but the vault backend, and the server's
// log and database, for the password, the account key, the
// authentication key and every session token.
func TestAccountFlow(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) { accountFlow(t, backend) })
	}
}

func accountFlow(t *testing.T, backend string) {
	root := t.TempDir()
	srv := startSyncServer(t, root)
	const email = "ada@example.com"
	password := "e2e-Sync-Password-Zq81vXk3w"
	pwFile := writePrivate(t, filepath.Join(root, "pw"), password+"\n")
	kit := filepath.Join(root, "kit.txt")

	a := NewVault(t, backend)
	b := NewVault(t, backend)
	var outputs []*Result
	run := func(v *Vault, args ...string) *Result {
		t.Helper()
		r := v.Run(args...)
		outputs = append(outputs, r)
		return r
	}

	// Device A creates the account; the kit goes to a new 0600 file.
	ra := run(a, "account", "create", "--server", srv.URL, "--email", email, "--password-file", pwFile, "--recovery-kit-file", kit, "--device-name", "a").OK(t).JSON(t)
	if ra["signed_in"] != true || ra["recovery_kit"] != kit || ra["seal_key_fingerprint"] == "" {
		t.Fatalf("create: %v", ra)
	}
	st, err := os.Stat(kit)
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("kit mode %v", st.Mode())
	}
	parsed, err := agentsync.ParseKit(readFile(t, kit))
	must(t, err)
	accountKey := parsed.Key
	// A second create into the same kit path is refused without touching it.
	run(a, "account", "create", "--server", srv.URL, "--email", "other@example.com", "--password-file", pwFile, "--recovery-kit-file", kit).ErrorCode(t, "conflict", 6)

	// Device B signs in with the password and the kit.
	rb := run(b, "login", "--server", srv.URL, "--email", email, "--password-file", pwFile, "--account-key-file", kit, "--device-name", "b").OK(t).JSON(t)
	for _, k := range []string{"account_id", "seal_key_fingerprint", "sign_key_fingerprint"} {
		if rb[k] != ra[k] || rb[k] == "" {
			t.Errorf("%s differs between devices: %v vs %v", k, ra[k], rb[k])
		}
	}
	show := run(b, "account", "show").OK(t).JSON(t)
	if show["email"] != email || show["server"] != srv.URL || show["signed_in"] != true || show["device_id"] != rb["device_id"] {
		t.Fatalf("show: %v", show)
	}
	run(b, "account", "show", "--check").OK(t)
	devs := run(b, "account", "devices").OK(t).JSON(t)["devices"].([]any)
	if len(devs) != 2 {
		t.Fatalf("devices: %v", devs)
	}

	// The canaries: password, account key, auth key, each device's tokens.
	c, err := agentsync.NewClient(agentsync.Options{Server: srv.URL})
	must(t, err)
	pre, err := c.Prelogin(context.Background(), email)
	must(t, err)
	authKey, _, err := crypto.AccountKeys([]byte(password), accountKey, pre.KDF)
	must(t, err)
	canaries := [][]byte{[]byte(password), accountKey, authKey, []byte(agentsync.FormatAccountKey(accountKey))}
	tokens := func(v *Vault) {
		s, err := openVault(t, v).Session(context.Background())
		must(t, err)
		canaries = append(canaries, append([]byte(nil), s.Access.Reveal()...), append([]byte(nil), s.Refresh.Reveal()...))
	}
	tokens(a)
	tokens(b)

	// Wrong password, wrong account key, on a third device: unauthorized.
	cdev := NewVault(t, backend)
	wrongPw := writePrivate(t, filepath.Join(root, "wrongpw"), "not-the-Password-at-all-42\n")
	run(cdev, "login", "--server", srv.URL, "--email", email, "--password-file", wrongPw, "--account-key-file", kit).ErrorCode(t, "unauthorized", 11)
	otherKey, err := agentsync.NewAccountKey()
	must(t, err)
	wrongKey := writePrivate(t, filepath.Join(root, "wrongkey"), agentsync.FormatAccountKey(otherKey)+"\n")
	run(cdev, "login", "--server", srv.URL, "--email", email, "--password-file", pwFile, "--account-key-file", wrongKey).ErrorCode(t, "unauthorized", 11)
	// A kit for another server is refused before any request.
	run(cdev, "login", "--server", "http://127.0.0.1:1", "--email", email, "--password-file", pwFile, "--account-key-file", kit).ErrorCode(t, "usage", 2)
	// Without a terminal or --password-file: a human must do it.
	e := run(cdev, "login", "--server", srv.URL, "--email", email, "--account-key-file", kit).ErrorCode(t, "approval_required", 5)
	if !strings.Contains(e["hint"].(string), "human") {
		t.Errorf("hint: %v", e["hint"])
	}
	if ix, err := openVault(t, cdev).Index(); err != nil || ix.Account != nil {
		t.Fatalf("a failed login linked the vault: %v %v", ix.Account, err)
	}

	// B revokes A; A's next call is unauthorized with the login hint.
	run(b, "account", "devices", "--revoke", ra["device_id"].(string)).OK(t)
	e = run(a, "account", "devices").ErrorCode(t, "unauthorized", 11)
	if want := "agentsecrets login --server " + srv.URL + " --email " + email; !strings.Contains(e["hint"].(string), want) {
		t.Errorf("hint %q lacks %q", e["hint"], want)
	}
	// A returning device signs in again with the password only (it kept
	// the account key), and logs out with the server told.
	run(a, "login", "--server", srv.URL, "--email", email, "--password-file", pwFile).OK(t)
	tokens(a)
	lo := run(a, "logout").OK(t).JSON(t)
	if lo["signed_in"] != false || lo["server_notified"] != true {
		t.Fatalf("logout: %v", lo)
	}
	run(a, "account", "devices").ErrorCode(t, "unauthorized", 11)

	// Server down: unavailable; logout still ends the local session.
	srv.stop()
	e = run(b, "account", "devices").ErrorCode(t, "unavailable", 7)
	if !strings.Contains(e["hint"].(string), "agentsecrets server") {
		t.Errorf("hint: %v", e["hint"])
	}
	lo = run(b, "logout").OK(t).JSON(t)
	if lo["signed_in"] != false || lo["server_notified"] != false || lo["warnings"] == nil {
		t.Fatalf("logout with the server down: %v", lo)
	}
	if _, err := openVault(t, b).Session(context.Background()); err == nil {
		t.Fatal("tokens survived logout")
	}
	run(b, "logout", "--forget-device").OK(t)
	if _, err := openVault(t, b).AccountMaterial(context.Background()); err == nil {
		t.Fatal("the account key survived logout --forget-device")
	}
	for _, v := range []*Vault{a, b} {
		if r := run(v, "doctor"); r.Code != 0 {
			t.Errorf("doctor after the flow: %s", r.Stdout)
		}
	}

	// Canary scan.
	for _, r := range outputs {
		assertNoLeak(t, "stdout of "+strings.Join(r.Args, " "), r.Stdout, canaries)
		assertNoLeak(t, "stderr of "+strings.Join(r.Args, " "), r.Stderr, canaries)
	}
	scanned := 0
	for _, v := range []*Vault{a, b, cdev} {
		err := filepath.WalkDir(filepath.Dir(v.Home), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || d.Name() == "vault.enc" {
				return err
			}
			scanned++
			assertNoLeak(t, "file "+p, readFile(t, p), canaries)
			return nil
		})
		must(t, err)
	}
	for _, p := range []string{srv.Log, filepath.Join(root, "server.db")} {
		assertNoLeak(t, "server file "+filepath.Base(p), readFile(t, p), canaries)
	}
	t.Logf("scanned %d outputs, %d home files and the server's log and database for %d canaries", 2*len(outputs), scanned, len(canaries))
	if scanned < 6 {
		t.Fatalf("the scan saw only %d files", scanned)
	}
}
