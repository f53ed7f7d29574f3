package e2e

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestHintsConverge follows every denial's hint literally, from a fresh
// vault, until the call goes through: the command the hint names is run as
// printed, and approved with the admin passphrase when it asks
// (approval_required). Each hint is one command, needs at most one
// approval, and fixes its denial for good: no hint comes back, and the
// chain ends after the allowlist entry and the binding (two approvals).
//
// Public targets cannot be reached here. A name under .invalid (RFC 2606)
// is what the policy and the guard see as public; the chain for it ends
// when the request gets past every policy check and fails only on the
// lookup the dial makes.
func TestHintsConverge(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				tls    bool
				host   string // "" = the server's own 127.0.0.1
				public bool
				// preset is an entry a human added before, with these flags.
				preset []string
			}{
				{name: "http loopback address"},
				{name: "http loopback name", host: "localhost"},
				{name: "https loopback address", tls: true},
				{name: "http public", host: "api.hints.invalid", public: true},
				{name: "https public", tls: true, host: "api.hints.invalid", public: true},
				// The entry an older hint left: the guard's hint must keep
				// --allow-http, and adding it must not drop it.
				{name: "http loopback, entry without private", preset: []string{"--allow-http"}},
				{name: "http loopback, entry without http", preset: []string{"--allow-private"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					followHints(t, backend, tc.tls, tc.host, tc.public, tc.preset)
				})
			}
		})
	}
}

func followHints(t *testing.T, backend string, useTLS bool, host string, public bool, preset []string) {
	var mu sync.Mutex
	var seen []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, "ok")
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(handler)
	} else {
		srv = httptest.NewServer(handler)
	}
	t.Cleanup(srv.Close)

	if useTLS && !public && viaBroker() {
		// The daemon runs with a service's environment and trusts the
		// system's roots only: the test server's certificate cannot reach
		// it. The hints are the same through a broker; the main pass
		// follows them over https.
		t.Skip("through a broker the daemon does not trust the test server's certificate")
	}
	v := NewVault(t, backend)
	if useTLS {
		// The CLI trusts the test server's certificate as a system root.
		ca := filepath.Join(t.TempDir(), "ca.pem")
		must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
		v.ExtraEnv = append(v.ExtraEnv, "SSL_CERT_FILE="+ca)
	}
	target, err := url.Parse(srv.URL)
	must(t, err)
	if host != "" {
		_, port, err := net.SplitHostPort(target.Host)
		must(t, err)
		target.Host = net.JoinHostPort(host, port)
	}
	if preset != nil {
		v.Run(append([]string{"workspace", "allowlist", "add", target.Host, "--passphrase-file", v.AdminFile}, preset...)...).OK(t)
	}
	key := newCanary(t, "hints", "")
	v.RunIn(key, "secrets", "set", "KEY", "--from-stdin").OK(t)
	outputs := [][]byte{}
	keep := func(r *Result) *Result {
		outputs = append(outputs, r.Stdout, r.Stderr)
		return r
	}

	var hints []string
	approvals := 0
	for step := 0; ; step++ {
		if step > 3 {
			t.Fatalf("no success after following %d hints: %q", len(hints), hints)
		}
		r := keep(v.Run("call", "--url", target.String()+"/v1/x", "--bearer", "KEY"))
		if r.Code == 0 {
			if public {
				t.Fatalf("a call to %s cannot succeed here: %s", target.Host, r.Stdout)
			}
			mu.Lock()
			got := slices.Clone(seen)
			mu.Unlock()
			if len(got) != 1 || got[0] != "Bearer "+string(key) {
				t.Fatalf("the upstream saw %d requests, want one carrying the value", len(got))
			}
			break
		}
		e, _ := r.JSON(t)["error"].(map[string]any)
		if public && e["code"] == "upstream" {
			// Every policy check passed; only the lookup of a name that
			// does not exist failed.
			if msg, _ := e["message"].(string); !strings.Contains(msg, "cannot resolve") {
				t.Fatalf("want a lookup failure, got %s", r.Stdout)
			}
			break
		}
		e = r.ErrorCode(t, "denied", 4)
		hint := e["hint"].(string)
		if slices.Contains(hints, hint) {
			t.Fatalf("hint %q came back after it was followed; hints so far: %q", hint, hints)
		}
		hints = append(hints, hint)
		if public && strings.Contains(hint, "--allow-private") {
			t.Fatalf("a public target needs no private-address exemption: %q", hint)
		}
		args := hintCommand(t, hint)
		// As printed; a human approves when it asks.
		run := keep(v.Run(args...))
		if run.Code != 0 {
			run.ErrorCode(t, "approval_required", 5)
			run = keep(v.Run(append(args, "--passphrase-file", v.AdminFile)...)).OK(t)
			approvals++
		}
		if run.JSON(t)["approved"] != true {
			t.Fatalf("following %q changed nothing: %s", hint, run.Stdout)
		}
	}
	t.Logf("hints followed: %q", hints)
	if len(hints) > 2 || approvals != len(hints) {
		t.Fatalf("%d hints, %d approvals, want at most two, one each: %q", len(hints), approvals, hints)
	}
	for i, out := range outputs {
		assertNoLeak(t, fmt.Sprintf("output %d", i), out, [][]byte{key})
	}
}

// hintCommand is the agentsecrets command a hint names, as argv, without
// the program name: the rest of the hint, or the part in backticks.
func hintCommand(t *testing.T, hint string) []string {
	t.Helper()
	i := strings.Index(hint, "agentsecrets ")
	if i < 0 {
		t.Fatalf("hint names no command: %q", hint)
	}
	cmd := hint[i+len("agentsecrets "):]
	if i > 0 && hint[i-1] == '`' {
		cmd, _, _ = strings.Cut(cmd, "`")
	}
	if strings.ContainsAny(cmd, "<>[]|&;") {
		t.Fatalf("hint is not a command to run as printed: %q", hint)
	}
	return strings.Fields(cmd)
}
