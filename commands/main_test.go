package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEnv is an Env over buffers with a fresh AGENTSECRETS_HOME. It has no
// terminal, so anything that would prompt fails as it would under an agent.
func testEnv(t *testing.T) (*Env, *bytes.Buffer) {
	t.Helper()
	env, out, _ := testEnvErr(t, t.TempDir())
	return env, out
}

func testEnvErr(t *testing.T, root string) (*Env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	io, _, out, errb := TestIO()
	vars := map[string]string{
		"AGENTSECRETS_HOME":                  filepath.Join(root, "home"),
		"AGENTSECRETS_VAULT_PASSPHRASE_FILE": filepath.Join(root, "vault.pass"),
		"HOME":                               root,
	}
	return &Env{IO: io, Getenv: func(k string) string { return vars[k] }, Now: time.Now, Cwd: root}, out, errb
}

// fileVault initialises a file-backend vault under root and returns a
// function that runs one command in a fresh Env (like a new process).
func fileVault(t *testing.T) (root string, run func(stdin string, args ...string) (int, string, string)) {
	t.Helper()
	root = t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "vault.pass"), []byte("vault passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "admin.pass"), []byte("admin passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run = func(stdin string, args ...string) (int, string, string) {
		env, out, errb := testEnvErr(t, root)
		env.IO.In = strings.NewReader(stdin)
		// Flags are given per process, as a user or agent would; this
		// test process never sees a keychain.
		code := Main(args, env)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run("", "init", "--backend", "file", "--admin-passphrase-file", filepath.Join(root, "admin.pass")); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	return root, run
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return m
}

func errorCode(t *testing.T, s string) string {
	t.Helper()
	e, ok := decode(t, s)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", s)
	}
	// hint and message are omitempty: an empty one arrives as a missing
	// key, so the check is on the string, not on the map entry.
	if hint, _ := e["hint"].(string); hint == "" {
		t.Fatalf("error lacks a hint: %s", s)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error lacks message or hint: %s", s)
	}
	return e["code"].(string)
}

func TestOutputFormat(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		tty      bool
		wantJSON bool
	}{
		{"auto, not a terminal", []string{"status"}, false, true},
		{"auto, terminal", []string{"status"}, true, false},
		{"--json on a terminal", []string{"status", "--json"}, true, true},
		{"--format json", []string{"--format", "json", "status"}, true, true},
		{"--format text", []string{"status", "--format=text"}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, out := testEnv(t)
			env.IO.StdoutTTY = c.tty
			if code := Main(c.args, env); code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			isJSON := json.Valid(out.Bytes())
			if isJSON != c.wantJSON {
				t.Fatalf("JSON=%v, want %v:\n%s", isJSON, c.wantJSON, out)
			}
			if !c.wantJSON && !strings.Contains(out.String(), "agentsecrets init") {
				t.Fatalf("text status should tell what to run:\n%s", out)
			}
		})
	}
}

func TestErrorsAreJSONWithCodes(t *testing.T) {
	cases := []struct {
		args []string
		code string
		exit int
	}{
		{[]string{"frobnicate"}, "usage", 2},
		{[]string{"secrets", "list", "--bogus"}, "usage", 2},
		{[]string{"secrets"}, "usage", 2},
		{[]string{"secrets", "list"}, "not_found", 3},
		{[]string{"schema", "no", "such"}, "not_found", 3},
		{[]string{"status", "--select", "nope.nothing"}, "usage", 2},
		{[]string{"--format", "yaml", "status"}, "usage", 2},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			env, out, errb := testEnvErr(t, t.TempDir())
			code := Main(c.args, env)
			if code != c.exit {
				t.Fatalf("exit %d, want %d: %s", code, c.exit, out)
			}
			if got := errorCode(t, out.String()); got != c.code {
				t.Fatalf("code %s, want %s", got, c.code)
			}
			if strings.Contains(out.String()+errb.String(), "goroutine") {
				t.Fatal("a Go stack trace was printed")
			}
		})
	}
}

// A usage error found by a command itself gets a hint naming that command,
// never the placeholder COMMAND.
func TestUsageHintNamesTheCommand(t *testing.T) {
	root := t.TempDir()
	short := filepath.Join(root, "short.pass")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env, out, _ := testEnvErr(t, root)
	if code := Main([]string{"init", "--backend", "file", "--admin-passphrase-file", short}, env); code != 2 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var res ErrorResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if want := "run `agentsecrets init --help` or `agentsecrets schema init`"; res.Error.Hint != want {
		t.Fatalf("hint %q, want %q", res.Error.Hint, want)
	}
}

func TestErrorTextMode(t *testing.T) {
	env, out, errb := testEnvErr(t, t.TempDir())
	env.IO.StdoutTTY = true
	if code := Main([]string{"secrets", "list"}, env); code != 3 {
		t.Fatalf("exit %d", code)
	}
	if out.Len() != 0 {
		t.Fatalf("text-mode error went to stdout: %s", out)
	}
	if !strings.Contains(errb.String(), "agentsecrets: error:") || !strings.Contains(errb.String(), "hint: run `agentsecrets init`") {
		t.Fatalf("stderr: %s", errb)
	}
}

func TestSelect(t *testing.T) {
	_, run := fileVault(t)
	run("", "secrets", "set", "A=alpha-value", "B=beta-value")
	code, out, _ := run("", "secrets", "list", "--select", "secrets.#.name")
	if code != 0 || strings.TrimSpace(out) != `["A","B"]` {
		t.Fatalf("%d %s", code, out)
	}
	code, out, _ = run("", "secrets", "list", "--select", "nothing")
	if code != 2 || !strings.Contains(out, "project, secrets, workspace") {
		t.Fatalf("a missing path should list the top-level fields: %d %s", code, out)
	}
}

func TestInput(t *testing.T) {
	root, run := fileVault(t)
	write := func(name, body string) string {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Flags and positionals from JSON; the command line wins.
	p := write("gen.json", `{"name":"FROM_JSON","length":12,"charset":"hex"}`)
	code, out, _ := run("", "secrets", "generate", "--input", p, "--length", "20")
	if code != 0 {
		t.Fatalf("%d %s", code, out)
	}
	code, out, _ = run("", "secrets", "list", "--select", "secrets.0.name")
	if strings.TrimSpace(out) != `"FROM_JSON"` {
		t.Fatalf("%d %s", code, out)
	}
	// Arrays, and stdin.
	code, out, _ = run(`{"names":["X1=value-one","X2=value-two"]}`, "secrets", "set", "--input", "-")
	if code != 0 || len(decode(t, out)["secrets"].([]any)) != 2 {
		t.Fatalf("%d %s", code, out)
	}
	// Booleans.
	code, out, _ = run(`{"name":"FROM_JSON","overwrite":true}`, "secrets", "generate", "--input", "-")
	if code != 0 || !strings.Contains(out, `"updated"`) {
		t.Fatalf("%d %s", code, out)
	}
	bad := []struct{ name, body, code string }{
		{"malformed", `{"names":`, "usage"},
		{"not an object", `["a"]`, "usage"},
		{"null", `null`, "usage"},
		{"trailing data", `{} {}`, "usage"},
		{"unknown key", `{"name":"A","colour":"red"}`, "usage"},
		{"wrong type", `{"name":"A","length":"long"}`, "usage"},
		{"fractional", `{"name":"A","length":1.5}`, "usage"},
		{"nested object", `{"name":{"a":1}}`, "usage"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := run(c.body, "secrets", "generate", "--input", "-")
			if code != 2 || errorCode(t, out) != c.code {
				t.Fatalf("%d %s", code, out)
			}
		})
	}
	if code, out, _ := run("", "secrets", "generate", "--input", filepath.Join(root, "missing.json")); code != 3 {
		t.Fatalf("missing --input file: %d %s", code, out)
	}
}

// TestParseErrorsNeverEchoValues: kong quotes offending arguments, and a
// value typed in the wrong place must not come back.
func TestParseErrorsNeverEchoValues(t *testing.T) {
	const canary = "sk_live_Zq8uV3vXw9yZa1b2c3"
	_, run := fileVault(t)
	for _, args := range [][]string{
		{"secrets", "list", canary},
		{"secrets", "set", "GOOD=" + canary, "--bogus"},
		{"secrets", "set", "9BAD=" + canary},
		{"secrets", "list", "--select=" + canary},
		{"--format", canary, "status"},
		{"secrets", "generate", "X", "--length", canary},
		// A failing --input must still be scrubbed against the typed
		// arguments (the error names the --input path).
		{"secrets", "set", "GOOD=" + canary, "--input", "./" + canary + ".json"},
		{"secrets", "set", "GOOD=" + canary, "--input=missing/" + canary},
	} {
		code, out, errb := run("", args...)
		if code == 0 {
			t.Fatalf("%v succeeded", args)
		}
		if strings.Contains(out+errb, canary) || strings.Contains(out+errb, canary[:12]) {
			t.Fatalf("%v echoed the value: %s %s", args, out, errb)
		}
	}
}

func TestParseInput(t *testing.T) {
	for _, ok := range []string{`{}`, `{"a":1}`, ` {"a":[1,"x",true]} `, "{\"a\":null}\n"} {
		if _, err := ParseInput([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{``, `[]`, `null`, `{`, `{"a":1}x`, `{"a":1}{}`, `"s"`, `1`} {
		if _, err := ParseInput([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// FuzzParseInput: any bytes either parse into an object or fail with a
// usage error that quotes nothing from the input.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{`{}`, `{"names":["A=b"]}`, `{"length":12,"overwrite":true}`, `{"a":`, `[1]`, "{\"\\u0000\":1}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := ParseInput(data)
		if err != nil {
			if obj != nil {
				t.Fatal("object returned with an error")
			}
			msg := err.Error()
			if len(data) >= 8 && strings.Contains(msg, string(data)) {
				t.Fatalf("error quotes the input: %s", msg)
			}
			return
		}
		if obj == nil {
			t.Fatal("nil object without error")
		}
		if _, err := json.Marshal(obj); err != nil {
			t.Fatalf("parsed object does not re-encode: %v", err)
		}
	})
}
