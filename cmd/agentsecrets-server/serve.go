package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentsecrets/agentsecrets/commands"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/server"
)

// serve is commands.ServeFunc: it checks the setup before anything listens
// or opens, then serves until SIGINT, SIGTERM or the end of ctx.
func serve(ctx context.Context, env *commands.Env, c *commands.ServerCmd) (*commands.ServerResult, error) {
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
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
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
	res := &commands.ServerResult{Address: ln.Addr().String(), TLS: tlsConfig != nil, Backend: backend, DB: display, Signup: c.Signup, StartedAt: env.Now().UTC()}
	log.Info("listening", slog.String("url", scheme+"://"+res.Address), slog.String("backend", backend), slog.String("signup", c.Signup))
	if err := server.Serve(ctx, ln, srv, tlsConfig); err != nil {
		return nil, err
	}
	res.StoppedAt = env.Now().UTC()
	log.Info("stopped")
	return res, nil
}
