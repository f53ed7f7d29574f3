package e2e

// The canary test: DESIGN.md section 1 ("No value out"). It stores
// high-entropy canary values through every input path, runs every command
// (including error paths and values typed where they do not belong), then
// proves that no output, no file under the test's root (AGENTSECRETS_HOME,
// the working directory, TMPDIR, including vault.enc) contains any canary
// in any common encoding. For the keychain backend it also proves that the
// Secret Service item is where the value lives, and that delete removes it.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

// canaryMarker starts every canary this test makes, so a leak report is
// easy to recognise; fragment detection only looks at the random part.
const canaryMarker = "AGSCANARY."

// newCanary returns marker + label + "." + base64url(32 random bytes) +
// suffix. The suffix adds characters that encodings treat specially.
func newCanary(t *testing.T, label, suffix string) []byte {
	t.Helper()
	return []byte(canaryMarker + label + "." + randomB64(t, 32) + suffix)
}

func randomB64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// canaryEncoding is one way a value could be spelled in a leak.
type canaryEncoding struct {
	name string
	data []byte
}

// canaryEncodings lists the encodings of c that must never appear. Where two
// encodings coincide (a value with nothing to escape) they are listed once,
// under all their names.
func canaryEncodings(c []byte) []canaryEncoding {
	var out []canaryEncoding
	add := func(name string, b []byte) {
		if len(b) == 0 {
			return
		}
		for i := range out {
			if bytes.Equal(out[i].data, b) {
				out[i].name += " = " + name
				return
			}
		}
		out = append(out, canaryEncoding{name, b})
	}
	jsonEsc := func(html bool) []byte {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(string(c)); err != nil {
			return nil
		}
		s := strings.TrimSuffix(buf.String(), "\n")
		return []byte(strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`))
	}
	aligned := c[:len(c)/3*3]
	add("raw", c)
	add("base64 std padded", []byte(base64.StdEncoding.EncodeToString(c)))
	add("base64 std unpadded", []byte(base64.RawStdEncoding.EncodeToString(c)))
	add("base64 url padded", []byte(base64.URLEncoding.EncodeToString(c)))
	add("base64 url unpadded", []byte(base64.RawURLEncoding.EncodeToString(c)))
	// A value at the start of a longer base64 stream shares only the
	// encoding of its whole 3-byte groups.
	add("base64 std (whole 3-byte groups)", []byte(base64.RawStdEncoding.EncodeToString(aligned)))
	add("base64 url (whole 3-byte groups)", []byte(base64.RawURLEncoding.EncodeToString(aligned)))
	add("hex lower", []byte(hex.EncodeToString(c)))
	add("hex upper", []byte(strings.ToUpper(hex.EncodeToString(c))))
	add("url.QueryEscape", []byte(url.QueryEscape(string(c))))
	add("url.PathEscape", []byte(url.PathEscape(string(c))))
	add("JSON-escaped", jsonEsc(true))
	add("JSON-escaped (no HTML escaping)", jsonEsc(false))
	q := strconv.Quote(string(c))
	add("Go-quoted (%q)", []byte(q[1:len(q)-1]))
	return out
}

// Fragment detection: a leak of part of a value (a truncated echo, the
// part before a '=' that some scrubber cut at) is still a leak. Windows of
// fragmentLen bytes over the longest base64url run of a canary (its random
// part) are looked for raw.
const (
	fragmentLen        = 16
	maxFragmentWindows = 64
)

func randomRun(c []byte) []byte {
	isB64 := func(b byte) bool {
		return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_'
	}
	best, start := []byte(nil), -1
	for i := 0; i <= len(c); i++ {
		if i < len(c) && isB64(c[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > len(best) {
			best = c[start:i]
		}
		start = -1
	}
	return best
}

func fragmentIndex(data, c []byte) (at, n int) {
	run := randomRun(c)
	for i := 0; i+fragmentLen <= len(run) && i < maxFragmentWindows; i++ {
		if j := bytes.Index(data, run[i:i+fragmentLen]); j >= 0 {
			return j, fragmentLen
		}
	}
	return -1, 0
}

// canaryLabel names a canary in a report without printing all of it.
func canaryLabel(c []byte) string {
	s := string(c)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q (%d bytes)", s, len(c))
}

// excerpt is at most 200 bytes of data around a hit, with control and
// non-UTF-8 bytes escaped.
func excerpt(data []byte, at, n int) string {
	start := max(at-80, 0)
	end := min(at+n+80, len(data), start+200)
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(string(data[start:end]), "\uFFFD") {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return "«" + b.String() + "»"
}

// assertNoLeak fails the test for every canary that occurs in data in any
// encoding (or as a fragment of its random part), saying which encoding of
// which canary leaked where. It reports true when data is clean.
func assertNoLeak(t testing.TB, where string, data []byte, canaries [][]byte) bool {
	t.Helper()
	clean := true
	for i, c := range canaries {
		if len(c) == 0 {
			continue
		}
		found := false
		for _, e := range canaryEncodings(c) {
			if j := bytes.Index(data, e.data); j >= 0 {
				t.Errorf("LEAK in %s: %s of canary #%d %s at byte %d: %s", where, e.name, i, canaryLabel(c), j, excerpt(data, j, len(e.data)))
				found = true
			}
		}
		if !found {
			if j, n := fragmentIndex(data, c); j >= 0 {
				t.Errorf("LEAK in %s: a %d-byte fragment of the random part of canary #%d %s at byte %d: %s", where, n, i, canaryLabel(c), j, excerpt(data, j, n))
				found = true
			}
		}
		if found {
			clean = false
		}
	}
	return clean
}

// jsonStrings decodes data as a stream of JSON values and returns every
// string and object key in it, one per line. An echo that was quoted by the
// program (Go %q) and then JSON-encoded is double-escaped on the wire; once
// decoded it is caught as a JSON-escaped or Go-quoted leak.
func jsonStrings(data []byte) ([]byte, bool) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' && trimmed[0] != '[' && trimmed[0] != '"' {
		return nil, false
	}
	var out bytes.Buffer
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out.WriteString(x)
			out.WriteByte('\n')
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				out.WriteString(k)
				out.WriteByte('\n')
				walk(e)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	decoded := false
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		decoded = true
		walk(v)
	}
	return out.Bytes(), decoded
}

// canaryRun drives one vault and remembers every output and canary.
type canaryRun struct {
	t        *testing.T
	v        *Vault
	root     string
	canaries [][]byte
	outputs  []*Result
	inputs   []string // files the test wrote with canaries; removed before the scan
	// keychain backend only
	service string
}

func (c *canaryRun) canary(label, suffix string) []byte {
	v := newCanary(c.t, label, suffix)
	c.canaries = append(c.canaries, v)
	return v
}

func (c *canaryRun) run(args ...string) *Result { return c.runIn(nil, args...) }

func (c *canaryRun) runIn(stdin []byte, args ...string) *Result {
	c.t.Helper()
	r := c.v.RunIn(stdin, args...)
	c.outputs = append(c.outputs, r)
	return r
}

// inputFile writes a file holding canaries into the working directory.
func (c *canaryRun) inputFile(name string, data []byte) string {
	c.t.Helper()
	p := filepath.Join(c.v.Dir, name)
	must(c.t, os.WriteFile(p, data, 0o600))
	c.inputs = append(c.inputs, p)
	return p
}

func (c *canaryRun) removeInputs() {
	for _, p := range c.inputs {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.t.Errorf("remove %s: %v", p, err)
		}
	}
	c.inputs = nil
}

// describe renders a command line with canaries replaced by their number.
func (c *canaryRun) describe(args []string) string {
	s := "agentsecrets " + strings.Join(args, " ")
	for i, cn := range c.canaries {
		if len(cn) > 0 {
			s = strings.ReplaceAll(s, string(cn), fmt.Sprintf("<canary #%d>", i))
		}
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// scan checks one blob. JSON is checked raw and decoded together, so an
// echo that the program quoted before JSON-encoding it (double-escaped on
// the wire) is reported under its single-escaped name rather than only as a
// fragment.
func (c *canaryRun) scan(where string, data []byte) {
	c.t.Helper()
	if strs, ok := jsonStrings(data); ok {
		blob := append(append(append([]byte{}, data...), "\n--- the same, JSON-decoded ---\n"...), strs...)
		assertNoLeak(c.t, where, blob, c.canaries)
		return
	}
	assertNoLeak(c.t, where, data, c.canaries)
}

// scanAll checks every output and every file under the test's root: the
// home (vault.enc included: it must be ciphertext), the working directory,
// TMPDIR and the passphrase files.
func (c *canaryRun) scanAll() {
	c.t.Helper()
	c.removeInputs()
	for _, r := range c.outputs {
		c.scan("stdout of "+c.describe(r.Args), r.Stdout)
		c.scan("stderr of "+c.describe(r.Args), r.Stderr)
	}
	scanned := map[string]bool{}
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.root, p)
		scanned[filepath.ToSlash(rel)] = true
		c.scan("file "+rel, b)
		return nil
	})
	if err != nil {
		c.t.Errorf("walk %s: %v", c.root, err)
	}
	// The walk must have seen the files that matter, or it proved nothing.
	want := []string{"home/config.json", "home/index.json", "work/.agentsecrets/project.json"}
	if c.v.Backend == "file" {
		want = append(want, "home/vault.enc")
	}
	for _, w := range want {
		if !scanned[w] {
			c.t.Errorf("the file scan did not see %s (saw %v)", w, scanned)
		}
	}
	c.t.Logf("scanned %d outputs of %d commands and %d files for %d canaries", 2*len(c.outputs), len(c.outputs), len(scanned), len(c.canaries))
}

// expectOK is a non-fatal r.OK: later steps and the leak scan still run.
func (c *canaryRun) expectOK(r *Result) map[string]any {
	c.t.Helper()
	if r.Code != 0 {
		c.t.Errorf("%s: exit %d, want 0\nstdout: %.500s\nstderr: %.500s", c.describe(r.Args), r.Code, r.Stdout, r.Stderr)
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(r.Stdout, &m); err != nil {
		return nil
	}
	return m
}

// expectErr is a non-fatal r.ErrorCode.
func (c *canaryRun) expectErr(r *Result, code string, exit int) {
	c.t.Helper()
	if r.Code != exit {
		c.t.Errorf("%s: exit %d, want %d (%s)\nstdout: %.500s\nstderr: %.500s", c.describe(r.Args), r.Code, exit, code, r.Stdout, r.Stderr)
		return
	}
	var m struct {
		Error struct{ Code, Message, Hint string } `json:"error"`
	}
	if err := json.Unmarshal(r.Stdout, &m); err != nil {
		c.t.Errorf("%s: stdout is not a JSON error: %v\n%.500s", c.describe(r.Args), err, r.Stdout)
		return
	}
	if m.Error.Code != code || m.Error.Message == "" || m.Error.Hint == "" {
		c.t.Errorf("%s: error %+v, want code %s with a message and a hint", c.describe(r.Args), m.Error, code)
	}
}

// expectTextErr checks a --format text failure: exit status, nothing on
// stdout, the error on stderr.
func (c *canaryRun) expectTextErr(r *Result, exit int) {
	c.t.Helper()
	if r.Code != exit || !bytes.Contains(r.Stderr, []byte("error:")) {
		c.t.Errorf("%s: exit %d, want %d with the error on stderr\nstdout: %.500s\nstderr: %.500s", c.describe(r.Args), r.Code, exit, r.Stdout, r.Stderr)
	}
}

// expectActions checks the per-name actions of a secrets write result.
func (c *canaryRun) expectActions(r *Result, want map[string]string) {
	c.t.Helper()
	m := c.expectOK(r)
	if m == nil {
		return
	}
	list, _ := m["secrets"].([]any)
	if list == nil {
		list, _ = m["results"].([]any) // secrets import
	}
	got := map[string]string{}
	for _, e := range list {
		if o, ok := e.(map[string]any); ok {
			n, _ := o["name"].(string)
			a, _ := o["action"].(string)
			got[n] = a
		}
	}
	for n, a := range want {
		if got[n] != a {
			c.t.Errorf("%s: %s action %q, want %q (%s)", c.describe(r.Args), n, got[n], a, r.Stdout)
		}
	}
}

// keychainItem returns the Secret Service item of workspace/project/NAME.
func (c *canaryRun) keychainItem(account string) (string, error) {
	return keyring.Get(c.service, account)
}

// expectKeychain asserts the keychain holds exactly value for account.
func (c *canaryRun) expectKeychain(account string, value []byte) {
	c.t.Helper()
	if c.service == "" {
		return
	}
	got, err := c.keychainItem(account)
	switch {
	case err != nil:
		c.t.Errorf("keychain item %s/%s: %v, want the value stored", c.service, account, err)
	case got != string(value):
		c.t.Errorf("keychain item %s/%s holds %d bytes that differ from the %d-byte value stored", c.service, account, len(got), len(value))
	}
}

// expectKeychainGone asserts the item was deleted.
func (c *canaryRun) expectKeychainGone(account string) {
	c.t.Helper()
	if c.service == "" {
		return
	}
	if _, err := c.keychainItem(account); !errors.Is(err, keyring.ErrNotFound) {
		c.t.Errorf("keychain item %s/%s after delete: err %v, want keyring.ErrNotFound", c.service, account, err)
	}
}

// fetchGenerated reads a generated value from the keychain and adds it to
// the canaries (the test never learns it otherwise).
func (c *canaryRun) fetchGenerated(account string) {
	c.t.Helper()
	if c.service == "" {
		return
	}
	got, err := c.keychainItem(account)
	if err != nil || got == "" {
		c.t.Errorf("keychain item %s/%s of a generated value: %q, %v", c.service, account, got, err)
		return
	}
	c.canaries = append(c.canaries, []byte(got))
}

// vaultID finds the vault id: status, else init (idempotent), else config.json.
func (c *canaryRun) vaultID() string {
	c.t.Helper()
	for _, args := range [][]string{{"status"}, {"init", "--backend", c.v.Backend, "--admin-passphrase-file", c.v.AdminFile}} {
		if m := c.expectOK(c.run(args...)); m != nil {
			if id, _ := m["vault_id"].(string); id != "" {
				return id
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(c.v.Home, "config.json"))
	must(c.t, err)
	var cfg struct {
		VaultID string `json:"vault_id"`
	}
	must(c.t, json.Unmarshal(b, &cfg))
	if cfg.VaultID == "" {
		c.t.Fatal("no vault_id in status, init or config.json")
	}
	return cfg.VaultID
}

// haveTTY reports whether children could open a controlling terminal; then
// a command that prompts (approval, a value) would wait for a human, so
// those cases are skipped.
func haveTTY() bool {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// dotenvDQ writes s as a double-quoted .env value.
func dotenvDQ(s []byte) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "$", `\$`)
	return `"` + r.Replace(string(s)) + `"`
}

func TestCanaryNoValueOut(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			runCanary(t, backend)
			t.Logf("%s backend: %s", backend, time.Since(start).Round(time.Millisecond))
		})
	}
}

func runCanary(t *testing.T, backend string) {
	v := NewVault(t, backend)
	c := &canaryRun{t: t, v: v, root: filepath.Dir(v.Home)}
	// Temporary files the binary might create land where they are scanned.
	tmp := filepath.Join(c.root, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "TMPDIR="+tmp)
	// The scan runs even when a step below stops the test with t.Fatal.
	defer c.scanAll()
	if backend == "keychain" {
		c.service = "agentsecrets/" + c.vaultID()
	}
	tty := haveTTY()
	if tty {
		t.Log("a controlling terminal is open: skipping the cases that would prompt on it")
	}
	const ws = "default/default/"

	// ---- 1. Every input path -------------------------------------------
	// argv NAME=VALUE, with characters that JSON, URLs and Go quoting escape.
	argvVal := c.canary("argv", `+/=<&>"\ é`)
	c.expectActions(c.run("secrets", "set", "ARGV_SECRET="+string(argvVal)), map[string]string{"ARGV_SECRET": "created"})
	c.expectKeychain(ws+"ARGV_SECRET", argvVal)

	// --from-stdin (one trailing newline is dropped).
	stdinVal := c.canary("stdin", "")
	c.expectActions(c.runIn(append(append([]byte{}, stdinVal...), '\n'), "secrets", "set", "STDIN_SECRET", "--from-stdin"),
		map[string]string{"STDIN_SECRET": "created"})
	c.expectKeychain(ws+"STDIN_SECRET", stdinVal)

	// --from-file, then the file is deleted.
	fileVal := c.canary("fromfile", "+/==")
	p := c.inputFile("value.txt", append(append([]byte{}, fileVal...), '\n'))
	c.expectActions(c.run("secrets", "set", "FILE_SECRET", "--from-file", p), map[string]string{"FILE_SECRET": "created"})
	c.removeInputs()
	c.expectKeychain(ws+"FILE_SECRET", fileVal)

	// secrets import PATH: export prefix, quoting styles, multi-line values,
	// a rejected name and an empty value; then the file is deleted.
	expVal := c.canary("export", "+/=")
	dqVal := c.canary("dquote", "\"q\\b\nline two\t$HOME")
	sqVal := c.canary("squote", "\nsecond line\nthird line")
	mlVal := c.canary("multiline", "\nmore text\nend")
	expQVal := c.canary("exportq", " with spaces")
	rejectedVal := c.canary("rejected", "")
	env := "# a comment\n\n" +
		"export IMPORT_EXPORTED=" + string(expVal) + "\n" +
		"IMPORT_DQ=" + dotenvDQ(dqVal) + "  # trailing comment\n" +
		"IMPORT_SQ='" + string(sqVal) + "'\n" +
		"IMPORT_ML=\"" + string(mlVal) + "\"\n" +
		"export   IMPORT_EXPORT_Q='" + string(expQVal) + "'\n" +
		"bad-name.x=" + string(rejectedVal) + "\n" +
		"EMPTY_ONE=\n"
	p = c.inputFile("secrets.env", []byte(env))
	c.expectActions(c.run("secrets", "import", p, "--allow-partial"), map[string]string{
		"IMPORT_EXPORTED": "created", "IMPORT_DQ": "created", "IMPORT_SQ": "created",
		"IMPORT_ML": "created", "IMPORT_EXPORT_Q": "created", "bad-name.x": "rejected", "EMPTY_ONE": "rejected",
	})
	c.removeInputs()
	for name, val := range map[string][]byte{"IMPORT_EXPORTED": expVal, "IMPORT_DQ": dqVal, "IMPORT_SQ": sqVal, "IMPORT_ML": mlVal, "IMPORT_EXPORT_Q": expQVal} {
		c.expectKeychain(ws+name, val)
	}
	if c.service != "" {
		if _, err := c.keychainItem(ws + "bad-name.x"); !errors.Is(err, keyring.ErrNotFound) {
			t.Errorf("a rejected import entry reached the keychain: %v", err)
		}
	}

	// secrets import - (stdin).
	stdinImpVal := c.canary("importstdin", "")
	c.expectActions(c.runIn([]byte("STDIN_IMPORT="+dotenvDQ(stdinImpVal)+"\n"), "secrets", "import", "-"),
		map[string]string{"STDIN_IMPORT": "created"})
	c.expectKeychain(ws+"STDIN_IMPORT", stdinImpVal)

	// --input - with {"names":["NAME=VALUE"]}.
	inputVal := c.canary("input", `"\/<>`)
	doc, _ := json.Marshal(map[string]any{"names": []string{"INPUT_SECRET=" + string(inputVal)}})
	c.expectActions(c.runIn(doc, "secrets", "set", "--input", "-"), map[string]string{"INPUT_SECRET": "created"})
	c.expectKeychain(ws+"INPUT_SECRET", inputVal)

	// --input FILE, then the file is deleted.
	inputFileVal := c.canary("inputfile", "")
	doc, _ = json.Marshal(map[string]any{"names": []string{"INPUTFILE_SECRET=" + string(inputFileVal)}})
	p = c.inputFile("input.json", doc)
	c.expectActions(c.run("secrets", "set", "--input", p), map[string]string{"INPUTFILE_SECRET": "created"})
	c.removeInputs()
	c.expectKeychain(ws+"INPUTFILE_SECRET", inputFileVal)

	// --format text on a write: the warning goes to stderr.
	textVal := c.canary("textset", "")
	c.expectOK(c.run("--format", "text", "secrets", "set", "TEXT_SECRET="+string(textVal)))
	c.expectKeychain(ws+"TEXT_SECRET", textVal)

	// generate: the value is unknown; the keychain tells it to the test.
	c.expectActions(c.run("secrets", "generate", "GEN_SECRET"), map[string]string{"GEN_SECRET": "created"})
	c.fetchGenerated(ws + "GEN_SECRET")
	c.expectErr(c.run("secrets", "generate", "GEN_SECRET"), "conflict", 6)
	c.expectActions(c.run("secrets", "generate", "GEN_SECRET", "--overwrite", "--length", "64", "--charset", "ascii"),
		map[string]string{"GEN_SECRET": "updated"})
	c.fetchGenerated(ws + "GEN_SECRET")

	// The same value again is unchanged; a new one is an update.
	c.expectActions(c.run("secrets", "set", "ARGV_SECRET="+string(argvVal)), map[string]string{"ARGV_SECRET": "unchanged"})
	c.expectActions(c.runIn(stdinVal, "secrets", "set", "STDIN_SECRET", "--from-stdin"), map[string]string{"STDIN_SECRET": "unchanged"})
	updVal := c.canary("updated", "")
	c.expectActions(c.run("secrets", "set", "ARGV_SECRET="+string(updVal)), map[string]string{"ARGV_SECRET": "updated"})
	c.expectKeychain(ws+"ARGV_SECRET", updVal)
	upd2Val := c.canary("updated2", "")
	c.expectActions(c.runIn(upd2Val, "secrets", "set", "FILE_SECRET", "--from-stdin"), map[string]string{"FILE_SECRET": "updated"})
	c.expectKeychain(ws+"FILE_SECRET", upd2Val)

	// ---- 2. Every command ----------------------------------------------
	c.expectOK(c.run("status"))
	c.expectOK(c.run("--format", "text", "status"))
	c.expectOK(c.run("doctor"))
	c.expectOK(c.run("--format", "text", "doctor"))
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("secrets", "list", "--json"))
	c.expectOK(c.run("--format", "text", "secrets", "list"))
	c.expectOK(c.run("secrets", "list", "--select", "secrets.#.name"))
	c.expectOK(c.run("secrets", "list", "--select", "secrets.#.fingerprint"))
	c.expectOK(c.run("--format", "text", "secrets", "list", "--select", "secrets.0.name"))

	c.expectOK(c.run("workspace", "create", "w2"))
	c.expectOK(c.run("workspace", "list"))
	c.expectOK(c.run("--format", "text", "workspace", "list"))
	c.expectOK(c.run("workspace", "switch", "w2"))
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("workspace", "switch", "default"))

	c.expectOK(c.run("project", "create", "p2"))
	p2Val := c.canary("project2", "")
	c.expectActions(c.run("secrets", "set", "--project", "p2", "P2_SECRET="+string(p2Val)), map[string]string{"P2_SECRET": "created"})
	c.expectKeychain("default/p2/P2_SECRET", p2Val)
	c.expectOK(c.run("project", "list"))
	c.expectOK(c.run("--format", "text", "project", "list"))
	c.expectOK(c.run("project", "use", "p2"))
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("project", "use", "default"))
	c.expectOK(c.run("project", "use", "default", "--link"))
	c.expectOK(c.run("status"))
	c.expectErr(c.run("project", "delete", "p2"), "conflict", 6)
	c.expectOK(c.run("project", "delete", "p2", "--force"))
	c.expectKeychainGone("default/p2/P2_SECRET")

	if !tty {
		c.expectErr(c.run("secrets", "bind", "ARGV_SECRET", "api.example.com"), "approval_required", 5)
		c.expectErr(c.run("workspace", "allowlist", "add", "api.example.com"), "approval_required", 5)
	}
	c.expectOK(c.run("secrets", "bind", "ARGV_SECRET", "api.example.com", "--passphrase-file", v.AdminFile))
	c.expectOK(c.run("secrets", "bind", "ARGV_SECRET", "api.example.com/v1", "--method", "GET", "--surface", "query", "--passphrase-file", v.AdminFile))
	c.expectOK(c.run("workspace", "allowlist", "add", "api.example.com", "--passphrase-file", v.AdminFile))
	c.expectOK(c.run("workspace", "allowlist", "list"))
	c.expectOK(c.run("--format", "text", "workspace", "allowlist", "list"))
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("--format", "text", "secrets", "list"))
	c.expectOK(c.run("status"))
	c.expectOK(c.run("secrets", "unbind", "ARGV_SECRET", "api.example.com/v1"))
	c.expectOK(c.run("secrets", "unbind", "ARGV_SECRET"))
	c.expectOK(c.run("workspace", "allowlist", "remove", "api.example.com"))
	c.expectErr(c.run("workspace", "allowlist", "remove", "api.example.com"), "not_found", 3)

	// ---- 2a. Every text renderer ---------------------------------------
	// What a person on a terminal sees of each command with a text form of
	// its own, over secrets that hold canaries; scanAll checks the output.
	text := func(args ...string) {
		t.Helper()
		r := c.run(append([]string{"--format", "text"}, args...)...)
		c.expectOK(r)
		if bytes.HasPrefix(bytes.TrimSpace(r.Stdout), []byte("{")) {
			t.Errorf("%s: text output is JSON:\n%s", c.describe(r.Args), r.Stdout)
		}
	}
	text("workspace", "create", "w3")
	text("workspace", "switch", "w3")
	text("workspace", "list")
	text("workspace", "switch", "default")
	text("project", "create", "p3")
	p3Val := c.canary("project3", "")
	c.expectActions(c.run("secrets", "set", "--project", "p3", "P3_SECRET="+string(p3Val)), map[string]string{"P3_SECRET": "created"})
	text("project", "use", "p3")
	text("project", "list")
	text("project", "use", "default")
	text("secrets", "bind", "ARGV_SECRET", "api.example.com/v1", "--method", "GET", "--passphrase-file", v.AdminFile)
	text("secrets", "bind", "ARGV_SECRET", "--release", "env", "--passphrase-file", v.AdminFile)
	text("workspace", "allowlist", "add", "api.example.com", "--passphrase-file", v.AdminFile)
	text("workspace", "allowlist", "list")
	text("secrets", "list")
	text("secrets", "unbind", "ARGV_SECRET", "--release", "env")
	text("secrets", "unbind", "ARGV_SECRET")
	text("workspace", "allowlist", "remove", "api.example.com")
	text("secrets", "delete", "--project", "p3", "--yes", "P3_SECRET")
	c.expectKeychainGone("default/p3/P3_SECRET")
	text("project", "delete", "p3")
	text("proxy", "stop")
	text("proxy", "logs")

	c.expectOK(c.run("schema"))
	c.expectOK(c.run("schema", "secrets", "set"))
	for _, args := range [][]string{{"--help"}, {"secrets", "--help"}, {"secrets", "set", "--help"}, {"secrets", "import", "--help"}, {"project", "use", "--help"}, {"--version"}} {
		c.expectOK(c.run(args...))
	}

	// ---- 2b. Error paths -----------------------------------------------
	// A value typed where a flag value belongs: unknown flags, an enum, an
	// integer and a gjson path. Some carry quotes and backslashes, which Go
	// quoting (kong, %q) escapes, so a scrubber matching the raw text misses them.
	flagVal := c.canary("flagval", "")
	c.expectErr(c.run("secrets", "set", "--no-such-flag", string(flagVal), "SOME_NAME"), "usage", 2)
	c.expectErr(c.run("secrets", "set", "--no-such-flag="+string(flagVal), "SOME_NAME"), "usage", 2)
	fmtVal := c.canary("format", "")
	c.expectErr(c.run("--format", string(fmtVal), "status"), "usage", 2)
	fmtQVal := c.canary("formatq", `"\`)
	c.expectErr(c.run("--format", string(fmtQVal), "status"), "usage", 2)
	lenVal := c.canary("length", `"x\y`)
	c.expectErr(c.run("secrets", "generate", "GEN_OTHER", "--length", string(lenVal)), "usage", 2)
	selVal := c.canary("select", `"\`)
	c.expectErr(c.run("secrets", "list", "--select", string(selVal)), "usage", 2)
	// ... and where no argument belongs at all.
	posVal := c.canary("positional", "")
	c.expectErr(c.run("status", string(posVal)), "usage", 2)
	posQVal := c.canary("positionalq", `"\`)
	c.expectErr(c.run("secrets", "list", string(posQVal)), "usage", 2)
	c.expectTextErr(c.run("--format", "text", "secrets", "list", string(posQVal)), 2)

	// Bad names and arguments next to a value.
	badNameVal := c.canary("badname", "")
	c.expectErr(c.run("secrets", "set", "9BAD="+string(badNameVal)), "usage", 2)
	c.expectTextErr(c.run("--format", "text", "secrets", "set", "9BAD="+string(badNameVal)), 2)
	if !tty {
		extraVal := c.canary("extra", "")
		c.expectErr(c.run("secrets", "set", "GOOD="+string(extraVal), "extra"), "usage", 2)
	}
	withStdinVal := c.canary("withstdin", "")
	c.expectErr(c.runIn([]byte("x"), "secrets", "set", "GOOD="+string(withStdinVal), "--from-stdin"), "usage", 2)
	c.expectErr(c.run("secrets", "set", "EMPTY_SECRET="), "usage", 2)
	noProjVal := c.canary("noproject", "")
	c.expectErr(c.run("secrets", "set", "--project", "nope", "NP_SECRET="+string(noProjVal)), "not_found", 3)

	// --input: malformed JSON, an unknown key, a wrong type.
	malVal := c.canary("malformed", "")
	c.expectErr(c.runIn([]byte(`{"names":["X=`+string(malVal)+`"`), "secrets", "set", "--input", "-"), "usage", 2)
	c.expectTextErr(c.runIn([]byte(`{"names":["X=`+string(malVal)+`"`), "--format", "text", "secrets", "set", "--input", "-"), 2)
	mal2Val := c.canary("malformed2", "")
	c.expectErr(c.runIn([]byte(`{"names":["X=`+string(mal2Val)+`" "Y"]}`), "secrets", "set", "--input", "-"), "usage", 2)
	unkVal := c.canary("unknownkey", "")
	c.expectErr(c.runIn([]byte(`{"names":["UNK_SECRET"],"bogus":"`+string(unkVal)+`"}`), "secrets", "set", "--input", "-"), "usage", 2)
	typeVal := c.canary("wrongtype", "")
	c.expectErr(c.runIn([]byte(`{"names":["TYPE_SECRET"],"from_stdin":"`+string(typeVal)+`"}`), "secrets", "set", "--input", "-"), "usage", 2)
	objVal := c.canary("objvalue", "")
	c.expectErr(c.runIn([]byte(`{"names":[{"v":"`+string(objVal)+`"}]}`), "secrets", "set", "--input", "-"), "usage", 2)

	// delete of an unknown name, alone and next to a known one (nothing is deleted).
	c.expectErr(c.run("secrets", "delete", "UNKNOWN"), "not_found", 3)
	c.expectErr(c.run("secrets", "delete", "ARGV_SECRET", "UNKNOWN"), "not_found", 3)
	c.expectKeychain(ws+"ARGV_SECRET", updVal)

	// Malformed .env files holding canaries; nothing is imported.
	dqBad := c.canary("unterminated", "")
	p = c.inputFile("bad1.env", []byte("OK_ONE=fine\nBROKEN=\""+string(dqBad)+"\nOTHER=x\n"))
	c.expectErr(c.run("secrets", "import", p), "usage", 2)
	c.expectTextErr(c.run("--format", "text", "secrets", "import", p), 2)
	sqBad := c.canary("unterminatedsq", "")
	p = c.inputFile("bad2.env", []byte("BROKEN='"+string(sqBad)+"\n"))
	c.expectErr(c.run("secrets", "import", p), "usage", 2)
	bareVal := c.canary("bareline", "")
	p = c.inputFile("bad3.env", []byte("OK_ONE=fine\n"+string(bareVal)+"\n"))
	c.expectErr(c.run("secrets", "import", p), "usage", 2)
	trailVal := c.canary("trailing", "")
	p = c.inputFile("bad4.env", []byte("T=\"abc\""+string(trailVal)+"\n"))
	c.expectErr(c.run("secrets", "import", p), "usage", 2)
	badNameImp := c.canary("badnameimp", "")
	p = c.inputFile("bad5.env", []byte("9BAD="+string(badNameImp)+"\n"))
	c.expectErr(c.run("secrets", "import", p), "usage", 2)
	stdinBad := c.canary("unterminatedstdin", "")
	c.expectErr(c.runIn([]byte("S=`"+string(stdinBad)+"\n"), "secrets", "import", "-"), "usage", 2)
	c.removeInputs()
	if c.service != "" {
		if _, err := c.keychainItem(ws + "OK_ONE"); !errors.Is(err, keyring.ErrNotFound) {
			t.Errorf("a malformed .env was partly imported: %v", err)
		}
	}

	c.expectErr(c.run("secrets", "set", "NF_SECRET", "--from-file", "/nonexistent/agentsecrets-canary"), "not_found", 3)

	// Values the vault refuses: too large, not UTF-8.
	big := newCanary(t, "big", randomB64(t, 52500))
	c.canaries = append(c.canaries, big, big[:65539]) // what the reader keeps too
	c.expectErr(c.runIn(big, "secrets", "set", "BIG_SECRET", "--from-stdin"), "too_large", 10)
	binVal := c.canary("binary", "\xff\xfe")
	c.expectErr(c.runIn(binVal, "secrets", "set", "BIN_SECRET", "--from-stdin"), "usage", 2)

	// A wrong admin passphrase (itself a canary) for an approval.
	adminVal := c.canary("adminpass", `"\`)
	p = c.inputFile("wrong-admin.pass", append(append([]byte{}, adminVal...), '\n'))
	c.expectErr(c.run("secrets", "bind", "ARGV_SECRET", "api.example.com", "--passphrase-file", p), "denied", 4)
	c.removeInputs()

	// A wrong vault passphrase (file backend): the passphrase is a canary.
	// Through a broker the daemon's vault has its own key, and the flag
	// names nothing it uses.
	if backend == "file" && !viaBroker() {
		wrongVal := c.canary("vaultpass", `"\`)
		p = c.inputFile("wrong-vault.pass", append(append([]byte{}, wrongVal...), '\n'))
		wpVal := c.canary("wrongpassset", "")
		c.expectErr(c.run("secrets", "set", "WP_SECRET="+string(wpVal), "--vault-passphrase-file", p), "denied", 4)
		c.expectErr(c.run("secrets", "delete", "ARGV_SECRET", "--yes", "--vault-passphrase-file", p), "denied", 4)
		c.expectResult(c.run("doctor", "--vault-passphrase-file", p), 13) // reports the problem in full, exits check_failed
		c.removeInputs()
	}

	// ---- 3. delete removes the values ----------------------------------
	c.expectOK(c.run("secrets", "delete", "STDIN_SECRET", "IMPORT_DQ", "--yes"))
	c.expectKeychainGone(ws + "STDIN_SECRET")
	c.expectKeychainGone(ws + "IMPORT_DQ")
	c.expectErr(c.run("secrets", "delete", "STDIN_SECRET"), "not_found", 3)
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("doctor"))

	// ---- 4. The keychain is where the remaining values live ------------
	for name, val := range map[string][]byte{
		"ARGV_SECRET": updVal, "FILE_SECRET": upd2Val, "IMPORT_EXPORTED": expVal, "IMPORT_SQ": sqVal,
		"IMPORT_ML": mlVal, "IMPORT_EXPORT_Q": expQVal, "STDIN_IMPORT": stdinImpVal, "INPUT_SECRET": inputVal,
		"INPUTFILE_SECRET": inputFileVal, "TEXT_SECRET": textVal,
	} {
		c.expectKeychain(ws+name, val)
	}
	for _, name := range []string{"GOOD", "UNK_SECRET", "TYPE_SECRET", "X", "NP_SECRET", "BIG_SECRET", "BIN_SECRET", "WP_SECRET", "EMPTY_SECRET"} {
		c.expectKeychainGone(ws + name)
	}
	// For the file backend, vault.enc is scanned by scanAll like every other
	// file: it must be ciphertext.
}

// leakRecorder captures assertNoLeak's reports, to test the detector itself.
type leakRecorder struct {
	testing.TB
	msgs []string
}

func (r *leakRecorder) Helper() {}

func (r *leakRecorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// TestCanaryDetector proves assertNoLeak finds every encoding and a
// fragment, and stays quiet on clean data, so a green canary test means
// something.
func TestCanaryDetector(t *testing.T) {
	c := newCanary(t, "detector", "+/=<&>\"\\ é\n\x01")
	other := newCanary(t, "other", "")
	canaries := [][]byte{other, c}
	for _, e := range canaryEncodings(c) {
		rec := &leakRecorder{TB: t}
		data := append(append([]byte(`{"message":"prefix `), e.data...), " suffix\"}"...)
		if assertNoLeak(rec, "test", data, canaries) || len(rec.msgs) == 0 {
			t.Errorf("%s not detected", e.name)
			continue
		}
		if !strings.Contains(strings.Join(rec.msgs, "\n"), e.name) || !strings.Contains(rec.msgs[0], "canary #1") {
			t.Errorf("%s reported as %q", e.name, rec.msgs)
		}
	}
	names := map[string]bool{}
	for _, e := range canaryEncodings(c) {
		for _, n := range strings.Split(e.name, " = ") {
			names[n] = true
		}
	}
	if len(names) != 14 {
		t.Errorf("encodings: %v, want 14 names", names)
	}
	rec := &leakRecorder{TB: t}
	run := randomRun(c)
	if len(run) != 43 {
		t.Fatalf("random run %q: want the 43-character random part", run)
	}
	if assertNoLeak(rec, "test", append([]byte("truncated: "), run[5:5+fragmentLen+3]...), canaries) || !strings.Contains(rec.msgs[0], "fragment") {
		t.Errorf("fragment not detected: %q", rec.msgs)
	}
	rec = &leakRecorder{TB: t}
	clean := []byte(randomB64(t, 4096) + " AGSCANARY.detector. " + hex.EncodeToString([]byte(randomB64(t, 64))))
	if !assertNoLeak(rec, "test", clean, canaries) || len(rec.msgs) > 0 {
		t.Errorf("false positives: %q", rec.msgs)
	}
	// A value quoted by the program and then JSON-encoded is found once decoded.
	quoted := strconv.Quote(string(c))
	wire, _ := json.Marshal(map[string]string{"message": "got " + quoted})
	strs, ok := jsonStrings(wire)
	rec = &leakRecorder{TB: t}
	if !ok || assertNoLeak(rec, "test", strs, canaries) {
		t.Errorf("double-escaped echo not detected after decoding: %s", wire)
	}
}
