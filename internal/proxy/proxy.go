// Package proxy is the HTTP front end of the broker: the explicit /proxy
// API of the original AgentSecrets, on 127.0.0.1 only, behind a
// per-session token. It translates requests to and from broker.Request,
// answers a response of up to 64 KiB whole and streams a larger or
// streaming one as it arrives; all policy, injection and redaction is the
// broker's.
package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Header names of the explicit proxy protocol.
const (
	HeaderToken     = serve.HeaderToken
	HeaderTargetURL = "X-AS-Target-URL"
	HeaderMethod    = "X-AS-Method"
	HeaderWorkspace = "X-AS-Workspace"
	HeaderProject   = "X-AS-Project"
	HeaderAuditID   = "X-AS-Audit-Id"
	HeaderRedacted  = "X-AS-Redacted"
	injectPrefix    = "X-As-Inject-"
)

// The same names in canonical form, for every per-request Get and Set:
// given another form, net/http canonicalises the name again on each call,
// which allocates.
var (
	keyToken     = http.CanonicalHeaderKey(HeaderToken)
	keyTargetURL = http.CanonicalHeaderKey(HeaderTargetURL)
	keyMethod    = http.CanonicalHeaderKey(HeaderMethod)
	keyWorkspace = http.CanonicalHeaderKey(HeaderWorkspace)
	keyProject   = http.CanonicalHeaderKey(HeaderProject)
	keyAuditID   = http.CanonicalHeaderKey(HeaderAuditID)
	keyRedacted  = http.CanonicalHeaderKey(HeaderRedacted)
)

// Server serves /proxy and /health on a serve.Runtime.
type Server struct {
	Runtime *serve.Runtime
	// Token and Selection are the one session of a proxy that serves its
	// own user (`proxy start`). Selection is the project requests use
	// unless they name another with X-AS-Workspace / X-AS-Project.
	Token     string
	Selection vault.Selection
	// Lookup, when set, replaces Token and Selection: the broker daemon
	// serves many sessions, each with its own token, selection and limits.
	// It returns the session a request's token belongs to, or why none.
	Lookup  func(r *http.Request, token string) (*Session, error)
	Version string

	// small and large hold the buffers whole answers are read into
	// (*[]byte of wholeSmall and of wholeMax+1 bytes); see readWhole.
	small, large sync.Pool
}

// Session is what a session token lets a request do.
type Session struct {
	Selection vault.Selection
	// Allow refuses a selection a request names with X-AS-Workspace /
	// X-AS-Project that the session's client may not use (nil: any).
	Allow func(vault.Selection) error
	// MaxResponse and Timeout replace the runtime's defaults (0: those).
	MaxResponse int64
	Timeout     time.Duration
}

// Handler returns the routes, wrapped in the loopback Host check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.health)
	mux.HandleFunc("/proxy", s.proxy)
	return serve.LoopbackOnly(mux, "the proxy", "send requests to http://127.0.0.1:PORT/proxy")
}

// health answers 200 only when the vault's values can be read: a proxy
// whose file vault has no passphrase listens fine and fails every call.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.Runtime.Check(r.Context()); err != nil {
		serve.WriteError(w, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the proxy cannot open the vault: %s", errcode.Classify(err).Message),
			"restart it with the vault's passphrase: `agentsecrets proxy start --vault-passphrase-file PATH`"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": s.Version})
}

// ErrToken: the session token is missing or wrong.
var ErrToken = errcode.New(errcode.Unauthorized, "missing or wrong "+HeaderToken)

// ErrTokenHint is ErrToken with the next step.
var ErrTokenHint = errcode.WithHint(ErrToken, "read the token from the token_file shown by `agentsecrets proxy status`")

// session is the session of r's token.
func (s *Server) session(r *http.Request) (*Session, error) {
	token := r.Header.Get(keyToken)
	if s.Lookup != nil {
		return s.Lookup(r, token)
	}
	if !serve.TokenOK(token, s.Token) {
		return nil, ErrTokenHint
	}
	return &Session{Selection: s.Selection}, nil
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	sess, err := s.session(r)
	if err != nil {
		serve.WriteError(w, err)
		return
	}
	req, err := s.translate(r, sess)
	if err != nil {
		serve.WriteError(w, err)
		return
	}
	brk, err := s.Runtime.Broker()
	if err != nil {
		serve.WriteError(w, err)
		return
	}
	resp, err := brk.Do(r.Context(), req)
	if err != nil {
		serve.WriteError(w, err)
		return
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	h.Set(keyAuditID, resp.AuditID)
	var head []byte
	if !resp.Stream {
		whole := s.readWhole(resp.Body)
		defer s.putWhole(&whole)
		if whole.err != nil {
			s.answerWhole(w, r, resp, whole.body(), whole.err)
			return
		}
		head = whole.body()
	}
	// Too large to hold, or streamed: the body goes out as it is redacted,
	// so its length is unknown and X-AS-Redacted is known only at its end.
	// An upstream's own X-AS-Redacted header would read as ours.
	h.Del(keyRedacted)
	h.Set("Trailer", HeaderRedacted)
	w.WriteHeader(resp.Status)
	_, readErr := clientWriter{w}.Write(head)
	if readErr == nil {
		readErr = stream(w, resp.Body, resp.Stream)
	}
	s.close(resp, readErr)
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		// A truncated 200 would look complete; abort the connection.
		panic(http.ErrAbortHandler)
	}
	h.Set(keyRedacted, redactedValue(resp))
}

// wholeMax is the largest response body the proxy holds whole before
// answering. Such an answer carries its Content-Length and X-AS-Redacted
// as headers: the client reads a plain body, not chunks and a trailer,
// which is most API answers and costs every client less.
const wholeMax = 64 << 10

// wholeSmall is the buffer a whole answer is read into first. Most API
// answers fit; a larger one moves to a buffer of wholeMax+1 bytes. Every
// request in flight holds its buffer, and sync.Pool drops what it holds
// over two collections: with a 64 KB buffer per request, 16 clients kept
// 1 MB of the heap live, and refilling the pool after collections added
// to the garbage that brings on the next.
const wholeSmall = 8 << 10

// wholeRead is a body read into a pooled buffer by readWhole.
type wholeRead struct {
	buf  *[]byte
	pool *sync.Pool
	n    int
	// err ended the read: nil when the body may go on past wholeMax bytes,
	// io.EOF when it ended, or why it broke.
	err error
}

func (w *wholeRead) body() []byte { return (*w.buf)[:w.n] }

// readWhole reads body until it ends or breaks, or until it is known to be
// longer than wholeMax: a buffer of wholeMax+1 bytes read full. The pools
// keep pointers, so that returning a buffer allocates nothing.
func (s *Server) readWhole(body io.Reader) wholeRead {
	w := wholeRead{buf: pooledBuf(&s.small, wholeSmall), pool: &s.small}
	w.n, w.err = readFull(body, *w.buf)
	if w.err != nil {
		return w
	}
	large := pooledBuf(&s.large, wholeMax+1)
	copy(*large, w.body())
	s.putWhole(&w)
	w.buf, w.pool = large, &s.large
	k, err := readFull(body, (*large)[w.n:])
	w.n, w.err = w.n+k, err
	return w
}

// pooledBuf returns a buffer of size bytes from pool, or a new one.
func pooledBuf(pool *sync.Pool, size int) *[]byte {
	if b, ok := pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, size)
	return &b
}

// putWhole wipes what w's buffer was read into (redacted, but the client's
// data all the same) and keeps it for the next answer.
func (s *Server) putWhole(w *wholeRead) {
	clear(w.body())
	w.pool.Put(w.buf)
}

// readFull reads body into buf until buf is full (nil: the body may go
// on) or the body ends (io.EOF) or breaks (its error). Not io.ReadFull,
// which reports a body cut short by its upstream the way it reports one
// that ended: io.ErrUnexpectedEOF.
func readFull(body io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := body.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// answerWhole answers r with the whole body, which readErr ended: io.EOF,
// or another error when the body broke, which gets a JSON error instead
// (nothing was sent yet, so the client need not tell a cut answer by a
// dropped connection).
func (s *Server) answerWhole(w http.ResponseWriter, r *http.Request, resp *broker.Response, body []byte, readErr error) {
	if !errors.Is(readErr, io.EOF) {
		s.close(resp, readErr)
		serve.WriteError(w, broker.ReadError(r.Context(), readErr))
		return
	}
	h := w.Header()
	h.Set(keyRedacted, redactedValue(resp))
	// An answer to HEAD has no body to count, and 1xx, 204 and 304 none
	// to send: the server leaves their length alone.
	if r.Method != http.MethodHead && bodyAllowed(resp.Status) {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.Status)
	w.Write(body)
	// The answer is complete: it goes out now, and queueing its audit
	// record (which the Writer appends in a batch later either way) and
	// releasing the upstream connection follow, off the client's wait.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.close(resp, nil)
}

// close ends resp: its audit record is queued (the Writer batches it).
func (s *Server) close(resp *broker.Response, readErr error) {
	if resp.Redacted() {
		// Counting the echo for the tripwire writes its state file under
		// the index lock: off the response path, so the client gets its
		// answer without waiting on that.
		s.Runtime.Async(func() { resp.Close(readErr) })
		return
	}
	// Only the audit record to queue: cheaper here than a goroutine.
	resp.Close(readErr)
}

func redactedValue(resp *broker.Response) string {
	if resp.Redacted() {
		return "true"
	}
	return "false"
}

// bodyAllowed reports whether a response with status may have a body
// (RFC 9110: not 1xx, 204 or 304).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// stream copies the body. For a streaming upstream (server-sent events, a
// body of unknown length) it flushes after every chunk so events reach the
// client as they arrive; otherwise the server's own buffering saves a
// write per response. The broker's body is a *broker.RedactReader, whose
// WriteTo writes each redacted chunk (up to 2 MB) from its own buffer:
// no buffer here, and one Write per chunk.
func stream(w http.ResponseWriter, body io.Reader, flush bool) error {
	// Not w itself: its ReadFrom would copy through a 32 KB buffer of its
	// own instead of letting the body write.
	dst := io.Writer(clientWriter{w})
	if flusher, ok := w.(http.Flusher); ok && flush {
		dst = flushWriter{clientWriter{w}, flusher}
	}
	_, err := io.Copy(dst, body)
	return err
}

// clientWriter hides every method of a Writer but Write, and reports a
// failed write as what it is, the client gone: the request is recorded as
// interrupted, not as the upstream's failure.
type clientWriter struct{ w io.Writer }

func (c clientWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		return n, broker.ErrInterrupted
	}
	return n, nil
}

// flushWriter flushes after every Write.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		fw.f.Flush()
	}
	return n, err
}

// translate turns a /proxy request of sess into a broker request.
func (s *Server) translate(r *http.Request, sess *Session) (*broker.Request, error) {
	target := r.Header.Get(keyTargetURL)
	if target == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "missing "+HeaderTargetURL), "set "+HeaderTargetURL+": https://api.example.com/path")
	}
	method := r.Header.Get(keyMethod)
	if method == "" {
		method = r.Method
	}
	ins, err := ParseInjections(r.Header)
	if err != nil {
		return nil, err
	}
	var body []byte
	// The server gives a request without a body http.NoBody: nothing to
	// read, and no buffer to allocate for it.
	if r.Body != http.NoBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, broker.MaxRequestBody+1))
		if err != nil {
			return nil, errcode.Errorf(errcode.Usage, "read request body: %v", err)
		}
		if len(body) > broker.MaxRequestBody {
			return nil, errcode.Errorf(errcode.TooLarge, "request body larger than %d MiB", broker.MaxRequestBody>>20)
		}
	}
	sel := sess.Selection
	if ws := r.Header.Get(keyWorkspace); ws != "" {
		sel.Workspace = ws
	}
	if p := r.Header.Get(keyProject); p != "" {
		sel.Project = p
	}
	if sess.Allow != nil && sel != sess.Selection {
		if err := sess.Allow(sel); err != nil {
			return nil, err
		}
	}
	// The client's headers go to the broker as they are, X-AS-* included:
	// outbound copies them once and drops that prefix, and nothing else in
	// the broker writes to them.
	return &broker.Request{FrontEnd: audit.FrontEndProxy, Selection: sel, Method: method, URL: target, Header: r.Header, Body: body, Injections: ins,
		MaxResponse: sess.MaxResponse, Timeout: sess.Timeout}, nil
}

// ParseInjections reads the X-AS-Inject-* headers, each spec through
// broker.ParseInjection. Header names reach Go canonicalised
// (X-As-Inject-Query-Userid), so the suffix form lower-cases query, body
// and form names; the case-preserving form carries the name in the value:
// "X-AS-Inject-Query: userId=SECRET_NAME" (repeatable, comma-separated).
func ParseInjections(h http.Header) ([]broker.Injection, error) {
	var out []broker.Injection
	keys := make([]string, 0, len(h))
	for key := range h {
		if strings.HasPrefix(key, injectPrefix) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		style, suffix, hasSuffix := strings.Cut(strings.TrimPrefix(key, injectPrefix), "-")
		if hasSuffix && !broker.FieldStyle(style) {
			return nil, errcode.Errorf(errcode.Usage, "unknown proxy header %s", key)
		}
		if style != "" && suffix != "" && !strings.EqualFold(style, broker.StyleHeader) {
			suffix = strings.ToLower(suffix)
		}
		for _, v := range h[key] {
			specs := []string{v}
			switch {
			case hasSuffix:
				specs = []string{suffix + "=" + v}
			case broker.FieldStyle(style):
				specs = strings.Split(v, ",")
			}
			for _, spec := range specs {
				in, err := broker.ParseInjection(style, spec)
				if err != nil {
					example := "API_KEY"
					if broker.FieldStyle(style) {
						example = "userId=API_KEY"
					}
					return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s: %v", key, err), "e.g. "+key+": "+example)
				}
				out = append(out, in)
			}
		}
	}
	return out, nil
}
