package commands

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

func TestTermEscape(t *testing.T) {
	cases := []struct{ in, want, lines string }{
		{"plain /v1/balance", "plain /v1/balance", "plain /v1/balance"},
		{"a\nb", `a\nb`, "a\nb"},
		{"a\r\nforged", `a\r\nforged`, "a\\r\nforged"},
		{"\x1b[2K\x1b[1A", `\x1b[2K\x1b[1A`, `\x1b[2K\x1b[1A`},
		{"\x1b]52;c;aGk=\a", `\x1b]52;c;aGk=\x07`, `\x1b]52;c;aGk=\x07`},
		{"tab\there", `tab\there`, "tab\there"},
		{"del\x7f", `del\x7f`, `del\x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`, `c1 \u009b31m`},
		{"bidi \u202eevil", `bidi \u202eevil`, `bidi \u202eevil`},
		{"isolate \u2066x\u2069", `isolate \u2066x\u2069`, `isolate \u2066x\u2069`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`, `bad \xff\xfe utf8`},
		{"héllo wörld ✓", "héllo wörld ✓", "héllo wörld ✓"},
		{`C:\Users\a`, `C:\Users\a`, `C:\Users\a`},
	}
	for _, c := range cases {
		if got := termEscape(c.in); got != c.want {
			t.Errorf("termEscape(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := termEscapeLines(c.in); got != c.lines {
			t.Errorf("termEscapeLines(%q) = %q, want %q", c.in, got, c.lines)
		}
		if hasTerminalControl(termEscape(c.in), false) {
			t.Errorf("termEscape(%q) left a control character", c.in)
		}
	}
}

// hasTerminalControl reports a byte or rune a terminal would act on;
// newlines and tabs count unless lines is set.
func hasTerminalControl(s string, lines bool) bool {
	for _, r := range s {
		if lines && (r == '\n' || r == '\t') {
			continue
		}
		if r == utf8.RuneError || needsEscape(r) {
			return true
		}
	}
	return false
}

func TestTermWriterSplitWrites(t *testing.T) {
	in := "ok ✓ \x1b[31m red \u009b \u202e\xff end\n"
	want := "ok ✓ \\x1b[31m red \\u009b \\u202e\\xff end\n"
	for split := 0; split <= len(in); split++ {
		var out bytes.Buffer
		tw := &termWriter{w: &out}
		tw.Write([]byte(in[:split]))
		tw.Write([]byte(in[split:]))
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("split at %d: %q, want %q", split, out.String(), want)
		}
	}
	var out bytes.Buffer
	tw := &termWriter{w: &out}
	tw.Write([]byte("cut \xe2\x9c"))
	tw.Close()
	if out.String() != `cut \xe2\x9c` {
		t.Fatalf("unfinished rune at close: %q", out.String())
	}
}

type termInner struct {
	Name string
	note string
}

type termResult struct {
	Path    string
	Names   []string
	ByName  map[string]string
	Nested  *termInner
	Any     any
	AnyMap  map[string]any
	Snippet string `term:"lines"`
	Raw     []byte
}

func TestTermSafeResult(t *testing.T) {
	const evil = "x\n\x1b[1Ay"
	r := &termResult{
		Path:    evil,
		Names:   []string{evil},
		ByName:  map[string]string{evil: evil},
		Nested:  &termInner{Name: evil, note: evil},
		Any:     evil,
		AnyMap:  map[string]any{"k": evil, "list": []any{evil}},
		Snippet: "line one\nline two\x1b[2K",
		Raw:     []byte(evil),
	}
	termSafeResult(r)
	const want = `x\n\x1b[1Ay`
	if r.Path != want || r.Names[0] != want || r.ByName[want] != want || len(r.ByName) != 1 ||
		r.Nested.Name != want || r.Any != want || r.AnyMap["k"] != want || r.AnyMap["list"].([]any)[0] != want {
		t.Fatalf("not every string was escaped: %#v %#v", r, r.Nested)
	}
	if r.Nested.note != evil || string(r.Raw) != evil {
		t.Fatal("unexported fields and byte slices must be left alone")
	}
	if r.Snippet != "line one\nline two\\x1b[2K" {
		t.Fatalf("term:\"lines\" field: %q", r.Snippet)
	}
}

// TestProxyLogsTextEscapesPaths is the review's case: a request path with
// %0a, %0d and ESC decoded into the audit record forges and erases log
// lines when `proxy logs --format text` prints it raw.
func TestProxyLogsTextEscapesPaths(t *testing.T) {
	root, run := fileVault(t)
	dirs, err := home.Resolve(func(k string) string {
		if k == "AGENTSECRETS_HOME" {
			return filepath.Join(root, "home")
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	log := audit.Open(dirs.State, audit.Options{})
	paths := []string{
		"/v1\n2026-12-01T00:00:00Z  allowed  call  GET    api.stripe.com/forged [STRIPE_KEY] 200",
		"/v1\r\x1b[2K",
		"/v1\x1b]52;c;cm0gLXJmIH4=\a",
		"/v1\u202egnp.exe",
	}
	for _, p := range paths {
		if err := log.Append(context.Background(), &audit.Record{FrontEnd: audit.FrontEndCall, Method: "GET",
			Host: "api.example.com", Path: p, Decision: audit.DecisionAllowed}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := run("", "proxy", "logs", "--format", "text")
	if code != 0 {
		t.Fatalf("proxy logs: %d %s", code, out)
	}
	// A header row, then one line per record.
	if got := strings.Count(out, "\n"); got != len(paths)+1 {
		t.Fatalf("%d records printed as %d lines (with the header):\n%s", len(paths), got, out)
	}
	if hasTerminalControl(out, true) {
		t.Fatalf("raw control characters in text output: %q", out)
	}
	if !strings.Contains(out, `/v1\n2026-12-01`) || !strings.Contains(out, `\x1b]52;c;`) {
		t.Fatalf("paths not shown escaped: %q", out)
	}
	// JSON keeps the data exact.
	code, out, _ = run("", "proxy", "logs", "--json", "--select", "records.1.path")
	if code != 0 || strings.TrimSpace(out) != `"/v1\r\u001b[2K"` {
		t.Fatalf("JSON path: %d %q", code, out)
	}
	// --select of a string in text mode prints it unquoted, still escaped.
	code, out, _ = run("", "proxy", "logs", "--format", "text", "--select", "records.2.path")
	if code != 0 || hasTerminalControl(out, true) {
		t.Fatalf("--select text: %d %q", code, out)
	}
}

func TestErrorTextEscapesControls(t *testing.T) {
	env, _, errb := testEnvErr(t, t.TempDir())
	err := errcode.WithHint(errcode.New(errcode.NotFound, "no project \x1b[2Kfoo\nagentsecrets: ok"), "run \x1b]52;c;eA==\a")
	reportError(env, formatText, err, nil)
	if strings.Count(errb.String(), "\n") != 2 || hasTerminalControl(errb.String(), true) {
		t.Fatalf("text error not escaped: %q", errb.String())
	}
}

// canaryForms are the encodings every leak check looks for.
func canaryForms(v string) []string {
	return []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.URLEncoding.EncodeToString([]byte(v)),
		hex.EncodeToString([]byte(v))}
}

type leakyResult struct {
	Body string `json:"body"`
	Notes
}

func TestOutputGuardWithholdsTouchedValues(t *testing.T) {
	const canary = "sk_live_Zq8+Kd2/Lp0xWv7Y9tRb3N"
	cases := []struct {
		name   string
		format string
		sel    string
		result any
	}{
		{"json raw", formatJSON, "", &leakyResult{Body: "echo " + canary}},
		{"json escaped +", formatJSON, "", &leakyResult{Body: "x" + strings.ReplaceAll(canary, "+", "\u002b")}},
		{"text", formatText, "", &leakyResult{Body: canary}},
		{"select text unescapes", formatText, "body", &leakyResult{Body: canary}},
		{"select json", formatJSON, "body", &leakyResult{Body: canary}},
		{"base64 in warning", formatText, "", &leakyResult{Notes: Notes{Warnings: []string{base64.StdEncoding.EncodeToString([]byte(canary))}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, out, errb := testEnvErr(t, t.TempDir())
			env.touch(secret.New([]byte(canary)))
			err := renderGuarded(env, c.format, c.sel, c.result)
			if !errors.Is(err, errOutputLeak) {
				t.Fatalf("err = %v, want the output-leak error", err)
			}
			code := reportError(env, c.format, err, nil)
			if code != errcode.Lookup(errcode.Internal).Exit {
				t.Fatalf("exit %d", code)
			}
			for _, f := range canaryForms(canary) {
				if strings.Contains(out.String()+errb.String(), f) {
					t.Fatalf("value form %q printed: %q %q", f, out, errb)
				}
			}
		})
	}
	// A value too short to tell from ordinary text is not looked for.
	env, out, _ := testEnvErr(t, t.TempDir())
	env.touch(secret.New([]byte("v1")))
	if err := renderGuarded(env, formatJSON, "", &leakyResult{Body: "version v1"}); err != nil || !strings.Contains(out.String(), "version v1") {
		t.Fatalf("short value failed the output: %v %q", err, out)
	}
	// Untouched output passes unchanged.
	env, out, _ = testEnvErr(t, t.TempDir())
	env.touch(secret.New([]byte(canary)))
	if err := renderGuarded(env, formatJSON, "", &leakyResult{Body: "fine"}); err != nil || !strings.Contains(out.String(), "fine") {
		t.Fatalf("clean output: %v %q", err, out)
	}
}

func TestOutputGuardScansErrors(t *testing.T) {
	const canary = "ghp_8XkQ2mZr7TtY4vB1nL0sW9cJ3pHa"
	for _, format := range []string{formatJSON, formatText} {
		env, out, errb := testEnvErr(t, t.TempDir())
		env.touch(secret.New([]byte(canary)))
		code := reportError(env, format, errcode.New(errcode.Upstream, "upstream said "+canary), nil)
		if code != errcode.Lookup(errcode.Internal).Exit {
			t.Fatalf("%s: exit %d", format, code)
		}
		if strings.Contains(out.String()+errb.String(), canary) {
			t.Fatalf("%s: error printed the value", format)
		}
	}
}

// TestStoreFeedsTheOutputGuard: the values a command reads or stores
// through the vault reach the guard without the command doing anything.
func TestStoreFeedsTheOutputGuard(t *testing.T) {
	const canary = "tok_Yq3Lm8Rz0Xw5Nb2Vc7Kd4Jf9Hg6"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")

	env, _, _ := testEnvErr(t, root)
	env.IO.In = strings.NewReader(canary)
	if code := Main([]string{"secrets", "set", "KEY", "--from-stdin"}, env); code != 0 {
		t.Fatalf("set: %d", code)
	}
	if _, hit := env.outputScanner().Bytes([]byte("x" + canary)); !hit {
		t.Fatal("a stored value did not reach the output guard")
	}
	for _, args := range [][]string{
		{"workspace", "allowlist", "add", host, "--allow-http", "--allow-private", "--passphrase-file", admin},
		{"secrets", "bind", "KEY", host, "--passphrase-file", admin},
	} {
		if code, out, _ := run("", args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, out)
		}
	}
	env, out, _ := testEnvErr(t, root)
	if code := Main([]string{"call", "--url", up.URL + "/v1", "--bearer", "KEY"}, env); code != 0 {
		t.Fatalf("call: %d %s", code, out)
	}
	if _, hit := env.outputScanner().Bytes([]byte(canary)); !hit {
		t.Fatal("a value the broker read did not reach the output guard")
	}
}

// TestOutputGuardAdoptsTheRequestRedactor: prepareScanner takes the
// redactor a request built as the scanner when it was built for exactly
// the touched values (call's usual case: the one value it injected), and
// builds its own when the sets differ by a value, by a short value the
// guard leaves out, or by a value touched since.
func TestOutputGuardAdoptsTheRequestRedactor(t *testing.T) {
	const value, other, short = "sk_live_Ad0ptedRedact0rXq8Kd2", "sk_live_An0therValueWv7Y9tRb", "pin42"
	redactor := func(vs ...string) *broker.Redactor {
		b := make([][]byte, len(vs))
		for i, v := range vs {
			b[i] = []byte(v)
		}
		return broker.NewRedactor(b)
	}
	for _, c := range []struct {
		name    string
		touched []string
		have    *broker.Redactor
		adopt   bool
	}{
		{"the same value", []string{value}, redactor(value), true},
		{"the same values in another order, one twice", []string{other, value}, redactor(value, other, value), true},
		{"a short value the guard leaves out", []string{value, short}, redactor(value), true},
		{"the request's redactor has one more value", []string{value}, redactor(value, other), false},
		{"the request's redactor has a short value", []string{value}, redactor(value, short), false},
		{"another value", []string{value}, redactor(other), false},
		{"no redactor", []string{value}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, _, _ := testEnvErr(t, t.TempDir())
			for _, v := range c.touched {
				env.touch(secret.New([]byte(v)))
			}
			env.prepareScanner(c.have)
			got, _ := preparedScanner(env)
			if adopted := got == c.have && got != nil; adopted != c.adopt {
				t.Fatalf("adopted the request's redactor: %v, want %v", adopted, c.adopt)
			}
			if err := renderGuarded(env, formatJSON, "", &leakyResult{Body: "echo " + value}); !errors.Is(err, errOutputLeak) {
				t.Fatalf("err = %v, want the output-leak error", err)
			}
		})
	}
}

// preparedScanner waits for a build prepareScanner started and returns
// the guard's scanner and how many values it covers.
func preparedScanner(env *Env) (*broker.Redactor, int) {
	env.guard.mu.Lock()
	building := env.guard.preparing
	env.guard.mu.Unlock()
	if building != nil {
		<-building
	}
	env.guard.mu.Lock()
	defer env.guard.mu.Unlock()
	return env.guard.scanner, env.guard.scanned
}

// TestOutputGuardPreparedScanner: a scanner built ahead (call builds it
// while its request is in flight) covers the values touched before, and
// one touched after is still looked for.
func TestOutputGuardPreparedScanner(t *testing.T) {
	const before, after = "sk_live_Pr3paredBef0reXq8Kd2", "sk_live_T0uchedAfterWv7Y9tRb"
	env, _, _ := testEnvErr(t, t.TempDir())
	env.touch(secret.New([]byte(before)))
	env.prepareScanner(nil)
	env.prepareScanner(nil) // a second call while the first builds starts nothing new
	prepared, scanned := preparedScanner(env)
	if prepared == nil || scanned != 1 {
		t.Fatalf("prepareScanner built nothing (scanner %v, %d values)", prepared, scanned)
	}
	if _, hit := prepared.Bytes([]byte("x" + before)); !hit {
		t.Fatal("the prepared scanner misses the value touched before it")
	}
	if again := env.outputScanner(); again != prepared {
		t.Fatal("outputScanner built the prepared scanner again")
	}
	env.touch(secret.New([]byte(after)))
	env.prepareScanner(nil)
	for _, v := range []string{before, after} {
		if err := renderGuarded(env, formatJSON, "", &leakyResult{Body: "echo " + v}); !errors.Is(err, errOutputLeak) {
			t.Fatalf("%s: err = %v, want the output-leak error", v[:12], err)
		}
	}
}
