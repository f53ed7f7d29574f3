// Package server is `agentsecrets server`: the zero-knowledge sync API of
// internal/syncapi over SQLite or PostgreSQL.
//
// The server stores accounts (an Argon2id hash of each authentication key,
// public keys, wrapped private keys), devices and sessions (SHA-256 of the
// tokens), and per workspace the members, projects, secret versions and
// allowlist versions as opaque ciphertext with the routing fields beside
// them. It can decrypt none of it (docs/protocol.md).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// CheckListen refuses plain HTTP on anything but a loopback address: off
// the machine, tokens and auth keys must travel inside TLS.
func CheckListen(addr string, withTLS bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "--listen %q is not HOST:PORT", addr), "use --listen 127.0.0.1:8787")
	}
	if withTLS || isLoopback(host) {
		return nil
	}
	return errcode.WithHint(errcode.Errorf(errcode.Usage, "plain HTTP is allowed only on a loopback address, not %s", addr),
		"pass --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1 behind a TLS-terminating proxy")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadTLS reads a certificate and key pair; both or neither.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--tls-cert and --tls-key go together"), "pass both, or neither on a loopback address")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "load the TLS certificate: %v", err), "check --tls-cert and --tls-key (PEM files)")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Timeouts of the HTTP server. Request bodies are at most syncapi.MaxBody,
// so a minute covers a slow link; a slowloris gets ReadHeaderTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = time.Minute
	WriteTimeout      = time.Minute
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
	// ShutdownGrace is how long in-flight requests get after SIGTERM.
	ShutdownGrace = 30 * time.Second
)

// Serve answers on ln until ctx ends, then shuts down gracefully: the
// listener closes, in-flight requests finish (each push commits or rolls
// back whole), and Serve returns. The caller closes the store afterwards.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConfig *tls.Config) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		TLSConfig:         tlsConfig,
		// Request contexts do not derive from ctx: a signal must let
		// in-flight requests finish, not cancel them.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return errcode.Errorf(errcode.Unavailable, "server stopped: %v", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		hs.Close()
		return errcode.Errorf(errcode.Timeout, "requests still running after %s were cut off", ShutdownGrace)
	}
	return nil
}
