//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPTYAccount: the human path of account creation and login on a real
// terminal. The password is typed with echo off; a weak one is refused
// before the confirmation prompt; with stdout a pipe the recovery kit is
// never printed (it needs a terminal stdout or --recovery-kit-file); the
// password appears nowhere.
func TestPTYAccount(t *testing.T) {
	root := t.TempDir()
	srv := startSyncServer(t, root)
	const email = "grace@example.com"
	password := "typed-Account-Password-8d2k"
	a := NewVault(t, "file")

	// stdout is a pipe here: no kit file means no account, and no prompt.
	r, tty := ptyRun(t, a.Env(), a.Dir, nil, "account", "create", "--server", srv.URL, "--email", email)
	r.ErrorCode(t, "approval_required", 5)
	if strings.Contains(tty, "password") {
		t.Errorf("prompted although the kit could not be shown: %q", tty)
	}

	kit := filepath.Join(root, "kit.txt")
	// A weak password is refused at once, without asking to confirm it,
	// and asked again; the third refusal ends the command.
	weak := ptyStep{"New account password", "weak"}
	r, tty = ptyRun(t, a.Env(), a.Dir, []ptyStep{weak, weak, weak},
		"account", "create", "--server", srv.URL, "--email", email, "--recovery-kit-file", kit)
	r.ErrorCode(t, "usage", 2)
	if strings.Contains(tty, "Repeat") {
		t.Errorf("asked to confirm a password it then refused: %q", tty)
	}
	if _, err := os.Stat(kit); err == nil {
		t.Fatal("a refused create wrote a kit")
	}

	r, tty = ptyRun(t, a.Env(), a.Dir, []ptyStep{{"New account password", password}, {"Repeat to confirm", password}},
		"account", "create", "--server", srv.URL, "--email", email, "--recovery-kit-file", kit)
	r.OK(t)
	checkNoPassword := func(tty string, r *Result) {
		t.Helper()
		for where, b := range map[string]string{"terminal": tty, "stdout": string(r.Stdout), "stderr": string(r.Stderr)} {
			if strings.Contains(b, password) {
				t.Errorf("the password appears on %s", where)
			}
		}
	}
	checkNoPassword(tty, r)

	b := NewVault(t, "file")
	r, tty = ptyRun(t, b.Env(), b.Dir, []ptyStep{{"Password for " + email, password}},
		"login", "--server", srv.URL, "--email", email, "--account-key-file", kit)
	if r.OK(t).JSON(t)["signed_in"] != true {
		t.Fatalf("login: %s", r.Stdout)
	}
	checkNoPassword(tty, r)
}
