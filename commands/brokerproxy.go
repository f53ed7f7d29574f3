package commands

// The local proxy with a broker (docs/broker.md). `proxy start` keeps its
// listener on 127.0.0.1, its token file and its state files in the user's
// home, so agents see the same API; but it hands each accepted connection
// to the daemon (brokerd/forward.go), which serves /proxy on it for the
// session the client registered: the daemon reads, injects and redacts
// every value, and this process never reads a byte of a request.
//
// The session is the proxy's token (made by this process, kept in its
// token file) plus the selection and options it was started with, held
// by the daemon for the client's uid. A daemon that restarted has
// forgotten it: the next proxy connection is refused as unauthorized and
// the client registers the session again, with the same token, so the
// agent's token file stays valid.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/proxy"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// proxySessionsPath is where a client registers (POST) and ends (DELETE)
// its proxy session on the daemon's socket.
const proxySessionsPath = "/v1/proxy-sessions"

// proxySessionRequest registers a proxy session.
type proxySessionRequest struct {
	// Token is the proxy's session token, 32 random bytes in hex.
	Token     string `json:"token"`
	Workspace string `json:"workspace,omitempty"`
	Project   string `json:"project,omitempty"`
	// Link is the project link the client found above its directory, at
	// LinkPath: the selection a local command there would use.
	Link        *vault.Selection `json:"link,omitempty"`
	LinkPath    string           `json:"link_path,omitempty"`
	MaxResponse int64            `json:"max_response,omitempty"`
	Timeout     time.Duration    `json:"timeout,omitempty"`
	// BrokerToken is the per-agent broker token of the client that starts
	// the proxy, if any: it narrows the session as it narrows commands.
	BrokerToken string `json:"broker_token,omitempty"`
}

// proxySessionResult is the selection the session's requests use.
type proxySessionResult struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"`
}

// minProxyToken is the length of a token serve.Listen makes; a shorter
// one could be guessed.
const minProxyToken = 64

// brokerProxy is the daemon's side: the sessions its clients registered
// and the proxy connections they hand over.
type brokerProxy struct {
	d     *daemon
	conns brokerd.ProxyConns

	mu sync.Mutex
	// sessions are keyed by the token's SHA-256, so no lookup compares
	// the token itself in variable time.
	sessions map[[32]byte]*proxySession
	// handovers counts each session's open hand-over connections. A
	// `proxy start` keeps one open while it runs, so the session ends when
	// the last closes: a proxy that was killed leaves nothing behind.
	handovers map[[32]byte]int
}

type proxySession struct {
	uid  uint32
	sess proxy.Session
	// tokenName names the broker token that narrowed the session, for the
	// audit records of its requests.
	tokenName string
}

func (p *brokerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// brokerd.Server admitted the peer before handing the request here.
	peer, _ := brokerd.PeerFrom(r.Context())
	switch {
	case r.URL.Path == brokerd.ProxyConnPath && strings.EqualFold(r.Header.Get("Upgrade"), brokerd.ProxyProtocol):
		p.serveConn(w, r, peer)
	case r.URL.Path == proxySessionsPath && r.Method == http.MethodPost:
		res, err := p.register(r, peer)
		writeJSON(w, res, err)
	case r.URL.Path == proxySessionsPath && r.Method == http.MethodDelete:
		p.end(r.Context(), peer.UID, r.Header.Get(proxy.HeaderToken))
		writeJSON(w, struct{}{}, nil)
	default:
		serve.WriteError(w, errcode.New(errcode.NotFound, "no such endpoint on the broker's socket"))
	}
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		serve.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// register resolves the session's selection as a command of the client
// would (flags, else its project link, else the current selection),
// within the client's limits, and records it. The same client registering
// the same token again replaces its session: `proxy start` does that after
// a daemon restart.
func (p *brokerProxy) register(r *http.Request, peer brokerd.Peer) (*proxySessionResult, error) {
	var req proxySessionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		return nil, errcode.Errorf(errcode.Usage, "malformed proxy session request: %v", err)
	}
	if len(req.Token) < minProxyToken {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "the proxy session token is too short"), "start the proxy with `agentsecrets proxy start`")
	}
	if req.Link != nil {
		if vault.CheckSpaceName("workspace", req.Link.Workspace) != nil || vault.CheckSpaceName("project", req.Link.Project) != nil {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "the project link is malformed"), "rerun `agentsecrets project use NAME --link` in that directory")
		}
	}
	ix, err := p.d.rt.Index()
	if err != nil {
		return nil, err
	}
	lim := p.d.limitsOf(peer.UID)
	tokenName := ""
	if req.BrokerToken != "" {
		tok, err := findBrokerToken(p.d.dirs.Data, req.BrokerToken, peer.UID)
		if err != nil {
			return nil, err
		}
		lim, tokenName = lim.narrow("token "+tok.Name, tok.Grants), tok.Name
	}
	sel, err := Scope{Workspace: req.Workspace, Project: req.Project}.resolveFrom(ix.Current, req.Link, req.LinkPath, lim)
	if err != nil {
		return nil, err
	}
	if err := needProject(sel); err != nil {
		return nil, err
	}
	if _, err := ix.Project(sel.Selection); err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(req.Token))
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.sessions[key]; ok && old.uid != peer.UID {
		return nil, errcode.WithHint(errcode.New(errcode.Conflict, "another user holds this proxy session token"), "restart the proxy: `agentsecrets proxy start` makes a new token")
	}
	if p.sessions == nil {
		p.sessions = map[[32]byte]*proxySession{}
	}
	p.sessions[key] = &proxySession{uid: peer.UID, tokenName: tokenName, sess: proxy.Session{Selection: sel.Selection, Allow: lim.allow,
		MaxResponse: req.MaxResponse, Timeout: req.Timeout}}
	p.d.logger.Printf("uid %d (pid %d): proxy session for %s/%s", peer.UID, peer.PID, sel.Workspace, sel.Project)
	return &proxySessionResult{Workspace: sel.Workspace, Project: sel.Project}, nil
}

// lookup returns the session of token if uid registered it.
func (p *brokerProxy) lookup(uid uint32, token string) (*proxySession, bool) {
	key := sha256.Sum256([]byte(token))
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[key]
	if !ok || s.uid != uid {
		return nil, false
	}
	return s, true
}

// end forgets uid's session of token and stops its connections: idle ones
// now, busy ones once their response is written.
func (p *brokerProxy) end(ctx context.Context, uid uint32, token string) {
	key := sha256.Sum256([]byte(token))
	p.mu.Lock()
	s, ok := p.sessions[key]
	if ok && s.uid == uid {
		delete(p.sessions, key)
	}
	p.mu.Unlock()
	if !ok || s.uid != uid {
		return
	}
	p.d.logger.Printf("uid %d: proxy session for %s/%s ended", uid, s.sess.Selection.Workspace, s.sess.Selection.Project)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), proxyShutdownGrace)
	defer cancel()
	p.conns.ShutdownGroup(ctx, string(key[:]))
}

// serveConn serves the connections a client hands over for the session
// its upgrade names. Every request on them must carry that session's
// token: a token of another session, even the same user's, is refused.
func (p *brokerProxy) serveConn(w http.ResponseWriter, r *http.Request, peer brokerd.Peer) {
	token := r.Header.Get(proxy.HeaderToken)
	session, ok := p.lookup(peer.UID, token)
	if !ok {
		serve.WriteError(w, brokerd.ErrProxyConn)
		return
	}
	front := &proxy.Server{Runtime: p.d.rt, Version: buildinfo.Version(), Lookup: func(_ *http.Request, got string) (*proxy.Session, error) {
		if !serve.TokenOK(got, token) {
			return nil, proxy.ErrTokenHint
		}
		s, ok := p.lookup(peer.UID, got)
		if !ok {
			return nil, proxy.ErrTokenHint
		}
		return &s.sess, nil
	}}
	routes := front.Handler()
	client := audit.Client{UID: peer.UID, PID: peer.PID, Token: session.tokenName}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routes.ServeHTTP(w, r.WithContext(audit.WithClient(r.Context(), client)))
	})
	key := sha256.Sum256([]byte(token))
	p.mu.Lock()
	if p.handovers == nil {
		p.handovers = map[[32]byte]int{}
	}
	p.handovers[key]++
	p.mu.Unlock()
	if err := p.conns.Serve(w, r, h, string(key[:])); err != nil {
		p.d.logger.Printf("uid %d (pid %d): proxy connection: %v", peer.UID, peer.PID, err)
	}
	p.mu.Lock()
	p.handovers[key]--
	last := p.handovers[key] == 0
	if last {
		delete(p.handovers, key)
	}
	p.mu.Unlock()
	if last {
		p.end(r.Context(), peer.UID, token)
	}
}

// The client's side.

// forwardToBroker registers the proxy's session with the broker at sock
// and hands every connection to it until Ctrl-C or SIGTERM.
func (c *ProxyStartCmd) forwardToBroker(env *Env, dirs home.Dirs, sock string, timeout time.Duration) (*ProxyStatusResult, error) {
	link, linkPath, err := env.user().findLink(env.Cwd)
	if err != nil {
		return nil, err
	}
	brokerToken, err := readBrokerToken(env)
	if err != nil {
		return nil, err
	}
	return c.listen(env, dirs, func(ln *serve.Listener) (vault.Selection, func(context.Context) error, error) {
		f := &forwarder{sock: sock, reg: proxySessionRequest{Token: ln.Token, Workspace: c.Workspace, Project: c.Project,
			Link: link, LinkPath: linkPath, MaxResponse: c.MaxResponse, Timeout: timeout, BrokerToken: brokerToken},
			give: &brokerd.Handover{Path: sock, Token: ln.Token}}
		res, err := f.register(env.ctx())
		if err != nil {
			return vault.Selection{}, nil, err
		}
		// The hand-over connection is the session's lifeline: open it now.
		if err := f.give.Open(env.ctx()); err != nil {
			return vault.Selection{}, nil, err
		}
		return vault.Selection{Workspace: res.Workspace, Project: res.Project}, func(ctx context.Context) error { return f.serve(ctx, ln) }, nil
	})
}

// forwarder hands the proxy's TCP connections to the broker.
type forwarder struct {
	sock string
	reg  proxySessionRequest
	give *brokerd.Handover
}

// socketClient is an HTTP client on the broker's socket.
func socketClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return brokerd.Dial(ctx, sock) }}}
}

// call sends one request to the broker's socket and decodes the answer
// into out, or returns the broker's error.
func (f *forwarder) call(ctx context.Context, method string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://broker"+proxySessionsPath, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(proxy.HeaderToken, f.reg.Token)
	resp, err := socketClient(f.sock).Do(req)
	if err != nil {
		// A dial error is already the broker's own (not running, no
		// permission); anything else failed on the way.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ec *errcode.Error
		if errors.As(err, &ec) {
			return err
		}
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the broker did not answer: %v", err), "run `agentsecrets broker status`")
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var env errcode.Envelope
		if err := dec.Decode(&env); err != nil || env.Error.Code == "" {
			return errcode.Errorf(errcode.Unavailable, "the broker refused the proxy session (HTTP %d)", resp.StatusCode)
		}
		return brokerd.ReportErr(env.Error)
	}
	if out == nil {
		return nil
	}
	return dec.Decode(out)
}

func (f *forwarder) register(ctx context.Context) (*proxySessionResult, error) {
	var res proxySessionResult
	if err := f.call(ctx, http.MethodPost, f.reg, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// serve accepts until ctx ends, then ends the session, which lets the
// daemon close idle connections and finish busy ones.
func (f *forwarder) serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				return errcode.Errorf(errcode.Internal, "the proxy stopped accepting: %v", err)
			}
			break
		}
		tc, ok := conn.(*net.TCPConn)
		if !ok {
			conn.Close()
			continue
		}
		wg.Go(func() { f.handOver(ctx, tc) })
	}
	// Hand-overs in progress finish (or fail) before the session ends.
	wg.Wait()
	f.give.Close()
	end, cancel := context.WithTimeout(context.WithoutCancel(ctx), proxyShutdownGrace)
	defer cancel()
	f.call(end, http.MethodDelete, nil, nil)
	return nil
}

// handOver gives conn to the daemon for the session. A daemon that no
// longer knows the session (it restarted) gets it registered again once.
// When the broker cannot be reached the agent gets the error as an HTTP
// response, as the proxy would answer it.
func (f *forwarder) handOver(ctx context.Context, conn *net.TCPConn) {
	err := f.give.Give(ctx, conn)
	if err != nil && errcode.Classify(err).Code == errcode.Unauthorized {
		if _, err = f.register(ctx); err == nil {
			err = f.give.Give(ctx, conn)
		}
	}
	if err != nil {
		refuse(conn, err)
	}
}

// refuse answers a connection with err, then closes it once the client
// has finished sending (closing with unread input would reset the
// connection and lose the answer). The answer waits for the client's first
// bytes: an HTTP client takes a response that comes before its request for
// a broken connection.
func refuse(conn net.Conn, err error) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.Read(make([]byte, 4096))
	rep := errcode.Classify(err)
	body, _ := json.Marshal(errcode.Envelope{Error: rep})
	status := errcode.Lookup(rep.Code).HTTP
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
}
