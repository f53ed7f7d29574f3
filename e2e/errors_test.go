package e2e

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestProxyStartPortInUse: a port another program holds is named as such,
// in the foreground and with --background (where the error used to be
// "the proxy exited at start, see proxy.log"), and the hint is the start
// command again with --port 0.
func TestProxyStartPortInUse(t *testing.T) {
	v := NewVault(t, "file")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	t.Cleanup(func() { v.Run("proxy", "stop") })
	for _, tt := range []struct {
		args []string
		hint string
	}{
		{[]string{"proxy", "start", "--port", port}, "agentsecrets proxy start --port 0"},
		{[]string{"proxy", "start", "--background", "--port", port}, "agentsecrets proxy start --background --port 0"},
	} {
		e := v.Run(tt.args...).ErrorCode(t, "unavailable", 7)
		msg, hint := e["message"].(string), e["hint"].(string)
		if msg != "port "+port+" on 127.0.0.1 is in use by another program" || !strings.Contains(hint, tt.hint) {
			t.Errorf("%v: message %q hint %q, want the busy port and %q", tt.args, msg, hint, tt.hint)
		}
	}
}

// TestProxyBackgroundStartErrorIsTheChilds: a detached proxy that exits at
// start reports its own error through the parent (here: no vault
// passphrase), not only a pointer to proxy.log.
func TestProxyBackgroundStartErrorIsTheChilds(t *testing.T) {
	if viaBroker() {
		// The daemon unlocks its own vault: the start failure this test
		// provokes (no vault passphrase) cannot happen, and the proxy
		// would run in the foreground.
		t.Skip("through a broker the daemon holds the vault passphrase")
	}
	v := NewVault(t, "file")
	var env []string
	for _, kv := range v.Env() {
		if !strings.HasPrefix(kv, "AGENTSECRETS_VAULT_PASSPHRASE_FILE=") {
			env = append(env, kv)
		}
	}
	fg := runEnv(t, v, env, "proxy", "start", "--port", "0")
	bg := runEnv(t, v, env, "proxy", "start", "--background", "--port", "0")
	if fg.Code == 0 || bg.Code != fg.Code {
		t.Fatalf("foreground exit %d, background exit %d: want the same failure\n%s\n%s", fg.Code, bg.Code, fg.Stdout, bg.Stdout)
	}
	fe := fg.ErrorCode(t, fg.JSON(t)["error"].(map[string]any)["code"].(string), fg.Code)
	be := bg.ErrorCode(t, fe["code"].(string), fg.Code)
	if be["message"] != "the proxy exited at start: "+fe["message"].(string) {
		t.Errorf("background message %q, want the child's %q", be["message"], fe["message"])
	}
}

// runEnv runs the binary in v's directory with exactly env.
func runEnv(t *testing.T, v *Vault, env []string, args ...string) *Result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Dir = env, v.Dir
	return capture(t, cmd, args)
}

// TestCanaryTyposAndDidYouMean: a typo of a command word comes back in the
// usage error, a value typed in the wrong place does not; an unknown secret
// name gets a did-you-mean of stored names, never a value, in JSON and on
// stderr in text form.
func TestCanaryTyposAndDidYouMean(t *testing.T) {
	value := newCanary(t, "dym", "+/=")
	v := NewVault(t, "file")
	v.RunIn(value, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	canaries := [][]byte{value}

	r := v.Run("secrts", "list")
	e := r.ErrorCode(t, "usage", 2)
	if msg := e["message"].(string); !strings.Contains(msg, "secrts") || strings.Contains(msg, "<redacted>") {
		t.Errorf("the typo is not shown: %q", msg)
	}
	for _, args := range [][]string{
		{"secrets", "list", string(value)},
		{"secrts", string(value)},
		{"secrets", "set", "STRIPE_KEY", string(value), "extra"},
		{"call", "--url", "https://api.example.com", "--bearer", string(value)},
	} {
		r := v.Run(args...)
		if r.Code == 0 {
			t.Errorf("%v succeeded", args[:2])
		}
		assertNoLeak(t, "usage error of "+strings.Join(args[:2], " "), append(r.Stdout, r.Stderr...), canaries)
	}

	for _, format := range []string{"json", "text"} {
		r := v.Run("--format", format, "call", "--url", "https://api.example.com/v1", "--bearer", "STRIPE_KY")
		out := string(r.Stdout) + string(r.Stderr)
		if r.Code != 3 || !strings.Contains(out, "did you mean STRIPE_KEY?") {
			t.Errorf("%s: exit %d, want not_found with a did-you-mean: %s", format, r.Code, out)
		}
		assertNoLeak(t, "did-you-mean ("+format+")", []byte(out), canaries)
		r = v.Run("--format", format, "secrets", "unbind", "STRIPE_KY")
		out = string(r.Stdout) + string(r.Stderr)
		if !strings.Contains(out, "did you mean STRIPE_KEY?") {
			t.Errorf("%s: secrets unbind of a typo: %s", format, out)
		}
		assertNoLeak(t, "did-you-mean of secrets unbind ("+format+")", []byte(out), canaries)
	}
}
