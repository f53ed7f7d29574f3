package mcpconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testEntry = Object{{"command", "/opt/bin/agentsecrets"}, {"args", []string{"mcp", "serve"}}}

// TestJSONRoundTrip: install adds exactly our entry, a second install is
// unchanged, and uninstall gives back the original bytes.
func TestJSONRoundTrip(t *testing.T) {
	path := []string{"mcpServers", ServerName}
	cases := []struct {
		name string
		d    Dialect
		path []string
		src  string
		want string // expected text after install ("" = don't check)
	}{
		{name: "empty object", d: JSON, path: path, src: "{}\n",
			want: "{\n  \"mcpServers\": {\n    \"agentsecrets\": {\n      \"command\": \"/opt/bin/agentsecrets\",\n      \"args\": [\n        \"mcp\",\n        \"serve\"\n      ]\n    }\n  }\n}\n"},
		{name: "other servers and unknown keys", d: JSON, path: path,
			src: "{\n  \"zeta\": 1,\n  \"mcpServers\": {\n    \"other\": {\"command\": \"x\", \"env\": {\"K\": \"v\"}}\n  },\n  \"alpha\": [true, null, 1.5e3]\n}\n"},
		{name: "crlf", d: JSONC, path: path, src: "{\r\n  // c\r\n  \"mcpServers\": {\r\n    \"other\": {}\r\n  }\r\n}\r\n"},
		{name: "tabs", d: JSON, path: path, src: "{\n\t\"mcpServers\": {\n\t\t\"other\": {}\n\t}\n}\n"},
		{name: "one line", d: JSON, path: path, src: `{"mcpServers":{"other":{"command":"x"}},"k":"v"}`},
		{name: "comments", d: JSONC, path: path,
			src: "// head\n{\n  /* block */\n  \"mcpServers\": {\n    \"other\": {} // trailing\n  }, // after\n  \"k\": 1\n}\n"},
		{name: "trailing commas", d: JSONC, path: path, src: "{\n  \"mcpServers\": {\n    \"other\": {},\n  },\n}\n"},
		{name: "json5 keys", d: JSON5, path: []string{"mcp", "servers", ServerName},
			src: "{\n  // OpenClaw\n  gateway: { port: 18789 },\n  mcp: {\n    servers: {\n      demo: { command: \"x\" },\n    },\n  },\n}\n"},
		{name: "nested parent missing", d: JSON5, path: []string{"mcp", "servers", ServerName}, src: "{\n  \"meta\": {}\n}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := jsonSet([]byte(tc.src), tc.d, tc.path, testEntry)
			if err != nil || !changed {
				t.Fatalf("install: changed=%v err=%v", changed, err)
			}
			if strings.Contains(tc.src, "\r\n") && strings.Count(string(out), "\n") != strings.Count(string(out), "\r\n") {
				t.Errorf("mixed line endings:\n%q", out)
			}
			if tc.want != "" && string(out) != tc.want {
				t.Errorf("install wrote\n%s\nwant\n%s", out, tc.want)
			}
			for _, keep := range []string{"// head", "/* block */", "// trailing", "// after", "// OpenClaw", `"K": "v"`} {
				if strings.Contains(tc.src, keep) && !strings.Contains(string(out), keep) {
					t.Errorf("install lost %q:\n%s", keep, out)
				}
			}
			again, changed, err := jsonSet(out, tc.d, tc.path, testEntry)
			if err != nil || changed || string(again) != string(out) {
				t.Fatalf("second install: changed=%v err=%v", changed, err)
			}
			back, changed, err := jsonRemove(out, tc.d, tc.path)
			if err != nil || !changed {
				t.Fatalf("uninstall: changed=%v err=%v", changed, err)
			}
			if !strings.Contains(tc.name, "missing") && !strings.Contains(tc.name, "empty") && string(back) != tc.src {
				t.Errorf("uninstall did not restore the file:\n%s\nwant\n%s", back, tc.src)
			}
			if _, changed, err := jsonRemove(back, tc.d, tc.path); err != nil || changed {
				t.Errorf("second uninstall: changed=%v err=%v", changed, err)
			}
		})
	}
}

func TestJSONUpdate(t *testing.T) {
	src := "{\n  \"mcpServers\": {\n    \"agentsecrets\": {\"command\": \"/old\"},\n    \"b\": {}\n  }\n}\n"
	out, changed, err := jsonSet([]byte(src), JSON, []string{"mcpServers", ServerName}, testEntry)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if strings.Contains(string(out), "/old") || !strings.Contains(string(out), `"b": {}`) {
		t.Errorf("update:\n%s", out)
	}
	back, _, err := jsonRemove(out, JSON, []string{"mcpServers", ServerName})
	if err != nil || string(back) != "{\n  \"mcpServers\": {\n    \"b\": {}\n  }\n}\n" {
		t.Errorf("remove first member: %v\n%s", err, back)
	}
}

// TestJSONRefuses: anything the client's own parser would reject, or that
// is ambiguous, is refused, never rewritten.
func TestJSONRefuses(t *testing.T) {
	path := []string{"mcpServers", ServerName}
	cases := []struct {
		name, src string
		d         Dialect
	}{
		{"comment in strict JSON", "{\n  // no\n  \"a\": 1\n}", JSON},
		{"trailing comma in strict JSON", `{"a": 1,}`, JSON},
		{"truncated", `{"mcpServers": {`, JSONC},
		{"garbage", `not json`, JSONC},
		{"array top level", `[]`, JSON},
		{"duplicate key", `{"mcpServers": {}, "mcpServers": {}}`, JSON},
		{"servers not an object", `{"mcpServers": []}`, JSON},
		{"single quotes", `{'a': 1}`, JSON5},
		{"unterminated comment", "{ /* \"a\": 1 }", JSONC},
		{"bad escape", `{"a": "\q"}`, JSON},
		{"text after", `{} {}`, JSON},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := jsonSet([]byte(tc.src), tc.d, path, testEntry); err == nil {
				t.Errorf("install accepted %q", tc.src)
			}
		})
	}
}

func TestSyntaxErrorHasNoContent(t *testing.T) {
	_, _, err := jsonSet([]byte("{\"token\": \"sk-live-SECRETVALUE\" oops}"), JSON, []string{"mcpServers", ServerName}, testEntry)
	if err == nil || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Fatalf("error %v", err)
	}
}

func TestTOML(t *testing.T) {
	entry := Object{{"command", `C:\Program Files\agentsecrets.exe`}, {"args", []string{"mcp", "serve"}}}
	cases := []struct{ name, src string }{
		{"empty", ""},
		{"other tables", "# top\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"x\" # keep\n\n[profiles.a]\nmodel = \"y\"\n"},
		{"no final newline", "model = \"o3\""},
		{"crlf", "model = \"o3\"\r\n\r\n[x]\r\nk = 1\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := tomlSet([]byte(tc.src), "mcp_servers", ServerName, entry)
			if err != nil || !changed {
				t.Fatalf("install: %v %v", changed, err)
			}
			if !strings.Contains(string(out), tc.src) && tc.name != "no final newline" {
				t.Errorf("install disturbed the file:\n%s", out)
			}
			if _, changed, err := tomlSet(out, "mcp_servers", ServerName, entry); err != nil || changed {
				t.Errorf("second install: %v %v", changed, err)
			}
			back, changed, err := tomlRemove(out, "mcp_servers", ServerName)
			if err != nil || !changed {
				t.Fatalf("uninstall: %v %v", changed, err)
			}
			if want := strings.TrimSuffix(tc.src, "\n"); strings.TrimSuffix(string(back), "\n") != want {
				t.Errorf("uninstall left\n%q\nwant\n%q", back, tc.src)
			}
		})
	}
	// An existing table of ours, with a sub-table, in the middle.
	src := "[mcp_servers.agentsecrets]\ncommand = \"/old\"\n\n[mcp_servers.agentsecrets.env]\nX = \"1\"\n\n[other]\nk = 1\n"
	out, changed, err := tomlSet([]byte(src), "mcp_servers", ServerName, entry)
	if err != nil || !changed || strings.Contains(string(out), "/old") || strings.Contains(string(out), "X = ") || !strings.Contains(string(out), "[other]\nk = 1\n") {
		t.Errorf("update: %v %v\n%s", changed, err, out)
	}
	for _, bad := range []string{
		"mcp_servers = { agentsecrets = { command = \"x\" } }\n",
		"[mcp_servers]\nagentsecrets.command = \"x\"\n",
		"[broken\n",
		"a = \"unterminated\n",
	} {
		if _, _, err := tomlSet([]byte(bad), "mcp_servers", ServerName, entry); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestPaths(t *testing.T) {
	j := filepath.Join
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	mac := Platform{GOOS: "darwin", Home: "/Users/a", Getenv: env(), Cwd: "/w"}
	linux := Platform{GOOS: "linux", Home: "/home/a", Getenv: env(), Cwd: "/w"}
	xdg := Platform{GOOS: "linux", Home: "/home/a", Getenv: env("XDG_CONFIG_HOME", "/x", "CODEX_HOME", "/c", "OPENCLAW_STATE_DIR", "/s"), Cwd: "/w"}
	win := Platform{GOOS: "windows", Getenv: env("HOME", "/c/Users/a", "USERPROFILE", `C:\Users\a`, "APPDATA", `C:\Users\a\AppData\Roaming`), Cwd: `C:\w`}
	appWin := `C:\Users\a\AppData\Roaming`
	cases := []struct {
		client string
		p      Platform
		scope  Scope
		want   string
	}{
		{"claude-desktop", mac, User, "/Users/a/Library/Application Support/Claude/claude_desktop_config.json"},
		{"claude-desktop", linux, User, "/home/a/.config/Claude/claude_desktop_config.json"},
		{"claude-desktop", win, User, j(appWin, "Claude", "claude_desktop_config.json")},
		{"claude-code", linux, User, "/home/a/.claude.json"},
		{"claude-code", win, User, j(`C:\Users\a`, ".claude.json")},
		{"claude-code", linux, Project, "/w/.mcp.json"},
		{"cursor", mac, User, "/Users/a/.cursor/mcp.json"},
		{"cursor", linux, Project, "/w/.cursor/mcp.json"},
		{"vscode", mac, User, "/Users/a/Library/Application Support/Code/User/mcp.json"},
		{"vscode", linux, User, "/home/a/.config/Code/User/mcp.json"},
		{"vscode", xdg, User, "/x/Code/User/mcp.json"},
		{"vscode", win, User, j(appWin, "Code", "User", "mcp.json")},
		{"vscode", linux, Project, "/w/.vscode/mcp.json"},
		{"windsurf", mac, User, "/Users/a/.codeium/windsurf/mcp_config.json"},
		{"windsurf", win, User, j(`C:\Users\a`, ".codeium", "windsurf", "mcp_config.json")},
		{"zed", mac, User, "/Users/a/.config/zed/settings.json"},
		{"zed", xdg, User, "/x/zed/settings.json"},
		{"zed", win, User, j(appWin, "Zed", "settings.json")},
		{"zed", linux, Project, "/w/.zed/settings.json"},
		{"codex", linux, User, "/home/a/.codex/config.toml"},
		{"codex", xdg, User, "/c/config.toml"},
		{"gemini", mac, User, "/Users/a/.gemini/settings.json"},
		{"gemini", linux, Project, "/w/.gemini/settings.json"},
		{"cline", mac, User, "/Users/a/Library/Application Support/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"},
		{"cline", linux, User, "/home/a/.config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"},
		{"cline", win, User, j(appWin, "Code", "User", "globalStorage", "saoudrizwan.claude-dev", "settings", "cline_mcp_settings.json")},
		{"openclaw", linux, User, "/home/a/.openclaw/openclaw.json"},
		{"openclaw", xdg, User, "/s/openclaw.json"},
	}
	for _, tc := range cases {
		c := Lookup(tc.client)
		got, ok := c.Path(tc.p, tc.scope)
		if !ok || got != tc.want {
			t.Errorf("%s %s %s: %q (%v), want %q", tc.client, tc.p.GOOS, tc.scope, got, ok, tc.want)
		}
	}
	for _, name := range []string{"claude-desktop", "windsurf", "codex", "cline", "openclaw"} {
		if _, ok := Lookup(name).Path(linux, Project); ok {
			t.Errorf("%s claims a project scope", name)
		}
	}
}

// TestWrite: backup next to the file with its mode, atomic replace keeps
// the mode, and a file changed behind our back is not overwritten.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcp.json")
	orig := []byte("{\"a\": 1}\n")
	if err := os.WriteFile(path, orig, 0o640); err != nil {
		t.Fatal(err)
	}
	c := Lookup("cursor")
	ch, err := c.PlanInstall(path, "/bin/agentsecrets", []string{"mcp", "serve"})
	if err != nil || ch.Action != Added {
		t.Fatal(err, ch)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	backup, err := ch.Write(now)
	if err != nil {
		t.Fatal(err)
	}
	if backup != path+".agentsecrets-backup-20260102T030405Z" {
		t.Errorf("backup %s", backup)
	}
	b, _ := os.ReadFile(backup)
	if string(b) != string(orig) {
		t.Errorf("backup holds %q", b)
	}
	for _, p := range []string{path, backup} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %v", p, st.Mode().Perm())
		}
	}
	ch, err = c.PlanUninstall(path)
	if err != nil || ch.Action != Removed {
		t.Fatal(err, ch)
	}
	if err := os.WriteFile(path, []byte("{\"changed\": true}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Write(now); err == nil {
		t.Fatal("wrote over a file that changed since it was read")
	}
	b, _ = os.ReadFile(path)
	if string(b) != "{\"changed\": true}\n" {
		t.Errorf("file now %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left files behind: %v", entries)
	}
	// Refused file: error wraps ErrUnparseable, nothing written.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{oops"), 0o600)
	if _, err := c.PlanInstall(bad, "/bin/x", nil); !errors.Is(err, ErrUnparseable) {
		t.Errorf("unparseable: %v", err)
	}
}
