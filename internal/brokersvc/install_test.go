package brokersvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// needRoot skips tests that create real accounts; CI and the dev machine
// run them as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creates real users and groups: run as root (CI does)")
	}
	for _, tool := range []string{"useradd", "groupadd", "userdel", "groupdel", "usermod", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
}

// throwaway returns a fresh account name; t.Cleanup deletes a user and a
// group of that name if the test left them.
func throwaway(t *testing.T, prefix string) string {
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

// clientUser creates a real login user for the broker to admit.
func clientUser(t *testing.T) string {
	t.Helper()
	name := throwaway(t, "asc")
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	return name
}

// testPlan is a Linux plan whose every path is under a fresh temporary
// directory and whose account is a throwaway one.
func testPlan(t *testing.T, clients ...string) Plan {
	t.Helper()
	root := t.TempDir()
	name := throwaway(t, "asb")
	src := filepath.Join(root, "src-agentsecrets")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho broker\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := Plan{OS: "linux", User: name, Group: name,
		StateDir: filepath.Join(root, "state"), SocketDir: filepath.Join(root, "run"),
		Binary:      filepath.Join(root, "lib", "agentsecrets"),
		ServiceFile: filepath.Join(root, UnitName), Source: src}
	for _, c := range clients {
		p.Clients = append(p.Clients, Client{Name: c})
	}
	return p
}

func wantFile(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	u, g, _ := owner(fi)
	if fi.Mode().Perm() != mode || u != uid || g != gid {
		t.Errorf("%s is %d:%d %04o, want %d:%d %04o", path, u, g, fi.Mode().Perm(), uid, gid, mode)
	}
}

func wantGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (err %v)", p, err)
		}
	}
}

func ids(t *testing.T, p Plan) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(p.User)
	if err != nil {
		t.Fatalf("user %s: %v", p.User, err)
	}
	g, err := user.LookupGroup(p.Group)
	if err != nil {
		t.Fatalf("group %s: %v", p.Group, err)
	}
	if u.Gid != g.Gid {
		t.Errorf("user %s's primary group is %s, want %s", p.User, u.Gid, g.Gid)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid
}

func actions(rep *Report) map[string]string {
	m := map[string]string{}
	for _, s := range rep.Steps {
		m[s.What+" "+s.Detail] = s.Action
	}
	return m
}

// TestInstallUninstall installs for real (accounts, directories, binary,
// unit), re-installs (nothing changes), uninstalls keeping the state
// directory, re-installs over it and purges.
func TestInstallUninstall(t *testing.T) {
	needRoot(t)
	alice, bob := clientUser(t), clientUser(t)
	p := testPlan(t, alice, bob)
	ctx := context.Background()

	rep, err := Install(ctx, p, Exec{})
	if err != nil {
		t.Fatalf("install: %v (steps %+v)", err, rep)
	}
	uid, gid := ids(t, p)
	if uid == 0 || gid == 0 {
		t.Fatalf("broker account is root (%d:%d)", uid, gid)
	}
	for _, c := range []string{alice, bob} {
		if ok, err := isMember(c, strconv.Itoa(gid)); err != nil || !ok {
			t.Errorf("%s is not in group %s (err %v)", c, p.Group, err)
		}
	}
	st := Inspect(ctx, p, Exec{})
	if slices.Sort(st.Members); !slices.Equal(st.Members, sorted(alice, bob)) {
		t.Errorf("members %v, want %s and %s", st.Members, alice, bob)
	}
	if len(st.Problems) > 0 || !st.Installed() || st.Service != "" {
		t.Errorf("status after install: %+v", st)
	}
	wantFile(t, p.StateDir, 0o700, uid, gid)
	wantFile(t, p.SocketDir, 0o750, uid, gid)
	wantFile(t, p.Binary, 0o755, 0, 0)
	wantFile(t, filepath.Dir(p.Binary), 0o755, 0, 0)
	wantFile(t, p.ServiceFile, 0o644, 0, 0)
	src, _ := os.ReadFile(p.Source)
	if got, _ := os.ReadFile(p.Binary); !bytes.Equal(got, src) {
		t.Error("installed binary differs from the source")
	}
	if got, _ := os.ReadFile(p.ServiceFile); string(got) != UnitText(p) {
		t.Errorf("unit file is not UnitText(p):\n%s", got)
	}
	// No systemd here: nothing started, and the fallback command given.
	if rep.Started || !slices.Equal(rep.RunAs, p.RunAsCommand()) {
		t.Errorf("started %v, run_as %v", rep.Started, rep.RunAs)
	}

	// Everything in place: a second install changes nothing.
	rep, err = Install(ctx, p, Exec{})
	if err != nil {
		t.Fatalf("second install: %v", err)
	}
	for _, s := range rep.Steps {
		if s.Action != Unchanged && s.Action != Skipped {
			t.Errorf("second install: %s %s (%s)", s.Action, s.What, s.Detail)
		}
	}

	// A file the broker wrote, to check it survives and changes hands.
	// Its content is a canary: install and uninstall move files by owner
	// and never read them, so it appears in no report or status.
	const canary = "sk_live_CANARY_brokersvc_4f2a9c"
	vault := filepath.Join(p.StateDir, "vault.bin")
	if err := os.WriteFile(vault, []byte(canary), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(vault, uid, gid); err != nil {
		t.Fatal(err)
	}
	var seen []any
	rep, err = Uninstall(ctx, p, Exec{}, false)
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	seen = append(seen, rep)
	if u, _ := lookupUser(p.User); u != nil {
		t.Errorf("user %s still exists", p.User)
	}
	if g, _ := lookupGroup(p.Group); g != nil {
		t.Errorf("group %s still exists", p.Group)
	}
	wantGone(t, p.SocketDir, p.Binary, filepath.Dir(p.Binary), p.ServiceFile)
	// Kept, and handed to root: a later account with the old uid must not
	// inherit the vault.
	wantFile(t, p.StateDir, 0o700, 0, 0)
	wantFile(t, vault, 0o600, 0, 0)
	if ok, _ := isMember(alice, strconv.Itoa(gid)); ok {
		t.Errorf("%s is still in the deleted group", alice)
	}

	// Re-install over the kept state: the vault goes to the new account.
	rep, err = Install(ctx, p, Exec{})
	if err != nil {
		t.Fatalf("re-install: %v", err)
	}
	seen = append(seen, rep, Inspect(ctx, p, Exec{}))
	if b, _ := json.Marshal(seen); bytes.Contains(b, []byte(canary)) {
		t.Errorf("the canary reached a report: %s", b)
	}
	uid, gid = ids(t, p)
	wantFile(t, p.StateDir, 0o700, uid, gid)
	wantFile(t, vault, 0o600, uid, gid)

	if _, err := Uninstall(ctx, p, Exec{}, true); err != nil {
		t.Fatalf("uninstall --purge: %v", err)
	}
	wantGone(t, p.StateDir, p.SocketDir, p.Binary, p.ServiceFile)
	// Removing what is already gone is not an error.
	rep, err = Uninstall(ctx, p, Exec{}, true)
	if err != nil {
		t.Fatalf("second uninstall: %v", err)
	}
	for _, s := range rep.Steps {
		if s.Action != Absent {
			t.Errorf("second uninstall: %s %s", s.Action, s.What)
		}
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestInstallResumes: an install that fails half-way (the socket directory's
// path is taken by a file) leaves accounts, binary and state directory in
// place, and a re-run after the cause is fixed completes from there.
func TestInstallResumes(t *testing.T) {
	needRoot(t)
	p := testPlan(t, clientUser(t))
	if err := os.WriteFile(p.SocketDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Install(context.Background(), p, Exec{})
	if errcode.Classify(err).Code != errcode.Conflict {
		t.Fatalf("install over a file: %v, want conflict", err)
	}
	if u, _ := lookupUser(p.User); u == nil {
		t.Fatal("the failed install created no user: it failed before the step under test")
	}
	wantGone(t, p.ServiceFile)
	if len(rep.Steps) == 0 {
		t.Error("a failed install reports no steps done")
	}
	if err := os.Remove(p.SocketDir); err != nil {
		t.Fatal(err)
	}
	// Meanwhile someone opened the state directory up: the re-run closes it.
	if err := os.Chmod(p.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err = Install(context.Background(), p, Exec{})
	if err != nil {
		t.Fatalf("resumed install: %v", err)
	}
	got := actions(rep)
	if got["user "+p.User+" uid "+lookupUID(t, p.User)] != Unchanged {
		t.Errorf("resumed install re-did the user: %v", got)
	}
	uid, gid := ids(t, p)
	wantFile(t, p.StateDir, 0o700, uid, gid)
	wantFile(t, p.SocketDir, 0o750, uid, gid)
	wantFile(t, p.ServiceFile, 0o644, 0, 0)
	if _, err := Uninstall(context.Background(), p, Exec{}, true); err != nil {
		t.Fatal(err)
	}
}

func lookupUID(t *testing.T, name string) string {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Uid
}

// TestInstallRefusesForeignAccount: an existing user of the broker's name
// that is not in the broker's group is someone's account, not taken over.
func TestInstallRefusesForeignAccount(t *testing.T) {
	needRoot(t)
	p := testPlan(t, clientUser(t))
	other := clientUser(t) // a login user with its own group
	p.User = other
	p.Group = throwaway(t, "asg")
	_, err := Install(context.Background(), p, Exec{})
	if errcode.Classify(err).Code != errcode.Conflict {
		t.Fatalf("install as an existing foreign user: %v, want conflict", err)
	}
	wantGone(t, p.Binary, p.StateDir, p.ServiceFile)
}

// TestInstallRefusesWritableAncestor: a binary or state directory under a
// directory others may write could be swapped by a client.
func TestInstallRefusesWritableAncestor(t *testing.T) {
	needRoot(t)
	p := testPlan(t, clientUser(t))
	open := filepath.Join(filepath.Dir(p.Binary), "..", "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	p.Binary = filepath.Join(filepath.Clean(open), "lib", "agentsecrets")
	_, err := Install(context.Background(), p, Exec{})
	if r := errcode.Classify(err); r.Code != errcode.Denied || !strings.Contains(r.Message, "writable by users other than root") {
		t.Fatalf("install under a 0777 directory: %v", err)
	}
	if u, _ := lookupUser(p.User); u != nil {
		t.Error("the refused install created the user")
	}
}

// TestInstallRefusesNonRoot runs Install and Uninstall as nobody (setpriv
// drops the test binary's uid): both are refused with the sudo hint before
// anything is looked at or created.
func TestInstallRefusesNonRoot(t *testing.T) {
	if os.Getenv("BROKERSVC_NONROOT_CHILD") == "1" {
		p := DefaultPlan("linux")
		p.User, p.Group = os.Getenv("BROKERSVC_NAME"), os.Getenv("BROKERSVC_NAME")
		p.Source, p.Clients = "/bin/true", []Client{{Name: "root"}}
		_, ierr := Install(context.Background(), p, Exec{})
		_, uerr := Uninstall(context.Background(), p, Exec{}, true)
		_ = json.NewEncoder(os.Stdout).Encode([]errcode.Report{errcode.Classify(ierr), errcode.Classify(uerr)})
		return
	}
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("setpriv not found: %v", err)
	}
	// The test binary's own directory is private to root: copy it where
	// nobody may run it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "brokersvc.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	name := throwaway(t, "asb")
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
		bin, "-test.run=^TestInstallRefusesNonRoot$")
	cmd.Env = append(os.Environ(), "BROKERSVC_NONROOT_CHILD=1", "BROKERSVC_NAME="+name)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var reports []errcode.Report
	line, _, _ := strings.Cut(string(out), "\n")
	if err := json.Unmarshal([]byte(line), &reports); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	for i, verb := range []string{"install", "uninstall"} {
		r := reports[i]
		if r.Code != errcode.Denied || r.Hint != "sudo agentsecrets broker "+verb {
			t.Errorf("%s as nobody: %+v, want denied with hint `sudo agentsecrets broker %s`", verb, r, verb)
		}
	}
	if u, _ := lookupUser(name); u != nil {
		t.Errorf("a refused install created user %s", name)
	}
}
