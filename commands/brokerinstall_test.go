package commands

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// brokerTestPlan points every path of the plan at a fresh temporary
// directory and names a throwaway account, deleted at the end.
func brokerTestPlan(t *testing.T) (func(*brokersvc.Plan), string) {
	t.Helper()
	root := t.TempDir()
	name := throwawayAccount(t, "asb")
	return func(p *brokersvc.Plan) {
		p.OS, p.User, p.Group, p.Systemd = "linux", name, name, false
		p.StateDir, p.SocketDir = filepath.Join(root, "state"), filepath.Join(root, "run")
		p.Binary, p.ServiceFile = filepath.Join(root, "lib", "agentsecrets"), filepath.Join(root, brokersvc.UnitName)
	}, root
}

// throwawayAccount returns a fresh account name; a user and a group of
// that name are deleted at the end of the test.
func throwawayAccount(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		_ = exec.Command("userdel", name).Run()
		_ = exec.Command("groupdel", name).Run()
	})
	return name
}

func brokerEnv(t *testing.T, sudoUser string) *Env {
	t.Helper()
	env, _ := testEnv(t)
	get := env.Getenv
	env.Getenv = func(k string) string {
		if k == "SUDO_USER" {
			return sudoUser
		}
		return get(k)
	}
	return env
}

// TestBrokerInstallNeedsUsers: without --user the users come from
// SUDO_USER; with no SUDO_USER, or sudo from root, nobody is named and
// the command refuses rather than admitting root or no one.
func TestBrokerInstallNeedsUsers(t *testing.T) {
	for _, who := range []string{"", "root"} {
		_, err := (&BrokerInstallCmd{DryRun: true}).Run(brokerEnv(t, who))
		r := errcode.Classify(err)
		if r.Code != errcode.Usage || r.Hint != "sudo agentsecrets broker install --user NAME" {
			t.Errorf("SUDO_USER=%q: %+v, want usage with the --user hint", who, r)
		}
	}
	_, err := (&BrokerInstallCmd{DryRun: true, User: []string{"alice=bad scope"}}).Run(brokerEnv(t, ""))
	if errcode.Classify(err).Code != errcode.Usage {
		t.Errorf("bad scope: %v", err)
	}
}

// TestBrokerInstallDryRun shows the unit for the sudo user and changes
// nothing.
func TestBrokerInstallDryRun(t *testing.T) {
	mod, root := brokerTestPlan(t)
	res, err := (&BrokerInstallCmd{DryRun: true, testOnlyPlan: mod}).Run(brokerEnv(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || len(res.Steps) != 0 || !strings.Contains(res.ServiceText, " --user alice\n") || res.ServiceText != brokersvc.UnitText(res.Plan) {
		t.Errorf("dry run result: %+v", res)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Errorf("dry run wrote %v", entries)
	}
	if _, err := user.Lookup(res.Plan.User); err == nil {
		t.Errorf("dry run created user %s", res.Plan.User)
	}
}

// TestBrokerInstallRun installs through the command (the running test
// binary is what gets copied), then uninstalls without and with --purge.
func TestBrokerInstallRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creates real users and groups: run as root (CI does)")
	}
	mod, _ := brokerTestPlan(t)
	client := throwawayAccount(t, "asc")
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", client).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	// No terminal and no --admin-passphrase-file: installed, but the vault
	// is left for the first `init`, and the result says to run it now.
	res, err := (&BrokerInstallCmd{User: []string{client + "=default"}, testOnlyPlan: mod}).Run(brokerEnv(t, ""))
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if res.VaultInitialised || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "agentsecrets init") {
		t.Errorf("install without a passphrase: initialised %v, warnings %v", res.VaultInitialised, res.Warnings)
	}
	// With one: the vault is created now, with the installer's passphrase,
	// and everything in the state directory is the broker user's.
	admin := filepath.Join(t.TempDir(), "admin.pass")
	if err := os.WriteFile(admin, []byte("installer's admin passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = (&BrokerInstallCmd{User: []string{client + "=default"}, AdminPassphraseFile: admin, testOnlyPlan: mod}).Run(brokerEnv(t, ""))
	if err != nil || !res.VaultInitialised {
		t.Fatalf("install with --admin-passphrase-file: %v, initialised %v", err, res != nil && res.VaultInitialised)
	}
	bu, err := user.Lookup(res.Plan.User)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "index.json", "vault.enc", "vault.passphrase"} {
		fi, err := os.Stat(filepath.Join(res.Plan.StateDir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Uid)) != bu.Uid || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: owner %d mode %v, want %s and private", f, st.Uid, fi.Mode().Perm(), bu.Uid)
		}
	}
	if cfg, _ := os.ReadFile(filepath.Join(res.Plan.StateDir, "config.json")); !strings.Contains(string(cfg), `"backend": "file"`) && !strings.Contains(string(cfg), `"backend":"file"`) {
		t.Errorf("the broker's vault is not its file: %s", cfg)
	}
	self, _ := selfPath()
	want, _ := os.ReadFile(self)
	if got, _ := os.ReadFile(res.Plan.Binary); len(got) == 0 || string(got) != string(want) {
		t.Error("the installed binary is not a copy of the running one")
	}
	if res.Started || !strings.HasSuffix(res.RunAs, " --user "+client+"=default --as "+res.Plan.User) || len(res.Next) != 2 {
		t.Errorf("without systemd: started %v, run_as %q, next %v", res.Started, res.RunAs, res.Next)
	}
	un, err := (&BrokerUninstallCmd{testOnlyPlan: mod}).Run(brokerEnv(t, ""))
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if len(un.Warnings) != 1 || !strings.Contains(un.Warnings[0], res.Plan.StateDir) {
		t.Errorf("uninstall without --purge does not say where the vault stays: %v", un.Warnings)
	}
	if _, err := os.Stat(res.Plan.StateDir); err != nil {
		t.Errorf("state dir removed without --purge: %v", err)
	}
	if _, err := (&BrokerUninstallCmd{Purge: true, testOnlyPlan: mod}).Run(brokerEnv(t, "")); err != nil {
		t.Fatalf("uninstall --purge: %v", err)
	}
	if _, err := os.Stat(res.Plan.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir kept with --purge: %v", err)
	}
}
