package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// field digs a dotted path out of a decoded JSON result.
func field(t *testing.T, out string, path ...string) any {
	t.Helper()
	var v any = decode(t, out)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object in %s", path, out)
		}
		v = m[p]
	}
	return v
}

func TestSetIsIdempotentAndVersions(t *testing.T) {
	_, run := fileVault(t)
	steps := []struct {
		stdin, action string
		version       float64
	}{
		{"first-value\n", "created", 1},
		{"first-value\n", "unchanged", 1},
		{"first-value", "unchanged", 1}, // one trailing newline is not part of the value
		{"second-value\n", "updated", 2},
	}
	for _, s := range steps {
		code, out, _ := run(s.stdin, "secrets", "set", "API_KEY", "--from-stdin")
		if code != 0 {
			t.Fatalf("%d %s", code, out)
		}
		got := field(t, out, "secrets").([]any)[0].(map[string]any)
		if got["action"] != s.action || got["version"] != s.version {
			t.Fatalf("after %q: %v, want %s v%v", s.stdin, got, s.action, s.version)
		}
	}
	code, out, _ := run("", "secrets", "generate", "API_KEY")
	if code != 6 || errorCode(t, out) != "conflict" {
		t.Fatalf("generate over an existing secret must need --overwrite: %d %s", code, out)
	}
	code, out, _ = run("", "secrets", "generate", "API_KEY", "--overwrite", "--charset", "hex", "--length", "64")
	if code != 0 || !strings.Contains(out, `"version":3`) {
		t.Fatalf("%d %s", code, out)
	}
}

func TestBindNeedsApprovalOnlyToWiden(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	wrong := filepath.Join(root, "wrong.pass")
	if err := os.WriteFile(wrong, []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("tok-value-123\n", "secrets", "set", "TOKEN", "--from-stdin")
	cases := []struct {
		name string
		args []string
		exit int
		want string // action, or error code
	}{
		{"no approval", []string{"api.example.com", "--method", "GET"}, 5, "approval_required"},
		{"wrong passphrase", []string{"api.example.com", "--method", "GET", "--passphrase-file", wrong}, 4, "denied"},
		{"approved", []string{"api.example.com", "--method", "GET", "--method", "POST", "--passphrase-file", admin}, 0, "added"},
		{"same again needs nothing", []string{"api.example.com", "--method", "post", "--method", "GET"}, 0, "unchanged"},
		{"narrowing needs nothing", []string{"api.example.com", "--method", "GET"}, 0, "updated"},
		{"new surface widens", []string{"api.example.com", "--method", "GET", "--surface", "query"}, 5, "approval_required"},
		{"any method widens", []string{"api.example.com"}, 5, "approval_required"},
		{"another path is a new target", []string{"api.example.com/v2", "--method", "GET"}, 5, "approval_required"},
		{"bad surface", []string{"api.example.com", "--surface", "cookie"}, 2, "usage"},
		{"bad target", []string{"https://api.example.com"}, 2, "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := run("", append([]string{"secrets", "bind", "TOKEN"}, c.args...)...)
			if code != c.exit {
				t.Fatalf("exit %d, want %d: %s", code, c.exit, out)
			}
			if c.exit != 0 {
				if got := errorCode(t, out); got != c.want {
					t.Fatalf("code %s, want %s", got, c.want)
				}
				return
			}
			if got := field(t, out, "action"); got != c.want {
				t.Fatalf("action %v, want %s: %s", got, c.want, out)
			}
		})
	}
	code, out, _ := run("", "secrets", "list", "--select", "secrets.0.bindings")
	if code != 0 || !strings.Contains(out, `"methods":["GET"]`) || strings.Count(out, `"host"`) != 1 {
		t.Fatalf("bindings: %s", out)
	}
	// Unbinding narrows: no approval.
	if code, out, _ := run("", "secrets", "unbind", "TOKEN", "api.example.com/v9"); code != 3 {
		t.Fatalf("unbinding a target that is not bound: %d %s", code, out)
	}
	if code, out, _ := run("", "secrets", "unbind", "TOKEN", "api.example.com"); code != 0 || len(field(t, out, "removed").([]any)) != 1 {
		t.Fatalf("%d %s", code, out)
	}
	if code, out, _ := run("", "secrets", "unbind", "TOKEN"); code != 0 || len(field(t, out, "removed").([]any)) != 0 {
		t.Fatalf("unbinding nothing is a no-op: %d %s", code, out)
	}
	if code, out, _ := run("", "secrets", "bind", "MISSING", "api.example.com", "--passphrase-file", admin); code != 3 {
		t.Fatalf("binding an unknown secret: %d %s", code, out)
	}
}

func TestAllowlist(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	steps := []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"add", "127.0.0.1:8080", "--allow-http", "--allow-private"}, 5, "approval_required"},
		{[]string{"add", "127.0.0.1:8080", "--allow-http", "--allow-private", "--passphrase-file", admin}, 0, "added"},
		{[]string{"add", "127.0.0.1:8080", "--allow-http", "--allow-private"}, 0, "unchanged"},
		// Adding again merges: the exemption the command leaves out stays.
		{[]string{"add", "127.0.0.1:8080", "--allow-http"}, 0, "unchanged"},
		// Narrowing is remove, then add with the flags still wanted.
		{[]string{"remove", "127.0.0.1:8080"}, 0, "removed"},
		{[]string{"add", "127.0.0.1:8080", "--allow-http"}, 5, "approval_required"},
		{[]string{"add", "127.0.0.1:8080", "--allow-http", "--passphrase-file", admin}, 0, "added"},
		{[]string{"add", "127.0.0.1:8080", "--allow-http", "--allow-private"}, 5, "approval_required"},
		{[]string{"add", "API.Example.com.", "--passphrase-file", admin}, 0, "added"},
		{[]string{"add", "api.example.com/v1", "--passphrase-file", admin}, 2, "usage"},
		{[]string{"remove", "api.example.com"}, 0, "removed"},
		{[]string{"remove", "api.example.com"}, 3, "not_found"},
	}
	for _, s := range steps {
		code, out, _ := run("", append([]string{"workspace", "allowlist"}, s.args...)...)
		if code != s.exit {
			t.Fatalf("%v: exit %d, want %d: %s", s.args, code, s.exit, out)
		}
		if s.exit != 0 {
			if got := errorCode(t, out); got != s.want {
				t.Fatalf("%v: %s, want %s", s.args, got, s.want)
			}
			continue
		}
		if got := field(t, out, "action"); got != s.want {
			t.Fatalf("%v: %v, want %s", s.args, got, s.want)
		}
	}
	code, out, _ := run("", "workspace", "allowlist", "list", "--select", "hosts")
	if code != 0 || !strings.Contains(out, `"host":"127.0.0.1","port":8080,"allow_http":true,"allow_private":false`) {
		t.Fatalf("%d %s", code, out)
	}

	// The log holds every change that took effect, oldest first, with its
	// approval; refused and unchanged attempts change nothing.
	code, out, _ = run("", "workspace", "allowlist", "log")
	if code != 0 {
		t.Fatalf("log: %d %s", code, out)
	}
	var log AllowlistLogResult
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	want := []string{"added 127.0.0.1 8080 true true true", "removed 127.0.0.1 8080 true true false", "added 127.0.0.1 8080 true false true",
		"added api.example.com 0 false false true", "removed api.example.com 0 false false false"}
	if len(log.Changes) != len(want) {
		t.Fatalf("log has %d changes, want %d: %s", len(log.Changes), len(want), out)
	}
	for i, c := range log.Changes {
		got := fmt.Sprintf("%s %s %d %v %v %v", c.Action, c.Host, c.Port, c.AllowHTTP, c.AllowPrivate, c.Approved)
		if got != want[i] || c.At.IsZero() {
			t.Errorf("change %d: %s at %v, want %s", i, got, c.At, want[i])
		}
	}
	if code, out, _ := run("", "workspace", "allowlist", "log", "--last", "1", "--select", "changes.#"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("--last 1: %d %s", code, out)
	}
	if code, out, _ := run("", "workspace", "allowlist", "log", "--last", "-1"); code != 2 || errorCode(t, out) != "usage" {
		t.Fatalf("--last -1: %d %s", code, out)
	}
}

func TestImportReportsEveryName(t *testing.T) {
	root, run := fileVault(t)
	env := "# comment\nexport GOOD='single quoted'\nMULTI=\"line one\nline two\"\nbad-name=x\nEMPTY=\nGOOD2=plain # trailing comment\n"
	p := filepath.Join(root, "app.env")
	if err := os.WriteFile(p, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	// Rejected lines: the whole result, rejected entries last, and exit 2.
	code, out, _ := run("", "secrets", "import", p)
	if code != 2 {
		t.Fatalf("import with rejected lines: exit %d, want 2: %s", code, out)
	}
	results := map[string]string{}
	var order []string
	for _, r := range field(t, out, "results").([]any) {
		m := r.(map[string]any)
		results[m["name"].(string)] = m["action"].(string)
		order = append(order, m["action"].(string))
	}
	if first := slices.Index(order, "rejected"); first < 0 || slices.ContainsFunc(order[first:], func(a string) bool { return a != "rejected" }) {
		t.Errorf("rejected entries are not listed after the imported ones: %v", order)
	}
	want := map[string]string{"GOOD": "created", "MULTI": "created", "GOOD2": "created", "bad-name": "rejected", "EMPTY": "rejected"}
	for n, a := range want {
		if results[n] != a {
			t.Errorf("%s: %q, want %q (%s)", n, results[n], a, out)
		}
	}
	if field(t, out, "imported") != float64(3) || field(t, out, "rejected") != float64(2) {
		t.Fatalf("counts: %s", out)
	}
	// Re-import with --allow-partial: unchanged, exit 0; --skip-existing: skipped.
	code, out, _ = run("", "secrets", "import", p, "--allow-partial")
	if code != 0 || !strings.Contains(out, `"name":"GOOD","line":2,"version":1,"action":"unchanged"`) {
		t.Fatalf("re-import --allow-partial: exit %d: %s", code, out)
	}
	_, out, _ = run("GOOD=changed-now\n", "secrets", "import", "-", "--skip-existing")
	if !strings.Contains(out, `"action":"skipped"`) {
		t.Fatalf("--skip-existing: %s", out)
	}
	// A syntax error imports nothing.
	if err := os.WriteFile(p, []byte("NEW=fine\nBROKEN=\"unterminated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("", "secrets", "import", p)
	if code != 2 || errorCode(t, out) != "usage" {
		t.Fatalf("%d %s", code, out)
	}
	_, out, _ = run("", "secrets", "list", "--select", "secrets.#.name")
	if strings.Contains(out, "NEW") {
		t.Fatalf("a failed import stored a value: %s", out)
	}
}

func TestWorkspacesAndProjects(t *testing.T) {
	root, run := fileVault(t)
	expect := func(want int, args ...string) string {
		t.Helper()
		code, out, _ := run("", args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d: %s", args, code, want, out)
		}
		return out
	}
	expect(0, "workspace", "create", "acme")
	if out := expect(0, "workspace", "create", "acme"); field(t, out, "created") != false {
		t.Fatalf("creating twice must report created=false: %s", out)
	}
	expect(0, "project", "create", "api", "--workspace", "acme")
	expect(3, "project", "use", "nope", "--workspace", "acme")
	expect(0, "workspace", "switch", "acme")
	if out := expect(0, "status"); field(t, out, "workspace") != "acme" || field(t, out, "project") != "default" {
		t.Fatalf("after switch: %s", out)
	}
	expect(0, "project", "use", "api")
	expect(0, "secrets", "set", "KEY=value-in-acme-api")
	if out := expect(0, "secrets", "list"); field(t, out, "project") != "api" {
		t.Fatalf("%s", out)
	}
	// Flags select another project without changing the current one.
	if out := expect(0, "secrets", "list", "--workspace", "default", "--project", "default"); len(field(t, out, "secrets").([]any)) != 0 {
		t.Fatalf("%s", out)
	}
	expect(6, "project", "delete", "api")
	if out := expect(0, "project", "delete", "api", "--force"); field(t, out, "deleted_secrets") != float64(1) {
		t.Fatalf("%s", out)
	}
	expect(3, "secrets", "list")
	expect(2, "workspace", "create", "-bad")
	expect(2, "project", "create", "has space")
	_ = root
}

func TestProjectLink(t *testing.T) {
	root, run := fileVault(t)
	run("", "project", "create", "linked")
	code, out, _ := run("", "project", "use", "linked", "--link")
	if code != 0 {
		t.Fatalf("%d %s", code, out)
	}
	link := filepath.Join(root, ".agentsecrets", "project.json")
	if field(t, out, "link_file") != link {
		t.Fatalf("link file: %s", out)
	}
	_, out, _ = run("", "status")
	if field(t, out, "project") != "linked" || field(t, out, "project_source") != "link" {
		t.Fatalf("%s", out)
	}
	if err := os.WriteFile(link, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("", "secrets", "list")
	if code != 2 || !strings.Contains(out, "project.json") {
		t.Fatalf("a malformed link must be a usage error naming the file: %d %s", code, out)
	}
}

// TestListAppendJSONMatchesEncoder: the hand-written encoder of secrets list
// produces exactly what encoding/json would.
func TestListAppendJSONMatchesEncoder(t *testing.T) {
	when := time.Date(2026, 11, 23, 18, 0, 0, 120000000, time.UTC)
	res := &SecretsListResult{Workspace: "team.one", Project: "api-v2", Secrets: []SecretInfo{
		{Name: "A", Version: 3, CreatedAt: when, UpdatedAt: when.Add(time.Second), Source: "set", Bindings: []policy.Binding{}, Releases: []string{}},
		{Name: "B_2", Version: 1, CreatedAt: when, UpdatedAt: when, Source: "import",
			Bindings: []policy.Binding{{Host: "api.example.com", Port: 8443, PathPrefix: "/v1/<x>&", Methods: []string{"GET"}, Surfaces: []string{"header"}, CreatedAt: when}}, Releases: []string{"env", "openclaw"}},
		{Name: "C", Version: 1, Source: "odd \"source\"\n\u00e9", Bindings: []policy.Binding{}},
	}}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	type plain SecretsListResult // no AppendJSON method
	if err := enc.Encode((*plain)(res)); err != nil {
		t.Fatal(err)
	}
	got, err := encodeJSON(res, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("AppendJSON differs:\n got %s\nwant %s", got, want.String())
	}
	empty := &SecretsListResult{Workspace: "w", Project: "p", Secrets: []SecretInfo{}}
	if got, _ := encodeJSON(empty, false); string(got) != `{"workspace":"w","project":"p","secrets":[]}`+"\n" {
		t.Fatalf("empty: %s", got)
	}
}

// TestBindReleaseNeedsApprovalOnlyToAdd: releasing a value is the widest
// change there is; withdrawing it is narrowing and needs nothing.
func TestBindReleaseNeedsApprovalOnlyToAdd(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	run("tok-value-123\n", "secrets", "set", "TOKEN", "--from-stdin")
	steps := []struct {
		name string
		args []string
		exit int
		want string // action, or error code
		rels []string
	}{
		{"no approval", []string{"bind", "TOKEN", "--release", "env"}, 5, "approval_required", nil},
		{"approved", []string{"bind", "TOKEN", "--release", "env", "--passphrase-file", admin}, 0, "added", []string{"env"}},
		{"again needs nothing", []string{"bind", "TOKEN", "--release", "ENV"}, 0, "unchanged", []string{"env"}},
		{"another mode needs approval", []string{"bind", "TOKEN", "--release", "openclaw"}, 5, "approval_required", nil},
		{"second mode", []string{"bind", "TOKEN", "--release", "openclaw", "--passphrase-file", admin}, 0, "added", []string{"env", "openclaw"}},
		{"unknown mode", []string{"bind", "TOKEN", "--release", "shell", "--passphrase-file", admin}, 2, "usage", nil},
		{"release with a target", []string{"bind", "TOKEN", "api.example.com", "--release", "env"}, 2, "usage", nil},
		{"neither target nor release", []string{"bind", "TOKEN"}, 2, "usage", nil},
		{"unknown secret", []string{"bind", "MISSING", "--release", "env", "--passphrase-file", admin}, 3, "not_found", nil},
		{"withdraw without approval", []string{"unbind", "TOKEN", "--release", "env"}, 0, "", []string{"openclaw"}},
		{"withdraw again is a no-op", []string{"unbind", "TOKEN", "--release", "env"}, 0, "", []string{"openclaw"}},
		{"unbinding hosts keeps releases", []string{"unbind", "TOKEN"}, 0, "", []string{"openclaw"}},
		{"withdraw the last", []string{"unbind", "TOKEN", "--release", "openclaw"}, 0, "", []string{}},
	}
	for _, s := range steps {
		code, out, _ := run("", append([]string{"secrets"}, s.args...)...)
		if code != s.exit {
			t.Fatalf("%s: exit %d, want %d: %s", s.name, code, s.exit, out)
		}
		if s.exit != 0 {
			if got := errorCode(t, out); got != s.want {
				t.Fatalf("%s: code %s, want %s", s.name, got, s.want)
			}
			if hint, _ := field(t, out, "error", "hint").(string); s.want == "approval_required" && !strings.Contains(hint, "--release") {
				t.Errorf("%s: hint does not name the command to run: %s", s.name, out)
			}
			continue
		}
		if s.want != "" && field(t, out, "action") != s.want {
			t.Fatalf("%s: action %v, want %s: %s", s.name, field(t, out, "action"), s.want, out)
		}
		var got []string
		for _, r := range field(t, out, "releases").([]any) {
			got = append(got, r.(string))
		}
		if strings.Join(got, ",") != strings.Join(s.rels, ",") {
			t.Fatalf("%s: releases %v, want %v", s.name, got, s.rels)
		}
	}
	_, out, _ := run("", "status")
	if rel := field(t, out, "value_release").([]any); len(rel) != 0 {
		t.Fatalf("status lists releases after all were withdrawn: %s", out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "home", "index.json")); err != nil || strings.Contains(string(b), `"releases"`) {
		t.Fatalf("withdrawn releases left in the index (%v): %s", err, b)
	}
}

func TestStatusListsEveryRelease(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	run("", "project", "create", "other")
	run("v-one-123\n", "secrets", "set", "ONE", "--from-stdin")
	run("v-two-123\n", "secrets", "set", "TWO", "--from-stdin", "--project", "other")
	run("", "secrets", "bind", "ONE", "--release", "env", "--passphrase-file", admin)
	run("", "secrets", "bind", "TWO", "--release", "openclaw", "--project", "other", "--passphrase-file", admin)
	run("", "secrets", "bind", "TWO", "--release", "env", "--project", "other", "--passphrase-file", admin)
	_, out, _ := run("", "status", "--select", "value_release")
	want := `[{"workspace":"default","project":"default","name":"ONE","modes":["env"]},{"workspace":"default","project":"other","name":"TWO","modes":["env","openclaw"]}]`
	if strings.TrimSpace(out) != want {
		t.Fatalf("value_release = %s, want %s", out, want)
	}
	_, out, _ = run("", "secrets", "list", "--project", "other", "--select", "secrets.0.releases")
	if strings.TrimSpace(out) != `["env","openclaw"]` {
		t.Fatalf("secrets list releases = %s", out)
	}
}

// TestWrittenValuesAreWiped: once set, generate or import has stored its
// values, the plaintext it held is zeroed, the values it rejected too; the
// output guard still withholds them from the result (it keeps copies).
func TestWrittenValuesAreWiped(t *testing.T) {
	root, _ := fileVault(t)
	cases := []struct {
		name string
		mode vault.PutMode
		puts []string
		fail bool
	}{
		{"stored", vault.Upsert, []string{"wipe-me-0123456789", "wipe-me-too-0123456789"}, false},
		{"refused", vault.CreateOnly, []string{"wipe-me-0123456789"}, true}, // exists by now
		{"invalid", vault.Upsert, []string{"bad\x00value"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, _, _ := testEnvErr(t, root)
			var raw [][]byte
			var puts []vault.Put
			for i, v := range c.puts {
				b := []byte(v)
				raw = append(raw, b)
				puts = append(puts, vault.Put{Name: fmt.Sprintf("WIPED_%d", i), Value: secret.New(b), Source: "set"})
			}
			_, err := writeSecrets(env, Scope{}, puts, c.mode, &SecretsWriteResult{})
			if (err != nil) != c.fail {
				t.Fatalf("err = %v, want failure %v", err, c.fail)
			}
			for i, b := range raw {
				if !bytes.Equal(b, make([]byte, len(b))) || !puts[i].Value.Empty() {
					t.Errorf("value %d survives the write", i)
				}
			}
			if !c.fail && !env.guardOutput([]byte(c.puts[0])) {
				t.Error("the output guard lost the value with its wipe")
			}
		})
	}
}
