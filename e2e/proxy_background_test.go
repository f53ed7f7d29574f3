package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProxyBackgroundVaultPassphraseFile: `proxy start --background
// --vault-passphrase-file PATH` on the file backend, with no passphrase in
// the environment, starts a detached proxy that opens the vault (the flag
// reaches the child, as a path) and injects. Without any passphrase source
// the detached start fails instead of reporting a healthy proxy that
// cannot release a value.
func TestProxyBackgroundVaultPassphraseFile(t *testing.T) {
	const value = "sk_background_0123456789abcdef"
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"auth_len":%d}`, len(r.Header.Get("Authorization")))
	})
	v := brokerVault(t, map[string]string{"KEY": value}, up)
	var env []string
	for _, kv := range v.Env() {
		if !strings.HasPrefix(kv, "AGENTSECRETS_VAULT_PASSPHRASE_FILE=") {
			env = append(env, kv)
		}
	}
	v.ExtraEnv = nil
	run := func(args ...string) *Result {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env, cmd.Dir = env, v.Dir
		return capture(t, cmd, args)
	}
	t.Cleanup(func() { run("proxy", "stop") })

	// No passphrase source at all: the detached child cannot open the
	// vault, and says so at start.
	if r := run("proxy", "start", "--background", "--port", "0"); r.Code == 0 {
		t.Fatalf("proxy start --background without a vault passphrase succeeded: %s", r.Stdout)
	}

	// A relative path, resolved against the caller's directory.
	rel, err := filepath.Rel(v.Dir, v.VaultFile)
	must(t, err)
	r := run("--vault-passphrase-file", rel, "proxy", "start", "--background", "--port", "0")
	if r.Code != 0 {
		t.Fatalf("proxy start --background --vault-passphrase-file: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	var st struct {
		Running   bool   `json:"running"`
		Address   string `json:"address"`
		TokenFile string `json:"token_file"`
	}
	must(t, json.Unmarshal(r.Stdout, &st))
	if !st.Running {
		t.Fatalf("not running: %s", r.Stdout)
	}
	tok, err := os.ReadFile(st.TokenFile)
	must(t, err)
	resp, body := proxyRequest(t, st.Address, strings.TrimSpace(string(tok)), map[string]string{
		"X-AS-Target-URL": up.URL + "/v1/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), fmt.Sprintf(`"auth_len":%d`, len("Bearer "+value))) {
		t.Fatalf("proxied call through the detached proxy: %d %s", resp.StatusCode, body)
	}
	noValue(t, "proxied response", body, value)
	// The child's argv carries the path, never the passphrase.
	if cmdline, err := os.ReadFile(filepath.Join("/proc", pidOf(t, v), "cmdline")); err == nil && strings.Contains(string(cmdline), vaultPassphrase) {
		t.Fatal("the passphrase is on the detached proxy's command line")
	}
	if r := run("proxy", "stop"); r.Code != 0 {
		t.Fatalf("proxy stop: %s", r.Stdout)
	}
}

func pidOf(t *testing.T, v *Vault) string {
	b, err := os.ReadFile(filepath.Join(v.Home, "proxy.pid"))
	must(t, err)
	return strings.TrimSpace(string(b))
}
