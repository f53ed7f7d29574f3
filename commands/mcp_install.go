package commands

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/mcpconfig"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// McpInstallCmd writes our server entry into MCP clients' config files.
type McpInstallCmd struct {
	Client    []string `placeholder:"NAME" help:"Client to configure (repeatable): claude-desktop, claude-code, cursor, vscode, windsurf, zed, codex, gemini, cline, openclaw." json:"client,omitempty"`
	All       bool     `help:"Every client that looks installed." json:"all,omitempty"`
	Print     bool     `help:"Show what would be written; write nothing." json:"print,omitempty"`
	Scope     string   `enum:"user,project" default:"user" help:"user: the client's per-user config; project: the config in the current directory." json:"scope,omitempty" jsonschema:"enum=user,enum=project"`
	Workspace string   `placeholder:"NAME" help:"Workspace the server uses (default: the user's selection when it starts)." json:"workspace,omitempty"`
	Project   string   `placeholder:"NAME" help:"Project the server uses (default: the user's selection when it starts)." json:"project,omitempty"`
}

// McpUninstallCmd removes our server entry from MCP clients' config files.
type McpUninstallCmd struct {
	Client []string `placeholder:"NAME" help:"Client to clean up (repeatable); see 'mcp install --help' for names." json:"client,omitempty"`
	All    bool     `help:"Every client whose config file exists." json:"all,omitempty"`
	Print  bool     `help:"Show what would be removed; write nothing." json:"print,omitempty"`
	Scope  string   `enum:"user,project" default:"user" help:"user: the client's per-user config; project: the config in the current directory." json:"scope,omitempty" jsonschema:"enum=user,enum=project"`
}

// McpClientResult is what happened to one client's config.
type McpClientResult struct {
	Client string `json:"client"`
	Title  string `json:"title"`
	Path   string `json:"path,omitempty"`
	Action string `json:"action" jsonschema:"enum=added,enum=updated,enum=unchanged,enum=removed,enum=skipped,enum=absent"`
	Backup string `json:"backup,omitempty" jsonschema:"description=Copy of the file before this write"`
	Reason string `json:"reason,omitempty"`
	// Entry is our entry in the file's syntax (never the rest of the
	// file, which may hold other servers' credentials).
	Entry string `json:"entry,omitempty" term:"lines"`
}

// McpInstallResult lists every client considered.
type McpInstallResult struct {
	Command string            `json:"command" jsonschema:"description=Absolute, symlink-resolved path of the agentsecrets binary"`
	Args    []string          `json:"args"`
	Scope   string            `json:"scope"`
	DryRun  bool              `json:"dry_run" jsonschema:"description=true with --print: nothing was written"`
	Clients []McpClientResult `json:"clients"`
	Next    []string          `json:"next,omitempty"`
	Notes
}

func (e *Env) platform() mcpconfig.Platform {
	return mcpconfig.Platform{GOOS: runtime.GOOS, Getenv: e.Getenv, Cwd: e.Cwd}
}

// selfPath is the binary clients will start: absolute and with symlinks
// resolved, so a client launched from / or with another PATH finds it, and
// a package manager's shim moving does not silently change what runs.
func selfPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", errcode.Errorf(errcode.Internal, "locate the agentsecrets binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Abs(exe)
}

// pickClients turns --client/--all into clients. keep decides, for --all,
// which clients are included.
func pickClients(names []string, all bool, verb string, keep func(*mcpconfig.Client) bool) ([]*mcpconfig.Client, []*mcpconfig.Client, error) {
	if len(names) > 0 && all {
		return nil, nil, errcode.WithHint(errcode.New(errcode.Usage, "--client and --all exclude each other"), "run `agentsecrets mcp "+verb+" --all` or name clients with --client")
	}
	if len(names) == 0 && !all {
		var seen []string
		for _, c := range mcpconfig.Clients() {
			if keep(c) {
				seen = append(seen, c.Name)
			}
		}
		hint := "run `agentsecrets mcp " + verb + " --client NAME` (clients: " + mcpconfig.NameList() + ")"
		if len(seen) > 0 {
			hint = "run `agentsecrets mcp " + verb + " --all` (found: " + strings.Join(seen, ", ") + ") or `--client NAME`"
		}
		return nil, nil, errcode.WithHint(errcode.New(errcode.Usage, "name the clients with --client NAME, or pass --all"), hint)
	}
	if all {
		var in, out []*mcpconfig.Client
		for _, c := range mcpconfig.Clients() {
			if keep(c) {
				in = append(in, c)
			} else {
				out = append(out, c)
			}
		}
		return in, out, nil
	}
	var in []*mcpconfig.Client
	seen := map[string]bool{}
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			part = strings.TrimSpace(part)
			c := mcpconfig.Lookup(part)
			if c == nil {
				return nil, nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "unknown MCP client %q", part), "clients: "+mcpconfig.NameList())
			}
			if !seen[c.Name] {
				seen[c.Name] = true
				in = append(in, c)
			}
		}
	}
	return in, nil, nil
}

// planAll plans every client before anything is written, so one refused
// file leaves all files as they were.
func planAll(env *Env, clients []*mcpconfig.Client, scope mcpconfig.Scope, explicit bool, plan func(c *mcpconfig.Client, path string) (*mcpconfig.Change, error)) ([]*mcpconfig.Change, []McpClientResult, error) {
	p := env.platform()
	var changes []*mcpconfig.Change
	var skipped []McpClientResult
	for _, c := range clients {
		path, ok := c.Path(p, scope)
		if !ok {
			if explicit {
				return nil, nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s has no per-project MCP config", c.Title), "rerun with --scope user")
			}
			skipped = append(skipped, McpClientResult{Client: c.Name, Title: c.Title, Action: mcpconfig.Skipped, Reason: "no per-project MCP config"})
			continue
		}
		ch, err := plan(c, path)
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, ch)
	}
	return changes, skipped, nil
}

// applyChanges writes every planned change as one (mcpconfig.WriteAll):
// a refusal of any file leaves every file as it was, so a result lists
// backups only of files that were written.
func applyChanges(env *Env, changes []*mcpconfig.Change, dry bool) ([]McpClientResult, error) {
	var backups []string
	if !dry {
		var err error
		if backups, err = mcpconfig.WriteAll(changes, env.Now()); err != nil {
			return nil, err
		}
	}
	var out []McpClientResult
	for i, ch := range changes {
		r := McpClientResult{Client: ch.Client.Name, Title: ch.Client.Title, Path: ch.Path, Action: ch.Action}
		if dry {
			r.Entry = ch.Entry
		} else {
			r.Backup = backups[i]
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *McpInstallCmd) Run(env *Env) (*McpInstallResult, error) {
	for _, f := range []struct{ kind, v string }{{"workspace", c.Workspace}, {"project", c.Project}} {
		if f.v != "" {
			if err := vault.CheckSpaceName(f.kind, f.v); err != nil {
				return nil, errcode.WithHint(err, "pass a "+f.kind+" name from `agentsecrets "+f.kind+" list`")
			}
		}
	}
	if err := c.checkScope(env); err != nil {
		return nil, err
	}
	p := env.platform()
	clients, notFound, err := pickClients(c.Client, c.All, "install", func(cl *mcpconfig.Client) bool { return cl.Installed(p) })
	if err != nil {
		return nil, err
	}
	exe, err := selfPath()
	if err != nil {
		return nil, err
	}
	args := []string{"mcp", "serve"}
	if c.Workspace != "" {
		args = append(args, "--workspace", c.Workspace)
	}
	if c.Project != "" {
		args = append(args, "--project", c.Project)
	}
	scope := mcpconfig.Scope(c.Scope)
	if scope == "" {
		scope = mcpconfig.User
	}
	changes, skipped, err := planAll(env, clients, scope, !c.All, func(cl *mcpconfig.Client, path string) (*mcpconfig.Change, error) {
		return cl.PlanInstall(path, exe, args)
	})
	if err != nil {
		return nil, err
	}
	res := &McpInstallResult{Command: exe, Args: args, Scope: string(scope), DryRun: c.Print, Clients: []McpClientResult{}}
	done, err := applyChanges(env, changes, c.Print)
	if err != nil {
		return nil, err
	}
	res.Clients = append(append(res.Clients, done...), skipped...)
	for _, cl := range notFound {
		res.Clients = append(res.Clients, McpClientResult{Client: cl.Name, Title: cl.Title, Action: mcpconfig.Skipped, Reason: "not installed (name it with --client to configure it anyway)"})
	}
	if len(clients) == 0 {
		res.warn("no MCP client found; name one with --client (clients: %s)", mcpconfig.NameList())
	}
	if c.Print {
		res.Next = []string{"agentsecrets mcp install " + strings.Join(installArgs(c), " ")}
	} else if wrote(done) {
		res.Next = []string{"restart the client so it starts `agentsecrets mcp serve`", "agentsecrets status"}
	}
	return res, nil
}

func wrote(rs []McpClientResult) bool {
	for _, r := range rs {
		if r.Action == mcpconfig.Added || r.Action == mcpconfig.Updated {
			return true
		}
	}
	return false
}

// checkScope makes sure --workspace/--project name what exists, so a
// client is never pointed at a project that is not there. The messages do
// not repeat the names: a value typed in the wrong place must not come back.
func (c *McpInstallCmd) checkScope(env *Env) error {
	if c.Workspace == "" && c.Project == "" {
		return nil
	}
	st, err := env.Store()
	if err != nil {
		return err
	}
	ix, err := st.Index()
	if err != nil {
		return err
	}
	ws := c.Workspace
	if ws == "" {
		ws = ix.Current.Workspace
	}
	w, ok := ix.Workspaces[ws]
	if !ok {
		return errcode.WithHint(errcode.New(errcode.NotFound, "the --workspace given is not a workspace of this vault"), "run `agentsecrets workspace list`")
	}
	if c.Project != "" {
		if _, ok := w.Projects[c.Project]; !ok {
			return errcode.WithHint(errcode.New(errcode.NotFound, "the --project given is not a project of that workspace"), "run `agentsecrets project list`")
		}
	}
	return nil
}

// installArgs is the command line that repeats c without --print.
func installArgs(c *McpInstallCmd) []string {
	var a []string
	if c.All {
		a = append(a, "--all")
	}
	for _, n := range c.Client {
		a = append(a, "--client", n)
	}
	if c.Scope != "" && c.Scope != "user" {
		a = append(a, "--scope", c.Scope)
	}
	if c.Workspace != "" {
		a = append(a, "--workspace", c.Workspace)
	}
	if c.Project != "" {
		a = append(a, "--project", c.Project)
	}
	return a
}

func (c *McpUninstallCmd) Run(env *Env) (*McpInstallResult, error) {
	p := env.platform()
	scope := mcpconfig.Scope(c.Scope)
	if scope == "" {
		scope = mcpconfig.User
	}
	hasFile := func(cl *mcpconfig.Client) bool {
		path, ok := cl.Path(p, scope)
		if !ok {
			return false
		}
		_, err := os.Stat(path)
		return err == nil
	}
	clients, _, err := pickClients(c.Client, c.All, "uninstall", hasFile)
	if err != nil {
		return nil, err
	}
	changes, skipped, err := planAll(env, clients, scope, !c.All, func(cl *mcpconfig.Client, path string) (*mcpconfig.Change, error) {
		return cl.PlanUninstall(path)
	})
	if err != nil {
		return nil, err
	}
	res := &McpInstallResult{Scope: string(scope), DryRun: c.Print, Clients: []McpClientResult{}, Args: []string{}}
	if exe, err := selfPath(); err == nil {
		res.Command = exe
	}
	done, err := applyChanges(env, changes, c.Print)
	if err != nil {
		return nil, err
	}
	res.Clients = append(append(res.Clients, done...), skipped...)
	return res, nil
}

func (r *McpInstallResult) WriteText(w io.Writer) error {
	verb := ""
	if r.DryRun {
		verb = " (dry run: nothing written)"
	}
	fmt.Fprintf(w, "Server: %s%s\n", strings.TrimSpace(r.Command+" "+strings.Join(r.Args, " ")), verb)
	for _, c := range r.Clients {
		line := fmt.Sprintf("  %-15s %s", c.Client, c.Action)
		if c.Path != "" {
			line = fmt.Sprintf("  %-15s %-9s %s", c.Client, c.Action, c.Path)
		}
		if c.Reason != "" {
			line += " (" + c.Reason + ")"
		}
		if c.Backup != "" {
			line += "\n                  backup: " + c.Backup
		}
		fmt.Fprintln(w, line)
		if r.DryRun && c.Entry != "" {
			for _, l := range strings.Split(strings.TrimRight(c.Entry, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	for _, n := range r.Next {
		fmt.Fprintf(w, "Next: %s\n", n)
	}
	return nil
}
