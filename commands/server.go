package commands

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/server"
)

// ServerCmd runs the sync server in the foreground until SIGINT or SIGTERM.
// Its log (JSON lines, one per request) goes to stderr; the result, once it
// has stopped, to stdout.
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

func (c *ServerCmd) Run(env *Env) (*ServerResult, error) {
	tlsConfig, err := server.LoadTLS(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, err
	}
	if err := server.CheckListen(c.Listen, tlsConfig != nil); err != nil {
		return nil, err
	}
	spec := c.DB
	if spec == "" {
		dirs, err := env.Dirs()
		if err != nil {
			return nil, err
		}
		if err := dirs.Ensure(); err != nil {
			return nil, err
		}
		spec = "sqlite:" + server.DefaultSQLitePath(dirs.State)
	}
	backend, display, err := server.ParseDB(spec)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(env.ctx(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := server.Open(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	log := slog.New(slog.NewJSONHandler(env.IO.Err, nil))
	srv, err := server.New(ctx, server.Options{Store: store, Signup: c.Signup, Logger: log, Now: env.Now})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "listen on %s: %v", c.Listen, err), "choose another --listen address")
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	res := &ServerResult{Address: ln.Addr().String(), TLS: tlsConfig != nil, Backend: backend, DB: display, Signup: c.Signup, StartedAt: env.Now().UTC()}
	log.Info("listening", slog.String("url", scheme+"://"+res.Address), slog.String("backend", backend), slog.String("signup", c.Signup))
	if err := server.Serve(ctx, ln, srv, tlsConfig); err != nil {
		return nil, err
	}
	res.StoppedAt = env.Now().UTC()
	log.Info("stopped")
	return res, nil
}
