package serve

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// HeaderToken carries the session token on every loopback front end.
const HeaderToken = "X-AS-Session-Token"

// WriteError answers with the code's HTTP status and the error envelope
// every front end uses (errcode.Envelope).
func WriteError(w http.ResponseWriter, err error) {
	rep := errcode.Classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(errcode.Lookup(rep.Code).HTTP)
	json.NewEncoder(w).Encode(errcode.Envelope{Error: rep})
}

// LoopbackHost reports whether a request's Host names this machine:
// "localhost" or a loopback IP literal (127.0.0.0/8, ::1), with or without
// a port, brackets or a trailing dot.
//
// The check defeats DNS rebinding: a page that points its own name at
// 127.0.0.1 still sends its own name as Host, and no page can make a
// browser send an IP literal it does not connect to. Every loopback IP
// literal is therefore as safe as 127.0.0.1, and must be accepted: `mcp
// serve --http 127.0.0.2:PORT` listens there and its clients say so.
// Other names that resolve to loopback (foo.localhost, a hosts entry) are
// refused: the server cannot tell them from a rebound name.
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" {
		return true
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.Contains(host, "%") { // a zone is not part of a Host
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackOnly refuses (denied) every request whose Host is not a loopback
// name; hint says where to send requests instead.
func LoopbackOnly(next http.Handler, what, hint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if LoopbackHost(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		WriteError(w, errcode.WithHint(errcode.New(errcode.Denied, what+" only answers requests addressed to a loopback name (Host: 127.0.0.1 or localhost)"), hint))
	})
}

// TokenOK compares a presented token with the session's in constant time;
// an empty token never matches.
func TokenOK(got, want string) bool {
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Listener is a loopback listener with its session token, written to a
// private file for clients to read.
type Listener struct {
	net.Listener
	Token     string
	TokenFile string
}

// Listen listens on addr (a loopback HOST:PORT), makes a fresh session
// token and writes it (0600, replaced atomically) to tokenFile(the bound
// address), so a port of 0 gets a file naming the port it got. hint is the
// next step when the address is taken.
func Listen(addr, hint string, tokenFile func(addr string) string) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "listen on %s: %w", addr, err), hint)
	}
	raw, err := crypto.Random(32)
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &Listener{Listener: ln, Token: hex.EncodeToString(raw), TokenFile: tokenFile(ln.Addr().String())}
	if err := WritePrivate(l.TokenFile, []byte(l.Token+"\n")); err != nil {
		ln.Close()
		return nil, err
	}
	return l, nil
}

// WritePrivate replaces a file in the state directory (0600) through a
// temp file with a random name created O_EXCL, so a planted symlink at a
// predictable temp name cannot redirect the token.
func WritePrivate(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600, "."+filepath.Base(path)+".tmp-", nil)
}

// Server settings of a front end.
type ServerOptions struct {
	// ReadTimeout bounds reading a whole request; 0 means none (an MCP
	// stream may stay open).
	ReadTimeout time.Duration
	// ShutdownGrace is how long in-flight requests get once ctx ends.
	ShutdownGrace time.Duration
	// CutOffWait is how long, once the grace is over, Serve waits for the
	// requests whose connections it then closed to end; 0 means
	// DefaultCutOffWait.
	CutOffWait time.Duration
	// Configure, if set, adjusts the server before it serves (the broker
	// daemon's socket identifies peers in ConnContext).
	Configure func(*http.Server)
}

// DefaultCutOffWait is how long Serve waits, by default, for the requests
// it cut off at the end of the shutdown grace to end. Their contexts are
// canceled by then, so a request that honours its context (every broker
// request does) ends at once.
const DefaultCutOffWait = 5 * time.Second

// Serve serves h on l until ctx ends, then shuts down gracefully: new
// connections are refused and in-flight requests get opts.ShutdownGrace to
// finish. Requests still running after the grace (a long stream, a stalled
// upstream) are cut off: their connections close, which cancels their
// contexts, and Serve waits up to opts.CutOffWait for them to end, so that
// each queues its audit record (a failed request) before the caller drains
// (Runtime.Close) and the process ends. Serve returns an error when serving
// failed, or when requests were still running after that wait: their
// records may be missing.
func Serve(ctx context.Context, l net.Listener, h http.Handler, opts ServerOptions) error {
	running := &inFlight{}
	hs := &http.Server{
		Handler:           running.track(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       opts.ReadTimeout,
		// No WriteTimeout: a server-sent event stream may rightly last
		// longer than any fixed bound; the broker's timeout covers stalls.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 1 << 20,
	}
	if opts.Configure != nil {
		opts.Configure(hs)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return errcode.Errorf(errcode.Internal, "server stopped: %v", err)
	case <-ctx.Done():
	}
	grace := opts.ShutdownGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	shutdown, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if hs.Shutdown(shutdown) == nil {
		return nil
	}
	hs.Close()
	wait := opts.CutOffWait
	if wait <= 0 {
		wait = DefaultCutOffWait
	}
	if left := running.wait(wait); left > 0 {
		return errcode.WithHint(errcode.Errorf(errcode.Internal, "%d request(s) still running %s after the shutdown began; their audit records may be missing", left, grace+wait),
			"see what was recorded with `agentsecrets proxy logs --last 20`")
	}
	return nil
}

// inFlight counts work in progress (requests being served, records being
// appended off the reply's path), so that a shutdown can wait for it. Not a
// sync.WaitGroup: work may start while someone waits (a connection that
// read its request just before the cut still starts its handler; a request
// answered during a Flush appends its record), and a WaitGroup must not
// gain its first member then.
type inFlight struct {
	mu sync.Mutex
	n  int
	// idle, made by a waiter, is closed when n drops to zero.
	idle chan struct{}
}

func (f *inFlight) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.start()
		defer f.end()
		h.ServeHTTP(w, r)
	})
}

func (f *inFlight) start() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inFlight) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// wait waits up to d (d <= 0: for as long as it takes) until nothing is in
// progress, and returns how much still is.
func (f *inFlight) wait(d time.Duration) int {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return 0
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	var expired <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-idle:
	case <-expired:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
