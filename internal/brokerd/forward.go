package brokerd

// Proxy connections. `proxy start` in broker mode listens on 127.0.0.1 for
// agents and hands each accepted connection itself to the daemon: the
// socket's descriptor travels over a unix connection (SCM_RIGHTS) and the
// daemon serves HTTP on it directly. The client never reads a byte of it:
// the daemon parses the HTTP, checks the Host and the token, injects and
// redacts, so no value and no policy decision is ever in the client's
// process, and a request costs no hop through it (copying the bytes
// through the client added a p50 of 0.06-0.08 ms per request on the
// benchmark machine; a handed-over connection adds nothing after its
// first request).
//
// The hand-over connection starts as an HTTP upgrade (POST
// /v1/proxy-conn, Upgrade: agentsecrets-proxy/1) naming its session's
// token; then each connection is one byte with the descriptor attached.
// The daemon serves the connections it receives with the proxy's routes
// only: bytes an agent sends to the TCP port can never reach the exec
// protocol or the session endpoints, which would otherwise run with the
// rights of the user who started the proxy and no token at all.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
)

// ProxyProtocol is the Upgrade token of a proxy connection, and
// ProxyConnPath the path it is asked for at.
const (
	ProxyProtocol = "agentsecrets-proxy/1"
	ProxyConnPath = "/v1/proxy-conn"
)

// Handover gives connections to the daemon for one session, over one
// long-lived unix connection: a hand-over is then one sendmsg(2).
type Handover struct {
	Path  string
	Token string

	mu sync.Mutex
	c  *net.UnixConn
}

// Give hands conn to the daemon and closes this process's copy. A
// refusal is the daemon's error (unauthorized: no such session, as after
// a daemon restart); conn is then still the caller's.
func (h *Handover) Give(ctx context.Context, conn *net.TCPConn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for retried := false; ; retried = true {
		if err := h.open(ctx); err != nil {
			return err
		}
		err := sendConn(h.c, conn)
		if err == nil {
			conn.Close()
			return nil
		}
		// The daemon closed the connection (it restarted, or stopped):
		// once more on a new one, which says which.
		h.c.Close()
		h.c = nil
		if retried {
			return lostBroker(err)
		}
	}
}

// Open opens the hand-over connection if it is not open. The daemon
// keeps the session while one is.
func (h *Handover) Open(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open(ctx)
}

func (h *Handover) open(ctx context.Context) error {
	if h.c != nil {
		return nil
	}
	c, err := h.dial(ctx)
	if err != nil {
		return err
	}
	h.c = c
	return nil
}

func (h *Handover) dial(ctx context.Context) (*net.UnixConn, error) {
	c, err := Dial(ctx, h.Path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	if err := upgrade(c, br, ProxyConnPath, ProxyProtocol, http.Header{serve.HeaderToken: {h.Token}}); err != nil {
		c.Close()
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok || br.Buffered() > 0 {
		c.Close()
		return nil, lostBroker(errors.New("the broker's hand-over connection is not a quiet unix socket"))
	}
	return uc, nil
}

// Close ends the hand-over connection; connections already given stay
// the daemon's.
func (h *Handover) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c != nil {
		h.c.Close()
		h.c = nil
	}
}

// ProxyConns serves the daemon's side of proxy connections, each in a
// group (its session) that can be shut down on its own.
type ProxyConns struct {
	mu       sync.Mutex
	servers  map[*http.Server]string
	handover map[net.Conn]struct{}
	closed   bool
}

// Serve takes over r's connection (101) as a hand-over connection and
// serves HTTP with h on every connection the client gives on it, each
// until its client closes it or its group is shut down. Their requests
// carry the hand-over connection's Peer (PeerFrom). It returns when the
// client closes the hand-over connection, or at Shutdown.
func (p *ProxyConns) Serve(w http.ResponseWriter, r *http.Request, h http.Handler, group string) error {
	peer, _ := PeerFrom(r.Context())
	uc, _, err := switchProtocols(w, ProxyProtocol)
	if err != nil {
		return err
	}
	defer uc.Close()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errStopping
	}
	if p.handover == nil {
		p.handover = map[net.Conn]struct{}{}
	}
	p.handover[uc] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.handover, uc)
		p.mu.Unlock()
	}()
	for {
		conn, err := receiveConn(uc)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go p.serveOne(conn, h, group, peer)
	}
}

var errStopping = errors.New("the broker is stopping")

// serveOne serves HTTP on one handed-over connection until it closes.
func (p *ProxyConns) serveOne(conn net.Conn, h http.Handler, group string, peer Peer) {
	ln := &oneConn{conn: conn, done: make(chan struct{})}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: handshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return WithPeer(context.Background(), peer) },
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				ln.Close()
			}
		},
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return
	}
	if p.servers == nil {
		p.servers = map[*http.Server]string{}
	}
	p.servers[hs] = group
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.servers, hs)
		p.mu.Unlock()
	}()
	hs.Serve(ln)
	// Serve returns when the listener closes, which is when the one
	// connection did; a Shutdown in progress waits for its handler.
	<-ln.done
}

// Shutdown stops every proxy connection: idle ones now, busy ones once
// their response is written or ctx ends. Serve refuses new ones after it.
func (p *ProxyConns) Shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	for c := range p.handover {
		c.Close()
	}
	p.mu.Unlock()
	p.shutdown(ctx, func(string) bool { return true })
}

// ShutdownGroup stops the connections of one group as Shutdown does.
func (p *ProxyConns) ShutdownGroup(ctx context.Context, group string) {
	p.shutdown(ctx, func(g string) bool { return g == group })
}

func (p *ProxyConns) shutdown(ctx context.Context, match func(string) bool) {
	p.mu.Lock()
	var servers []*http.Server
	for hs, g := range p.servers {
		if match(g) {
			servers = append(servers, hs)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Go(func() {
			if hs.Shutdown(ctx) != nil {
				hs.Close()
			}
		})
	}
	wg.Wait()
}

// ErrProxyConn is the daemon's answer to a proxy connection without a
// live session.
var ErrProxyConn = errcode.WithHint(errcode.New(errcode.Unauthorized, "no proxy session has this token"),
	"start the proxy with `agentsecrets proxy start`; it registers its session with the broker")

// oneConn is a listener that yields one connection, then blocks until
// that connection is closed.
type oneConn struct {
	conn  net.Conn
	once  sync.Once
	taken bool
	mu    sync.Mutex
	done  chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.taken {
		l.taken = true
		l.mu.Unlock()
		return l.conn, nil
	}
	l.mu.Unlock()
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConn) Addr() net.Addr { return l.conn.LocalAddr() }
