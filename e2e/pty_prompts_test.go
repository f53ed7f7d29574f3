//go:build linux

package e2e

// Every prompt path on a real pseudo-terminal, run from dash (Debian's sh,
// which leaves the terminal as a killed program left it) and from bash, as
// a person runs agentsecrets: the shell is the parent, not the test.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var ptyShells = []string{"dash", "bash"}

// ptyInShell starts agentsecrets args from `shell -c` on a new pty. The
// script is not a lone command, so the shell stays the parent (a lone
// command would be exec'd in the shell's place).
func ptyInShell(t *testing.T, shell string, env []string, dir string, args ...string) *ptyProc {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s): %v", shell, shell, err)
	}
	return ptyStart(t, env, dir, append([]string{path, "-c", `"$0" "$@"; exit $?`, binary}, args...)...)
}

// interrupt waits for the hidden prompt, types part of an answer, then
// Ctrl-C, the way a person gives up on a prompt.
func (p *ptyProc) interrupt(prompt string) {
	p.t.Helper()
	p.awaitHidden(prompt, p.exited)
	if _, err := p.master.Write([]byte("half-typed-answer\x03")); err != nil {
		p.t.Fatalf("type Ctrl-C: %v", err)
	}
}

// endedBy reports whether the process ended by sig, or exited with the
// status a shell gives a death by sig (the shell outlived it).
func (p *ptyProc) endedBy(sig syscall.Signal) bool { return endedBy(p.cmd.ProcessState, sig) }

// withoutVaultPassphraseFile is env with no passphrase file for the file
// vault, so that commands ask for it on the terminal.
func withoutVaultPassphraseFile(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "AGENTSECRETS_VAULT_PASSPHRASE_FILE=") {
			out = append(out, kv)
		}
	}
	return out
}

// skipThroughBroker: through the broker the daemon reads its own vault
// passphrase file, so no command asks for a vault passphrase.
func skipThroughBroker(t *testing.T) {
	if viaBroker() {
		t.Skip("through the broker the daemon unlocks its vault from its own file: no vault passphrase prompt")
	}
}

// TestPTYInterruptRestoresEcho: Ctrl-C at any hidden prompt leaves the
// terminal with echo on, whatever shell started the program, ends the
// program as SIGINT would, and changes nothing.
func TestPTYInterruptRestoresEcho(t *testing.T) {
	type path struct {
		name   string
		prompt string
		start  func(t *testing.T, shell string) (p *ptyProc, unchanged func())
	}
	paths := []path{
		{"value", "Value for TYPED (hidden)", func(t *testing.T, shell string) (*ptyProc, func()) {
			v := NewVault(t, "file")
			return ptyInShell(t, shell, v.Env(), v.Dir, "secrets", "set", "TYPED"), func() {
				if got := rbSecrets(t, v.rbRun("secrets", "list").OK(t)); got["TYPED"] != 0 {
					t.Errorf("an interrupted set stored TYPED: %v", got)
				}
			}
		}},
		{"admin passphrase", "Choose the admin passphrase", func(t *testing.T, shell string) (*ptyProc, func()) {
			root := t.TempDir()
			agHome := filepath.Join(root, "home")
			return ptyInShell(t, shell, rbBareEnv(root, agHome), root, "init", "--backend", "file"), func() {
				if _, err := os.Lstat(agHome); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("an interrupted init created %s (err %v)", agHome, err)
				}
			}
		}},
		{"vault passphrase", "Vault passphrase:", func(t *testing.T, shell string) (*ptyProc, func()) {
			skipThroughBroker(t)
			v := NewVault(t, "file")
			before := rbSnapshot(t, v.Home)
			return ptyInShell(t, shell, withoutVaultPassphraseFile(v.Env()), v.Dir, "secrets", "set", "TYPED"), func() {
				rbSameSnapshot(t, "an interrupted unlock", before, rbSnapshot(t, v.Home))
			}
		}},
	}
	for _, shell := range ptyShells {
		for _, pa := range paths {
			t.Run(shell+"/"+pa.name, func(t *testing.T) {
				p, unchanged := pa.start(t, shell)
				p.interrupt(pa.prompt)
				r, tty := p.wait()
				if p.echoOff() {
					t.Fatalf("echo is still off after Ctrl-C at %q under %s; terminal: %q", pa.prompt, shell, tty)
				}
				if !p.endedBy(syscall.SIGINT) {
					t.Errorf("under %s the program did not end as SIGINT ends it: %v, stdout %s, stderr %s", shell, p.cmd.ProcessState, r.Stdout, r.Stderr)
				}
				if strings.Contains(tty, "half-typed") {
					t.Errorf("the half-typed answer was echoed: %q", tty)
				}
				unchanged()
			})
		}
	}
}

// TestPTYTerminateRestoresEcho: SIGTERM at a hidden prompt restores the
// terminal too, and the process ends by SIGTERM.
func TestPTYTerminateRestoresEcho(t *testing.T) {
	v := NewVault(t, "file")
	p := ptyStart(t, v.Env(), v.Dir, binary, "secrets", "set", "TYPED")
	p.awaitHidden("Value for TYPED (hidden)", p.exited)
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	_, tty := p.wait()
	if p.echoOff() {
		t.Fatalf("echo is still off after SIGTERM at the value prompt; terminal: %q", tty)
	}
	if !p.endedBy(syscall.SIGTERM) {
		t.Errorf("the program did not end by SIGTERM: %v", p.cmd.ProcessState)
	}
}

// TestPTYNewPassphraseAskedAgain: init checks each new passphrase before
// asking for its confirmation, asks again after a refusal or a mismatch,
// explains both passphrases once, and the passphrases that finally match
// are the ones that take effect.
func TestPTYNewPassphraseAskedAgain(t *testing.T) {
	for _, shell := range ptyShells {
		t.Run(shell, func(t *testing.T) {
			root := t.TempDir()
			agHome := filepath.Join(root, "home")
			const admin, vaultPass = "typed admin passphrase", "typed vault passphrase"
			p := ptyInShell(t, shell, rbBareEnv(root, agHome), root, "init", "--backend", "file")
			p.step(ptyStep{"Choose the admin passphrase", "short"})
			p.awaitText("at least 8 characters; try again.", p.exited)
			for _, s := range []ptyStep{
				{"Choose the admin passphrase", admin},
				{"Repeat to confirm", admin + " but not quite"},
				{"Choose the admin passphrase", admin},
				{"Repeat to confirm", admin},
				{"Choose the vault passphrase", admin},
				{"Choose the vault passphrase", vaultPass},
				{"Repeat to confirm", vaultPass},
			} {
				p.step(s)
			}
			r, tty := p.wait()
			m := r.OK(t).JSON(t)
			if m["created"] != true || m["backend"] != "file" {
				t.Errorf("init: %s", r.Stdout)
			}
			if first, refused := strings.Index(tty, "Repeat to confirm"), strings.Index(tty, "at least 8 characters"); refused < 0 || first < refused {
				t.Errorf("a too short passphrase was confirmed before it was refused: %q", tty)
			}
			for _, want := range []string{"the two entries differ; try again.", "must differ from the vault passphrase; try again."} {
				if !strings.Contains(tty, want) {
					t.Errorf("the terminal does not say %q: %q", want, tty)
				}
			}
			for _, once := range []string{"The admin passphrase approves", "AGENTSECRETS_VAULT_PASSPHRASE_FILE=PATH"} {
				if n := strings.Count(tty, once); n != 1 {
					t.Errorf("%q shown %d times, want once: %q", once, n, tty)
				}
			}
			if strings.Contains(tty, admin) || strings.Contains(tty, vaultPass) || strings.Contains(tty, "short") {
				t.Errorf("a passphrase was echoed: %q", tty)
			}
			adminFile := filepath.Join(root, "typed-admin.pass")
			vaultFile := filepath.Join(root, "typed-vault.pass")
			must(t, os.WriteFile(adminFile, []byte(admin+"\n"), 0o600))
			must(t, os.WriteFile(vaultFile, []byte(vaultPass+"\n"), 0o600))
			env := append(rbBareEnv(root, agHome), "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vaultFile)
			rbRun(t, env, root, []byte("v\n"), "secrets", "set", "AFTER_INIT", "--from-stdin").OK(t)
			b := rbRun(t, env, root, nil, "secrets", "bind", "AFTER_INIT", "api.example.com", "--passphrase-file", adminFile).OK(t).JSON(t)
			if b["approved"] != true {
				t.Errorf("bind with the typed admin passphrase: %v", b)
			}
		})
	}
}

// TestPTYNewPassphraseGivesUp: three mismatched confirmations end init with
// a hint to run it again (not to find a terminal: the person is at one),
// and nothing is created.
func TestPTYNewPassphraseGivesUp(t *testing.T) {
	for _, shell := range ptyShells {
		t.Run(shell, func(t *testing.T) {
			root := t.TempDir()
			agHome := filepath.Join(root, "home")
			_, vf := rbPassFiles(t, root)
			p := ptyInShell(t, shell, rbBareEnv(root, agHome, "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vf), root, "init", "--backend", "file")
			for range 3 {
				p.step(ptyStep{"Choose the admin passphrase", "first admin passphrase"})
				p.step(ptyStep{"Repeat to confirm", "second admin passphrase"})
			}
			r, tty := p.wait()
			e := r.ErrorCode(t, "usage", 2)
			h := rbHint(t, r, e)
			if !strings.Contains(h, "agentsecrets init` again") || strings.Contains(h, "terminal") {
				t.Errorf("hint %q: want to run init again, and no word of a terminal", h)
			}
			if n := strings.Count(tty, "try again."); n != 2 {
				t.Errorf("the terminal says %d times to try again, want 2 (not after the last): %q", n, tty)
			}
			if strings.Contains(tty, "first admin") || strings.Contains(tty, "second admin") {
				t.Errorf("a passphrase was echoed: %q", tty)
			}
			if _, err := os.Lstat(agHome); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed init created %s (err %v)", agHome, err)
			}
		})
	}
}

// TestPTYUnlockBeforeValue: with the file backend, `secrets set NAME` asks
// for the vault passphrase before the value, so a wrong passphrase ends the
// command before anything is typed in vain.
func TestPTYUnlockBeforeValue(t *testing.T) {
	skipThroughBroker(t)
	for _, shell := range ptyShells {
		t.Run(shell, func(t *testing.T) {
			v := NewVault(t, "file")
			env := withoutVaultPassphraseFile(v.Env())
			before := rbSnapshot(t, v.Home)
			p := ptyInShell(t, shell, env, v.Dir, "secrets", "set", "TYPED")
			p.step(ptyStep{"Vault passphrase:", "not the vault passphrase"})
			r, tty := p.wait()
			if r.Code == 0 {
				t.Fatalf("set with a wrong vault passphrase succeeded: %s", r.Stdout)
			}
			rbHint(t, r, r.ErrorCode(t, "denied", 4))
			if strings.Contains(tty, "Value for") {
				t.Errorf("the value was asked for before the vault was unlocked: %q", tty)
			}
			rbSameSnapshot(t, "set with a wrong vault passphrase", before, rbSnapshot(t, v.Home))

			value := "typed-" + rbRandomHex(t, 20)
			p = ptyInShell(t, shell, env, v.Dir, "secrets", "set", "TYPED")
			p.step(ptyStep{"Vault passphrase:", vaultPassphrase})
			p.step(ptyStep{"Value for TYPED (hidden)", value})
			r, tty = p.wait()
			r.OK(t)
			if strings.Contains(tty, value) || strings.Contains(string(r.Stdout), value) || strings.Contains(string(r.Stderr), value) {
				t.Errorf("the typed value was shown")
			}
			if got, err := rbStore(t, v).Value(context.Background(), rbDefault(), "TYPED"); err != nil || string(got.Reveal()) != value {
				t.Errorf("the vault does not hold the typed value (err %v)", err)
			}
		})
	}
}

// TestInitTextOnce: on an existing vault, init's text says so once (the
// warning), and the text explains the passphrases of the file backend.
func TestInitTextOnce(t *testing.T) {
	v := NewVault(t, "file")
	r := v.Run("init", "--format", "text", "--admin-passphrase-file", v.AdminFile)
	r.OK(t)
	all := string(r.Stdout) + string(r.Stderr)
	if n := strings.Count(all, "already exists"); n != 1 {
		t.Errorf("init on an existing vault says it exists %d times, want once:\n%s", n, all)
	}
	for _, want := range []string{"admin  approves policy changes", "AGENTSECRETS_VAULT_PASSPHRASE_FILE"} {
		if !strings.Contains(string(r.Stdout), want) {
			t.Errorf("init's text lacks %q:\n%s", want, r.Stdout)
		}
	}
}
