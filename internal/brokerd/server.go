package brokerd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
)

// Server serves the broker's socket.
type Server struct {
	// Authorize admits a peer or says why not. It runs for every request
	// on a connection, after net/http parsed the request's head (at most
	// 64 KiB, within 10 s) and before anything else the peer sent is
	// used.
	Authorize func(Peer) error
	// Exec runs one command and returns its exit status.
	Exec func(ctx context.Context, s *Session) int
	// Proxy serves every request that is not an exec upgrade.
	Proxy http.Handler
	// Logf records why a connection was refused or dropped; it is the
	// daemon's log, which never holds a value (nothing of a frame's
	// payload is logged).
	Logf func(format string, args ...any)

	// running counts commands still running, for Shutdown.
	running sync.WaitGroup
}

// The exec handshake must arrive promptly; after it a command may wait on
// a human as long as it likes.
const handshakeTimeout = 10 * time.Second

// Listen creates the socket at path, replacing a stale one (a socket file
// nothing listens on) but nothing else, and sets its mode.
func Listen(path string, mode os.FileMode) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s exists and is not a socket", path), "remove it or choose another --socket")
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "a broker is already listening on %s", path), "run `agentsecrets broker status`")
		}
		if err := os.Remove(path); err != nil {
			return nil, errcode.Errorf(errcode.Unavailable, "remove the stale socket %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, errcode.Errorf(errcode.Unavailable, "create the socket's directory: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "listen on %s: %v", path, err), "check the directory's permissions, or choose another --socket")
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, errcode.Errorf(errcode.Unavailable, "set the socket's mode: %w", err)
	}
	return ln, nil
}

type peerErrKey struct{}

// Serve serves ln until ctx ends, then stops accepting, lets running
// commands finish for grace and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	connState, track := s.connState()
	err := serve.Serve(ctx, ln, s, serve.ServerOptions{ShutdownGrace: grace, Configure: func(hs *http.Server) {
		hs.ReadHeaderTimeout = handshakeTimeout
		hs.MaxHeaderBytes = 64 << 10
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			ctx = context.WithValue(ctx, pendingKey{}, track(c))
			uc, ok := c.(*net.UnixConn)
			if !ok {
				return context.WithValue(ctx, peerErrKey{}, errors.New("not a unix socket connection"))
			}
			p, err := PeerOf(uc)
			if err != nil {
				return context.WithValue(ctx, peerErrKey{}, err)
			}
			return WithPeer(ctx, p)
		}
		hs.ConnState = connState
	}})
	// Hijacked exec connections are not the server's to wait for: running
	// commands get the same grace.
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	return err
}

// connState logs a connection that closed in the middle of a request:
// garbage, a half message or an oversized header, which net/http answers
// and drops without saying so. net/http marks a connection active once it
// has read a byte of a request, so "active and never reached ServeHTTP
// since" is exactly "closed on an incomplete or malformed request"; a
// connection that closes while idle, between whole requests, is not.
func (s *Server) connState() (func(net.Conn, http.ConnState), func(net.Conn) *atomic.Bool) {
	var mu sync.Mutex
	pending := map[net.Conn]*atomic.Bool{}
	track := func(c net.Conn) *atomic.Bool {
		mu.Lock()
		defer mu.Unlock()
		p := new(atomic.Bool)
		pending[c] = p
		return p
	}
	state := func(c net.Conn, st http.ConnState) {
		mu.Lock()
		p := pending[c]
		if st == http.StateHijacked || st == http.StateClosed {
			delete(pending, c)
		}
		mu.Unlock()
		switch {
		case p == nil:
		case st == http.StateActive:
			p.Store(true)
		case st == http.StateClosed && p.Load():
			s.logf("dropped a connection that sent no complete request (malformed, truncated or oversized)")
		}
	}
	return state, track
}

type pendingKey struct{}

// served records that a whole request reached ServeHTTP.
func served(ctx context.Context) {
	if p, ok := ctx.Value(pendingKey{}).(*atomic.Bool); ok {
		p.Store(false)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func writeError(w http.ResponseWriter, err error) {
	rep := errcode.Classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errcode.Lookup(rep.Code).HTTP)
	json.NewEncoder(w).Encode(errcode.Envelope{Error: rep})
}

// ServeHTTP admits the peer, then runs a command or hands the request to
// the proxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	served(r.Context())
	peer, ok := PeerFrom(r.Context())
	if !ok {
		err, _ := r.Context().Value(peerErrKey{}).(error)
		s.logf("refused a connection: %v", err)
		writeError(w, errcode.New(errcode.Denied, "the broker could not identify the connecting process"))
		return
	}
	if err := s.Authorize(peer); err != nil {
		s.logf("refused uid %d (pid %d): %s", peer.UID, peer.PID, errcode.Classify(err).Message)
		writeError(w, err)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), Protocol) {
		s.exec(w, r, peer)
		return
	}
	if s.Proxy == nil {
		writeError(w, errcode.New(errcode.NotFound, "no such endpoint"))
		return
	}
	s.Proxy.ServeHTTP(w, r)
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request, peer Peer) {
	conn, brw, err := switchProtocols(w, Protocol)
	if err != nil {
		s.logf("uid %d: upgrade: %v", peer.UID, err)
		return
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	req, err := readRequest(brw.Reader)
	if err != nil {
		s.logf("uid %d (pid %d): dropped: %v", peer.UID, peer.PID, err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	sess := newSession(conn, brw.Reader, req, peer)
	go sess.readLoop()
	s.running.Add(1)
	defer s.running.Done()
	status := s.Exec(r.Context(), sess)
	if bad := sess.dropReason(); bad != nil {
		s.logf("uid %d (pid %d): dropped: %v", peer.UID, peer.PID, bad)
		return
	}
	sess.sendJSON(FrameExit, Exit{Status: status})
}

// switchProtocols takes over w's connection and answers 101 with the
// Upgrade protocol. On error the connection is closed or was never taken.
func switchProtocols(w http.ResponseWriter, protocol string) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, errcode.New(errcode.Internal, "the connection cannot be upgraded"))
		return nil, nil, errors.New("the connection cannot be upgraded")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + protocol + "\r\nConnection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw, nil
}

func readRequest(br *bufio.Reader) (Request, error) {
	typ, payload, err := ReadFrame(br)
	if err != nil {
		return Request{}, fmt.Errorf("read the request: %w", err)
	}
	if typ != FrameRequest {
		return Request{}, fmt.Errorf("first frame has type %q, not a request", typ)
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		// Not the decoder's text: it quotes a byte of the command line,
		// which may be NAME=VALUE, into the log.
		return Request{}, errors.New("malformed request (not the JSON of a command line)")
	}
	if len(req.Args) == 0 {
		return Request{}, errors.New("request without a command line")
	}
	return req, nil
}
