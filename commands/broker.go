package commands

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/term"
	"github.com/agentsecrets/agentsecrets/internal/vault"
	"github.com/alecthomas/kong"
)

// BrokerCmd is the broker daemon: values, policy and the audit log kept
// by a process under its own OS user, which the agent's user cannot read
// (docs/broker.md).
type BrokerCmd struct {
	Install   BrokerInstallCmd   `cmd:"" help:"Create the broker's system user and directories and install its service (run once with sudo)."`
	Uninstall BrokerUninstallCmd `cmd:"" help:"Stop and remove the broker's service, user and files (the vault stays unless --purge)."`
	Run       BrokerRunCmd       `cmd:"" help:"Run the broker daemon in the foreground (its service runs this; without systemd, run it as root with --as USER)."`
	Status    BrokerStatusCmd    `cmd:"" help:"Is a broker configured, can this user reach it, and what may it use there."`
	Token     BrokerTokenCmd     `cmd:"" help:"Per-agent tokens that limit one agent to some of your projects."`
	Migrate   BrokerMigrateCmd   `cmd:"" help:"Move this user's local vault into the broker (values go vault to broker, never to output), then delete it."`
	Whoami    BrokerWhoamiCmd    `cmd:"" hidden:"" help:"What the broker sees: this client's uid, token and grants, and its vault."`
	Receive   BrokerReceiveCmd   `cmd:"" hidden:"" help:"Store a migration bundle read from stdin (broker migrate sends it)."`
}

type BrokerRunCmd struct {
	State  string   `placeholder:"DIR" help:"The daemon's own home: vault, index, policy, audit log (default: the standard place, /var/lib/agentsecrets on Linux)." json:"state,omitempty"`
	Socket string   `placeholder:"PATH" help:"The unix socket to listen on (default: /run/agentsecrets/broker.sock on Linux)." json:"socket,omitempty"`
	User   []string `placeholder:"NAME[=WS[/PROJECT],...]" help:"A user allowed to connect (name or uid), optionally limited to workspaces or projects. Repeatable." json:"user,omitempty"`
	As     string   `placeholder:"USER" help:"Start as root, prepare the directories, then run as USER (for machines without systemd)." json:"as,omitempty"`
}

// BrokerRunResult describes a daemon that has stopped.
type BrokerRunResult struct {
	Socket string `json:"socket"`
	State  string `json:"state"`
	UID    int    `json:"uid"`
}

func (r *BrokerRunResult) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "broker on %s stopped\n", r.Socket)
	return err
}

// The daemon's files in its state directory, beside the vault.
const (
	daemonPassphraseFile = "vault.passphrase"
	daemonSocketMode     = 0o660
)

func (c *BrokerRunCmd) Run(env *Env) (*BrokerRunResult, error) {
	if c.State == "" {
		c.State = brokersvc.DefaultPlan(runtime.GOOS).StateDir
	}
	if c.Socket == "" {
		c.Socket = brokerd.DefaultSocket()
	}
	state, err := filepath.Abs(c.State)
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "--state: %w", err)
	}
	if len(c.User) == 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "no --user: nobody could connect"), "give --user NAME for each user whose agents use this broker")
	}
	clients := map[uint32]clientSpec{}
	for _, u := range c.User {
		spec, err := parseClient(u)
		if err != nil {
			return nil, err
		}
		clients[spec.UID] = spec
	}
	if c.As != "" {
		if err := brokerd.DropTo(c.As, state, filepath.Dir(c.Socket)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, errcode.Errorf(errcode.Unavailable, "create the state directory: %w", err)
	}
	if err := ensurePassphraseFile(filepath.Join(state, daemonPassphraseFile)); err != nil {
		return nil, err
	}
	d := &daemon{getenv: daemonGetenv(state, env.Getenv), clients: clients, guard: env.guard, now: env.Now,
		logger: log.New(env.IO.Err, "agentsecrets broker: ", log.LstdFlags)}
	dirs, err := home.Resolve(d.getenv)
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "state directory: %w", err)
	}
	d.dirs = dirs
	d.rt = serve.New(serve.Options{Open: func() (*vault.Store, error) {
		return vault.Open(dirs, vault.Options{Getenv: d.getenv, Now: env.Now, OnValue: env.touch, OnUnlock: debug.FreeOSMemory,
			VaultPassphrase: func(bool) ([]byte, error) {
				return readPassphraseFile(filepath.Join(state, daemonPassphraseFile), "the broker's vault passphrase file")
			}})
	}, Now: env.Now})
	defer d.rt.Close()

	ln, err := brokerd.Listen(c.Socket, daemonSocketMode)
	if err != nil {
		return nil, err
	}
	defer os.Remove(c.Socket)
	ctx, stop := signal.NotifyContext(env.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d.logger.Printf("listening on %s for %s (state %s)", c.Socket, clientNames(clients), state)
	defer serve.TuneGC(env.Getenv)()
	px := &brokerProxy{d: d}
	srv := &brokerd.Server{Authorize: d.authorize, Exec: d.exec, Proxy: px, Logf: d.logger.Printf}
	serr := srv.Serve(ctx, ln, 10*time.Second)
	// Proxy connections are not the socket server's: finish their requests
	// before the deferred rt.Close writes the last audit records.
	grace, cancel := context.WithTimeout(context.Background(), proxyShutdownGrace)
	defer cancel()
	px.conns.Shutdown(grace)
	if serr != nil {
		return nil, serr
	}
	return &BrokerRunResult{Socket: c.Socket, State: state, UID: os.Getuid()}, nil
}

func clientNames(clients map[uint32]clientSpec) string {
	var names []string
	for _, c := range clients {
		n := fmt.Sprintf("%s (uid %d)", c.Name, c.UID)
		if len(c.Grants) > 0 {
			n += " limited to " + (&limits{grants: c.Grants}).list()
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// ensurePassphraseFile makes the daemon's vault passphrase on first start:
// 32 random bytes, hex, in a file only the daemon's user can read. No
// human types it, so the daemon restarts unattended; the directory's
// owner is the only reader.
func ensurePassphraseFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	raw, err := crypto.Random(32)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600, ".passphrase-", nil); err != nil {
		return errcode.Errorf(errcode.Unavailable, "write the vault passphrase file: %w", err)
	}
	return nil
}

// daemonGetenv is the environment commands see inside the daemon: its
// own home and vault passphrase, never a keychain (the daemon's vault is
// its encrypted file) and never another broker.
func daemonGetenv(state string, base func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "AGENTSECRETS_HOME":
			return state
		case "AGENTSECRETS_VAULT_PASSPHRASE_FILE":
			return filepath.Join(state, daemonPassphraseFile)
		case brokerd.EnvBroker:
			return "none"
		case "DBUS_SESSION_BUS_ADDRESS":
			return ""
		}
		return base(k)
	}
}

// daemon is the state `broker run` keeps between connections.
type daemon struct {
	dirs    home.Dirs
	getenv  func(string) string
	rt      *serve.Runtime
	clients map[uint32]clientSpec
	guard   *valueGuard
	now     func() time.Time
	logger  *log.Logger
}

var errNotAClient = errcode.WithHint(errcode.New(errcode.Denied, "this user may not use the broker"),
	"ask the machine's admin to add you: `sudo agentsecrets broker install --user NAME`")

func (d *daemon) authorize(p brokerd.Peer) error {
	if _, ok := d.clients[p.UID]; !ok {
		return errNotAClient
	}
	return nil
}

// limitsOf is what the client uid may use (nil: everything).
func (d *daemon) limitsOf(uid uint32) *limits {
	spec := d.clients[uid]
	if len(spec.Grants) == 0 {
		return nil
	}
	return &limits{who: fmt.Sprintf("uid %d", spec.UID), grants: spec.Grants}
}

// exec runs one command line for a client: Main, in this process, with
// the client's streams, terminal and files on the far end of the socket.
func (d *daemon) exec(ctx context.Context, sess *brokerd.Session) int {
	ctx, cancel := sess.Context(ctx)
	defer cancel()
	req := sess.Request
	client := audit.Client{UID: sess.Peer.UID, PID: sess.Peer.PID}
	lim := d.limitsOf(sess.Peer.UID)
	var tokErr error
	if req.Token != "" {
		// A token narrows its uid further, and is audited by name. It is
		// checked against the uid's current grants at every use, so
		// narrowing the uid narrows its tokens too.
		tok, err := findBrokerToken(d.dirs.Data, req.Token, sess.Peer.UID)
		if err == nil {
			lim = lim.narrow("token "+tok.Name, tok.Grants)
			client.Token = tok.Name
		}
		tokErr = err
	}
	getenv := func(k string) string {
		if v, ok := req.Env[k]; ok && slices.Contains(clientVars, k) {
			return v
		}
		return d.getenv(k)
	}
	env := &Env{
		IO: &IO{In: sess.Stdin(), Out: sess.Stdout(), Err: sess.Stderr(), StdinTTY: req.StdinTTY, StdoutTTY: req.StdoutTTY,
			Prompt: sess.Prompt, Show: sess.Show},
		Getenv:  getenv,
		Environ: func() []string { return nil },
		Now:     d.now,
		Cwd:     req.Cwd,
		Context: audit.WithClient(ctx, client),
		guard:   d.guard,
		side:    remoteSide{sess},
		limits:  lim,
		daemon:  true,
	}
	if tokErr != nil {
		return reportError(env, prescanFormat(req.Args, env), tokErr, req.Args)
	}
	if client.Token != "" {
		env.touchToken(req.Token)
	}
	if st, err := d.rt.Store(); err == nil {
		env.store = st
	}
	return Main(req.Args, env)
}

// Where each command runs when a broker is in use. Commands that read or
// change the vault, the index, the policy or the audit log run in the
// daemon; the rest are the user's own business (the schema, their MCP
// client configs, the local proxy's listener) or the daemon's operator's.
func runsInDaemon(cmd string) bool {
	switch first, _, _ := strings.Cut(cmd, " "); first {
	case "init", "status", "doctor", "workspace", "project", "secrets", "call", "audit", "openclaw", "account", "login", "logout", "env":
		return true
	case "proxy":
		return cmd == "proxy logs"
	case "mcp":
		return cmd == "mcp serve"
	case "broker":
		return strings.HasPrefix(cmd, "broker token") || cmd == "broker whoami" || cmd == "broker receive"
	}
	return false
}

// errLocalOnly: the daemon was asked to run what only runs on the client.
func errLocalOnly(cmd string) error {
	return errcode.WithHint(errcode.Errorf(errcode.Usage, "`%s` does not run in the broker", cmd), "run it with AGENTSECRETS_BROKER=none on the machine itself")
}

// forward runs a parsed command line on the broker at path and returns
// its exit status; it reports only what went wrong on the way.
func forward(env *Env, path string, args []string, kctx *kong.Context) (int, error) {
	req, err := brokerRequest(env, args)
	if err != nil {
		return 0, err
	}
	cs := newClientSide(env, kctx)
	ctx, stop := cs.interruptible(env.ctx())
	defer stop()
	status, err := brokerd.Exec(ctx, path, req, cs.local(env.IO.In, env.IO.Out))
	// A child still running (the broker went away under it) is the
	// user's own process: it ends as it would have, not cut off here.
	cs.children.Wait()
	if sig := cs.interruptedBy(); sig != nil {
		// Ctrl-C ends a forwarded command as it ends a local one, by the
		// signal, so a shell stops the script around it.
		term.EndBy(sig)
	}
	return status, err
}

// clientVars are the variables of the client's environment the broker
// reads in its place: they choose how the client's output looks.
var clientVars = []string{"NO_COLOR", formatEnv}

// brokerRequest is the request that runs args on the broker for this
// process: its terminal, directory, output variables and broker token.
func brokerRequest(env *Env, args []string) (brokerd.Request, error) {
	req := brokerd.Request{Args: withoutInput(args), StdinTTY: env.IO.StdinTTY, StdoutTTY: env.IO.StdoutTTY, Cwd: env.Cwd}
	for _, k := range clientVars {
		if v, ok := lookupEnv(env, k); ok {
			if req.Env == nil {
				req.Env = map[string]string{}
			}
			req.Env[k] = v
		}
	}
	tok, err := readBrokerToken(env)
	req.Token = tok
	return req, err
}

// withoutInput drops --input from arguments it was already expanded into:
// the daemon must not read the file (or stdin) a second time.
func withoutInput(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			return append(out, args[i:]...)
		case a == "--input":
			i++
		case strings.HasPrefix(a, "--input="):
		default:
			out = append(out, a)
		}
	}
	return out
}

// readBrokerToken reads the per-agent broker token from the file
// AGENTSECRETS_BROKER_TOKEN_FILE names ("" when unset).
func readBrokerToken(env *Env) (string, error) {
	tf := env.Getenv(brokerd.EnvTokenFile)
	if tf == "" {
		return "", nil
	}
	tok, err := readPassphraseFile(tf, brokerd.EnvTokenFile)
	if err != nil {
		return "", err
	}
	defer clear(tok)
	return string(tok), nil
}

// brokerLocal is this process's side of a broker command that starts no
// child: in and out are its stdin and stdout; prompts and the user's
// files are its own.
func brokerLocal(env *Env, in io.Reader, out io.Writer) brokerd.Local {
	return newClientSide(env, nil).local(in, out)
}

func lookupEnv(env *Env, k string) (string, bool) {
	if env.Environ == nil {
		return "", false
	}
	for _, kv := range env.Environ() {
		if name, v, ok := strings.Cut(kv, "="); ok && name == k {
			return v, true
		}
	}
	return "", false
}

// brokerRoute decides, after parsing, whether this process runs the
// command or hands it to a broker: it returns the socket, or "".
func brokerRoute(env *Env, kctx *kong.Context) (string, error) {
	cmd := commandWords(kctx.Command())
	if env.daemon {
		if !runsInDaemon(cmd) {
			return "", errLocalOnly(cmd)
		}
		return "", nil
	}
	if !runsInDaemon(cmd) {
		return "", nil
	}
	path, err := brokerd.Resolve(env.Getenv)
	if err != nil {
		return "", err
	}
	return path, nil
}
