package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// with returns a copy of v with more environment.
func (v *Vault) with(env ...string) *Vault {
	c := *v
	c.ExtraEnv = append(append([]string{}, v.ExtraEnv...), env...)
	return &c
}

func currentUser(t *testing.T) string {
	u, err := user.Current()
	must(t, err)
	return u.Username
}

// noneContains fails if s is in any file under dir, or in any output.
func noneContains(t *testing.T, what, s string, dir string, outputs ...*Result) {
	t.Helper()
	for _, r := range outputs {
		if strings.Contains(string(r.Stdout)+string(r.Stderr), s) {
			t.Errorf("%s in the output of %s", what, strings.Join(r.Args, " "))
		}
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), s) {
				t.Errorf("%s in %s", what, p)
			}
		}
		return nil
	})
}

// TestBrokerTokenNarrows: a token limits its agent to one project of its
// user, is audited by name, cannot make tokens, is refused once revoked,
// and its string reaches only its --out file.
func TestBrokerTokenNarrows(t *testing.T) {
	d := startBroker(t, currentUser(t))
	v := d.client(t)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	key, other := randomValue(t, "sk_tok_"), randomValue(t, "sk_other_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, `{"ok":true}`) })
	v.Run("project", "create", "other").OK(t)
	v.RunIn([]byte(key), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.RunIn([]byte(other), "secrets", "set", "OTHER", "--from-stdin", "--project", "other").OK(t)
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "KEY", up.hostport(), "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "OTHER", up.hostport(), "--project", "other", "--passphrase-file", v.AdminFile).OK(t)

	// Not a terminal and no --out: refused before anything is stored.
	noTTY := v.Run("broker", "token", "create", "agent1", "--project", "default/default")
	noTTY.ErrorCode(t, "approval_required", noTTY.Code)
	tokFile := filepath.Join(t.TempDir(), "agent.token")
	created := v.Run("broker", "token", "create", "agent1", "--project", "default/default", "--out", tokFile).OK(t)
	fi, err := os.Stat(tokFile)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode().Perm())
	}
	tokBytes, err := os.ReadFile(tokFile)
	must(t, err)
	tok := strings.TrimSpace(string(tokBytes))
	if !strings.HasPrefix(tok, "asbt_") {
		t.Fatalf("token file holds %d bytes of something else", len(tok))
	}
	agent := v.with("AGENTSECRETS_BROKER_TOKEN_FILE=" + tokFile)

	who := agent.Run("broker", "status").OK(t).JSON(t)["daemon"].(map[string]any)
	if who["token"] != "agent1" || who["limited"] != true {
		t.Fatalf("status with the token: %v", who)
	}
	ok := agent.Run("call", "--url", up.URL+"/a", "--bearer", "KEY").OK(t)
	if got := up.requests()[0].Header.Get("Authorization"); got != "Bearer "+key {
		t.Fatalf("the upstream did not get the value")
	}
	denied := agent.Run("call", "--url", up.URL+"/b", "--bearer", "OTHER", "--project", "other")
	denied.ErrorCode(t, "denied", 4)
	if len(up.requests()) != 1 {
		t.Fatalf("a denied call reached the upstream")
	}
	widen := agent.Run("broker", "token", "create", "agent2", "--workspace", "default", "--out", filepath.Join(t.TempDir(), "t2"))
	widen.ErrorCode(t, "denied", 4)

	logs := v.Run("proxy", "logs").OK(t)
	var byToken int
	for _, line := range strings.Split(strings.TrimSpace(string(logs.Stdout)), "\n") {
		if strings.Contains(line, `"client_token":"agent1"`) {
			byToken++
		}
	}
	if byToken == 0 {
		t.Fatalf("no audit record names the token:\n%s", logs.Stdout)
	}

	v.Run("broker", "token", "revoke", "agent1").OK(t)
	revoked := agent.Run("call", "--url", up.URL+"/c", "--bearer", "KEY")
	revoked.ErrorCode(t, "unauthorized", revoked.Code)
	if revoked.Code == 0 || len(up.requests()) != 1 {
		t.Fatalf("a revoked token was served")
	}
	list := v.Run("broker", "token", "list").OK(t)
	var l struct{ Tokens []any }
	must(t, json.Unmarshal(list.Stdout, &l))
	if len(l.Tokens) != 0 {
		t.Fatalf("revoked token still listed: %s", list.Stdout)
	}

	// The token string: in its file only. The daemon stores a hash.
	noneContains(t, "the token", tok, d.State, created, ok, denied, widen, logs, revoked, list)
	noneContains(t, "the token", tok, v.Home)
	log := d.log()
	if strings.Contains(string(log), tok) {
		t.Errorf("the token in the daemon's log")
	}
	noneContains(t, "a value", key, d.State, created, ok, denied, logs)
}

// TestBrokerTokenOfAnotherUser: a token is its creator's; presented by
// another uid the daemon refuses it.
func TestBrokerTokenOfAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to add a user and run as it (CI runs as root)")
	}
	name := fmt.Sprintf("astok%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Skipf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	must(t, err)
	d := startBroker(t, currentUser(t), name)
	// The test's dirs are root's: the other user may enter the socket's
	// directory and connect (the installer does this with a group).
	must(t, os.Chmod(filepath.Dir(d.Socket), 0o755))
	must(t, os.Chmod(d.Socket, 0o666))
	v := d.client(t)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	tokDir, err := os.MkdirTemp("", "astok")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(tokDir) })
	must(t, os.Chmod(tokDir, 0o755))
	tokFile := filepath.Join(tokDir, "root.token")
	v.Run("broker", "token", "create", "roots", "--project", "default/default", "--out", tokFile).OK(t)
	// The other user holds a copy (a leaked token file).
	var uid, gid int
	fmt.Sscan(u.Uid, &uid)
	fmt.Sscan(u.Gid, &gid)
	must(t, os.Chown(tokFile, uid, gid))

	cmd := exec.Command("setpriv", "--reuid", u.Uid, "--regid", u.Gid, "--clear-groups", binary, "secrets", "list", "--json")
	cmd.Env = []string{"AGENTSECRETS_BROKER=unix:" + d.Socket, "AGENTSECRETS_BROKER_TOKEN_FILE=" + tokFile, "HOME=/", "PATH=" + os.Getenv("PATH")}
	cmd.Dir = "/"
	r := capture(t, cmd, []string{"secrets", "list"})
	r.ErrorCode(t, "denied", 4)
	if !strings.Contains(string(r.Stdout), "another user") {
		t.Fatalf("refusal does not say why: %s", r.Stdout)
	}
}
