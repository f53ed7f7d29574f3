package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
)

// TestTokenCreateOutput: the token string goes to a new 0600 --out file
// or to the terminal (IO.Show), never into the command's output. An
// existing --out file is never overwritten and nothing is created; a
// server refusal removes the --out file it made. The token shown on the
// terminal signs a file vault in (AGENTSECRETS_TOKEN_FILE).
func TestTokenCreateOutput(t *testing.T) {
	url := syncServer(t)
	root, run := fileVault(t)
	pw, kit := filepath.Join(root, "pw"), filepath.Join(root, "kit.txt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(pw, []byte("orbit lantern quietly seventeen\n"), 0o600))
	for _, args := range [][]string{
		{"account", "create", "--server", url, "--email", "ada@example.com", "--password-file", pw, "--recovery-kit-file", kit},
		{"workspace", "create", "acme", "--switch"},
		{"workspace", "publish"},
	} {
		if code, out, _ := run("", args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, out)
		}
	}
	admin := filepath.Join(root, "admin.pass")
	create := func(tty bool, extra ...string) (int, string, string) {
		env, out, _ := testEnvErr(t, root)
		env.IO.StdoutTTY = tty
		shown := ""
		env.IO.Show = func(s string) error { shown += s; return nil }
		code := Main(append([]string{"workspace", "token", "create", "ci", "--role", "reader", "--passphrase-file", admin}, extra...), env)
		return code, out.String(), shown
	}
	tokenCount := func() int {
		t.Helper()
		code, out, _ := run("", "workspace", "token", "list")
		if code != 0 {
			t.Fatalf("list: %s", out)
		}
		return strings.Count(out, `"id":`)
	}

	// A pipe without --out: refused before anything is made.
	if code, out, shown := create(false); code == 0 || errorCode(t, out) != "approval_required" || shown != "" {
		t.Fatalf("pipe: %d %s %q", code, out, shown)
	}
	// An existing --out file is never overwritten.
	existing := filepath.Join(root, "existing")
	must(os.WriteFile(existing, []byte("keep\n"), 0o600))
	if code, out, _ := create(false, "--out", existing); code == 0 || errorCode(t, out) != "conflict" {
		t.Fatalf("existing --out: %d %s", code, out)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep\n" {
		t.Fatal("--out overwrote a file")
	}
	// A refusal by the server removes the file made for the token.
	refused := filepath.Join(root, "refused.token")
	if code, out, _ := create(false, "--out", refused, "--project", "nope"); code == 0 || errorCode(t, out) != "not_found" {
		t.Fatalf("unknown project: %d %s", code, out)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Fatalf("the --out file of a refused token stays: %v", err)
	}
	if n := tokenCount(); n != 0 {
		t.Fatalf("%d tokens after refusals", n)
	}

	// On a terminal: shown there, not in the result.
	code, out, shown := create(true)
	if code != 0 || !strings.Contains(out, "Created service token ci") {
		t.Fatalf("terminal: %d %s", code, out)
	}
	i := strings.Index(shown, agsync.TokenPrefix)
	if i < 0 {
		t.Fatalf("nothing shown: %q", shown)
	}
	tok := strings.Fields(shown[i:])[0]
	if strings.Contains(out, tok) || strings.Contains(out, tok[strings.LastIndexByte(tok, '.')+1:]) {
		t.Fatal("the token is in the command's output")
	}
	if n := tokenCount(); n != 1 {
		t.Fatalf("%d tokens", n)
	}

	// The shown token signs a fresh file vault in.
	ciRoot, ciRun := fileVault(t)
	tokFile := filepath.Join(ciRoot, "ci.token")
	must(os.WriteFile(tokFile, []byte(tok+"\n"), 0o600))
	env, ciOut, _ := testEnvErr(t, ciRoot)
	getenv := env.Getenv
	env.Getenv = func(k string) string {
		if k == agsync.TokenFileEnv {
			return tokFile
		}
		return getenv(k)
	}
	if code := Main([]string{"workspace", "switch", "acme"}, env); code != 0 {
		t.Fatalf("CI switch: %s", ciOut)
	}
	if code, out, _ := ciRun("", "workspace", "list"); code != 0 || !strings.Contains(out, `"name":"acme"`) || !strings.Contains(out, `"location":"remote"`) {
		t.Fatalf("CI list: %s", out)
	}
}
