package commands

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAllowlistAddMerges: adding a host again adds the flags given to the
// ones it has; the approval covers the merged set, and the result shows the
// entry before and after, with a warning naming what was kept.
func TestAllowlistAddMerges(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	add := func(args ...string) (int, string) {
		code, out, _ := run("", append([]string{"workspace", "allowlist", "add", "127.0.0.1:8080"}, args...)...)
		return code, out
	}
	if code, out := add("--allow-http", "--passphrase-file", admin); code != 0 || field(t, out, "action") != "added" || field(t, out, "before") != nil {
		t.Fatalf("add: %d %s", code, out)
	}
	code, out := add("--allow-private")
	if code != 5 || errorCode(t, out) != "approval_required" || !strings.Contains(out, "allowlist add 127.0.0.1:8080 --allow-private --workspace default") {
		t.Fatalf("a new flag needs approval, with the command to run: %d %s", code, out)
	}
	code, out = add("--allow-private", "--passphrase-file", admin)
	if code != 0 || field(t, out, "action") != "updated" {
		t.Fatalf("merge: %d %s", code, out)
	}
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"before", "allow_http"}, true}, {[]string{"before", "allow_private"}, false},
		{[]string{"after", "allow_http"}, true}, {[]string{"after", "allow_private"}, true},
		{[]string{"entry", "allow_http"}, true}, {[]string{"entry", "allow_private"}, true},
	} {
		if got := field(t, out, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v: %s", c.path, got, c.want, out)
		}
	}
	if !strings.Contains(out, "keeps the exemptions it had (--allow-http)") {
		t.Errorf("no warning about the kept flag: %s", out)
	}
	if code, out := add(); code != 0 || field(t, out, "action") != "unchanged" || field(t, out, "after", "allow_http") != true {
		t.Fatalf("adding with no flags keeps both: %d %s", code, out)
	}
}
