// Package mcpconfig knows the MCP clients agentsecrets can register itself
// with: where each keeps its configuration on macOS, Linux and Windows,
// what shape its server entry has, and how to add or remove that one entry
// while leaving every other byte of the file as the user left it.
//
// JSON-family files are edited by splicing text at byte offsets found by a
// small parser that keeps positions (so key order, comments and spacing
// survive); TOML is edited line-wise around our table. Every edit is
// re-parsed and compared with the original: the only difference allowed is
// our entry. Files are replaced atomically, after a backup.
package mcpconfig

import (
	"os"
	"path/filepath"
)

// ServerName is the key of our entry in every client's config.
const ServerName = "agentsecrets"

// Scope says which config of a client is meant.
type Scope string

const (
	// User is the per-user configuration under the home directory.
	User Scope = "user"
	// Project is the configuration inside the current project.
	Project Scope = "project"
)

// Platform is what path resolution depends on, passed in so the per-OS
// rules are tested on every OS.
type Platform struct {
	GOOS   string // runtime.GOOS of the machine the client runs on
	Home   string
	Getenv func(string) string
	Cwd    string // project root for project scope
}

func (p Platform) env(k string) string {
	if p.Getenv == nil {
		return ""
	}
	return p.Getenv(k)
}

func (p Platform) home() string {
	if p.Home != "" {
		return p.Home
	}
	// On Windows the clients use the profile directory even when a shell
	// (Git Bash, MSYS) has set HOME.
	if u := p.env("USERPROFILE"); p.GOOS == "windows" && u != "" {
		return u
	}
	if h := p.env("HOME"); h != "" {
		return h
	}
	return p.env("USERPROFILE")
}

// appConfig is the per-user application config directory: Application
// Support on macOS, %APPDATA% on Windows, $XDG_CONFIG_HOME (or ~/.config)
// elsewhere.
func (p Platform) appConfig() string {
	switch p.GOOS {
	case "darwin":
		return filepath.Join(p.home(), "Library", "Application Support")
	case "windows":
		if a := p.env("APPDATA"); a != "" {
			return a
		}
		return filepath.Join(p.home(), "AppData", "Roaming")
	}
	if x := p.env("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return x
	}
	return filepath.Join(p.home(), ".config")
}

// Format is the syntax of a client's file and where servers live in it.
type Format struct {
	Dialect Dialect
	TOML    bool
	// Path is the key path of the object that holds servers by name.
	Path []string
}

// Client is one MCP client.
type Client struct {
	Name   string // the --client value
	Title  string
	Format Format
	// entry builds our entry from the command and its arguments.
	entry func(command string, args []string) Object
	user  func(p Platform) string
	// project is nil when the client has no per-project MCP config.
	project func(p Platform) string
	// markers are paths whose existence shows the client is installed.
	markers func(p Platform) []string
}

func plainEntry(command string, args []string) Object {
	return Object{{"command", command}, {"args", args}}
}

func stdioEntry(command string, args []string) Object {
	return Object{{"type", "stdio"}, {"command", command}, {"args", args}}
}

func home(parts ...string) func(Platform) string {
	return func(p Platform) string { return filepath.Join(append([]string{p.home()}, parts...)...) }
}

func project(parts ...string) func(Platform) string {
	return func(p Platform) string { return filepath.Join(append([]string{p.Cwd}, parts...)...) }
}

func vscodeUser(p Platform) string { return filepath.Join(p.appConfig(), "Code", "User") }

const clineID = "saoudrizwan.claude-dev"

// zedConfig is Zed's config directory: ~/.config/zed on macOS and Linux
// (Linux honours XDG_CONFIG_HOME), %APPDATA%\Zed on Windows.
func zedConfig(p Platform) string {
	switch p.GOOS {
	case "darwin":
		return filepath.Join(p.home(), ".config", "zed")
	case "windows":
		return filepath.Join(p.appConfig(), "Zed")
	}
	return filepath.Join(p.appConfig(), "zed")
}

func codexHome(p Platform) string {
	if h := p.env("CODEX_HOME"); h != "" {
		return h
	}
	return filepath.Join(p.home(), ".codex")
}

func claudeCodeUser(p Platform) string {
	if d := p.env("CLAUDE_CONFIG_DIR"); d != "" {
		return filepath.Join(d, ".claude.json")
	}
	return filepath.Join(p.home(), ".claude.json")
}

func openclawState(p Platform) string {
	if d := p.env("OPENCLAW_STATE_DIR"); d != "" {
		return d
	}
	return filepath.Join(p.home(), ".openclaw")
}

func openclawConfig(p Platform) string {
	if f := p.env("OPENCLAW_CONFIG_PATH"); f != "" {
		return f
	}
	return filepath.Join(openclawState(p), "openclaw.json")
}

var mcpServers = []string{"mcpServers"}

// Clients lists every supported client, in the order results are shown.
func Clients() []*Client {
	return []*Client{
		{
			Name: "claude-desktop", Title: "Claude Desktop",
			Format: Format{Dialect: JSON, Path: mcpServers}, entry: plainEntry,
			user: func(p Platform) string {
				return filepath.Join(p.appConfig(), "Claude", "claude_desktop_config.json")
			},
			markers: func(p Platform) []string { return []string{filepath.Join(p.appConfig(), "Claude")} },
		},
		{
			Name: "claude-code", Title: "Claude Code",
			Format: Format{Dialect: JSON, Path: mcpServers}, entry: stdioEntry,
			user: claudeCodeUser, project: project(".mcp.json"),
			markers: func(p Platform) []string { return []string{claudeCodeUser(p), filepath.Join(p.home(), ".claude")} },
		},
		{
			Name: "cursor", Title: "Cursor",
			Format: Format{Dialect: JSON, Path: mcpServers}, entry: plainEntry,
			user: home(".cursor", "mcp.json"), project: project(".cursor", "mcp.json"),
			markers: func(p Platform) []string { return []string{filepath.Join(p.home(), ".cursor")} },
		},
		{
			Name: "vscode", Title: "VS Code",
			Format: Format{Dialect: JSONC, Path: []string{"servers"}}, entry: stdioEntry,
			user:    func(p Platform) string { return filepath.Join(vscodeUser(p), "mcp.json") },
			project: project(".vscode", "mcp.json"),
			markers: func(p Platform) []string { return []string{vscodeUser(p)} },
		},
		{
			Name: "windsurf", Title: "Windsurf",
			Format: Format{Dialect: JSON, Path: mcpServers}, entry: plainEntry,
			user:    home(".codeium", "windsurf", "mcp_config.json"),
			markers: func(p Platform) []string { return []string{filepath.Join(p.home(), ".codeium", "windsurf")} },
		},
		{
			Name: "zed", Title: "Zed",
			Format: Format{Dialect: JSONC, Path: []string{"context_servers"}},
			entry: func(command string, args []string) Object {
				// "source": "custom" is what Zed's settings schema
				// tags a user-defined stdio server with.
				return Object{{"source", "custom"}, {"command", command}, {"args", args}}
			},
			user:    func(p Platform) string { return filepath.Join(zedConfig(p), "settings.json") },
			project: project(".zed", "settings.json"),
			markers: func(p Platform) []string { return []string{zedConfig(p)} },
		},
		{
			Name: "codex", Title: "Codex",
			Format: Format{TOML: true, Path: []string{"mcp_servers"}}, entry: plainEntry,
			user:    func(p Platform) string { return filepath.Join(codexHome(p), "config.toml") },
			markers: func(p Platform) []string { return []string{codexHome(p)} },
		},
		{
			Name: "gemini", Title: "Gemini CLI",
			// Gemini CLI strips comments before parsing settings.json.
			Format: Format{Dialect: JSONC, Path: mcpServers}, entry: plainEntry,
			user: home(".gemini", "settings.json"), project: project(".gemini", "settings.json"),
			markers: func(p Platform) []string { return []string{filepath.Join(p.home(), ".gemini")} },
		},
		{
			Name: "cline", Title: "Cline",
			Format: Format{Dialect: JSON, Path: mcpServers}, entry: plainEntry,
			user: func(p Platform) string {
				return filepath.Join(vscodeUser(p), "globalStorage", clineID, "settings", "cline_mcp_settings.json")
			},
			markers: func(p Platform) []string { return []string{filepath.Join(vscodeUser(p), "globalStorage", clineID)} },
		},
		{
			Name: "openclaw", Title: "OpenClaw",
			Format: Format{Dialect: JSON5, Path: []string{"mcp", "servers"}}, entry: plainEntry,
			user:    openclawConfig,
			markers: func(p Platform) []string { return []string{openclawConfig(p), openclawState(p)} },
		},
	}
}

// Lookup finds a client by its --client name.
func Lookup(name string) *Client {
	for _, c := range Clients() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Names lists every client's --client name.
func Names() []string {
	var out []string
	for _, c := range Clients() {
		out = append(out, c.Name)
	}
	return out
}

// Path is the config file of the client for scope; ok is false when the
// client has no config of that scope.
func (c *Client) Path(p Platform, s Scope) (string, bool) {
	if s == Project {
		if c.project == nil {
			return "", false
		}
		return c.project(p), true
	}
	return c.user(p), true
}

// Installed reports whether the client looks installed: one of its
// marker paths exists.
func (c *Client) Installed(p Platform) bool {
	for _, m := range c.markers(p) {
		if _, err := os.Stat(m); err == nil {
			return true
		}
	}
	return false
}

// Entry is our server entry in this client's shape.
func (c *Client) Entry(command string, args []string) Object {
	return c.entry(command, append([]string{}, args...))
}
