// Package commands is the agentsecrets command line: one file per command
// group, each command a kong struct whose Run(*Env) returns a result struct.
// Rendering (JSON, text, --select) and error reporting happen once, here
// and in render.go, never inside a command.
package commands

import (
	"errors"
	"reflect"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/alecthomas/kong"
)

// Globals are the flags every command accepts.
type Globals struct {
	Format              string           `enum:"auto,json,text" default:"auto" help:"Output format: auto is JSON unless stdout is a terminal."`
	JSON                bool             `name:"json" help:"Shorthand for --format json."`
	Select              string           `placeholder:"PATH" help:"Print only this gjson path of the JSON result (e.g. secrets.#.name)."`
	Raw                 bool             `help:"With --select: print a string without quotes, and an array one element per line (like jq -r)."`
	Input               string           `placeholder:"FILE|-" help:"Read the command's flags and arguments as one JSON object (see 'agentsecrets schema COMMAND')."`
	VaultPassphraseFile string           `placeholder:"PATH" help:"File holding the encrypted-file vault's passphrase, never the passphrase itself (default: $AGENTSECRETS_VAULT_PASSPHRASE_FILE)."`
	Version             kong.VersionFlag `help:"Print the version and exit."`
}

// CLI is the whole grammar.
type CLI struct {
	Globals

	Init      InitCmd      `cmd:"" help:"Create a local vault (no account, no network)."`
	Status    StatusCmd    `cmd:"" help:"Show the vault, backend, current project and what can release values."`
	Doctor    DoctorCmd    `cmd:"" help:"Check backend, files and index, and say how to fix each problem."`
	Workspace WorkspaceCmd `cmd:"" help:"Manage workspaces and their allowlists."`
	Project   ProjectCmd   `cmd:"" help:"Manage projects."`
	Secrets   SecretsCmd   `cmd:"" help:"Store, generate, list, bind and delete secrets (values never come back out)."`
	Call      CallCmd      `cmd:"" help:"Send an HTTP request with secrets injected by name; print the (redacted) response."`
	Proxy     ProxyCmd     `cmd:"" help:"The local proxy: start, stop, status, logs."`
	Audit     AuditCmd     `cmd:"" help:"Verify the audit log."`
	Mcp       McpCmd       `cmd:"" name:"mcp" help:"Serve agentsecrets to MCP clients, and register it in their configs (Claude, Cursor, VS Code, OpenClaw, ...)."`
	Schema    SchemaCmd    `cmd:"" help:"Print the JSON Schemas of commands' input and output."`
	Env       EnvCmd       `cmd:"" help:"Run a command with approved secrets' values in its environment, masking them in its output (value mode)."`
	Openclaw  OpenclawCmd  `cmd:"" name:"openclaw" help:"OpenClaw integration: the exec SecretRef provider."`
	Account   AccountCmd   `cmd:"" help:"The sync account: create one, show it, list and revoke its devices."`
	Login     LoginCmd     `cmd:"" help:"Sign this device in to a sync account (human-only: password from the terminal or --password-file)."`
	Logout    LogoutCmd    `cmd:"" help:"Sign this device out (ends the session on the server; keeps the account key unless --forget-device)."`
	Server    ServerCmd    `cmd:"" help:"Run the zero-knowledge sync server (foreground; SQLite or PostgreSQL)."`
	Broker    BrokerCmd    `cmd:"" help:"The broker daemon: values and policy under their own OS user, which agents cannot read."`
	Complete  CompleteCmd  `cmd:"" name:"completion" help:"Print the shell completion script for bash, zsh or fish."`
	Version   VersionCmd   `cmd:"" help:"Show the version, commit, build date, Go version and platform of this binary."`
}

// newParser builds the kong parser of the whole grammar. exited records a
// help/--version exit.
func newParser(cli *CLI, env *Env, exited *int) (*kong.Kong, error) {
	return kong.New(cli, parserOptions(env, exited)...)
}

func parserOptions(env *Env, exited *int) []kong.Option {
	return []kong.Option{
		kong.Name("agentsecrets"),
		kong.Description("Let AI agents use API credentials without ever holding them."),
		kong.Writers(env.IO.Out, env.IO.Err),
		kong.Exit(func(code int) { *exited = code }),
		kong.Bind(env),
		kong.Vars{"version": "agentsecrets " + buildinfo.Version()},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Help(helpPrinter),
		kong.ValueFormatter(helpValue),
	}
}

// Main runs one command and returns the process exit status. It never exits
// and never panics on bad input, so tests call it directly.
func Main(args []string, env *Env) int {
	if env.guard == nil {
		env.guard = &valueGuard{}
	}
	if completing(env) {
		return runCompletion(env)
	}
	format := prescanFormat(args, env)
	if at := serverWord(args); at >= 0 && env.Serve == nil {
		// Before --input is read: agentsecrets-server reads it, stdin
		// included, from the command line as typed.
		status, err := handOffServer(env, args, at)
		if err != nil {
			return reportError(env, format, err, args)
		}
		return status
	}
	warmKeychain(args, env)
	cli := &CLI{}
	exited := -1
	parser, err := newParserFor(cli, env, &exited, args)
	if err != nil {
		return reportError(env, format, errcode.Errorf(errcode.Internal, "build parser: %w", err), args)
	}
	// Errors are reported once, by reportError; kong writes nothing to stderr.
	parser.Stderr = discard{}
	// The expanded arguments replace args only on success: the error path
	// must still scrub the arguments the user typed.
	expanded, err := applyInput(parser, args, env)
	if err != nil {
		return reportError(env, format, err, args)
	}
	args = expanded
	kctx, err := parser.Parse(args)
	if exited >= 0 {
		return exited
	}
	if err != nil {
		return reportError(env, format, usageError(err, args, parser), args)
	}
	env.globals = &cli.Globals
	env.parser = parser
	if format, err = resolveFormat(&cli.Globals, env); err != nil {
		return reportError(env, format, err, args)
	}
	if cli.Raw && cli.Select == "" {
		return reportError(env, format, errcode.WithHint(errcode.New(errcode.Usage, "--raw needs --select: it prints one selected field without JSON quoting"),
			"add --select PATH, e.g. `agentsecrets secrets list --select 'secrets.#.name' --raw`"), args)
	}
	if path, err := brokerRoute(env, kctx); err != nil {
		return reportError(env, format, err, args)
	} else if path != "" {
		status, err := forward(env, path, args, kctx)
		if err != nil {
			return reportError(env, format, err, args)
		}
		return status
	}
	result, err := dispatch(kctx, env)
	if err != nil {
		return reportError(env, format, commandHint(err, commandWords(kctx.Command())), args)
	}
	if p, ok := result.(passthrough); ok {
		return p.ExitStatus()
	}
	if err := renderGuarded(env, format, cli.Select, result); err != nil {
		return reportError(env, format, err, args)
	}
	if f, ok := result.(failing); ok {
		if code := f.Failure(); code != "" {
			return errcode.Lookup(code).Exit
		}
	}
	return 0
}

// failing is implemented by results that are printed in full even when
// what the command checked failed (doctor, audit verify, proxy status,
// secrets import with rejected lines): a script reads the exit status,
// a person reads the result. Failure is the code whose exit status the
// process ends with, or "" when nothing failed.
type failing interface {
	Failure() errcode.Code
}

// passthrough is implemented by the results of the commands that own
// stdout once they have started: `env` (the child has the real stdio) and
// `openclaw resolve` (stdout is OpenClaw's protocol). Nothing is rendered
// for them; the exit status is theirs. Errors before that point are reported
// as usual.
type passthrough interface {
	ExitStatus() int
}

// dispatch calls the selected command's Run(*Env) (Result, error). kong's own
// Run accepts only an error return, so the call goes through kctx.Call.
func dispatch(kctx *kong.Context, env *Env) (any, error) {
	node := kctx.Selected()
	if node == nil {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "no command given"), "run `agentsecrets --help`")
	}
	run := node.Target.Addr().MethodByName("Run")
	if !run.IsValid() {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%q needs a subcommand", kctx.Command()), "run `agentsecrets "+kctx.Command()+" --help`")
	}
	// kctx.Call resolves bindings (env) and returns every result of Run.
	out, err := kctx.Call(run.Interface())
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "call %s: %w", kctx.Command(), err)
	}
	if len(out) != 2 {
		return nil, errcode.Errorf(errcode.Internal, "command %q returned %d values", kctx.Command(), len(out))
	}
	if runErr, _ := out[1].(error); runErr != nil {
		return nil, runErr
	}
	if v := reflect.ValueOf(out[0]); !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, errcode.Errorf(errcode.Internal, "command %q returned no result", kctx.Command())
	}
	return out[0], nil
}

// commandHint names the command in the generic hint of a usage error, so
// the hint is a command the user can run as it stands.
func commandHint(err error, cmd string) error {
	rep := errcode.Classify(err)
	if cmd == "" || rep.Code != errcode.Usage || rep.Hint != errcode.Lookup(errcode.Usage).Hint {
		return err
	}
	return errcode.WithHint(err, "run `agentsecrets "+cmd+" --help` or `agentsecrets schema "+cmd+"`")
}

// usageError classifies a kong parse error as usage, unless a coded error
// from one of our hooks or validators is inside it.
func usageError(err error, args []string, parser *kong.Kong) error {
	var coded *errcode.Error
	if errors.As(err, &coded) {
		return err
	}
	msg := scrubTokens(err.Error(), args, grammarWords(parser))
	hint := "run `agentsecrets --help`"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if cmd := pe.Context.Command(); cmd != "" {
			hint = "run `agentsecrets " + commandWords(cmd) + " --help`"
		}
	}
	return errcode.WithHint(errcode.Errorf(errcode.Usage, "%s", msg), hint)
}

// commandWords drops <arg> placeholders from kong's command path.
func commandWords(cmd string) string {
	var words []string
	for _, w := range strings.Fields(cmd) {
		if !strings.HasPrefix(w, "<") {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// grammarWords are the command and flag names, safe to show in errors.
func grammarWords(parser *kong.Kong) map[string]bool {
	words := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		words[n.Name] = true
		for _, f := range n.Flags {
			words[f.Name] = true
			words["--"+f.Name] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	return words
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
