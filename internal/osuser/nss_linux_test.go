package osuser

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An account that exists only in the name service, not in /etc/passwd: as
// a user from LDAP or SSSD is. libnss-extrausers serves it from
// /var/lib/extrausers.
const (
	nssUser  = "asnssonly"
	nssUID   = "4242"
	nssGroup = "asnssgroup"
	nssGID   = "4243"
	// nssReadyEnv tells the re-run without cgo that the account is set up.
	nssReadyEnv = "AGENTSECRETS_TEST_NSS_READY"
)

// TestNameServiceOnlyAccount: with os/user reading only /etc/passwd (a
// binary built without cgo, as make install and the releases are), an
// account that only the name service knows is still found. Needs root and
// libnss-extrausers (scripts/test installs it on Linux and sets
// AGENTSECRETS_TEST_REQUIRE_NSS); a cgo build of this test re-runs it
// without cgo, where the fallback is what finds the account.
func TestNameServiceOnlyAccount(t *testing.T) {
	if os.Getenv(nssReadyEnv) == "" {
		if reason := setUpNSSAccount(t); reason != "" {
			if os.Getenv("AGENTSECRETS_TEST_REQUIRE_NSS") != "" {
				t.Fatal(reason)
			}
			t.Skip(reason)
		}
	}
	if builtWithCgo {
		cmd := exec.Command("go", "test", "-count=1", "-run", "^TestNameServiceOnlyAccount$", ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", nssReadyEnv+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the test without cgo: %v\n%s", err, out)
		}
		return
	}
	if _, err := user.Lookup(nssUser); !errors.As(err, new(user.UnknownUserError)) {
		t.Fatalf("os/user found %s without cgo (%v): the test account must live in the name service only", nssUser, err)
	}
	u, err := Lookup(nssUser)
	if err != nil || u.Uid != nssUID || u.Gid != nssGID || u.Username != nssUser {
		t.Fatalf("Lookup(%s) = %+v, %v; want uid %s gid %s", nssUser, u, err, nssUID, nssGID)
	}
	if u, err := LookupId(nssUID); err != nil || u.Username != nssUser {
		t.Fatalf("LookupId(%s) = %+v, %v", nssUID, u, err)
	}
	if g, err := LookupGroup(nssGroup); err != nil || g.Gid != nssGID {
		t.Fatalf("LookupGroup(%s) = %+v, %v", nssGroup, g, err)
	}
	if g, err := LookupGroupId(nssGID); err != nil || g.Name != nssGroup {
		t.Fatalf("LookupGroupId(%s) = %+v, %v", nssGID, g, err)
	}
	if ids, err := GroupIds(u); err != nil || !slices.Contains(ids, nssGID) {
		t.Fatalf("GroupIds = %v, %v; want %s among them", ids, err, nssGID)
	}
}

// setUpNSSAccount adds the account to libnss-extrausers' files and the
// extrausers source to nsswitch.conf's passwd and group lines, and undoes
// both when the test ends. It returns why it cannot, or "".
func setUpNSSAccount(t *testing.T) string {
	if os.Geteuid() != 0 {
		return "needs root to add an account to the name service"
	}
	if libs, _ := filepath.Glob("/usr/lib*/libnss_extrausers.so.2"); len(libs) == 0 {
		if more, _ := filepath.Glob("/usr/lib*/*/libnss_extrausers.so.2"); len(more) == 0 {
			return "libnss-extrausers is not installed (apt-get install libnss-extrausers)"
		}
	}
	const dir = "/var/lib/extrausers"
	if _, err := os.Stat(dir); err == nil {
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			return dir + " is in use on this machine; not touching it"
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	files := map[string]string{
		"passwd": nssUser + ":x:" + nssUID + ":" + nssGID + "::/nonexistent:/usr/sbin/nologin\n",
		"group":  nssGroup + ":x:" + nssGID + ":\n",
		"shadow": nssUser + ":*:19000:0:99999:7:::\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const conf = "/etc/nsswitch.conf"
	old, err := os.ReadFile(conf)
	if err != nil {
		return "no " + conf
	}
	var lines []string
	for _, line := range strings.Split(string(old), "\n") {
		if db, _, _ := strings.Cut(line, ":"); (db == "passwd" || db == "group") && !strings.Contains(line, "extrausers") {
			line += " extrausers"
		}
		lines = append(lines, line)
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(conf, old, 0o644); err != nil {
			t.Errorf("restore %s: %v", conf, err)
		}
	})
	if out, err := exec.Command("id", nssUser).CombinedOutput(); err != nil {
		return "the name service does not find the test account after setup: " + strings.TrimSpace(string(out))
	}
	return ""
}
