package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// ServerCmd runs the sync server in the foreground until SIGINT or SIGTERM.
// Its log (JSON lines, one per request) goes to stderr; the result, once it
// has stopped, to stdout.
//
// The server is a second executable, agentsecrets-server (ServerMain), and
// `agentsecrets server` hands its command line over to it (handOffServer).
// agentsecrets itself, which every agent's call starts, links none of the
// server's database drivers: with them, each start paged in and
// initialised about 14 MB more: 7-13% of a one-shot `call`'s time.
type ServerCmd struct {
	Listen  string `default:"127.0.0.1:8787" placeholder:"HOST:PORT" help:"Address to listen on; plain HTTP only on a loopback address, anything else needs --tls-cert and --tls-key." json:"listen,omitempty"`
	DB      string `name:"db" placeholder:"sqlite:PATH|postgres://..." help:"Database: sqlite:PATH (default: server.db in the state directory) or a postgres:// URL." json:"db,omitempty"`
	TLSCert string `name:"tls-cert" placeholder:"FILE" help:"PEM certificate (chain) to serve HTTPS with." json:"tls_cert,omitempty"`
	TLSKey  string `name:"tls-key" placeholder:"FILE" help:"PEM private key of --tls-cert." json:"tls_key,omitempty"`
	Signup  string `enum:"open,closed" default:"closed" help:"closed: only the first account of an empty server, and emails with an open workspace invite, can create an account; open: anyone can." json:"signup,omitempty"`
}

// ServerResult describes a server that has stopped.
type ServerResult struct {
	Address   string    `json:"address"`
	TLS       bool      `json:"tls"`
	Backend   string    `json:"backend" jsonschema:"enum=sqlite,enum=postgres"`
	DB        string    `json:"db" jsonschema:"description=The database, a password in a URL masked"`
	Signup    string    `json:"signup"`
	StartedAt time.Time `json:"started_at"`
	StoppedAt time.Time `json:"stopped_at"`
}

func (r *ServerResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "server at %s (%s) stopped\n", r.Address, r.DB)
	return nil
}

// ServeFunc runs the sync server c describes until ctx ends. Only
// agentsecrets-server sets one (Env.Serve).
type ServeFunc func(ctx context.Context, env *Env, c *ServerCmd) (*ServerResult, error)

func (c *ServerCmd) Run(env *Env) (*ServerResult, error) {
	if env.Serve == nil {
		// Main hands `server` over before parsing; this is a caller
		// that built an Env without the server.
		return nil, errcode.New(errcode.Internal, "this executable has no sync server built in")
	}
	return env.Serve(env.ctx(), env, c)
}

// ServerExecutable is the sync server's executable, installed beside
// agentsecrets.
const ServerExecutable = "agentsecrets-server"

// ServerMain is Main for agentsecrets-server, whose command line is the
// flags of `agentsecrets server`, without the word "server": a flag's
// value may be that word (--tls-cert server), so it is never looked for.
func ServerMain(args []string, env *Env) int {
	return Main(append([]string{"server"}, args...), env)
}

// serverWord is the index in args, as typed, of the word "server" when it
// names the command, else -1. Help is answered here: it needs no server.
func serverWord(args []string) int {
	if !slices.Contains(args, "server") {
		// Every other command line pays only this.
		return -1
	}
	field, ok := commandField(args)
	if !ok || field < 0 || reflect.TypeFor[CLI]().Field(field).Type != reflect.TypeFor[ServerCmd]() {
		return -1
	}
	at, _, _ := commandWord(args)
	return at
}

// handOffServer runs `agentsecrets ARGS` (a server command line, as typed,
// the word "server" at index at) as agentsecrets-server with ARGS but that
// word, and returns its exit status. agentsecrets-server parses them
// again, --input included. On Unix the process becomes the server (exec),
// so a service manager's signals and PID are the server's own.
func handOffServer(env *Env, args []string, at int) (int, error) {
	path, err := findServer(env)
	if err != nil {
		return 0, err
	}
	environ := os.Environ()
	if env.Environ != nil {
		environ = env.Environ()
	}
	flags := append(slices.Clip(args[:at]), args[at+1:]...)
	status, err := execServer(path, flags, environ)
	if err != nil {
		return 0, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "start %s: %v", path, err),
			"run `"+ServerExecutable+" --help` to check the installation")
	}
	return status, nil
}

// findServer looks for agentsecrets-server beside this executable (as every
// release archive, Homebrew and `make install` put it), then on PATH.
func findServer(env *Env) (string, error) {
	name := ServerExecutable
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var dirs []string
	if self, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		dirs = append(dirs, filepath.Dir(self))
	}
	dirs = append(dirs, filepath.SplitList(env.Getenv("PATH"))...)
	for _, dir := range dirs {
		if dir == "" || !filepath.IsAbs(dir) {
			// A relative PATH entry would run whatever the current
			// directory holds.
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && (runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0) {
			return path, nil
		}
	}
	return "", errcode.WithHint(errcode.Errorf(errcode.NotFound, "the sync server is a separate executable, %s, and there is none beside this one or on PATH", name),
		"install it: `go install github.com/agentsecrets/agentsecrets/cmd/agentsecrets-server@latest`, or take it from the release archive, which carries it beside agentsecrets")
}
