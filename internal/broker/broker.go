// Package broker is the one engine behind `call`, the proxy and MCP: it
// checks policy, resolves secret values, injects them into an outbound
// request, sends it through the SSRF guard, streams the response back
// through the redactor, and writes one audit record per decision.
//
// It is the only code that holds secret values, and it holds them in memory
// read once per process: a value is re-read only when its version in the
// index changes, so `secrets set` takes effect without a restart.
//
// Stages, in the order of httputil.ReverseProxy: Decide (policy, names
// only) → Resolve (values) → Rewrite (a new outbound request; the client's
// is never modified) → Send (guarded dial, same-origin redirects with the
// policy re-checked per hop) → Respond (hop-by-hop stripped, encodings
// decoded, headers and body redacted) → Audit.
package broker

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxResponse = 256 << 20
	MaxRequestBody     = 10 << 20
	maxRedirects       = 10
)

// Config are the broker's dependencies. The zero value of every optional
// field works.
type Config struct {
	Store *vault.Store
	Audit Auditor
	// Transport sends requests; nil means a shared transport dialling
	// through Guard.
	Transport http.RoundTripper
	Guard     *Guard
	// MaxResponse caps the decoded response body in bytes.
	MaxResponse int64
	Timeout     time.Duration
	Now         func() time.Time
}

// Auditor receives one record per decision: an *audit.Log for a one-shot
// front end (call), the *audit.Writer of a long-running one (the proxy),
// which queues records and writes them in batches.
//
// No audit record means no request, and the broker fails closed: Ready is
// asked before any value is read or sent (Do, Release) and fails with
// unavailable when a record could not be appended now; a failure that
// cannot be audited is reported as the log's failure; and the error of the
// final Append (Response.Close, Released.Finish) is returned, so that a
// front end that still holds the response withholds it (call, env,
// openclaw resolve). A front end that has already streamed the response
// (the proxy, MCP) cannot: its Writer remembers the failure and Ready
// refuses the next requests until a write succeeds. Every such error's
// hint is `agentsecrets doctor`, whose audit check probes the same
// conditions as Ready and verifies the chain.
type Auditor interface {
	Ready(ctx context.Context) error
	Append(ctx context.Context, r *audit.Record) error
}

// Broker is safe for concurrent use.
type Broker struct {
	cfg Config

	// indexPath is stat'ed at most every IndexRecheck (see currentIndex);
	// joined once.
	indexPath string

	mu     sync.Mutex
	index  *vault.Index
	ixInfo os.FileInfo
	// ixStat is when index.json was last stat'ed, ixWrites the store's
	// IndexWrites then.
	ixStat   time.Time
	ixWrites uint64
	values   map[valueKey]cachedValue
	// redactors are built once per set of secret versions: building one
	// costs far more than a proxied request may add.
	redactors map[string]*namedRedactor
	// bound holds, per project of index and origin, the secrets bound
	// there (see boundSecrets); emptied when index changes.
	bound map[originKey][]string

	targets targetCache

	// echoMu guards unrecorded: echo events a response produced but the
	// tripwire's state file could not take (see recordEchoes).
	echoMu     sync.Mutex
	unrecorded []echoBatch
}

// namedRedactor is a redactor and the secret name of each of its values,
// ready once built is closed: a redactor is built while the request that
// first needs it is in flight, since only the response needs it.
type namedRedactor struct {
	built chan struct{}
	r     *Redactor
	names []string
}

// get waits for the build.
func (n *namedRedactor) get() (*Redactor, []string) {
	<-n.built
	return n.r, n.names
}

// valueKey names a cached value: a struct, not a joined string, so a
// request's lookups allocate nothing.
type valueKey struct {
	sel  vault.Selection
	name string
}

type cachedValue struct {
	version     int
	fingerprint string
	value       secret.Value
}

// New builds a broker.
func New(cfg Config) *Broker {
	if cfg.Guard == nil {
		cfg.Guard = &Guard{}
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(cfg.Guard)
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = DefaultMaxResponse
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Broker{
		cfg:       cfg,
		indexPath: cfg.Store.Dirs.IndexFile(),
		values:    map[valueKey]cachedValue{},
		redactors: map[string]*namedRedactor{},
	}
}

// NewTransport is the shared upstream transport: guarded dials, no
// environment proxy (a proxy would see injected values), no automatic
// decompression (the broker decodes so that it can scan).
func NewTransport(g *Guard) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// WarmRoots starts loading the system's TLS roots in the background. The
// transport leaves RootCAs nil, so a process's first handshake loads them
// otherwise, after the values were read: about 12 ms on Debian (Go reads
// the bundle and every file of /etc/ssl/certs). A one-shot `call` to an
// https URL starts the load while it still opens the vault and reads the
// keychain.
func WarmRoots() {
	go x509.SystemCertPool() //nolint:errcheck // the pool is cached for the handshake, or its error met there
}

// Response is an upstream response on its way back to the client. Its
// headers are already redacted; its body redacts as it is read. Close must
// be called: it finishes the audit record.
type Response struct {
	Status  int
	Header  http.Header
	Body    io.Reader
	AuditID string
	// Stream is true when the upstream streams (server-sent events, or a
	// body of unknown length): front ends then flush every chunk.
	Stream bool
	// Notes tell the client about things the broker chose not to do (a
	// redirect to another origin it did not follow).
	Notes []string

	// valueNames is the secret name of each value the redactor scans for.
	valueNames     []string
	upstream       io.Closer
	body           *RedactReader
	headerRedacted bool
	headerHits     []int
	finish         func(err error) error
	once           sync.Once
}

// Redacted reports whether any echo of an injected value was replaced, in
// the headers or in the body read so far.
func (r *Response) Redacted() bool {
	return r.headerRedacted || r.body != nil && r.body.Redacted()
}

// Close releases the upstream connection and writes the audit record.
// readErr is the error that ended reading the body, if any. The error is
// the audit log's (unavailable): a front end that can still withhold the
// response must then withhold it.
func (r *Response) Close(readErr error) error {
	var err error
	r.once.Do(func() {
		if r.upstream != nil {
			r.upstream.Close()
		}
		r.body.Release()
		err = r.finish(readErr)
	})
	return err
}

// Do sends one request on behalf of a front end.
func (b *Broker) Do(ctx context.Context, req *Request) (resp *Response, err error) {
	start := b.cfg.Now()
	// No audit record means no request: before any value is read, the
	// audit log must be able to take this request's record. Checked before
	// the deferred audit below, which would only wait on the same log.
	if b.cfg.Audit != nil {
		if err := b.cfg.Audit.Ready(ctx); err != nil {
			return nil, err
		}
	}
	// Nor does an echo the tripwire has not counted: a long-running front
	// end streamed that response before the count failed, so the count is
	// retried here and no request goes out until it is in.
	if err := b.recordUnrecorded(ctx); err != nil {
		return nil, err
	}
	rec := &audit.Record{ID: newID(), FrontEnd: req.FrontEnd, Method: req.Method, Workspace: req.Selection.Workspace, Project: req.Selection.Project,
		Secrets: secretNames(req.Injections), Styles: styles(req.Injections)}
	audit.StampClient(ctx, rec)
	var redactor *namedRedactor
	// Below, ctx becomes the request's timeout context, which ends (as
	// cancelled) as soon as Do fails; whether the caller went away is the
	// caller's context's to say.
	caller := ctx
	// Every failure is audited with the code the client gets.
	defer func() {
		if err != nil {
			// What the caller's cancellation made fail (the keychain's
			// read, the dial) failed because it went away, unless policy
			// refused first.
			if caller.Err() == context.Canceled && !errcode.AuditOf(err).Blocked {
				err = ErrInterrupted
			}
			if redactor != nil {
				r, _ := redactor.get()
				err = redactError(err, r)
				if req.Scan != nil {
					req.Scan(r)
				}
			}
			// A failure that cannot even be audited is reported as the
			// audit log's failure: that is what a human must fix first.
			// Not under ctx: by now it may be the request's own timeout
			// context, cancelled as Do returns, and a cancelled context
			// ends the wait for the audit lock at once.
			if aerr := b.audit(context.WithoutCancel(ctx), rec, start, err, false); aerr != nil && errcode.Classify(err).Code != errcode.Unavailable {
				err = aerr
			}
		}
	}()

	t, err := req.validate(&b.targets)
	if err != nil {
		return nil, err
	}
	rec.Method, rec.Host, rec.Path = req.Method, t.hostport(), t.url.Path
	if len(req.Body) > MaxRequestBody {
		return nil, errcode.Errorf(errcode.TooLarge, "request body larger than %d MiB", MaxRequestBody>>20)
	}

	ix, err := b.currentIndex()
	if err != nil {
		return nil, err
	}
	ws, err := ix.Workspace(req.Selection.Workspace)
	if err != nil {
		return nil, err
	}
	proj, err := ix.Project(req.Selection)
	if err != nil {
		return nil, err
	}
	for _, in := range req.Injections {
		if _, err := ix.Secret(req.Selection, in.Secret); err != nil {
			return nil, errcode.WithHint(err, ix.SecretSuggestion(req.Selection, in.Secret)+
				"run `agentsecrets secrets list`, or store it: `agentsecrets secrets set "+in.Secret+"`")
		}
	}
	bindings := func(name string) []policy.Binding { return proj.Secrets[name].Bindings }
	uses := make([]policy.Use, 0, len(req.Injections))
	for _, in := range req.Injections {
		uses = append(uses, policy.Use{Secret: in.Secret, Surface: in.Surface(), Header: in.headerName()})
	}
	// Every hop is decided by policy, then checked for a _method override
	// the policy cannot see (it has names only, no query or body).
	decide := func(t target, method string, header http.Header, body []byte) (policy.Decision, error) {
		d, err := policy.Check(ws.Allowlist, bindings, policy.Request{Scheme: t.url.Scheme, Host: t.host, Port: t.port,
			Path: t.url.Path, Method: method, Uses: uses, Workspace: req.Selection.Workspace, Project: req.Selection.Project,
			Private: func() bool { return b.cfg.Guard.ReachesPrivate(ctx, t.host) }})
		if err == nil && d.RestrictsMethods && hasMethodOverride(t.url.RawQuery, header.Get("Content-Type"), body) {
			err = policy.MethodOverrideError()
		}
		return d, err
	}
	decision, err := decide(t, req.Method, req.Header, req.Body)
	if err != nil {
		return nil, err
	}

	// Every value of every secret bound to this origin is redacted, not only
	// those injected now: a value sent earlier under another header may have
	// been stored by the upstream and come back in this response.
	secrets := b.boundSecrets(ix, proj, t, req.Injections)
	values, err := b.resolve(ctx, req.Selection, proj, secrets)
	if err != nil {
		return nil, err
	}
	// The redactor is built in the background while the request goes out;
	// Scan gets it with the response (or the error), when Do needs it.
	redactor = b.redactorFor(req.Selection, proj, secrets, values, basicSecrets(req.Injections))

	timeout := req.Timeout
	if timeout <= 0 {
		timeout = b.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer func() {
		if err != nil {
			cancel()
		}
	}()

	method, body := req.Method, req.Body
	var up *http.Response
	var notes []string
	for hop := 0; ; hop++ {
		out, err := outbound(WithAllowPrivate(ctx, decision.Entry.AllowPrivate), method, t, req.Header, body, req.Injections, values, decision)
		if err != nil {
			return nil, err
		}
		if req.Sent != nil {
			r, _ := redactor.get()
			req.Sent(sentView(out, req.Injections, r))
		}
		// The transport itself, as httputil.ReverseProxy sends: redirects
		// are Do's to follow (policy is re-checked per hop), and an
		// http.Client would only add a copy of the headers per request
		// for redirects of its own.
		up, err = b.cfg.Transport.RoundTrip(out)
		if err != nil {
			return nil, sendError(ctx, err, t, decision.Entry, req.Selection.Workspace)
		}
		loc := up.Header.Get("Location")
		if !isRedirect(up.StatusCode) || loc == "" {
			break
		}
		next, sameOrigin, err := resolveRedirect(t, loc)
		if err != nil || !sameOrigin || hop+1 >= maxRedirects {
			// The 3xx goes back to the client (Location redacted like any
			// header); credentials never travel to another origin.
			if err == nil && !sameOrigin {
				notes = append(notes, "not following a redirect to another origin; request it explicitly if intended")
			} else if hop+1 >= maxRedirects {
				notes = append(notes, fmt.Sprintf("stopped after %d redirects", maxRedirects))
			}
			break
		}
		io.Copy(io.Discard, io.LimitReader(up.Body, 64<<10))
		up.Body.Close()
		switch {
		case up.StatusCode == http.StatusSeeOther,
			(up.StatusCode == http.StatusMovedPermanently || up.StatusCode == http.StatusFound) && method == http.MethodPost:
			method, body = http.MethodGet, nil
		}
		if decision, err = decide(next, method, req.Header, body); err != nil {
			return nil, err
		}
		t = next
	}

	r, names := redactor.get()
	if req.Scan != nil {
		req.Scan(r)
	}
	resp, err = b.respond(up, r, decision, req.MaxResponse)
	if err != nil {
		up.Body.Close()
		return nil, err
	}
	resp.Notes = notes
	resp.AuditID = rec.ID
	rec.Status = up.StatusCode
	origin := t
	resp.valueNames = names
	resp.finish = func(readErr error) error {
		readErr = ReadError(ctx, readErr)
		cancel()
		var echoErr error
		if resp.Redacted() {
			echoErr = b.recordEchoes(context.WithoutCancel(ctx), req.Selection, tripwired(proj, echoedSecrets(resp.valueNames, echoedIndexes(resp)), origin), origin)
		}
		return errors.Join(echoErr, b.audit(context.WithoutCancel(ctx), rec, start, readErr, resp.Redacted()))
	}
	return resp, nil
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// resolveRedirect resolves Location against the current URL and reports
// whether it stays on the same origin (scheme, host and port).
func resolveRedirect(cur target, loc string) (target, bool, error) {
	ref, err := url.Parse(loc)
	if err != nil {
		return target{}, false, err
	}
	next, err := parseTarget(cur.url.ResolveReference(ref).String())
	if err != nil {
		return target{}, false, err
	}
	return next, next.origin() == cur.origin(), nil
}

// respond turns the upstream response into one the client may see.
func (b *Broker) respond(up *http.Response, r *Redactor, d policy.Decision, maxResponse int64) (*Response, error) {
	if maxResponse <= 0 {
		maxResponse = b.cfg.MaxResponse
	}
	// The stream type is read before the header is changed: a Connection
	// line can name Content-Type, and redaction can rewrite it.
	mt, _, _ := strings.Cut(up.Header.Get("Content-Type"), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	// The upstream's header is the broker's to change: nothing reads it
	// after this (the redirect loop is done with Location).
	h := up.Header
	removeHopHeaders(h)
	body, err := decodeContent(up.Body, h.Values("Content-Encoding"))
	if err != nil {
		return nil, err
	}
	h.Del("Content-Encoding")
	if up.ContentLength > maxResponse {
		return nil, errcode.Errorf(errcode.TooLarge, "upstream response of %d bytes exceeds the %d-byte cap", up.ContentLength, maxResponse)
	}
	hits := redactHeader(h, r)
	// Replacing an echo changes the body's length.
	h.Del("Content-Length")
	stream := up.ContentLength < 0 || mt == "text/event-stream"
	capped := &capReader{r: body, left: maxResponse}
	// A streamed body is released after a short quiet period even when the
	// redactor's fixed hold-back is not full, so events keep flowing; see
	// RedactReader for why neither reader's timing depends on content.
	var rr *RedactReader
	if stream {
		rr = r.StreamReader(capped, StreamFlushAfter)
	} else {
		rr = r.Reader(capped)
	}
	return &Response{Status: up.StatusCode, Header: h, Body: rr, body: rr, upstream: up.Body,
		headerRedacted: len(hits) > 0, headerHits: hits, Stream: stream}, nil
}

// redactHeader replaces every echo in the header's names and values, and
// returns the indexes of the values that echoed. A header sent on several
// lines is also scanned as the lines joined, so an echo split across them
// is caught: all of that header's lines are then replaced.
func redactHeader(h http.Header, r *Redactor) []int {
	var hits []int
	for name, vals := range h {
		if r.ContainsFold(name) {
			delete(h, name)
			_, hs := r.BytesHits([]byte(strings.ToLower(name)))
			if len(hs) == 0 {
				// Matched only ignoring case: every value may have echoed.
				hs = r.allIndexes()
			}
			hits = append(hits, hs...)
			continue
		}
		lineHit := false
		for i, v := range vals {
			if nv, hs := r.BytesHits([]byte(v)); len(hs) > 0 {
				vals[i] = string(nv)
				hits = append(hits, hs...)
				lineHit = true
			}
		}
		if len(vals) > 1 && !lineHit {
			for _, sep := range []string{"", ",", ", "} {
				if _, hs := r.BytesHits([]byte(strings.Join(vals, sep))); len(hs) > 0 {
					for i := range vals {
						vals[i] = Marker
					}
					hits = append(hits, hs...)
					break
				}
			}
		}
	}
	slices.Sort(hits)
	return slices.Compact(hits)
}

// decodeContent undoes every content coding of a body, read from every
// Content-Encoding line and every comma-separated token, innermost last:
// codings are listed in the order they were applied (RFC 9110 §8.4), so
// they are undone from the end. A coding the broker cannot decode makes a
// body it cannot scan, so it is refused rather than passed on. Each layer
// streams: the size cap applies to what comes out of the last one.
func decodeContent(r io.Reader, lines []string) (io.Reader, error) {
	var codings []string
	for _, line := range lines {
		for _, tok := range strings.Split(line, ",") {
			if tok = strings.ToLower(strings.TrimSpace(tok)); tok != "" && tok != "identity" {
				codings = append(codings, tok)
			}
		}
	}
	for i := len(codings) - 1; i >= 0; i-- {
		switch codings[i] {
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, errcode.Errorf(errcode.Upstream, "upstream sent a corrupt gzip body")
			}
			r = zr
		case "deflate":
			r = newDeflateReader(r)
		default:
			// The header's text is not quoted: an upstream can echo anything.
			return nil, errcode.WithHint(errcode.New(errcode.Upstream, "upstream answered with a Content-Encoding the broker cannot decode, so it cannot scan the body for echoed secrets"),
				"the upstream ignored Accept-Encoding: gzip, deflate")
		}
	}
	return r, nil
}

// deflate bodies are zlib-wrapped per RFC 9110, but some servers send raw
// DEFLATE; peek at the header to tell.
func newDeflateReader(r io.Reader) io.Reader {
	br := &peekReader{r: r}
	hdr, _ := br.peek(2)
	if len(hdr) == 2 && hdr[0]&0x0f == 8 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
		zr, err := newZlib(br)
		if err == nil {
			return zr
		}
	}
	return flate.NewReader(br)
}

// ErrResponseTooLarge: the decoded body passed MaxResponse.
var ErrResponseTooLarge = errcode.New(errcode.TooLarge, "upstream response exceeds the size cap")

type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body of exactly the cap from a longer one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, ErrResponseTooLarge
		}
		return c.r.Read(p)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// sendError classifies a transport failure without echoing the URL: a
// *url.Error's text includes the query string, which may carry a value.
// A private-address refusal's hint widens entry, the allowlist entry of
// workspace that let the request through.
func sendError(ctx context.Context, err error, t target, entry policy.AllowEntry, workspace string) error {
	var blocked *BlockedError
	if errors.As(err, &blocked) {
		hint := errcode.Classify(err).Hint
		if blocked.Reason == ReasonPrivate {
			// The entry that let the request through is the one to widen,
			// under its own target and with the flags it has: the guard
			// knows neither.
			entry.AllowPrivate = true
			hint = "if " + t.host + " is a local server you trust, a human runs `" + policy.AllowCommand(entry, workspace) + "`"
		}
		// Drop the *url.Error around the guard's error.
		return errcode.WithHint(blocked, hint)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() == context.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return errcode.WithHint(errcode.Errorf(errcode.Timeout, "%s did not answer in time", t.hostport()), "retry, or raise --timeout")
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return errcode.Errorf(errcode.Upstream, "cannot resolve %s", t.host)
	}
	// Only network errors are described: they name addresses and system
	// calls. Protocol errors quote what the upstream sent, which may be an
	// echo, so they get a fixed message.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Upstream, "request to %s failed: %s %s", t.hostport(), opErr.Op, syscallText(opErr.Err)),
			"check that the upstream is reachable")
	}
	return errcode.WithHint(errcode.Errorf(errcode.Upstream, "request to %s failed: the upstream closed the connection or sent an invalid response", t.hostport()),
		"check that the upstream speaks HTTP/1.1 or HTTP/2 on that port")
}

// syscallText describes a network failure by its system error only.
func syscallText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "error"
}

// ReadError classifies an error that ended reading a response body, for
// the client and the audit record: the size cap, a caller that went away
// (the context's cancellation, which the transport returns as the read's
// error), the timeout, or an upstream that broke off. It never quotes the
// error's own text.
func ReadError(ctx context.Context, err error) error {
	// Before coded is declared: errors.As moves it to the heap, which the
	// end of every complete body would pay for.
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var coded *errcode.Error
	switch {
	case errors.As(err, &coded):
		return err
	case interrupted(err):
		return ErrInterrupted
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return errcode.WithHint(errcode.New(errcode.Timeout, "the upstream response did not finish in time"), "retry, or raise --timeout")
	default:
		return errcode.New(errcode.Upstream, "the upstream response broke off before its end")
	}
}

// redactError makes sure no error text carries a value, whatever produced it.
func redactError(err error, r *Redactor) error {
	rep := errcode.Classify(err)
	msg, hit1 := r.String(rep.Message)
	hint, hit2 := r.String(rep.Hint)
	if !hit1 && !hit2 {
		return err
	}
	return errcode.WithHint(&errcode.Error{Code: rep.Code, Message: msg}, hint)
}

// resolve returns the values of the named secrets, from the in-memory
// cache while their index version and fingerprint are unchanged. Those not
// cached are read from the backend together (one keychain session).
func (b *Broker) resolve(ctx context.Context, sel vault.Selection, proj *vault.Project, names []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(names))
	var stale []string
	b.mu.Lock()
	for _, name := range names {
		meta := proj.Secrets[name]
		c, ok := b.values[valueKey{sel, name}]
		if !ok || c.version != meta.Version || c.fingerprint != meta.Fingerprint {
			stale = append(stale, name)
			continue
		}
		// Revealed here, inside the broker: outbound and the redactor take
		// bytes.
		out[name] = c.value.Reveal()
	}
	b.mu.Unlock()
	if len(stale) == 0 {
		return out, nil
	}
	read, err := b.cfg.Store.Values(ctx, sel, stale)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, name := range stale {
		meta := proj.Secrets[name]
		b.values[valueKey{sel, name}] = cachedValue{version: meta.Version, fingerprint: meta.Fingerprint, value: read[name]}
		out[name] = read[name].Reveal()
	}
	return out, nil
}

// boundSecrets names, sorted and once each, the secrets injected into the
// request and every secret of the project bound to its origin. Finding
// those bound grows with the project's secrets (18 µs a request at 1,000),
// so it is done once per project of the current index and origin, and
// kept; the result may be that kept slice: read only. proj is of ix; what
// is found for an index replaced meanwhile is used, not kept.
func (b *Broker) boundSecrets(ix *vault.Index, proj *vault.Project, t target, ins []Injection) []string {
	k := originKey{proj: proj, scheme: t.url.Scheme, host: t.host, port: t.port}
	b.mu.Lock()
	bound, ok := b.bound[k]
	b.mu.Unlock()
	if !ok {
		bound = originSecrets(proj, t)
		b.mu.Lock()
		if ix == b.index {
			if b.bound == nil || len(b.bound) >= maxBoundOrigins {
				b.bound = make(map[originKey][]string)
			}
			b.bound[k] = bound
		}
		b.mu.Unlock()
	}
	out := bound
	for _, in := range ins {
		if !slices.Contains(out, in.Secret) {
			// bound is clipped: this appends to a copy.
			out = append(out, in.Secret)
		}
	}
	if len(out) > len(bound) {
		sort.Strings(out)
	}
	return out
}

// originSecrets names, sorted, the secrets of proj bound to t's origin, in
// a slice with no spare capacity.
func originSecrets(proj *vault.Project, t target) []string {
	var out []string
	for name, s := range proj.Secrets {
		for _, bd := range s.Bindings {
			if bd.MatchesOrigin(t.url.Scheme, t.host, t.port) {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return slices.Clip(out)
}

// originKey is a project of the broker's current index and an origin. The
// key holds the project, so no other project can take its address while
// the key is kept.
type originKey struct {
	proj         *vault.Project
	scheme, host string
	port         int
}

// maxBoundOrigins bounds Broker.bound: a wildcard allowlist entry lets
// through any number of origins.
const maxBoundOrigins = 1024

// redactorFor returns the redactor of exactly these values, keyed by the
// names, versions and fingerprints that identify them, with the secret name
// of each value it was built from (same order as NewRedactor's values). One
// not built yet is built in the background: its first request goes out
// meanwhile, and concurrent requests for the same values share the build.
func (b *Broker) redactorFor(sel vault.Selection, proj *vault.Project, names []string, values map[string][]byte, basic map[string]bool) *namedRedactor {
	// Built for every request, so by hand rather than with fmt.
	key := make([]byte, 0, 128)
	key = append(append(append(key, sel.Workspace...), '/'), sel.Project...)
	for _, n := range names {
		m := proj.Secrets[n]
		key = append(append(append(key, '|'), n...), '@')
		key = strconv.AppendInt(key, int64(m.Version), 10)
		key = append(append(append(key, ':'), m.Fingerprint...), ':')
		key = strconv.AppendBool(key, basic[n])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.redactors[string(key)]; ok {
		return r
	}
	all := make([][]byte, 0, len(names))
	owners := make([]string, 0, len(names))
	for _, n := range names {
		all, owners = append(all, values[n]), append(owners, n)
		// A user:password credential can come back as the password alone.
		if _, pass, ok := bytes.Cut(values[n], []byte(":")); ok && basic[n] && len(pass) > 0 {
			all, owners = append(all, pass), append(owners, n)
		}
	}
	nr := &namedRedactor{built: make(chan struct{}), names: owners}
	// The value bytes are the broker's cached values', never wiped while
	// the broker lives.
	go func() {
		nr.r = NewRedactor(all)
		close(nr.built)
	}()
	if len(b.redactors) > 1024 {
		clear(b.redactors) // old versions; rebuilding is cheap compared with growing forever
	}
	b.redactors[string(key)] = nr
	return nr
}

// basicSecrets names the secrets injected as user:password.
func basicSecrets(ins []Injection) map[string]bool {
	out := map[string]bool{}
	for _, in := range ins {
		if in.Style == StyleBasic {
			out[in.Secret] = true
		}
	}
	return out
}

// IndexRecheck is how often, at most, the broker stats index.json to see
// a change made by another process (`secrets set`, a policy change from the
// CLI): such a change reaches requests within this long. A change made
// through the broker's own Store (this process) is seen at once. A stat per
// request cost about 2.5% of the proxy's CPU.
const IndexRecheck = 100 * time.Millisecond

// currentIndex re-reads index.json only when it was replaced: every write
// renames a new file into place, so a changed inode or mtime means new data.
func (b *Broker) currentIndex() (*vault.Index, error) {
	// The wall clock, not cfg.Now: tests that fix Now still need the cache
	// to expire, and the monotonic reading ignores clock steps.
	now := time.Now()
	writes := b.cfg.Store.IndexWrites()
	b.mu.Lock()
	if b.index != nil && writes == b.ixWrites && now.Sub(b.ixStat) < IndexRecheck {
		ix := b.index
		b.mu.Unlock()
		return ix, nil
	}
	b.mu.Unlock()
	fi, err := os.Stat(b.indexPath)
	if err != nil {
		return nil, fmt.Errorf("stat index: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.index != nil && os.SameFile(fi, b.ixInfo) && fi.ModTime().Equal(b.ixInfo.ModTime()) && fi.Size() == b.ixInfo.Size() {
		b.ixStat, b.ixWrites = now, writes
		return b.index, nil
	}
	ix, err := b.cfg.Store.SharedIndex()
	if err != nil {
		return nil, err
	}
	if ix != b.index {
		b.bound = nil
	}
	b.index, b.ixInfo, b.ixStat, b.ixWrites = ix, fi, now, writes
	return ix, nil
}

// ReasonCredentialEcho is the audit reason of a response that echoed an
// injected value (decision redacted).
const ReasonCredentialEcho = "credential_echo"

// ReasonInterrupted is the audit reason of a request that its caller
// abandoned before the response ended: a client that closed its
// connection, an MCP client that cancelled its call, a `call` stopped by
// Ctrl-C or SIGTERM, a server that cut the request off as it stopped.
const ReasonInterrupted = "interrupted"

// ErrInterrupted ends a request whose caller went away. Nobody may be
// left to read it; its code is the one an HTTP caller still there would
// get from a server that stops (503), and its reason tells the audit log
// that neither the upstream nor the broker failed.
var ErrInterrupted = errcode.WithHint(errcode.NewReason(errcode.Unavailable, ReasonInterrupted, "the request was interrupted before its response ended: its caller went away, or the server stopped"),
	"retry the request; `agentsecrets proxy logs --last 5` shows its record")

// interrupted reports whether err is the end of a request its caller
// cancelled (a timeout is not: that context ends with DeadlineExceeded).
func interrupted(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted)
}

// audit appends the record for one decision and returns the log's error
// (unavailable): the front end withholds what it can (call does not print
// the response) and a batching Writer refuses the next requests in Ready.
func (b *Broker) audit(ctx context.Context, rec *audit.Record, start time.Time, err error, redacted bool) error {
	if b.cfg.Audit == nil {
		return nil
	}
	rec.DurationMS = float64(b.cfg.Now().Sub(start).Microseconds()) / 1000
	switch {
	case err != nil:
		audit.Fail(rec, err)
	case redacted:
		rec.Decision, rec.Reason = audit.DecisionRedacted, ReasonCredentialEcho
	default:
		rec.Decision = audit.DecisionAllowed
	}
	return b.cfg.Audit.Append(ctx, rec)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
