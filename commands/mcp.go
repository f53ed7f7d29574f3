package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/mcp"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/term"
	"github.com/agentsecrets/agentsecrets/internal/vault"
	"github.com/alecthomas/kong"
)

// McpCmd groups the MCP integration: being an MCP server, and registering
// that server with agent clients.
type McpCmd struct {
	Serve     McpServeCmd     `cmd:"" help:"Run the MCP server: stdio by default, Streamable HTTP on 127.0.0.1 with --http."`
	Install   McpInstallCmd   `cmd:"" help:"Add agentsecrets to MCP clients' configs (Claude, Cursor, VS Code, Zed, Codex, ...)."`
	Uninstall McpUninstallCmd `cmd:"" help:"Remove agentsecrets from MCP clients' configs, leaving everything else."`
}

// McpServeCmd runs agentsecrets as an MCP server. MCP clients start servers
// in whatever directory they like (Claude Desktop uses /), so the project
// comes from --workspace/--project, else the user's current selection;
// directory links count only with --link-dir.
type McpServeCmd struct {
	HTTP    string `name:"http" placeholder:"127.0.0.1:PORT" help:"Serve Streamable HTTP on this loopback address instead of stdio; clients send the session token written to the token file (Authorization: Bearer TOKEN)." json:"http,omitempty"`
	LinkDir string `placeholder:"DIR" help:"Honour the project link (.agentsecrets/project.json) at or above DIR; without it links are ignored." json:"link_dir,omitempty"`
	Scope
}

// McpServeResult describes a server that has stopped. Over stdio nothing is
// printed: stdout belonged to the protocol.
type McpServeResult struct {
	Transport string   `json:"transport" jsonschema:"enum=stdio,enum=http"`
	Address   string   `json:"address,omitempty"`
	TokenFile string   `json:"token_file,omitempty"`
	Tools     []string `json:"tools"`
	Calls     int64    `json:"calls"`
}

// quiet tells render to print nothing: stdio is the protocol's.
func (r *McpServeResult) quiet() bool { return r.Transport == "stdio" }

func (r *McpServeResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "mcp server (%s) stopped after %d tool calls\n", r.Transport, r.Calls)
	return nil
}

func mcpTokenPath(stateDir, addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return filepath.Join(stateDir, "mcp-http-"+port+".token")
}

func (c *McpServeCmd) Run(env *Env) (res *McpServeResult, err error) {
	addr := ""
	if c.HTTP != "" && env.daemon {
		// The daemon listens on its socket only: a TCP listener there
		// would answer any local user.
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "mcp serve --http does not run through the broker"), "use `agentsecrets mcp serve` (stdio), which does")
	}
	if c.HTTP != "" {
		if addr, err = mcp.ParseLoopbackAddr(c.HTTP); err != nil {
			return nil, err
		}
	}
	proto := env.IO.Out
	if addr == "" {
		// Over stdio, stdout is the protocol stream from the start: the
		// client reads every byte of it as JSON-RPC. Whatever this
		// command itself reports (an error) goes to stderr.
		env.IO.Out = env.IO.Err
	}
	if err := checkScopeNames(c.Scope); err != nil {
		return nil, err
	}
	cmds := &mcpCommands{base: env, linkDir: c.LinkDir}
	// The vault is opened by the first call, and again after a failure: a
	// server started before `agentsecrets init` works once the vault
	// exists.
	cmds.rt = serve.New(serve.Options{Open: cmds.openStore, Now: env.Now})
	// Every record of an answered call is written before the process
	// ends; one that cannot be is an error, not a silent gap.
	defer func() {
		if cerr := cmds.rt.Close(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()
	session := mcp.NewSession(cmds.rt, cmds, mcp.Scope{Workspace: c.Workspace, Project: c.Project})
	srv, err := session.Server("agentsecrets", buildinfo.Version())
	if err != nil {
		return nil, err
	}
	res = &McpServeResult{Transport: "stdio", Tools: session.ToolNames()}
	ctx, stop := signal.NotifyContext(env.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ln *serve.Listener
	if addr == "" {
		if env.IO.StdinTTY {
			fmt.Fprintln(env.IO.Err, "agentsecrets mcp serve speaks MCP on stdin and stdout: add it to an MCP client's config (see README, MCP); Ctrl-C stops it")
		}
	} else {
		// The token file needs only the state directory.
		dirs, err := env.Dirs()
		if err != nil {
			return nil, err
		}
		if err := dirs.Ensure(); err != nil {
			return nil, err
		}
		if ln, err = serve.Listen(addr, "choose another port, or 0 for a free one", func(a string) string { return mcpTokenPath(dirs.State, a) }); err != nil {
			return nil, err
		}
		defer ln.Close()
		defer os.Remove(ln.TokenFile)
		res.Transport, res.Address, res.TokenFile = "http", ln.Addr().String(), ln.TokenFile
		fmt.Fprintf(env.IO.Err, "agentsecrets mcp listening on http://%s%s (token in %s); Ctrl-C stops it\n", res.Address, mcp.Path, res.TokenFile)
	}
	res.Calls, err = srv.Serve(ctx, ln, env.IO.In, proto)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// checkScopeNames validates explicit names early, so a bad config entry
// fails at start rather than on every call.
func checkScopeNames(s Scope) error {
	if s.Workspace != "" {
		if err := vault.CheckSpaceName("workspace", s.Workspace); err != nil {
			return err
		}
	}
	if s.Project != "" {
		return vault.CheckSpaceName("project", s.Project)
	}
	return nil
}

// mcpCommands is the CLI as the MCP session's tools use it: commands run
// in process through the kong grammar, on the runtime's vault.
type mcpCommands struct {
	base    *Env
	linkDir string
	rt      *serve.Runtime
}

func (m *mcpCommands) openStore() (*vault.Store, error) {
	env := *m.base
	env.store = nil
	return env.Store()
}

// callEnv is the Env of one tool call: the shared vault, no stdin, no
// terminal (so nothing can be approved through MCP), output discarded
// (results travel as values), the call's context.
func (m *mcpCommands) callEnv(ctx context.Context) (*Env, error) {
	st, err := m.rt.Store()
	if err != nil {
		return nil, err
	}
	return &Env{
		IO: &IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard,
			Prompt: func(string) ([]byte, error) { return nil, term.ErrNoTerminal }},
		Getenv:  m.base.Getenv,
		Now:     m.base.Now,
		Cwd:     m.linkDir,
		Context: ctx,
		globals: m.base.globals,
		store:   st,
		side:    m.base.side,
		limits:  m.base.limits,
		daemon:  m.base.daemon,
	}, nil
}

// Schemas come from the process's own parser: building another is a good
// part of the time to the first tools/list.
func (m *mcpCommands) Schemas(commands []string) (map[string]mcp.CommandSchema, error) {
	parser := m.base.parser
	if parser == nil {
		io, _, _, _ := TestIO()
		exited := -1
		var err error
		if parser, err = newParser(&CLI{}, &Env{IO: io}, &exited); err != nil {
			return nil, err
		}
	}
	want := map[string]bool{}
	for _, c := range commands {
		want[c] = true
	}
	all, err := commandSchemas(parser, want)
	if err != nil {
		return nil, err
	}
	out := map[string]mcp.CommandSchema{}
	for _, cs := range all {
		out[cs.Command] = mcp.CommandSchema{Input: cs.Input, Output: cs.Output}
	}
	return out, nil
}

// Run runs one command with a JSON object as its input, through the same
// path as `agentsecrets COMMAND --input FILE`: kong checks types, enums
// and required fields and applies defaults, so a tool fails exactly as the
// command would.
func (m *mcpCommands) Run(ctx context.Context, words []string, args json.RawMessage, sc mcp.Scope) (any, error) {
	env, err := m.callEnv(ctx)
	if err != nil {
		return nil, err
	}
	cli, kctx, err := parseTool(env, words, args, sc)
	if err != nil {
		return nil, err
	}
	env.globals = &cli.Globals
	return dispatch(kctx, env)
}

func (m *mcpCommands) Selection(ix *vault.Index, sc mcp.Scope) (vault.Selection, error) {
	env := &Env{Getenv: m.base.Getenv, Now: m.base.Now, Cwd: m.linkDir, globals: m.base.globals, side: m.base.side, limits: m.base.limits}
	sel, _, err := Scope{Workspace: sc.Workspace, Project: sc.Project}.project(env, ix)
	return sel.Selection, err
}

func (m *mcpCommands) Send(ctx context.Context, b *broker.Broker, req *broker.Request, fail bool, async func(func())) (any, error) {
	env, err := m.callEnv(ctx)
	if err != nil {
		return nil, err
	}
	c := CallCmd{Fail: fail}
	return c.send(env.ctx(), env, b, req, env.Now(), async)
}

func (m *mcpCommands) ProjectUsed(out any) (mcp.Scope, bool) {
	if res, ok := out.(*ProjectResult); ok && res.LinkFile == "" {
		return mcp.Scope{Workspace: res.Project.Workspace, Project: res.Project.Name}, true
	}
	return mcp.Scope{}, false
}

func (m *mcpCommands) Hint(err error, command string) error { return commandHint(err, command) }

// parseTool parses a tool call as the command line it stands for; sc
// fills the workspace and project the input leaves out.
func parseTool(env *Env, words []string, args json.RawMessage, sc mcp.Scope) (*CLI, *kong.Context, error) {
	obj, err := ParseInput(args)
	if err != nil {
		return nil, nil, err
	}
	cli := &CLI{}
	exited := -1
	parser, err := newParser(cli, env, &exited)
	if err != nil {
		return nil, nil, errcode.Errorf(errcode.Internal, "build parser: %w", err)
	}
	parser.Stderr = discard{}
	trace, err := kong.Trace(parser, words)
	if err != nil || trace.Error != nil || trace.Selected() == nil {
		return nil, nil, errcode.Errorf(errcode.Internal, "no command %q", strings.Join(words, " "))
	}
	node := trace.Selected()
	_, ownWorkspace := obj["workspace"]
	for key, val := range map[string]string{"workspace": sc.Workspace, "project": sc.Project} {
		if _, given := obj[key]; given || val == "" || !hasFlag(node, key) {
			continue
		}
		// A tool naming only another workspace gets that workspace's
		// default project, as on the command line.
		if key == "project" && ownWorkspace {
			continue
		}
		obj[key], _ = json.Marshal(val)
	}
	argv, err := inputArgs(node, trace, words, obj, false)
	if err != nil {
		return nil, nil, err
	}
	kctx, err := parser.Parse(argv)
	if exited >= 0 {
		return nil, nil, errcode.New(errcode.Usage, "the input asked for help")
	}
	if err != nil {
		return nil, nil, usageError(err, argv, parser)
	}
	return cli, kctx, nil
}

func hasFlag(n *kong.Node, name string) bool {
	for _, f := range n.Flags {
		if f.Name == name {
			return true
		}
	}
	return false
}
