//go:build unix

package e2e

import (
	"encoding/base32"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// TestAuditFailsClosed: whenever the audit log cannot take a record (a
// directory, a symlink or a FIFO at audit.log, a symlink at audit.lock, or
// the lock held by another process), `call` sends nothing, exits with
// unavailable and a doctor hint, and does so within the documented wait
// (2 s), not the 30 s lock wait.
func TestAuditFailsClosed(t *testing.T) {
	key := randomValue(t, "sk_live_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { w.Write([]byte("ok")) })
	v := brokerVault(t, map[string]string{"KEY": key}, up)
	v.Run("call", "--url", up.URL+"/warm", "--bearer", "KEY").OK(t)
	outside := filepath.Join(t.TempDir(), "bashrc")
	must(t, os.WriteFile(outside, []byte("# mine\n"), 0o600))

	active, lock := filepath.Join(v.Home, "audit.log"), filepath.Join(v.Home, "audit.lock")
	cases := []struct {
		name  string
		setup func(t *testing.T) (undo func())
	}{
		{"audit.log is a directory", func(t *testing.T) func() {
			must(t, os.Rename(active, active+".keep"))
			must(t, os.Mkdir(active, 0o700))
			return func() { os.Remove(active); os.Rename(active+".keep", active) }
		}},
		{"audit.log is a symlink", func(t *testing.T) func() {
			must(t, os.Rename(active, active+".keep"))
			must(t, os.Symlink(outside, active))
			return func() { os.Remove(active); os.Rename(active+".keep", active) }
		}},
		{"audit.log is a FIFO", func(t *testing.T) func() {
			must(t, os.Rename(active, active+".keep"))
			must(t, syscall.Mkfifo(active, 0o600))
			return func() { os.Remove(active); os.Rename(active+".keep", active) }
		}},
		{"audit.lock is a symlink", func(t *testing.T) func() {
			os.Remove(lock)
			must(t, os.Symlink(outside, lock))
			return func() { os.Remove(lock) }
		}},
		{"audit.lock is held", func(t *testing.T) func() {
			f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
			must(t, err)
			must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
			return func() { f.Close() }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			undo := c.setup(t)
			defer undo()
			before := len(up.requests())
			start := time.Now()
			r := v.Run("call", "--url", up.URL+"/x", "--bearer", "KEY")
			took := time.Since(start)
			e := r.ErrorCode(t, "unavailable", 7)
			if hint, _ := e["hint"].(string); !strings.Contains(hint, "agentsecrets doctor") {
				t.Errorf("hint %q does not name doctor", hint)
			}
			if n := len(up.requests()) - before; n != 0 {
				t.Errorf("the upstream got %d request(s) that could not be audited", n)
			}
			if took > 10*time.Second {
				t.Errorf("took %s; the audit wait is 2 s", took)
			}
			if b, _ := os.ReadFile(outside); string(b) != "# mine\n" {
				t.Errorf("wrote through the symlink: %q", b)
			}
			noValue(t, "stdout", r.Stdout, key)
			noValue(t, "stderr", r.Stderr, key)
		})
	}
	// Repaired, the same call works and is recorded.
	v.Run("call", "--url", up.URL+"/after", "--bearer", "KEY").OK(t)
	v.Run("audit", "verify").OK(t)
}

// TestStateFilesNeverFollowPlantedSymlinks: symlinks planted at the state
// directory's predictable names (the old temp names of the proxy's token
// and state files, proxy.log) are never written through; the proxy still
// starts and its token file is a regular 0600 file.
func TestStateFilesNeverFollowPlantedSymlinks(t *testing.T) {
	v := NewVault(t, "file")
	outside := filepath.Join(t.TempDir(), "bashrc")
	must(t, os.WriteFile(outside, []byte("# mine\n"), 0o600))
	for _, name := range []string{"proxy.token.tmp", "proxy.json.tmp", "proxy.pid.tmp"} {
		must(t, os.Symlink(outside, filepath.Join(v.Home, name)))
	}
	_, token := startProxy(t, v)
	if b, _ := os.ReadFile(outside); string(b) != "# mine\n" {
		t.Fatalf("the proxy wrote through a planted symlink: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(v.Home, "proxy.token"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("proxy.token is not a regular file: %v %v", fi, err)
	}
	if strings.Contains("# mine\n", token) {
		t.Fatal("token read from the planted file")
	}

	// A planted proxy.log symlink makes a detached start refuse rather
	// than append the proxy's output to the target.
	must(t, os.Symlink(outside, filepath.Join(v.Home, "proxy.log")))
	r := v.Run("proxy", "start", "--background", "--port", "0")
	if r.Code == 0 || strings.Contains(string(r.Stdout), `"usage"`) {
		v.Run("proxy", "stop")
		t.Fatal("proxy start --background wrote its log through a symlink")
	}
	if b, _ := os.ReadFile(outside); string(b) != "# mine\n" {
		t.Fatalf("the proxy wrote its log through a planted symlink: %q", b)
	}
}

// TestInitRefusesTheVaultPassphraseAsAdmin: the same passphrase (byte for
// byte after the trailing newline) for both is a usage error, and nothing
// is written under the home directory.
func TestInitRefusesTheVaultPassphraseAsAdmin(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	admin, vaultFile := filepath.Join(root, "admin.pass"), filepath.Join(root, "vault.pass")
	must(t, os.WriteFile(admin, []byte(vaultPassphrase+"\n"), 0o600))
	must(t, os.WriteFile(vaultFile, []byte(vaultPassphrase), 0o600))
	v := &Vault{t: t, Home: home, Dir: root, AdminFile: admin, VaultFile: vaultFile, Backend: "file"}
	r := v.Run("init", "--backend", "file", "--admin-passphrase-file", admin)
	e := r.ErrorCode(t, "usage", 2)
	if hint, _ := e["hint"].(string); !strings.Contains(hint, "different") {
		t.Errorf("hint %q", hint)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("init wrote %v", entries)
	}
	noValue(t, "output", append(r.Stdout, r.Stderr...), vaultPassphrase)
}

// TestPassphraseFilesMustBePrivateRegularFiles: every way a passphrase
// file flag can name something other than a private regular file is a
// usage or not_found error that names the problem, for the admin
// passphrase (--passphrase-file), the vault passphrase (the flag and the
// environment variable), and init's --admin-passphrase-file; none blocks
// on a FIFO. A 0600 file, and a symlink to one, work.
func TestPassphraseFilesMustBePrivateRegularFiles(t *testing.T) {
	v := NewVault(t, "file")
	root := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(root, name)
		must(t, os.WriteFile(p, []byte(content), 0o600))
		must(t, os.Chmod(p, mode))
		return p
	}
	fifo := filepath.Join(root, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	linkToFifo := filepath.Join(root, "link-to-fifo")
	must(t, os.Symlink(fifo, linkToFifo))
	linkToGood := filepath.Join(root, "link-to-good")
	must(t, os.Symlink(file("good-admin", adminPassphrase+"\n", 0o600), linkToGood))
	dir := filepath.Join(root, "dir")
	must(t, os.Mkdir(dir, 0o700))

	bad := map[string]struct{ path, code, says string }{
		"stdin":          {"/dev/stdin", "usage", "regular file"},
		"device":         {"/dev/null", "usage", "regular file"},
		"FIFO":           {fifo, "usage", "FIFO"},
		"symlink a FIFO": {linkToFifo, "usage", "FIFO"},
		"directory":      {dir, "usage", "directory"},
		"world-readable": {file("open", adminPassphrase+"\n", 0o644), "usage", "0644"},
		"group-readable": {file("group", adminPassphrase+"\n", 0o640), "usage", "0640"},
		"missing":        {filepath.Join(root, "none"), "not_found", "no such file"},
	}
	vaultOnly := func(p string) []string {
		return []string{"--vault-passphrase-file", p, "secrets", "set", "X", "--from-stdin"}
	}
	for name, c := range bad {
		for _, args := range [][]string{
			{"workspace", "allowlist", "add", "api.example.com", "--passphrase-file", c.path},
			vaultOnly(c.path),
		} {
			t.Run(name+"/"+args[0], func(t *testing.T) {
				done := make(chan *Result, 1)
				go func() { done <- v.RunIn([]byte(adminPassphrase+"\n"), args...) }()
				var r *Result
				select {
				case r = <-done:
				case <-time.After(20 * time.Second):
					t.Fatal("blocked reading the passphrase file")
				}
				exit := map[string]int{"usage": 2, "not_found": 3}[c.code]
				e := r.ErrorCode(t, c.code, exit)
				if msg := e["message"].(string); !strings.Contains(msg, c.says) {
					t.Errorf("message %q does not say %q", msg, c.says)
				}
			})
		}
	}
	// The environment variable goes through the same check.
	v2 := *v
	v2.VaultFile = file("vault-open", vaultPassphrase+"\n", 0o644)
	v2.RunIn([]byte("x"), "secrets", "set", "X", "--from-stdin").ErrorCode(t, "usage", 2)

	v.Run("workspace", "allowlist", "add", "api.example.com", "--passphrase-file", linkToGood).OK(t)
	v.RunIn([]byte("value"), vaultOnly(file("good-vault", vaultPassphrase+"\n", 0o600))...).OK(t)
}

// TestTypedValuesAreNotEchoedAsPaths: a value typed where a path or a name
// belongs comes back as its length, never verbatim, from every flag that
// takes one; a missing path that looks like a path is still named.
func TestTypedValuesAreNotEchoedAsPaths(t *testing.T) {
	v := NewVault(t, "file")
	typed := "correct horse battery staple 42"
	cases := [][]string{
		{"workspace", "allowlist", "add", "api.example.com", "--passphrase-file", typed},
		{"--vault-passphrase-file", typed, "secrets", "set", "X", "--from-stdin"},
		{"secrets", "set", "X", "--from-file", typed},
		{"secrets", "import", typed},
		{"call", "--url", "http://127.0.0.1:9/", "--data-file", typed},
		{"secrets", "list", "--input", typed},
		{"secrets", "list", "--workspace", typed},
		{"secrets", "list", "--project", typed},
	}
	for _, args := range cases {
		r := v.RunIn([]byte("x"), args...)
		if r.Code == 0 {
			t.Errorf("%v succeeded", args)
			continue
		}
		out := string(r.Stdout) + string(r.Stderr)
		if strings.Contains(out, "horse") {
			t.Errorf("%v echoes the typed value: %s", args, out)
		}
		if !strings.Contains(out, "bytes>") {
			t.Errorf("%v does not say what it got: %s", args, out)
		}
	}
	r := v.Run("secrets", "import", "./missing.env")
	if !strings.Contains(string(r.Stdout), "./missing.env") {
		t.Errorf("a path-looking name is not shown: %s", r.Stdout)
	}
}

// TestInjectionHintsNameTheSecret: for every injection style, a call that
// a human must approve gets a hint naming the secret, never <redacted>
// where the name belongs; a NAME=VALUE argument is still scrubbed.
func TestInjectionHintsNameTheSecret(t *testing.T) {
	v := NewVault(t, "file")
	v.RunIn([]byte("user:"+randomValue(t, "pw_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {})
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	for _, flags := range [][]string{
		{"--bearer", "STRIPE_KEY"},
		{"--basic", "STRIPE_KEY"},
		{"--header", "X-Api-Key=STRIPE_KEY"},
		{"--query", "api_key=STRIPE_KEY"},
		{"--body-field", "auth.key=STRIPE_KEY"},
		{"--form-field", "key=STRIPE_KEY"},
	} {
		r := v.Run(append([]string{"call", "--url", up.URL + "/x"}, flags...)...)
		if r.Code == 0 {
			t.Fatalf("%v: unbound secret sent", flags)
		}
		out := string(r.Stdout)
		if strings.Contains(out, "<redacted>") || !strings.Contains(r.JSON(t)["error"].(map[string]any)["hint"].(string), "STRIPE_KEY") {
			t.Errorf("%v: hint does not name the secret: %s", flags, out)
		}
	}
	r := v.Run("secrets", "set", "BAD-NAME=not-a-name-value-1234")
	if strings.Contains(string(r.Stdout), "not-a-name-value-1234") {
		t.Errorf("NAME=VALUE echoed: %s", r.Stdout)
	}
}

// TestEnvArgvCheckCatchesSplitAndEncodedValues: `env` refuses a command
// line carrying a released value split across adjacent arguments (with and
// without a space between the halves), in base32 (standard and extended-hex
// alphabets, padded or not, either case) and in mixed-case hex.
func TestEnvArgvCheckCatchesSplitAndEncodedValues(t *testing.T) {
	v := NewVault(t, "file")
	value := randomValue(t, "sk_live_") + " tail"
	v.RunIn([]byte(value), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.Run("secrets", "bind", "KEY", "--release", "env", "--passphrase-file", v.AdminFile).OK(t)
	b := []byte(value)
	mixed := []byte(hex.EncodeToString(b))
	for i := range mixed {
		if i%2 == 0 {
			mixed[i] = byte(unicode.ToUpper(rune(mixed[i])))
		}
	}
	half := len(value) / 2
	space := strings.IndexByte(value, ' ')
	cases := map[string][]string{
		"split":            {value[:half], value[half:]},
		"split at a space": {value[:space], value[space+1:]},
		"base32":           {base32.StdEncoding.EncodeToString(b)},
		"base32 lower":     {strings.ToLower(base32.StdEncoding.EncodeToString(b))},
		"base32 unpadded":  {base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)},
		"base32hex":        {base32.HexEncoding.EncodeToString(b)},
		"base32hex lower":  {strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b))},
		"mixed-case hex":   {string(mixed)},
	}
	for name, args := range cases {
		r := v.Run(append([]string{"env", "--only", "KEY", "--", "echo"}, args...)...)
		e := r.ErrorCode(t, "denied", 4)
		if !strings.Contains(e["message"].(string), "appears in the command's arguments") {
			t.Errorf("%s: %v", name, e["message"])
		}
	}
	v.Run("env", "--only", "KEY", "--", "echo", "harmless", "args").OK(t)
}
