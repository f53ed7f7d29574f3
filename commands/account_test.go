package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
)

// TestAccountHumanOnly: without a terminal and without --password-file,
// creating an account and signing in fail approval_required with a hint
// that a human must run them, before any network call (the server URL
// points at nothing) and without writing a kit file.
func TestAccountHumanOnly(t *testing.T) {
	root, run := fileVault(t)
	kit := filepath.Join(root, "kit.txt")
	pw := filepath.Join(root, "pw")
	weak := filepath.Join(root, "weak")
	keyFile := filepath.Join(root, "key")
	for path, content := range map[string]string{pw: "a fine long password\n", weak: "short\n",
		keyFile: agentsync.FormatAccountKey(make([]byte, 32)) + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		code string
	}{
		{"create without a terminal", []string{"account", "create", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--recovery-kit-file", kit}, "approval_required"},
		{"create without a kit file on a pipe", []string{"account", "create", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--password-file", pw}, "approval_required"},
		{"login without a terminal", []string{"login", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--account-key-file", keyFile}, "approval_required"},
		{"login with a password file as the key", []string{"login", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--account-key-file", pw, "--password-file", pw}, "usage"},
		{"login of a new device without a key", []string{"login", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--password-file", pw}, "usage"},
		{"plain http off loopback", []string{"login", "--server", "http://sync.example.com", "--email", "ada@example.com", "--password-file", pw}, "usage"},
		{"not an email", []string{"login", "--server", "http://127.0.0.1:1", "--email", "ada", "--password-file", pw}, "usage"},
		{"weak password", []string{"account", "create", "--server", "http://127.0.0.1:1", "--email", "ada@example.com", "--password-file", weak, "--recovery-kit-file", kit}, "usage"},
		{"devices before any login", []string{"account", "devices"}, "unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := run("", c.args...)
			if code == 0 || errorCode(t, out) != c.code {
				t.Fatalf("exit %d: %s", code, out)
			}
			if c.code == "approval_required" && !strings.Contains(out, "a human") {
				t.Errorf("hint does not say a human must run it: %s", out)
			}
			if _, err := os.Stat(kit); err == nil {
				t.Fatal("a kit file was written")
			}
		})
	}
	// Nothing was linked.
	code, out, _ := run("", "account", "show")
	if code != 0 || decode(t, out)["linked"] != false {
		t.Fatalf("show: %d %s", code, out)
	}
}
