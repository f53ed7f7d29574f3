package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Scope is the workspace and project tools default to.
type Scope struct {
	Workspace, Project string
}

// CommandSchema is a CLI command's input and output JSON Schemas.
type CommandSchema struct {
	Input, Output json.RawMessage
}

// Commands is what the tools need from the CLI, which lives in commands/
// (above every internal package): its grammar, its commands run in
// process, its project resolution and its call result.
type Commands interface {
	// Schemas are the schemas of the named commands ("secrets list").
	Schemas(commands []string) (map[string]CommandSchema, error)
	// Run runs a command with a JSON object as its input, as
	// `agentsecrets COMMAND --input FILE` would; sc fills the workspace
	// and project the input leaves out.
	Run(ctx context.Context, words []string, args json.RawMessage, sc Scope) (any, error)
	// Selection resolves sc (or the user's current project) in ix.
	Selection(ix *vault.Index, sc Scope) (vault.Selection, error)
	// Send sends req through b and reads the redacted response into the
	// call command's result; async closes the response (writing its audit
	// record) off the reply's path.
	Send(ctx context.Context, b *broker.Broker, req *broker.Request, fail bool, async func(func())) (any, error)
	// ProjectUsed is the project a `project use` result made current,
	// unless it wrote a directory link.
	ProjectUsed(out any) (Scope, bool)
	// Hint gives err the hint the CLI would, naming the command.
	Hint(err error, command string) error
}

// Session is a running MCP server's state between calls: the runtime
// (vault, broker, index cache, audit writer), the CLI and the scope tools
// default to, which project_use may change.
type Session struct {
	rt   *serve.Runtime
	cmds Commands

	mu    sync.Mutex
	scope Scope
	names []string
}

// NewSession returns a session on rt.
func NewSession(rt *serve.Runtime, cmds Commands, sc Scope) *Session {
	return &Session{rt: rt, cmds: cmds, scope: sc}
}

func (s *Session) currentScope() Scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scope
}

// ToolNames are the tools the server offers.
func (s *Session) ToolNames() []string { return s.names }

// ToolSpec maps an MCP tool to the command it runs.
type ToolSpec struct {
	Name, Command, Title, Description string
	Annotations                       Annotations
}

// ToolSpecs is the tool set. None can widen policy, release a value or
// replace one: there is no bind, allowlist, env, import, set, delete or
// openclaw tool, secrets_generate only creates, and nothing reaches a
// terminal to approve with. The sync tools move verified versions the
// account signed: secrets_pull replaces a value only with a newer version
// of it and never over a local change (a conflict), secrets_push adds
// versions on top of the server's head and never forces, so neither loses
// a value (every version stays in the server's history).
func ToolSpecs() []ToolSpec {
	ro := Annotations{ReadOnly: true, Idempotent: true}
	return []ToolSpec{
		{"api_call", "call", "Call an API with secrets injected",
			"Send an HTTP request with secrets injected by name (bearer, basic, header:NAME, query:PARAM, body:PATH, form:FIELD); returns the upstream's response with every echo of a value redacted. The host must be allowlisted and the secret bound to it.",
			Annotations{OpenWorld: true}},
		{"list_secrets", "secrets list", "List secrets", "List the project's secrets: names, versions and bindings, never values or fingerprints.", ro},
		{"status", "status", "Show status", "Show the vault, backend, current project, what can release values, and the sync account and drift last recorded (no network call).", ro},
		{"proxy_logs", "proxy logs", "Read the audit log", "Show audit records: hosts, secret names, decisions, never values.", ro},
		{"audit_verify", "audit verify", "Verify the audit log", "Check the audit log's hash chain and report the first broken link.", ro},
		{"secrets_generate", "secrets generate", "Generate a secret",
			"Generate a random value and store it under a new name; the value is never returned. It never replaces a stored value: a name that exists is a conflict.",
			Annotations{}},
		{"project_list", "project list", "List projects", "List the projects of a workspace.", ro},
		{"project_use", "project use", "Use a project",
			"Make a project the user's current one; this server's later calls use it too.",
			Annotations{Idempotent: true}},
		{"secrets_diff", "secrets diff", "Compare with the sync server",
			"Compare the project with its sync server, per name: in_sync, local_only, remote_only, local_newer, remote_newer or conflict. Decided from versions and keyed fingerprints; no value is shown. Records the drift that status shows.",
			Annotations{ReadOnly: true, Idempotent: true, OpenWorld: true}},
		{"secrets_pull", "secrets pull", "Pull from the sync server",
			"Write the server's newer versions (signatures and hash chains verified) into the local vault; values are never returned. A name changed both here and on the server is a conflict and nothing is written.",
			Annotations{Idempotent: true, OpenWorld: true}},
		{"secrets_push", "secrets push", "Push to the sync server",
			"Store local changes on the sync server in one transaction. A name the server changed since this device last synced is a conflict naming it: run secrets_diff, then secrets_pull. It never overwrites the server's newer content (that is the CLI's --force, for a human).",
			Annotations{Idempotent: true, OpenWorld: true}},
	}
}

// statusDropped is the status flag the status tool does not take.
const statusDropped = "check"

// forceDropped is the flag secrets_push and secrets_pull do not take:
// dropping what one device or the other stored is a human's decision, on
// a terminal.
const forceDropped = "force"

// withoutForce runs `secrets push` or `secrets pull` without --force.
func withoutForce(ctx context.Context, args json.RawMessage, run Handler) (any, error) {
	obj, err := inputObject(args)
	if err != nil {
		return nil, err
	}
	if _, ok := obj[forceDropped]; ok {
		return nil, errcode.WithHint(errcode.New(errcode.ApprovalRequired, "the sync tools have no force input: dropping a change made here or on the server is a human's decision"),
			"run secrets_diff, and ask the user to settle the conflict in a terminal (`agentsecrets secrets push --force NAME` or `agentsecrets secrets pull --force NAME`)")
	}
	return run(ctx, args)
}

// Instructions tell a client's model how to start.
const Instructions = "agentsecrets lets you call APIs with credentials you never see: name a secret, and its value is injected into the request and redacted from the response. Start with status and list_secrets; use api_call for requests. With a sync server: status shows drift, secrets_diff compares, secrets_pull brings newer versions in."

// generateDropped is the generate flag secrets_generate does not take: an
// agent may create generated secrets, never replace one a human stored.
const generateDropped = "overwrite"

// Server builds the MCP server: schemas from the CLI's grammar, handlers
// that run its commands, api_call straight through the runtime's broker.
func (s *Session) Server(name, version string) (*Server, error) {
	var commands []string
	for _, spec := range ToolSpecs() {
		commands = append(commands, spec.Command)
	}
	schemas, err := s.cmds.Schemas(commands)
	if err != nil {
		return nil, err
	}
	var tools []Tool
	s.names = nil
	for _, spec := range ToolSpecs() {
		cs, ok := schemas[spec.Command]
		if !ok {
			return nil, errcode.Errorf(errcode.Internal, "mcp tool %s: no command %q", spec.Name, spec.Command)
		}
		t := Tool{Name: spec.Name, Title: spec.Title, Description: spec.Description, Annotations: spec.Annotations,
			Input: cs.Input, Output: cs.Output}
		words := strings.Fields(spec.Command)
		run := func(ctx context.Context, args json.RawMessage) (any, error) {
			return s.cmds.Run(ctx, words, args, s.currentScope())
		}
		switch spec.Name {
		case "api_call":
			if t.Input, err = toolSchema(cs.Input, []string{apiCallDropped}, apiCallExtraSchema()); err != nil {
				return nil, err
			}
			t.Handler = s.apiCall
		case "secrets_generate":
			if t.Input, err = toolSchema(cs.Input, []string{generateDropped}, nil); err != nil {
				return nil, err
			}
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) { return secretsGenerate(ctx, args, run) }
		case "status":
			// The status tool never reaches the network (its annotations
			// say closed world): secrets_diff is the check.
			if t.Input, err = toolSchema(cs.Input, []string{statusDropped}, nil); err != nil {
				return nil, err
			}
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
				obj, err := inputObject(args)
				if err != nil {
					return nil, err
				}
				if _, ok := obj[statusDropped]; ok {
					return nil, errcode.WithHint(errcode.New(errcode.Usage, "the status tool has no check input: it makes no network call"),
						"call secrets_diff to compare with the sync server; status then shows the drift it recorded")
				}
				return run(ctx, args)
			}
		case "secrets_push", "secrets_pull":
			if t.Input, err = toolSchema(cs.Input, []string{forceDropped}, nil); err != nil {
				return nil, err
			}
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) { return withoutForce(ctx, args, run) }
		case "project_use":
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
				out, err := run(ctx, args)
				if err != nil {
					return nil, err
				}
				// A user who says "use project X" means this conversation.
				if sc, ok := s.cmds.ProjectUsed(out); ok {
					s.mu.Lock()
					s.scope = sc
					s.mu.Unlock()
				}
				return out, nil
			}
		case "proxy_logs", "audit_verify":
			// A session reads its own writes: records of calls it
			// answered are on disk before it reads the log.
			t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
				if err := s.rt.Flush(ctx); err != nil {
					return nil, err
				}
				return run(ctx, args)
			}
		default:
			t.Handler = run
		}
		// Errors carry the same hint as the CLI's, naming the command.
		handler, command := t.Handler, spec.Command
		t.Handler = func(ctx context.Context, args json.RawMessage) (any, error) {
			res, err := handler(ctx, args)
			if err != nil {
				return nil, s.cmds.Hint(err, command)
			}
			return res, nil
		}
		tools = append(tools, t)
		s.names = append(s.names, spec.Name)
	}
	return New(name, version, Instructions, tools)
}

// secretsGenerate runs `secrets generate`, create-only. The vault refuses
// an existing name under its lock, so a name created between a check and
// the write is refused too.
func secretsGenerate(ctx context.Context, args json.RawMessage, run Handler) (any, error) {
	obj, err := inputObject(args)
	if err != nil {
		return nil, err
	}
	if _, ok := obj[generateDropped]; ok {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "secrets_generate has no overwrite input: it never replaces a stored value"),
			"ask the user to rotate it in a terminal: `agentsecrets secrets generate NAME --overwrite`")
	}
	out, err := run(ctx, args)
	if errors.Is(err, vault.ErrExists) {
		var name string
		json.Unmarshal(obj["name"], &name) // checked by the command before the vault was asked
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "secret %s already exists; secrets_generate only creates new secrets", name),
			"choose another name, or ask the user to rotate it in a terminal: `agentsecrets secrets generate "+name+" --overwrite`")
	}
	return out, err
}

// inputObject reads a tool's arguments: one JSON object.
func inputObject(args json.RawMessage) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
		return nil, errcode.New(errcode.Usage, "the tool's input must be a JSON object")
	}
	return obj, nil
}

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

// ServeHTTP serves Streamable HTTP on l until ctx ends, then shuts down
// gracefully. The caller closes the runtime afterwards.
func (s *Server) ServeHTTPOn(ctx context.Context, l *serve.Listener) error {
	return serve.Serve(ctx, l, s.HTTPHandler(l.Token), serve.ServerOptions{ShutdownGrace: 5 * time.Second})
}

// Serve runs the session's server over stdio (l nil) or HTTP until the
// client hangs up or ctx ends, and returns the number of tool calls.
func (s *Server) Serve(ctx context.Context, l *serve.Listener, in io.Reader, out io.Writer) (int64, error) {
	if l != nil {
		err := s.ServeHTTPOn(ctx, l)
		return s.Calls(), err
	}
	err := s.ServeStdio(ctx, in, out)
	if err != nil && !errors.Is(err, io.EOF) {
		return s.Calls(), errcode.Errorf(errcode.Internal, "mcp session ended: %v", err)
	}
	return s.Calls(), nil
}
