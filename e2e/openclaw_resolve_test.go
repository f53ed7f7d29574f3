package e2e

// `openclaw resolve`, the OpenClaw exec SecretRef provider: the protocol as
// OpenClaw speaks it (empty environment plus passEnv, one request on stdin),
// then the real `openclaw secrets audit --allow-exec` against it.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ocVault has OC_KEY approved for OpenClaw, ENV_ONLY approved for env only
// and PLAIN approved for nothing.
func ocVault(t *testing.T, backend string) (v *Vault, values map[string]string) {
	t.Helper()
	v = NewVault(t, backend)
	values = map[string]string{}
	for _, n := range []string{"OC_KEY", "ENV_ONLY", "PLAIN"} {
		values[n] = randomValue(t, "oc_"+strings.ToLower(n)+"_")
		v.RunIn([]byte(values[n]), "secrets", "set", n, "--from-stdin").OK(t)
	}
	v.Run("secrets", "bind", "OC_KEY", "--release", "openclaw", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "ENV_ONLY", "--release", "env", "--passphrase-file", v.AdminFile).OK(t)
	return v, values
}

// passEnv is what an OpenClaw provider entry must pass for the backend:
// OpenClaw starts exec providers with an empty environment.
func ocPassEnv(backend string) []string {
	vars := []string{"AGENTSECRETS_HOME", "AGENTSECRETS_BROKER"}
	if backend == "file" {
		return append(vars, "AGENTSECRETS_VAULT_PASSPHRASE_FILE")
	}
	return append(vars, "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")
}

// resolve runs `openclaw resolve` as OpenClaw does: only passEnv set, the
// binary's directory as working directory.
func (v *Vault) resolve(t *testing.T, stdin []byte, args ...string) *Result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"openclaw", "resolve"}, args...)...)
	full := v.Env()
	for _, k := range ocPassEnv(v.Backend) {
		for _, kv := range full {
			if strings.HasPrefix(kv, k+"=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = filepath.Dir(binary)
	cmd.Stdin = bytes.NewReader(stdin)
	return capture(t, cmd, cmd.Args[1:])
}

type ocResponse struct {
	ProtocolVersion int                          `json:"protocolVersion"`
	Values          map[string]string            `json:"values"`
	Errors          map[string]map[string]string `json:"errors"`
}

func TestOpenclawResolveProtocol(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			v, values := ocVault(t, backend)
			req := `{"protocolVersion":1,"provider":"agentsecrets","ids":["OC-KEY","default/default/OC-KEY","OC_KEY","ENV-ONLY","PLAIN","MISSING","no/such/KEY","a/b","OC-KEY#x"]}`
			start := time.Now()
			r := v.resolve(t, []byte(req))
			t.Logf("%s backend: one resolve took %s (OpenClaw's default timeout is 5 s)", backend, time.Since(start).Round(time.Millisecond))
			if r.Code != 0 {
				t.Fatalf("exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
			}
			var resp ocResponse
			must(t, json.Unmarshal(r.Stdout, &resp))
			if resp.ProtocolVersion != 1 {
				t.Fatalf("protocolVersion %d", resp.ProtocolVersion)
			}
			want := map[string]string{"OC-KEY": values["OC_KEY"], "default/default/OC-KEY": values["OC_KEY"], "OC_KEY": values["OC_KEY"]}
			if len(resp.Values) != len(want) {
				t.Errorf("values for %d ids, want %d: %v", len(resp.Values), len(want), keys(resp.Values))
			}
			for id, val := range want {
				if resp.Values[id] != val {
					t.Errorf("value of %s is wrong or missing", id)
				}
			}
			wantErr := map[string]string{"ENV-ONLY": "NOT_APPROVED", "PLAIN": "NOT_APPROVED", "MISSING": "NOT_FOUND",
				"no/such/KEY": "NOT_FOUND", "a/b": "INVALID_ID", "OC-KEY#x": "INVALID_ID"}
			for id, code := range wantErr {
				if got := resp.Errors[id]["code"]; got != code {
					t.Errorf("error of %s = %q, want %s", id, got, code)
				}
			}
			for _, n := range []string{"ENV_ONLY", "PLAIN"} {
				noValue(t, "resolve stdout", r.Stdout, values[n])
				noValue(t, "resolve stderr", r.Stderr, values[n])
			}
			noValue(t, "resolve stderr", r.Stderr, values["OC_KEY"])
			if !strings.Contains(resp.Errors["PLAIN"]["message"], "agentsecrets secrets bind PLAIN --release openclaw") {
				t.Errorf("no hint for the human: %v", resp.Errors["PLAIN"])
			}

			// The provider's args select the project for bare names.
			v.Run("project", "create", "other").OK(t)
			r = v.resolve(t, []byte(`{"protocolVersion":1,"provider":"p","ids":["OC-KEY"]}`), "--project", "other")
			var other ocResponse
			must(t, json.Unmarshal(r.Stdout, &other))
			if r.Code != 0 || other.Errors["OC-KEY"]["code"] != "NOT_FOUND" || len(other.Values) != 0 {
				t.Errorf("--project other: exit %d %s", r.Code, r.Stdout)
			}

			// Malformed requests fail the whole call, as OpenClaw expects
			// of a provider that cannot answer: non-zero exit, JSON error.
			for _, bad := range []string{``, `not json`, `[]`, `{"protocolVersion":2,"provider":"p","ids":["OC-KEY"]}`,
				`{"protocolVersion":1,"provider":"p"}`, `{"protocolVersion":1,"provider":"p","ids":"OC-KEY"}`,
				`{"protocolVersion":1,"provider":"p","ids":["OC-KEY"]}{"protocolVersion":1}`} {
				r := v.resolve(t, []byte(bad))
				r.ErrorCode(t, "usage", 2)
				noValue(t, "malformed resolve", r.Stdout, values["OC_KEY"])
			}

			// Audited by name: one allowed record, one blocked.
			logs := v.Run("proxy", "logs").OK(t)
			for _, val := range values {
				noValue(t, "proxy logs", logs.Stdout, val)
			}
			s := string(logs.Stdout)
			if !strings.Contains(s, `"front_end":"openclaw","workspace":"default","project":"default","secrets":["OC_KEY","OC_KEY","OC_KEY"]`) && !strings.Contains(s, `"front_end":"openclaw","workspace":"default","project":"default","secrets":["OC_KEY"`) {
				t.Errorf("no allowed openclaw record: %s", s)
			}
			if !strings.Contains(s, `"front_end":"openclaw","workspace":"default","project":"default","secrets":["ENV_ONLY","PLAIN"],"styles":[],"duration_ms"`) || !strings.Contains(s, `"reason":"not_released"`) {
				t.Errorf("no blocked openclaw record: %s", s)
			}
			v.Run("audit", "verify").OK(t)
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestOpenclawSecretsAudit points the real OpenClaw CLI at the binary as an
// exec provider: the audit resolves an approved secret and reports an
// unapproved one as unresolved.
func TestOpenclawSecretsAudit(t *testing.T) {
	openclaw := jsTool(t, "openclaw")
	backend := "file"
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		backend = "keychain"
	}
	v, values := ocVault(t, backend)
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, ".openclaw"), 0o700))

	audit := func(refs map[string]string) (map[string]any, []byte) {
		t.Helper()
		providers := map[string]any{}
		for path, id := range refs {
			providers[path] = map[string]any{
				"baseUrl": "https://api." + path + ".example/v1",
				"models":  []any{map[string]any{"id": "m", "name": "m"}},
				"apiKey":  map[string]any{"source": "exec", "provider": "agentsecrets", "id": id},
			}
		}
		cfg := map[string]any{
			"secrets": map[string]any{"providers": map[string]any{"agentsecrets": map[string]any{
				"source": "exec", "command": binary, "args": []string{"openclaw", "resolve"},
				"passEnv": ocPassEnv(backend),
			}}},
			"models": map[string]any{"providers": providers},
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		must(t, os.WriteFile(filepath.Join(home, ".openclaw", "openclaw.json"), b, 0o600))
		cmd := exec.Command(openclaw, "secrets", "audit", "--allow-exec", "--json")
		cmd.Env = append(v.Env(), "HOME="+home)
		cmd.Dir = home
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run() // exits non-zero when it has findings; the JSON says which
		var rep map[string]any
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("openclaw secrets audit: %v\nstdout %s\nstderr %s", err, out.Bytes(), errb.Bytes())
		}
		for _, val := range values {
			noValue(t, "openclaw secrets audit output", out.Bytes(), val)
			noValue(t, "openclaw secrets audit stderr", errb.Bytes(), val)
		}
		return rep, out.Bytes()
	}

	rep, raw := audit(map[string]string{"openai": "OC-KEY"})
	summary, _ := rep["summary"].(map[string]any)
	if rep["status"] != "clean" || summary["unresolvedRefCount"] != 0.0 {
		t.Fatalf("approved secret: audit is not clean: %s", raw)
	}

	rep, raw = audit(map[string]string{"openai": "OC-KEY", "anthropic": "PLAIN"})
	summary, _ = rep["summary"].(map[string]any)
	if summary["unresolvedRefCount"] != 1.0 {
		t.Fatalf("unapproved secret: want one unresolved ref: %s", raw)
	}
	findings, _ := rep["findings"].([]any)
	found := false
	for _, f := range findings {
		f, _ := f.(map[string]any)
		if f["code"] == "REF_UNRESOLVED" && f["jsonPath"] == "models.providers.anthropic.apiKey" {
			found = true
		}
		if f["jsonPath"] == "models.providers.openai.apiKey" {
			t.Errorf("approved ref reported: %v", f)
		}
	}
	if !found {
		t.Fatalf("the unapproved ref is not reported unresolved: %s", raw)
	}
}

// BenchmarkOpenclawResolve measures one `openclaw resolve` of an approved
// secret against the same process doing nothing (`--version`), in the
// same run; OpenClaw's exec timeout is 5 s.
func BenchmarkOpenclawResolve(b *testing.B) {
	for _, backend := range []string{"file", "keychain"} {
		b.Run(backend, func(b *testing.B) {
			if backend == "keychain" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
				b.Skip("no Secret Service: run under scripts/with-secret-service")
			}
			root := b.TempDir()
			env := []string{"AGENTSECRETS_HOME=" + filepath.Join(root, "home"), "HOME=" + root, "PATH=" + os.Getenv("PATH")}
			admin, vp := filepath.Join(root, "admin.pass"), filepath.Join(root, "vault.pass")
			if err := os.WriteFile(admin, []byte(adminPassphrase+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(vp, []byte(vaultPassphrase+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			if backend == "file" {
				env = append(env, "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vp)
			} else {
				env = append(env, "DBUS_SESSION_BUS_ADDRESS="+os.Getenv("DBUS_SESSION_BUS_ADDRESS"), "XDG_RUNTIME_DIR="+os.Getenv("XDG_RUNTIME_DIR"))
			}
			mustRun(b, env, nil, "init", "--backend", backend, "--admin-passphrase-file", admin)
			mustRun(b, env, []byte("bench-value-0123456789"), "secrets", "set", "OC_KEY", "--from-stdin")
			mustRun(b, env, nil, "secrets", "bind", "OC_KEY", "--release", "openclaw", "--passphrase-file", admin)
			req := []byte(`{"protocolVersion":1,"provider":"agentsecrets","ids":["OC-KEY"]}`)
			var start, resolve []time.Duration
			for b.Loop() {
				t0 := time.Now()
				mustRun(b, env, nil, "--version")
				t1 := time.Now()
				out := mustRun(b, env, req, "openclaw", "resolve")
				t2 := time.Now()
				if !bytes.Contains(out, []byte(`"OC-KEY":"bench-value-0123456789"`)) {
					b.Fatalf("resolve: %s", out)
				}
				start, resolve = append(start, t1.Sub(t0)), append(resolve, t2.Sub(t1))
			}
			ms, mr := median(start), median(resolve)
			b.ReportMetric(float64(mr.Microseconds())/1000, "resolve-ms")
			b.ReportMetric(float64(ms.Microseconds())/1000, "start-ms")
			b.ReportMetric(float64(mr)/float64(ms), "x-start")
		})
	}
}
