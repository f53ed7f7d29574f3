package e2e

// mcp install / uninstall against a throwaway HOME, for every client
// format: fresh file, existing file with other servers and unknown keys
// (and comments where the client allows them), repeated install, uninstall,
// refused files and --print. The OpenClaw case is checked with the real
// openclaw CLI reading the file we wrote.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// mcpHome is a HOME with nothing in it but what a test puts there.
type mcpHome struct {
	t    *testing.T
	root string
	home string
	work string
	bin  string // the binary the test runs (possibly a symlink)
}

func newMCPHome(t *testing.T) *mcpHome {
	t.Helper()
	root := t.TempDir()
	h := &mcpHome{t: t, root: root, home: filepath.Join(root, "home"), work: filepath.Join(root, "work"), bin: binary}
	must(t, os.MkdirAll(h.home, 0o755))
	must(t, os.MkdirAll(h.work, 0o755))
	return h
}

// initVault creates a file-backend vault (workspace and project
// "default"), for --workspace/--project, which must name what exists.
func (h *mcpHome) initVault() {
	h.t.Helper()
	must(h.t, os.WriteFile(filepath.Join(h.root, "pass"), []byte("vault passphrase for mcp install\n"), 0o600))
	admin := filepath.Join(h.root, "admin")
	must(h.t, os.WriteFile(admin, []byte(adminPassphrase+"\n"), 0o600))
	h.run("init", "--backend", "file", "--admin-passphrase-file", admin).OK(h.t)
}

func (h *mcpHome) run(args ...string) *Result {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = []string{
		"HOME=" + h.home,
		"AGENTSECRETS_HOME=" + filepath.Join(h.root, "as"),
		"AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + filepath.Join(h.root, "pass"),
		"PATH=" + os.Getenv("PATH"),
	}
	cmd.Dir = h.work
	return capture(h.t, cmd, args)
}

// mcpClientCase is one client's file, as the Linux build locates it.
type mcpClientCase struct {
	name string
	rel  string // config path relative to HOME
	// keyPath is where servers live; entry is our entry's expected extra
	// fields besides command and args.
	keyPath []string
	extra   map[string]any
	toml    bool
	// existing is a realistic file with other servers and unknown keys.
	existing string
	// keep are snippets of existing that must survive an install.
	keep []string
	// broken is a file the client itself could not parse.
	broken string
}

const otherSecret = "OTHER-SERVER-TOKEN-must-not-be-printed"

func mcpClientCases() []mcpClientCase {
	strictJSON := func(servers string) string {
		return "{\n  \"theme\": \"dark\",\n  \"" + servers + "\": {\n    \"github\": {\n      \"command\": \"npx\",\n      \"args\": [\"-y\", \"@modelcontextprotocol/server-github\"],\n      \"env\": {\"GITHUB_TOKEN\": \"" + otherSecret + "\"}\n    }\n  },\n  \"zUnknown\": {\"nested\": [1, 2.5, true, null]}\n}\n"
	}
	jsonKeep := []string{`"theme": "dark"`, `"github": {`, otherSecret, `"zUnknown": {"nested": [1, 2.5, true, null]}`}
	brokenJSON := "{\n  \"mcpServers\": {\n    \"github\": {\"env\": {\"GITHUB_TOKEN\": \"" + otherSecret + "\"}\n"
	withComments := func(servers string) string {
		return "// my settings\n{\n  \"theme\": \"dark\", // keep this\n  /* servers */\n  \"" + servers + "\": {\n    \"github\": {\"command\": \"npx\", \"env\": {\"GITHUB_TOKEN\": \"" + otherSecret + "\"}}, // other\n  },\n  \"zUnknown\": [1, 2,],\n}\n"
	}
	commentKeep := []string{"// my settings", "// keep this", "/* servers */", "// other", otherSecret, `"zUnknown": [1, 2,]`}
	vscodeUser := ".config/Code/User"
	return []mcpClientCase{
		{name: "claude-desktop", rel: ".config/Claude/claude_desktop_config.json", keyPath: []string{"mcpServers"},
			existing: strictJSON("mcpServers"), keep: jsonKeep, broken: brokenJSON},
		{name: "claude-code", rel: ".claude.json", keyPath: []string{"mcpServers"}, extra: map[string]any{"type": "stdio"},
			existing: strictJSON("mcpServers"), keep: jsonKeep, broken: brokenJSON},
		{name: "cursor", rel: ".cursor/mcp.json", keyPath: []string{"mcpServers"},
			existing: strictJSON("mcpServers"), keep: jsonKeep,
			// Cursor parses strict JSON: a comment makes the file unusable.
			broken: "{\n  // comment\n  \"mcpServers\": {}\n}\n"},
		{name: "vscode", rel: vscodeUser + "/mcp.json", keyPath: []string{"servers"}, extra: map[string]any{"type": "stdio"},
			existing: withComments("servers"), keep: commentKeep, broken: brokenJSON},
		{name: "windsurf", rel: ".codeium/windsurf/mcp_config.json", keyPath: []string{"mcpServers"},
			existing: strictJSON("mcpServers"), keep: jsonKeep, broken: brokenJSON},
		{name: "zed", rel: ".config/zed/settings.json", keyPath: []string{"context_servers"}, extra: map[string]any{"source": "custom"},
			existing: withComments("context_servers"), keep: commentKeep, broken: "{\n  \"context_servers\": {\n    \"a\": {,}\n  }\n}\n"},
		{name: "codex", rel: ".codex/config.toml", keyPath: []string{"mcp_servers"}, toml: true,
			existing: "# Codex config\nmodel = \"o3\" # keep\n\n[mcp_servers.github]\ncommand = \"npx\"\nenv = { GITHUB_TOKEN = \"" + otherSecret + "\" }\n\n[profiles.fast]\nmodel = \"o4-mini\"\n",
			keep:     []string{"# Codex config", "model = \"o3\" # keep", "[mcp_servers.github]", otherSecret, "[profiles.fast]"},
			broken:   "model = \"o3\"\n[mcp_servers.github\ntoken = \"" + otherSecret + "\"\n"},
		{name: "gemini", rel: ".gemini/settings.json", keyPath: []string{"mcpServers"},
			existing: withComments("mcpServers"), keep: commentKeep, broken: brokenJSON},
		{name: "cline", rel: vscodeUser + "/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json", keyPath: []string{"mcpServers"},
			existing: strictJSON("mcpServers"), keep: jsonKeep, broken: brokenJSON},
		{name: "openclaw", rel: ".openclaw/openclaw.json", keyPath: []string{"mcp", "servers"},
			existing: "// OpenClaw config (JSON5)\n{\n  gateway: { port: 18789 },\n  mcp: {\n    servers: {\n      github: { command: \"npx\", env: { GITHUB_TOKEN: \"" + otherSecret + "\" } },\n    },\n  },\n}\n",
			keep:     []string{"// OpenClaw config (JSON5)", "gateway: { port: 18789 }", "github: { command: \"npx\"", otherSecret},
			broken:   "{\n  mcp: { servers: { github: { token: '" + otherSecret + "' } } }\n}\n"},
	}
}

// resolvedBinary is what every config must name: absolute, no symlinks.
func resolvedBinary(t *testing.T) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(binary)
	must(t, err)
	abs, err := filepath.Abs(r)
	must(t, err)
	return abs
}

// entryOf decodes our entry from a file we created (strict JSON or TOML).
func entryOf(t *testing.T, tc mcpClientCase, data []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if tc.toml {
		if _, err := toml.Decode(string(data), &doc); err != nil {
			t.Fatalf("%s: written TOML does not parse: %v\n%s", tc.name, err, data)
		}
	} else if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: written file is not JSON: %v\n%s", tc.name, err, data)
	}
	var cur any = doc
	for _, k := range append(append([]string{}, tc.keyPath...), "agentsecrets") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %v in\n%s", tc.name, tc.keyPath, data)
		}
		cur = m[k]
	}
	e, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("%s: no agentsecrets entry in\n%s", tc.name, data)
	}
	return e
}

func wantEntry(t *testing.T, tc mcpClientCase, args ...string) map[string]any {
	want := map[string]any{"command": resolvedBinary(t), "args": toAnySlice(append([]string{"mcp", "serve"}, args...))}
	for k, v := range tc.extra {
		want[k] = v
	}
	return want
}

func toAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// clientResult returns the one client result of an mcp install/uninstall.
func clientResult(t *testing.T, r *Result, name string) map[string]any {
	t.Helper()
	r.OK(t)
	for _, c := range r.JSON(t)["clients"].([]any) {
		if m := c.(map[string]any); m["client"] == name {
			return m
		}
	}
	t.Fatalf("no result for %s: %s", name, r.Stdout)
	return nil
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// backups lists the agentsecrets backups next to path.
func backups(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".agentsecrets-backup-*")
	must(t, err)
	return m
}

func TestMcpInstallClients(t *testing.T) {
	for _, tc := range mcpClientCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newMCPHome(t)
			h.initVault()
			path := filepath.Join(h.home, filepath.FromSlash(tc.rel))

			// --print on a missing file: reports "added", shows the entry, writes nothing.
			r := h.run("mcp", "install", "--client", tc.name, "--print")
			c := clientResult(t, r, tc.name)
			if c["action"] != "added" || c["path"] != path || r.JSON(t)["dry_run"] != true || !strings.Contains(c["entry"].(string), "mcp") {
				t.Errorf("--print: %s", r.Stdout)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("--print created %s", path)
			}

			// Fresh file.
			c = clientResult(t, h.run("mcp", "install", "--client", tc.name), tc.name)
			if c["action"] != "added" || c["backup"] != nil {
				t.Errorf("fresh install: %v", c)
			}
			fresh := readFile(t, path)
			if got, want := entryOf(t, tc, fresh), wantEntry(t, tc); !reflect.DeepEqual(got, want) {
				t.Errorf("entry %v, want %v", got, want)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Errorf("new file mode %v", st.Mode().Perm())
			}
			st1, _ := os.Stat(path)

			// Repeated install: unchanged, nothing written, no backup.
			time.Sleep(10 * time.Millisecond)
			c = clientResult(t, h.run("mcp", "install", "--client", tc.name), tc.name)
			if c["action"] != "unchanged" {
				t.Errorf("second install: %v", c)
			}
			st2, _ := os.Stat(path)
			if !bytes.Equal(readFile(t, path), fresh) || !st1.ModTime().Equal(st2.ModTime()) || len(backups(t, path)) != 0 {
				t.Errorf("second install wrote the file")
			}

			// Uninstall: --print first (reports, writes nothing), then twice.
			c = clientResult(t, h.run("mcp", "uninstall", "--client", tc.name, "--print"), tc.name)
			if c["action"] != "removed" || !bytes.Equal(readFile(t, path), fresh) || len(backups(t, path)) != 0 {
				t.Errorf("uninstall --print: %v", c)
			}
			c = clientResult(t, h.run("mcp", "uninstall", "--client", tc.name), tc.name)
			if c["action"] != "removed" || c["backup"] == nil {
				t.Errorf("uninstall: %v", c)
			}
			if b := readFile(t, c["backup"].(string)); !bytes.Equal(b, fresh) {
				t.Errorf("backup differs from the file before uninstall")
			}
			if bytes.Contains(readFile(t, path), []byte("agentsecrets")) {
				t.Errorf("uninstall left our entry:\n%s", readFile(t, path))
			}
			if c = clientResult(t, h.run("mcp", "uninstall", "--client", tc.name), tc.name); c["action"] != "absent" {
				t.Errorf("second uninstall: %v", c)
			}

			// Existing file with other servers, unknown keys and comments.
			must(t, os.WriteFile(path, []byte(tc.existing), 0o640))
			must(t, os.Chmod(path, 0o640))
			for _, f := range backups(t, path) {
				os.Remove(f)
			}
			r = h.run("mcp", "install", "--client", tc.name, "--print")
			if !bytes.Equal(readFile(t, path), []byte(tc.existing)) || bytes.Contains(r.Stdout, []byte(otherSecret)) {
				t.Errorf("--print on an existing file wrote it or printed its content: %s", r.Stdout)
			}
			c = clientResult(t, h.run("mcp", "install", "--client", tc.name, "--workspace", "default", "--project", "default"), tc.name)
			if c["action"] != "added" {
				t.Errorf("install into existing file: %v", c)
			}
			after := readFile(t, path)
			for _, k := range tc.keep {
				if !bytes.Contains(after, []byte(k)) {
					t.Errorf("install lost %q:\n%s", k, after)
				}
			}
			if !bytes.Contains(after, []byte(`"--workspace"`)) || !bytes.Contains(after, []byte(`"--project"`)) {
				t.Errorf("no --workspace in:\n%s", after)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("install changed the mode to %v", st.Mode().Perm())
			}
			if bk := backups(t, path); len(bk) != 1 || !bytes.Equal(readFile(t, bk[0]), []byte(tc.existing)) {
				t.Errorf("backups %v", bk)
			}
			if tc.name != "openclaw" && !strings.Contains(tc.existing, "//") {
				if got, want := entryOf(t, tc, after), wantEntry(t, tc, "--workspace", "default", "--project", "default"); !reflect.DeepEqual(got, want) {
					t.Errorf("entry %v, want %v", got, want)
				}
			}
			c = clientResult(t, h.run("mcp", "install", "--client", tc.name), tc.name)
			if c["action"] != "updated" {
				t.Errorf("install without --workspace: %v", c)
			}
			c = clientResult(t, h.run("mcp", "uninstall", "--client", tc.name), tc.name)
			if c["action"] != "removed" {
				t.Errorf("uninstall from existing: %v", c)
			}
			if got := readFile(t, path); !bytes.Equal(got, []byte(tc.existing)) {
				t.Errorf("uninstall did not restore the file:\n%s\nwant\n%s", got, tc.existing)
			}

			// A file the client could not parse is refused and left alone.
			must(t, os.WriteFile(path, []byte(tc.broken), 0o600))
			for _, f := range backups(t, path) {
				os.Remove(f)
			}
			for _, verb := range []string{"install", "uninstall"} {
				r = h.run("mcp", verb, "--client", tc.name)
				e := r.ErrorCode(t, "conflict", 6)
				if !strings.Contains(e["hint"].(string), "--print") {
					t.Errorf("%s: hint %v", verb, e["hint"])
				}
				if bytes.Contains(r.Stdout, []byte(otherSecret)) || bytes.Contains(r.Stderr, []byte(otherSecret)) {
					t.Errorf("%s: the error quotes the file's content: %s", verb, r.Stdout)
				}
				if !bytes.Equal(readFile(t, path), []byte(tc.broken)) || len(backups(t, path)) != 0 {
					t.Errorf("%s touched a refused file", verb)
				}
			}
		})
	}
}

func TestMcpInstallSelection(t *testing.T) {
	h := newMCPHome(t)
	// Only Cursor and Codex look installed.
	must(t, os.MkdirAll(filepath.Join(h.home, ".cursor"), 0o755))
	must(t, os.MkdirAll(filepath.Join(h.home, ".codex"), 0o755))

	e := h.run("mcp", "install").ErrorCode(t, "usage", 2)
	if h := e["hint"].(string); !strings.Contains(h, "--all") || !strings.Contains(h, "cursor, codex") {
		t.Errorf("hint %q", h)
	}
	h.run("mcp", "install", "--client", "nope").ErrorCode(t, "usage", 2)
	h.run("mcp", "install", "--all", "--client", "cursor").ErrorCode(t, "usage", 2)
	h.run("mcp", "install", "--client", "cursor", "--workspace", "../x").ErrorCode(t, "usage", 2)
	h.run("mcp", "install", "--client", "cursor", "--project", "default").ErrorCode(t, "not_found", 3)
	h.initVault()
	h.run("mcp", "install", "--client", "cursor", "--project", "nope").ErrorCode(t, "not_found", 3)
	h.run("mcp", "install", "--client", "cursor", "--workspace", "nope").ErrorCode(t, "not_found", 3)

	r := h.run("mcp", "install", "--all").OK(t)
	got := map[string]string{}
	for _, c := range r.JSON(t)["clients"].([]any) {
		m := c.(map[string]any)
		got[m["client"].(string)] = m["action"].(string)
	}
	want := map[string]string{"cursor": "added", "codex": "added"}
	for _, n := range []string{"claude-desktop", "claude-code", "vscode", "windsurf", "zed", "gemini", "cline", "openclaw"} {
		want[n] = "skipped"
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("--all: %v", got)
	}
	var files []string
	filepath.WalkDir(h.home, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(h.home, p)
			files = append(files, rel)
		}
		return nil
	})
	if !reflect.DeepEqual(files, []string{".codex/config.toml", ".cursor/mcp.json"}) {
		t.Errorf("files written: %v", files)
	}

	// One refused file stops the whole run before anything is written.
	must(t, os.MkdirAll(filepath.Join(h.home, ".gemini"), 0o755))
	must(t, os.WriteFile(filepath.Join(h.home, ".gemini", "settings.json"), []byte("{"), 0o600))
	h.run("mcp", "uninstall", "--all").ErrorCode(t, "conflict", 6)
	if !bytes.Contains(readFile(t, filepath.Join(h.home, ".cursor", "mcp.json")), []byte("agentsecrets")) {
		t.Error("a refused file elsewhere did not stop the uninstall")
	}
	must(t, os.Remove(filepath.Join(h.home, ".gemini", "settings.json")))
	r = h.run("mcp", "uninstall", "--all").OK(t)
	if n := len(r.JSON(t)["clients"].([]any)); n != 2 {
		t.Errorf("uninstall --all touched %d clients: %s", n, r.Stdout)
	}

	// Project scope writes into the working directory.
	r = h.run("mcp", "install", "--scope", "project", "--client", "cursor", "--client", "vscode,claude-code", "--project", "default").OK(t)
	if res := r.JSON(t); res["scope"] != "project" || len(res["clients"].([]any)) != 3 {
		t.Errorf("project scope: %s", r.Stdout)
	}
	for rel, key := range map[string]string{".cursor/mcp.json": "mcpServers", ".vscode/mcp.json": "servers", ".mcp.json": "mcpServers"} {
		var doc map[string]map[string]map[string]any
		must(t, json.Unmarshal(readFile(t, filepath.Join(h.work, rel)), &doc))
		if args := doc[key]["agentsecrets"]["args"]; !reflect.DeepEqual(args, []any{"mcp", "serve", "--project", "default"}) {
			t.Errorf("%s: args %v", rel, args)
		}
	}
	h.run("mcp", "install", "--scope", "project", "--client", "codex").ErrorCode(t, "usage", 2)
}

// TestMcpInstallSymlinks: a binary started through a symlink writes the
// resolved path; a config file that is a symlink stays one.
func TestMcpInstallSymlinks(t *testing.T) {
	h := newMCPHome(t)
	link := filepath.Join(h.root, "bin", "agentsecrets")
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	must(t, os.Symlink(binary, link))
	h.bin = link
	dotfiles := filepath.Join(h.root, "dotfiles", "cursor-mcp.json")
	must(t, os.MkdirAll(filepath.Dir(dotfiles), 0o755))
	must(t, os.WriteFile(dotfiles, []byte("{}\n"), 0o600))
	cfg := filepath.Join(h.home, ".cursor", "mcp.json")
	must(t, os.MkdirAll(filepath.Dir(cfg), 0o755))
	must(t, os.Symlink(dotfiles, cfg))

	r := h.run("mcp", "install", "--client", "cursor").OK(t)
	if cmd := r.JSON(t)["command"]; cmd != resolvedBinary(t) {
		t.Errorf("command %v, want %s", cmd, resolvedBinary(t))
	}
	if fi, err := os.Lstat(cfg); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the config symlink was replaced: %v", err)
	}
	tc := mcpClientCases()[2]
	if got := entryOf(t, tc, readFile(t, dotfiles)); got["command"] != resolvedBinary(t) {
		t.Errorf("entry %v", got)
	}
}

// TestMcpInstallOpenClaw: the real openclaw CLI reads what we wrote into
// its JSON5 config, next to a server it had itself.
func TestMcpInstallOpenClaw(t *testing.T) {
	openclaw := jsTool(t, "openclaw")
	h := newMCPHome(t)
	oc := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(openclaw, args...)
		cmd.Env = []string{"HOME=" + h.home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
		cmd.Dir = h.work
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openclaw %v: %v\n%s", args, err, out)
		}
		return out
	}
	cfg := filepath.Join(h.home, ".openclaw", "openclaw.json")
	must(t, os.MkdirAll(filepath.Dir(cfg), 0o700))
	must(t, os.WriteFile(cfg, []byte("// hand-written\n{\n  mcp: {\n    servers: {\n      demo: { command: \"/bin/true\", args: [\"x\"] },\n    },\n  },\n}\n"), 0o600))
	c := clientResult(t, h.run("mcp", "install", "--all"), "openclaw")
	if c["action"] != "added" {
		t.Fatalf("install: %v", c)
	}
	var servers map[string]map[string]any
	out := oc("mcp", "list", "--json")
	if err := json.Unmarshal(out, &servers); err != nil {
		t.Fatalf("openclaw mcp list --json: %v\n%s", err, out)
	}
	if got, want := servers["agentsecrets"], map[string]any{"command": resolvedBinary(t), "args": []any{"mcp", "serve"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("openclaw sees %v, want %v (all: %s)", got, want, out)
	}
	if servers["demo"] == nil {
		t.Errorf("openclaw lost the demo server: %s", out)
	}
	if !bytes.Contains(readFile(t, cfg), []byte("// hand-written")) {
		t.Error("the comment is gone")
	}
}

// TestMcpInstallCanary: with canary values stored (through argv, stdin
// and generation), every config mcp install writes, every agent file,
// every backup and every output, success and error paths, is free of them.
func TestMcpInstallCanary(t *testing.T) {
	backend := "file"
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		backend = "keychain"
	}
	v := NewVault(t, backend)
	c := &canaryRun{t: t, v: v, root: filepath.Dir(v.Home)}
	tmp := filepath.Join(c.root, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "TMPDIR="+tmp)
	defer c.scanAll()
	home := c.root // the harness runs commands with HOME one level above AGENTSECRETS_HOME

	argv := c.canary("MCPARGV", `"\&<>%`)
	c.expectOK(c.run("secrets", "set", "MCP_ARGV="+string(argv)))
	stdin := c.canary("MCPSTDIN", "")
	c.expectOK(c.runIn(append(stdin, '\n'), "secrets", "set", "MCP_STDIN", "--from-stdin"))
	c.expectOK(c.run("secrets", "generate", "MCP_GEN"))
	c.expectOK(c.run("project", "use", "default", "--link"))

	// Every client looks installed.
	must(t, os.MkdirAll(filepath.Join(home, ".claude"), 0o755))
	for _, tc := range mcpClientCases() {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(home, filepath.FromSlash(tc.rel))), 0o755))
	}
	c.expectOK(c.run("mcp", "install", "--all", "--print"))
	c.expectOK(c.run("mcp", "install", "--all", "--workspace", "default", "--project", "default"))
	c.expectOK(c.run("mcp", "install", "--all"))
	c.expectOK(c.run("mcp", "install", "--all", "--scope", "project"))
	c.expectOK(c.run("init", "--agent-files", "--backend", backend, "--admin-passphrase-file", v.AdminFile))
	c.expectOK(c.run("init", "--agent-files", "--backend", backend, "--admin-passphrase-file", v.AdminFile))

	// Error paths: a refused file, bad names, a secret's name where a
	// client name goes, a value where a workspace name goes.
	zed := filepath.Join(home, ".config", "zed", "settings.json")
	good := readFile(t, zed)
	must(t, os.WriteFile(zed, []byte("{ broken"), 0o600))
	c.expectErr(c.run("mcp", "install", "--client", "zed"), "conflict", 6)
	c.expectErr(c.run("mcp", "uninstall", "--all"), "conflict", 6)
	must(t, os.WriteFile(zed, good, 0o600))
	c.expectErr(c.run("mcp", "install", "--client", "MCP_ARGV"), "usage", 2)
	c.expectErr(c.run("mcp", "install", "--client", "cursor", "--workspace", string(argv)), "usage", 2)
	c.expectErr(c.run("mcp", "install", "--client", "cursor", "--project", string(stdin)), "not_found", 3)
	c.expectErr(c.run("mcp", "install", "--client", "cursor", "--workspace", string(stdin)), "not_found", 3)
	c.expectOK(c.run("mcp", "uninstall", "--all"))
	c.expectOK(c.run("mcp", "uninstall", "--all", "--scope", "project"))

	// The scan must have seen what this test is about.
	for _, tc := range mcpClientCases() {
		if len(backups(t, filepath.Join(home, filepath.FromSlash(tc.rel)))) == 0 {
			t.Errorf("%s: no backup written, so the scan proves less than it should", tc.name)
		}
	}
}
