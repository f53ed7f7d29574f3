package commands

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/mcp"
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
	if c.HTTP != "" {
		var err error
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
	s := newMcpSession(env, c)
	// Every record of an answered call is written before the process
	// ends; one that cannot be is an error, not a silent gap.
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()
	srv, err := s.server()
	if err != nil {
		return nil, err
	}
	res = &McpServeResult{Transport: "stdio", Tools: s.toolNames}
	ctx, stop := signal.NotifyContext(env.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr == "" {
		if env.IO.StdinTTY {
			fmt.Fprintln(env.IO.Err, "agentsecrets mcp serve speaks MCP on stdin and stdout: add it to an MCP client's config (see README, MCP); Ctrl-C stops it")
		}
		err := srv.ServeStdio(ctx, env.IO.In, proto)
		res.Calls = srv.Calls()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, errcode.Errorf(errcode.Internal, "mcp session ended: %v", err)
		}
		return res, nil
	}
	return c.serveHTTP(ctx, env, srv, addr, res)
}

func (c *McpServeCmd) serveHTTP(ctx context.Context, env *Env, srv *mcp.Server, addr string, res *McpServeResult) (*McpServeResult, error) {
	// The token file needs only the state directory: the vault itself is
	// opened by the first call, as over stdio.
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "listen on %s: %v", addr, err), "choose another port, or 0 for a free one")
	}
	defer ln.Close()
	token, err := crypto.Random(32)
	if err != nil {
		return nil, err
	}
	tokenHex := hex.EncodeToString(token)
	if err := dirs.Ensure(); err != nil {
		return nil, err
	}
	res.Transport, res.Address, res.TokenFile = "http", ln.Addr().String(), mcpTokenPath(dirs.State, ln.Addr().String())
	if err := writePrivate(res.TokenFile, []byte(tokenHex+"\n")); err != nil {
		return nil, err
	}
	defer os.Remove(res.TokenFile)
	hs := &http.Server{
		Handler:           srv.HTTPHandler(tokenHex),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
	}
	fmt.Fprintf(env.IO.Err, "agentsecrets mcp listening on http://%s%s (token in %s); Ctrl-C stops it\n", res.Address, mcp.Path, res.TokenFile)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return nil, errcode.Errorf(errcode.Internal, "mcp server stopped: %v", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(shutdown)
	res.Calls = srv.Calls()
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

// mcpSession is what a running server keeps between calls: the vault
// opened once, one audit log, a broker (which caches values until the index
// says a secret changed) and the project tools default to.
type mcpSession struct {
	base    *Env
	linkDir string

	mu     sync.Mutex
	st     *vault.Store
	ix     *vault.Index // read-only once cached; see index
	ixInfo os.FileInfo
	scope  Scope
	// auditor batches the server's audit records, as the proxy's does;
	// close flushes it. brk is the one broker (see broker).
	auditor   *audit.Writer
	brk       *broker.Broker
	toolNames []string
	// callTemplate is a CallCmd holding kong's defaults, copied per call;
	// callFields are its inputs by JSON key.
	callTemplate CallCmd
	callFields   map[string]reflect.StructField
	// audits counts audit records still being written (off the reply's
	// path, as on the proxy); tools that read the log wait for them.
	audits sync.WaitGroup
}

// flushAudit waits until the records of every call answered so far are in
// the log.
func (s *mcpSession) flushAudit(ctx context.Context) error {
	s.audits.Wait()
	s.mu.Lock()
	w := s.auditor
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.Flush(ctx)
}

// close writes every pending audit record and syncs the log.
func (s *mcpSession) close() error {
	s.audits.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auditor == nil {
		return nil
	}
	return s.auditor.Close()
}

// auditAsync writes an audit record in the background.
func (s *mcpSession) auditAsync(f func()) {
	s.audits.Add(1)
	go func() {
		defer s.audits.Done()
		f()
	}()
}

func newMcpSession(env *Env, c *McpServeCmd) *mcpSession {
	return &mcpSession{base: env, linkDir: c.LinkDir, scope: c.Scope}
}

// store opens the vault on first use and keeps it. A failure is not kept:
// a server started before `agentsecrets init` works once the vault exists.
func (s *mcpSession) store() (*vault.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		return s.st, nil
	}
	env := *s.base
	env.store = nil
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	s.st = st
	s.auditor = audit.Open(st.Dirs.State, audit.Options{}).NewWriter()
	return st, nil
}

// broker returns the session's one broker. Nothing per call (response
// cap, timeout) selects it: those travel on the broker.Request, so the
// session keeps one transport and one connection pool however many
// distinct options an agent sends.
func (s *mcpSession) broker(st *vault.Store) *broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.brk == nil {
		s.brk = broker.New(broker.Config{Store: st, Audit: s.auditor, Now: s.base.Now})
	}
	return s.brk
}

// index is the vault's index, re-read only when the file changed (it is
// replaced by rename on every write, as the broker also relies on): the
// user may switch projects while the server runs.
func (s *mcpSession) index(st *vault.Store) (*vault.Index, error) {
	fi, err := os.Stat(st.Dirs.IndexFile())
	if err != nil {
		return st.Index()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix != nil && os.SameFile(fi, s.ixInfo) && fi.ModTime().Equal(s.ixInfo.ModTime()) && fi.Size() == s.ixInfo.Size() {
		return s.ix, nil
	}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	s.ix, s.ixInfo = ix, fi
	return ix, nil
}

func (s *mcpSession) currentScope() Scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scope
}

func (s *mcpSession) setScope(sc Scope) {
	s.mu.Lock()
	s.scope = sc
	s.mu.Unlock()
}

// callEnv is the Env of one tool call: the shared vault, no stdin, no
// terminal (so nothing can be approved through MCP), output discarded
// (results travel as values), the call's context.
func (s *mcpSession) callEnv(ctx context.Context) (*Env, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return &Env{
		IO: &IO{In: bytes.NewReader(nil), Out: io.Discard, Err: io.Discard,
			Prompt: func(string, bool) ([]byte, error) { return nil, term.ErrNoTerminal }},
		Getenv:  s.base.Getenv,
		Now:     s.base.Now,
		Cwd:     s.linkDir,
		Context: ctx,
		globals: s.base.globals,
		store:   st,
	}, nil
}

// mcpToolSpec maps an MCP tool to the command it runs.
type mcpToolSpec struct {
	name, command, title, description string
	ann                               mcp.Annotations
}

// mcpTools is the tool set. None can widen policy, release a value or
// replace one: there is no bind, allowlist, env, import, set, delete or
// openclaw tool, secrets_generate only creates, and nothing reaches a
// terminal to approve with.
func mcpTools() []mcpToolSpec {
	ro := mcp.Annotations{ReadOnly: true, Idempotent: true}
	return []mcpToolSpec{
		{"api_call", "call", "Call an API with secrets injected",
			"Send an HTTP request with secrets injected by name (bearer, basic, header:NAME, query:PARAM, body:PATH, form:FIELD); returns the upstream's response with every echo of a value redacted. The host must be allowlisted and the secret bound to it.",
			mcp.Annotations{OpenWorld: true}},
		{"list_secrets", "secrets list", "List secrets", "List the project's secrets: names, versions and bindings, never values or fingerprints.", ro},
		{"status", "status", "Show status", "Show the vault, backend, current project and what can release values.", ro},
		{"proxy_logs", "proxy logs", "Read the audit log", "Show audit records: hosts, secret names, decisions, never values.", ro},
		{"audit_verify", "audit verify", "Verify the audit log", "Check the audit log's hash chain and report the first broken link.", ro},
		{"secrets_generate", "secrets generate", "Generate a secret",
			"Generate a random value and store it under a new name; the value is never returned. It never replaces a stored value: a name that exists is a conflict.",
			mcp.Annotations{}},
		{"project_list", "project list", "List projects", "List the projects of a workspace.", ro},
		{"project_use", "project use", "Use a project",
			"Make a project the user's current one; this server's later calls use it too.",
			mcp.Annotations{Idempotent: true}},
	}
}

// apiCallExtraSchema holds the schemas of the original AgentSecrets
// api_call inputs, accepted beside the call command's own fields.
func apiCallExtraSchema() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"headers":    json.RawMessage(`{"type":"object","additionalProperties":{"type":"string"},"description":"Plain, non-secret request headers (name to value)."}`),
		"body":       json.RawMessage(`{"oneOf":[{"type":"string"},{"type":"object"},{"type":"array"}],"description":"Request body: a string is sent as is, an object or array as JSON."}`),
		"injections": json.RawMessage(`{"type":"object","additionalProperties":{"type":"string"},"description":"Where to inject which secret (by name): keys bearer, basic, header:<Name>, query:<param>, body:<path>, form:<field>."}`),
	}
}

// apiCallDropped is the call flag api_call does not take: data_file would
// read the server's files (or its stdin, the protocol stream).
const apiCallDropped = "data_file"

// toolSchema is a command's input schema without the drop fields and with
// the add ones.
func toolSchema(input json.RawMessage, drop []string, add map[string]json.RawMessage) (json.RawMessage, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(input, &s); err != nil {
		return nil, err
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(s["properties"], &props); err != nil {
		return nil, err
	}
	for _, k := range drop {
		delete(props, k)
	}
	for k, v := range add {
		props[k] = v
	}
	b, err := json.Marshal(props)
	if err != nil {
		return nil, err
	}
	s["properties"] = b
	return json.Marshal(s)
}

// generateDropped is the generate flag secrets_generate does not take: an
// agent may create generated secrets, never replace one a human stored.
const generateDropped = "overwrite"

// secretsGenerate runs `secrets generate`, create-only. The vault refuses
// an existing name under its lock, so a name created between a check and
// the write is refused too.
func (s *mcpSession) secretsGenerate(ctx context.Context, args json.RawMessage) (any, error) {
	obj, err := ParseInput(args)
	if err != nil {
		return nil, err
	}
	if _, ok := obj[generateDropped]; ok {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "secrets_generate has no overwrite input: it never replaces a stored value"),
			"ask the user to rotate it in a terminal: `agentsecrets secrets generate NAME --overwrite`")
	}
	out, err := s.runCommand(ctx, []string{"secrets", "generate"}, args)
	if errors.Is(err, vault.ErrExists) {
		var name string
		json.Unmarshal(obj["name"], &name) // checked by the command before the vault was asked
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "secret %s already exists; secrets_generate only creates new secrets", name),
			"choose another name, or ask the user to rotate it in a terminal: `agentsecrets secrets generate "+name+" --overwrite`")
	}
	return out, err
}

// server builds the MCP server from the command structs: schemas from the
// same generator as schema/, handlers that run the commands' Run methods.
func (s *mcpSession) server() (*mcp.Server, error) {
	// The process's own parser holds the model the schemas come from:
	// building another is a good part of the time to the first tools/list.
	parser := s.base.parser
	if parser == nil {
		io, _, _, _ := TestIO()
		exited := -1
		var err error
		if parser, err = newParser(&CLI{}, &Env{IO: io}, &exited); err != nil {
			return nil, err
		}
	}
	want := map[string]bool{}
	for _, spec := range mcpTools() {
		want[spec.command] = true
	}
	all, err := commandSchemas(parser, want)
	if err != nil {
		return nil, err
	}
	byCmd := map[string]CommandSchema{}
	for _, cs := range all {
		byCmd[cs.Command] = cs
	}
	if s.callTemplate, err = callDefaults(parser); err != nil {
		return nil, err
	}
	s.callFields = callFields()
	var tools []mcp.Tool
	for _, spec := range mcpTools() {
		cs, ok := byCmd[spec.command]
		if !ok {
			return nil, errcode.Errorf(errcode.Internal, "mcp tool %s: no command %q", spec.name, spec.command)
		}
		t := mcp.Tool{Name: spec.name, Title: spec.title, Description: spec.description, Annotations: spec.ann,
			Input: cs.Input, Output: cs.Output}
		switch spec.name {
		case "api_call":
			if t.Input, err = toolSchema(cs.Input, []string{apiCallDropped}, apiCallExtraSchema()); err != nil {
				return nil, err
			}
			t.Handler = s.apiCall
		case "secrets_generate":
			if t.Input, err = toolSchema(cs.Input, []string{generateDropped}, nil); err != nil {
				return nil, err
			}
			t.Handler = s.secretsGenerate
		case "project_use":
			t.Handler = s.projectUse
		case "proxy_logs", "audit_verify":
			// A session reads its own writes: records of calls it
			// answered are on disk before it reads the log.
			words := strings.Fields(spec.command)
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
				if err := s.flushAudit(ctx); err != nil {
					return nil, err
				}
				return s.runCommand(ctx, words, args)
			}
		default:
			words := strings.Fields(spec.command)
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
				return s.runCommand(ctx, words, args)
			}
		}
		// Errors carry the same hint as the CLI's, naming the command.
		handler, command := t.Handler, spec.command
		t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
			res, err := handler(ctx, args)
			if err != nil {
				return nil, commandHint(err, command)
			}
			return res, nil
		}
		tools = append(tools, t)
		s.toolNames = append(s.toolNames, spec.name)
	}
	return mcp.New("agentsecrets", Version,
		"agentsecrets lets you call APIs with credentials you never see: name a secret, and its value is injected into the request and redacted from the response. Start with status and list_secrets; use api_call for requests.",
		tools)
}

// runCommand runs one command with a JSON object as its input, through the
// same path as `agentsecrets COMMAND --input FILE`: kong checks types,
// enums and required fields and applies defaults, so a tool fails exactly
// as the command would.
func (s *mcpSession) runCommand(ctx context.Context, words []string, args json.RawMessage) (any, error) {
	env, err := s.callEnv(ctx)
	if err != nil {
		return nil, err
	}
	cli, kctx, err := s.parse(env, words, args)
	if err != nil {
		return nil, err
	}
	env.globals = &cli.Globals
	return dispatch(kctx, env)
}

func (s *mcpSession) parse(env *Env, words []string, args json.RawMessage) (*CLI, *kong.Context, error) {
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
	sc := s.currentScope()
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

// projectUse runs `project use` and points this server's later calls at
// the project: a user who says "use project X" means this conversation.
func (s *mcpSession) projectUse(ctx context.Context, args json.RawMessage) (any, error) {
	out, err := s.runCommand(ctx, []string{"project", "use"}, args)
	if err != nil {
		return nil, err
	}
	if res, ok := out.(*ProjectResult); ok && res.LinkFile == "" {
		s.setScope(Scope{Workspace: res.Project.Workspace, Project: res.Project.Name})
	}
	return out, nil
}

// callDefaults is a CallCmd holding kong's defaults for call, built from
// the model (as the input schema's defaults are) without parsing, which
// would overwrite the parsed command line.
func callDefaults(parser *kong.Kong) (CallCmd, error) {
	var c CallCmd
	for _, n := range parser.Model.Children {
		if n.Type != kong.CommandNode || n.Name != "call" {
			continue
		}
		defaults := map[string]any{}
		for _, f := range n.Flags {
			if f.HasDefault && f.Default != "" {
				defaults[inputKey(f.Name)] = typedDefault(f.Value)
			}
		}
		b, err := json.Marshal(defaults)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			return c, errcode.Errorf(errcode.Internal, "call defaults: %v", err)
		}
		return c, nil
	}
	return c, errcode.New(errcode.Internal, "no call command in the grammar")
}

// callFields maps api_call's input keys to CallCmd fields (by json tag).
func callFields() map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				out[name] = f
			}
		}
	}
	walk(reflect.TypeFor[CallCmd]())
	delete(out, apiCallDropped)
	return out
}

// apiCall is the hot path: it decodes the input straight into a CallCmd
// (defaults from the template) instead of building a parser per call, and
// sends through the session's long-lived broker.
func (s *mcpSession) apiCall(ctx context.Context, args json.RawMessage) (any, error) {
	start := s.base.Now()
	env, err := s.callEnv(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := ParseInput(args)
	if err != nil {
		return nil, err
	}
	c := s.callTemplate
	fields := s.callFields
	var extra callExtras
	var bodyRaw json.RawMessage
	flags := map[string]json.RawMessage{}
	for key, raw := range obj {
		switch key {
		case "headers":
			if extra.Header, err = apiCallHeaders(raw); err != nil {
				return nil, err
			}
		case "injections":
			if extra.Injections, err = apiCallInjections(raw); err != nil {
				return nil, err
			}
		case "body":
			bodyRaw = raw
		default:
			f, ok := fields[key]
			if !ok {
				return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %q is not an input (valid: %s)", printableKey(key), strings.Join(apiCallKeys(fields), ", ")),
					"see the tool's inputSchema")
			}
			if f.Type.Kind() == reflect.Slice && bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
				raw = append(append([]byte("["), raw...), ']') // one value where a list is expected
			}
			flags[key] = raw
		}
	}
	if len(flags) > 0 {
		b, _ := json.Marshal(flags)
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %s", jsonFieldError(err)), "see the tool's inputSchema")
		}
	}
	if bodyRaw != nil {
		var isJSON bool
		if extra.Body, isJSON, err = apiCallBody(bodyRaw); err != nil {
			return nil, err
		}
		extra.HasBody = extra.Body != nil
		if isJSON && extra.Header.Get("Content-Type") == "" && !hasContentType(c.RequestHeader) {
			if extra.Header == nil {
				extra.Header = http.Header{}
			}
			extra.Header.Set("Content-Type", "application/json")
		}
	}
	if c.URL == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "api_call needs url"), `e.g. {"url":"https://api.example.com/v1/items","injections":{"bearer":"API_KEY"}}`)
	}
	if c.MaxResponse <= 0 {
		return nil, errcode.New(errcode.Usage, "api_call: max_response must be a positive number of bytes")
	}
	c.MaxResponse = min(c.MaxResponse, mcpMaxResponse)
	// As in parse: the session's workspace unless the tool names one, and
	// its project only if the tool names neither.
	if sc := s.currentScope(); c.Workspace == "" {
		c.Workspace = sc.Workspace
		if c.Project == "" {
			c.Project = sc.Project
		}
	}
	req, err := c.request(env, extra)
	if err != nil {
		return nil, err
	}
	req.FrontEnd = audit.FrontEndMCP
	st := env.store
	ix, err := s.index(st)
	if err != nil {
		return nil, err
	}
	sel, _, err := c.Scope.project(env, ix)
	if err != nil {
		return nil, err
	}
	req.Selection = sel.Selection
	req.MaxResponse = c.MaxResponse
	// The result gets a last scan for the values this request resolved.
	req.Scan = func(r *broker.Redactor) { mcp.Touched(ctx, r.Bytes) }
	return c.send(env, s.broker(st), req, start, s.auditAsync)
}

// mcpMaxResponse caps api_call's decoded response body whatever the call
// asks. A result is held several times over on its way to the client (the
// body, its base64 or JSON text, the result's text and structured copies,
// the JSON-RPC frame), about 24 times its size in all: a 100 KB gzip answer
// decoding to 100 MB under the CLI's 256 MiB default took the server past
// 2 GB. 16 MiB is more than a model's context holds, and keeps a session
// under a few hundred MB.
const mcpMaxResponse = 16 << 20

func apiCallKeys(fields map[string]reflect.StructField) []string {
	keys := []string{"body", "headers", "injections"}
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonFieldError names the field a JSON type error is about, never the
// value that was there.
func jsonFieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q must be of type %s", printableKey(te.Field), te.Type.String())
	}
	return "input does not match the schema"
}

func stringMap(key string, raw json.RawMessage) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %s must be an object of strings", key), "see the tool's inputSchema")
	}
	return m, nil
}

func apiCallHeaders(raw json.RawMessage) (http.Header, error) {
	m, err := stringMap("headers", raw)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range m {
		h.Add(k, v)
	}
	return h, nil
}

// apiCallInjections reads the original tool's injections map, keys in
// sorted order so the request is the same whatever the map order.
func apiCallInjections(raw json.RawMessage) ([]broker.Injection, error) {
	m, err := stringMap("injections", raw)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []broker.Injection
	for _, k := range keys {
		name := m[k]
		style, field, hasField := strings.Cut(k, ":")
		style = strings.ToLower(style)
		var in broker.Injection
		switch {
		case (style == broker.StyleBearer || style == broker.StyleBasic) && !hasField:
			in = broker.Injection{Style: style, Secret: name}
		case (style == broker.StyleHeader || style == broker.StyleQuery || style == broker.StyleBody || style == broker.StyleForm) && hasField && field != "":
			in = broker.Injection{Style: style, Field: field, Secret: name}
		default:
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: injection key %q is not bearer, basic, header:<Name>, query:<param>, body:<path> or form:<field>", printableInjectionKey(k)),
				`e.g. "injections": {"bearer": "STRIPE_KEY", "header:X-Api-Key": "OTHER_KEY"}`)
		}
		if name == "" {
			return nil, errcode.Errorf(errcode.Usage, "api_call: injection %q names no secret", printableInjectionKey(k))
		}
		out = append(out, in)
	}
	return out, nil
}

// printableInjectionKey echoes a key only when it is shaped like one.
func printableInjectionKey(k string) string {
	if len(k) == 0 || len(k) > 64 {
		return fmt.Sprintf("<%d-byte key>", len(k))
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Sprintf("<%d-byte key>", len(k))
		}
	}
	return k
}

// apiCallBody: a JSON string is the body as is; any other JSON value is
// sent as JSON (isJSON), null as no body.
func apiCallBody(raw json.RawMessage) (body []byte, isJSON bool, err error) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return nil, false, nil
	}
	if bytes.HasPrefix(raw, []byte(`"`)) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return nil, false, errcode.New(errcode.Usage, "api_call: body is not valid JSON")
		}
		return []byte(str), false, nil
	}
	return append([]byte(nil), raw...), true, nil
}

func hasContentType(lines []string) bool {
	for _, l := range lines {
		name, _, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Content-Type") {
			return true
		}
	}
	return false
}
