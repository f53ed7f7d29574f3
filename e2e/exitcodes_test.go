package e2e

// Exit statuses scripts can trust, --raw, AGENTSECRETS_FORMAT and the
// User-Agent the broker sends (issue 14 items 4, 5 and 10).

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// expectResult asserts that r printed its result (not an error object) and
// exited with exit; it returns the result when it is JSON.
func (c *canaryRun) expectResult(r *Result, exit int) map[string]any {
	c.t.Helper()
	if r.Code != exit {
		c.t.Errorf("%s: exit %d, want %d\nstdout: %.500s\nstderr: %.500s", c.describe(r.Args), r.Code, exit, r.Stdout, r.Stderr)
		return nil
	}
	var m map[string]any
	if json.Unmarshal(r.Stdout, &m) != nil {
		return nil
	}
	if _, isErr := m["error"]; isErr {
		c.t.Errorf("%s: an error object, not the result: %.500s", c.describe(r.Args), r.Stdout)
	}
	return m
}

// fullResult asserts exit status exit and a JSON result (not an error
// object) on stdout.
func fullResult(t *testing.T, r *Result, exit int) map[string]any {
	t.Helper()
	if r.Code != exit {
		t.Fatalf("agentsecrets %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, exit, r.Stdout, r.Stderr)
	}
	m := r.JSON(t)
	if _, isErr := m["error"]; isErr {
		t.Fatalf("agentsecrets %s: an error object, not the full result: %s", strings.Join(r.Args, " "), r.Stdout)
	}
	return m
}

// TestFailedChecksExitNonZero: doctor with a failing check, audit verify on
// a broken chain and proxy status with no proxy print their whole result,
// in either format and with --select, and exit with the documented code.
func TestFailedChecksExitNonZero(t *testing.T) {
	v := NewVault(t, "file")
	key := randomValue(t, "sk_exit_")
	v.RunIn([]byte(key), "secrets", "set", "KEY", "--from-stdin").OK(t)

	if m := v.Run("doctor").OK(t).JSON(t); m["healthy"] != true {
		t.Fatalf("a fresh vault is not healthy: %v", m)
	}
	must(t, os.Chmod(v.Home, 0o755))
	m := fullResult(t, v.Run("doctor"), 13)
	if m["healthy"] != false || len(m["checks"].([]any)) < 3 {
		t.Errorf("doctor with a failing check: %v", m)
	}
	if r := v.Run("--format", "text", "doctor"); r.Code != 13 || !strings.Contains(string(r.Stdout), "chmod 700") {
		t.Errorf("doctor text: exit %d: %s", r.Code, r.Stdout)
	}
	if r := v.Run("doctor", "--select", "healthy"); r.Code != 13 || strings.TrimSpace(string(r.Stdout)) != "false" {
		t.Errorf("doctor --select healthy: exit %d: %s", r.Code, r.Stdout)
	}
	must(t, os.Chmod(v.Home, 0o700))
	v.Run("doctor").OK(t)

	// Two refused calls, two audit records; then the first is edited.
	for range 2 {
		v.Run("call", "--url", "https://api.example.com/v1", "--bearer", "KEY").ErrorCode(t, "denied", 4)
	}
	v.Run("audit", "verify").OK(t)
	logPath := filepath.Join(v.Home, "audit.log")
	b, err := os.ReadFile(logPath)
	must(t, err)
	must(t, os.WriteFile(logPath, []byte(strings.Replace(string(b), `"decision":"blocked"`, `"decision":"allowed"`, 1)), 0o600))
	m = fullResult(t, v.Run("audit", "verify"), 13)
	if m["ok"] != false || m["problem"] == nil {
		t.Errorf("audit verify on a broken chain: %v", m)
	}
	if r := v.Run("--format", "text", "audit", "verify"); r.Code != 13 || !strings.Contains(string(r.Stdout), "audit log BROKEN") {
		t.Errorf("audit verify text: exit %d: %s", r.Code, r.Stdout)
	}

	m = fullResult(t, v.Run("proxy", "status"), 7)
	if m["running"] != false || m["address"] == "" {
		t.Errorf("proxy status with no proxy: %v", m)
	}
	if r := v.Run("--format", "text", "proxy", "status"); r.Code != 7 || !strings.Contains(string(r.Stdout), "not running") {
		t.Errorf("proxy status text: exit %d: %s", r.Code, r.Stdout)
	}
	startProxy(t, v)
	if m := v.Run("proxy", "status").OK(t).JSON(t); m["running"] != true {
		t.Errorf("proxy status with a proxy: %v", m)
	}

	for _, r := range []*Result{v.Run("doctor"), v.Run("audit", "verify"), v.Run("proxy", "logs")} {
		noValue(t, strings.Join(r.Args, " "), append(r.Stdout, r.Stderr...), key)
	}
}

// TestImportRejectedLines: rejected lines make import exit usage after the
// full result, listed after the imported ones; --allow-partial exits 0.
// The rejected values appear nowhere.
func TestImportRejectedLines(t *testing.T) {
	v := NewVault(t, "file")
	bad := newCanary(t, "rejected", "")
	good := newCanary(t, "imported", "")
	p := filepath.Join(v.Dir, "app.env")
	must(t, os.WriteFile(p, []byte("bad-name="+string(bad)+"\nGOOD="+string(good)+"\nEMPTY=\nALSO_GOOD=x-value-123\n"), 0o600))

	r := v.Run("secrets", "import", p)
	m := fullResult(t, r, 2)
	var actions []string
	for _, e := range m["results"].([]any) {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	if strings.Join(actions, ",") != "created,created,rejected,rejected" {
		t.Errorf("results are not the imported entries then the rejected ones: %v", actions)
	}
	if m["imported"] != float64(2) || m["rejected"] != float64(2) {
		t.Errorf("counts: %s", r.Stdout)
	}
	text := v.Run("--format", "text", "secrets", "import", p)
	if text.Code != 2 {
		t.Errorf("text import: exit %d", text.Code)
	}
	if out := string(text.Stdout); strings.Index(out, "unchanged") > strings.Index(out, "rejected") {
		t.Errorf("text lists a rejected line before an imported one:\n%s", out)
	}
	partial := v.Run("secrets", "import", p, "--allow-partial")
	if m := partial.OK(t).JSON(t); m["rejected"] != float64(2) {
		t.Errorf("--allow-partial: %s", partial.Stdout)
	}
	// No rejected line: exit 0 without the flag.
	must(t, os.WriteFile(p, []byte("GOOD="+string(good)+"\n"), 0o600))
	v.Run("secrets", "import", p).OK(t)
	for _, r := range []*Result{r, text, partial} {
		assertNoLeak(t, strings.Join(r.Args, " "), append(r.Stdout, r.Stderr...), [][]byte{bad, good})
	}
}

// TestSecretsDeleteNeedsYes: without a terminal, delete refuses unless
// --yes, and its hint, run as it stands, deletes exactly what was named in
// the project that was meant.
func TestSecretsDeleteNeedsYes(t *testing.T) {
	v := NewVault(t, "file")
	v.Run("project", "create", "web").OK(t)
	v.RunIn([]byte("x-value-default-1"), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.RunIn([]byte("x-value-web-12345"), "secrets", "set", "KEY", "--from-stdin", "--project", "web").OK(t)

	e := v.Run("secrets", "delete", "KEY", "--project", "web").ErrorCode(t, "usage", 2)
	hint := e["hint"].(string)
	if !strings.Contains(hint, "--yes") || !strings.Contains(hint, "--project web") {
		t.Fatalf("hint does not show the --yes command for project web: %q", hint)
	}
	if got := rbSecrets(t, v.Run("secrets", "list", "--project", "web").OK(t)); got["KEY"] != 1 {
		t.Fatalf("a refused delete deleted: %v", got)
	}
	cmd := strings.Trim(hint[strings.Index(hint, "`"):], "`")
	args := strings.Fields(cmd)
	if args[0] != "agentsecrets" {
		t.Fatalf("hint is not a command: %q", hint)
	}
	if m := v.Run(args[1:]...).OK(t).JSON(t); m["project"] != "web" {
		t.Errorf("the hint's command deleted in %v", m["project"])
	}
	if got := rbSecrets(t, v.Run("secrets", "list", "--project", "web").OK(t)); got["KEY"] != 0 {
		t.Errorf("KEY still in web: %v", got)
	}
	if got := rbSecrets(t, v.Run("secrets", "list").OK(t)); got["KEY"] != 1 {
		t.Errorf("the default project's KEY went too: %v", got)
	}
	// Unknown names are not_found before any question.
	v.Run("secrets", "delete", "NOPE").ErrorCode(t, "not_found", 3)
}

// TestSelectRaw: --raw prints a selected string without quotes and an
// array one element per line, like jq -r; without --select it is a usage
// error. A redacted echo printed raw still holds no value.
func TestSelectRaw(t *testing.T) {
	key := newCanary(t, "raw", `"\/<>`)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]any{"echo": r.Header.Get("X-Api-Key"), "list": []string{r.Header.Get("X-Api-Key"), "plain"}})
		w.Write(b)
	})
	v := brokerVault(t, map[string]string{"KEY": string(key), "OTHER": "x-value-other-1"}, up)

	if out := string(v.Run("status", "--select", "project").OK(t).Stdout); out != "\"default\"\n" {
		t.Errorf("--select of a string when piped: %q, want the JSON string", out)
	}
	if out := string(v.Run("status", "--select", "project", "--raw").OK(t).Stdout); out != "default\n" {
		t.Errorf("--select --raw of a string: %q", out)
	}
	if out := string(v.Run("secrets", "list", "--select", "secrets.#.name", "--raw").OK(t).Stdout); out != "KEY\nOTHER\n" {
		t.Errorf("--select --raw of an array: %q", out)
	}
	if out := string(v.Run("secrets", "list", "--select", "secrets.0.version", "--raw").OK(t).Stdout); out != "1\n" {
		t.Errorf("--select --raw of a number: %q", out)
	}
	if out := string(v.Run("--format", "text", "secrets", "list", "--select", "secrets.#.name", "--raw").OK(t).Stdout); out != "KEY\nOTHER\n" {
		t.Errorf("--select --raw of an array, text: %q", out)
	}
	e := v.Run("secrets", "list", "--raw").ErrorCode(t, "usage", 2)
	if !strings.Contains(e["hint"].(string), "--select") {
		t.Errorf("--raw alone: hint %q", e["hint"])
	}

	var outs []*Result
	for _, sel := range []string{"body.echo", "body.list", "body"} {
		r := v.Run("call", "--url", up.URL+"/v1", "--header", "X-Api-Key=KEY", "--select", sel, "--raw").OK(t)
		outs = append(outs, r)
	}
	if !strings.Contains(string(outs[1].Stdout), "\nplain\n") {
		t.Errorf("body.list --raw: %q", outs[1].Stdout)
	}
	for _, r := range outs {
		assertNoLeak(t, strings.Join(r.Args, " "), append(r.Stdout, r.Stderr...), [][]byte{key})
	}
}

// TestFormatEnv: AGENTSECRETS_FORMAT sets the default format; a flag
// wins; a bad value is a usage error that does not echo it.
func TestFormatEnv(t *testing.T) {
	v := NewVault(t, "file")
	run := func(format string, args ...string) *Result {
		w := *v
		w.ExtraEnv = append(append([]string{}, v.ExtraEnv...), "AGENTSECRETS_FORMAT="+format)
		return w.Run(args...)
	}
	if out := run("text", "status").OK(t).Stdout; json.Valid(out) || !strings.Contains(string(out), "default") {
		t.Errorf("AGENTSECRETS_FORMAT=text, piped: %s", out)
	}
	if out := run("json", "status").OK(t).Stdout; !json.Valid(out) {
		t.Errorf("AGENTSECRETS_FORMAT=json: %s", out)
	}
	if out := run("text", "status", "--json").OK(t).Stdout; !json.Valid(out) {
		t.Errorf("--json under AGENTSECRETS_FORMAT=text: %s", out)
	}
	if out := run("text", "--format", "json", "status").OK(t).Stdout; !json.Valid(out) {
		t.Errorf("--format json under AGENTSECRETS_FORMAT=text: %s", out)
	}
	pasted := newCanary(t, "format", "")
	r := run(string(pasted), "status")
	e := r.ErrorCode(t, "usage", 2)
	if !strings.Contains(e["message"].(string), "AGENTSECRETS_FORMAT") {
		t.Errorf("bad AGENTSECRETS_FORMAT: %v", e)
	}
	assertNoLeak(t, "a bad AGENTSECRETS_FORMAT's error", append(r.Stdout, r.Stderr...), [][]byte{pasted})
	// Under text a parse error is text on stderr.
	if r := run("text", "status", "--no-such-flag"); r.Code != 2 || !strings.Contains(string(r.Stderr), "agentsecrets: error:") || len(r.Stdout) != 0 {
		t.Errorf("parse error under AGENTSECRETS_FORMAT=text: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestUserAgent: call and the proxy send User-Agent agentsecrets/VERSION
// when the caller sets none, and the caller's own otherwise.
func TestUserAgent(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { w.Write([]byte("{}")) })
	v := brokerVault(t, map[string]string{"KEY": randomValue(t, "sk_ua_")}, up)
	version := strings.TrimSpace(string(v.Run("version", "--select", "version", "--raw").OK(t).Stdout))
	want := "agentsecrets/" + version
	last := func() string {
		reqs := up.requests()
		return strings.Join(reqs[len(reqs)-1].Header.Values("User-Agent"), "|")
	}

	v.Run("call", "--url", up.URL+"/v1", "--header", "X-Api-Key=KEY").OK(t)
	if got := last(); got != want {
		t.Errorf("call: User-Agent %q, want %q", got, want)
	}
	v.Run("call", "--url", up.URL+"/v1", "--header", "X-Api-Key=KEY", "-H", "User-Agent: mine/1.0").OK(t)
	if got := last(); got != "mine/1.0" {
		t.Errorf("call -H User-Agent: upstream saw %q", got)
	}

	addr, token := startProxy(t, v)
	for _, c := range []struct{ sent, want string }{{"", want}, {"curl/8.5.0", "curl/8.5.0"}} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/proxy", nil)
		req.Header.Set("X-AS-Session-Token", token)
		req.Header.Set("X-AS-Target-URL", up.URL+"/v1")
		req.Header.Set("X-AS-Method", "GET")
		req.Header.Set("X-AS-Inject-Header-X-Api-Key", "KEY")
		// An empty User-Agent makes Go's client send none at all.
		req.Header.Set("User-Agent", c.sent)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("proxy: %d", resp.StatusCode)
		}
		if got := last(); got != c.want {
			t.Errorf("proxy with User-Agent %q: upstream saw %q, want %q", c.sent, got, c.want)
		}
	}
}
