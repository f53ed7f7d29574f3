package sync

// The HTTP client of the /v1 API. Session tokens are in session.go, the
// account flows (create, login, recovery kit) in account.go.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// CAFileEnv names a PEM file of extra CA certificates for a self-hosted
// server with a private CA. The system roots stay trusted as well.
const CAFileEnv = "AGENTSECRETS_SERVER_CA_FILE"

// Limits of the client.
const (
	// MaxResponse bounds a response body: a pull of a large project is the
	// biggest answer (many envelopes of up to syncapi.MaxEnvelope).
	MaxResponse = 64 << 20
	// maxErrorBody bounds what is read of an error answer.
	maxErrorBody = 64 << 10
	// DefaultTimeout bounds one request, connection to last byte.
	DefaultTimeout = 60 * time.Second
	dialTimeout    = 10 * time.Second
)

// RetryPolicy says how reads are retried after a 5xx, a dropped
// connection or a truncated answer. Writes are never retried blindly: a
// push whose answer was lost may have been stored.
type RetryPolicy struct {
	Attempts int           // total tries of a read, the first included
	Base     time.Duration // first backoff; doubles per try, full jitter
	Max      time.Duration // cap of one backoff, Retry-After included
}

// DefaultRetry is three tries over about a second.
var DefaultRetry = RetryPolicy{Attempts: 3, Base: 250 * time.Millisecond, Max: 2 * time.Second}

// Options configure a Client.
type Options struct {
	// Server is the base URL (https://host[:port]; http only on loopback).
	Server string
	// Email is the account's email, for the login hint of unauthorized.
	Email string
	// Sessions is where the client reads and refreshes its tokens; nil for
	// a client that only makes unauthenticated calls (prelogin, login,
	// account creation).
	Sessions SessionStore
	// Getenv reads CAFileEnv; nil means no extra CA.
	Getenv func(string) string
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Retry is the read retry policy; the zero value means DefaultRetry.
	Retry RetryPolicy
	// MaxResponse bounds response bodies; 0 means MaxResponse.
	MaxResponse int64
	// Relogin, if set, renews the session in place of the refresh token:
	// a service token signs in again (it has no refresh token).
	Relogin func(ctx context.Context) (vault.Session, error)
	// LoginHint, if set, is the hint of every unauthorized answer in place
	// of the login command.
	LoginHint string
}

// Client talks to one sync server. It is safe for concurrent use. Never
// call it inside a vault.Store update: refreshing a token takes the
// store's lock, which the update already holds.
type Client struct {
	base     *url.URL
	email    string
	http     *http.Client
	sessions SessionStore
	now      func() time.Time
	retry    RetryPolicy
	maxBody  int64
	caFile   string
	relogin  func(ctx context.Context) (vault.Session, error)
	hint     string
}

// NewClient checks the server URL and builds the transport. It makes no
// request.
func NewClient(opts Options) (*Client, error) {
	base, err := CheckServerURL(opts.Server)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, email: opts.Email, sessions: opts.Sessions, now: opts.Now,
		retry: opts.Retry, maxBody: opts.MaxResponse, relogin: opts.Relogin, hint: opts.LoginHint}
	if c.now == nil {
		c.now = time.Now
	}
	if c.retry.Attempts <= 0 {
		c.retry = DefaultRetry
	}
	if c.maxBody <= 0 {
		c.maxBody = MaxResponse
	}
	// nil RootCAs is the system roots, loaded on the first TLS handshake:
	// reading them costs ~13 ms, which a loopback http server (and a
	// `secrets diff` that must stay close to `status`) never needs.
	var roots *x509.CertPool
	if opts.Getenv != nil {
		if c.caFile = opts.Getenv(CAFileEnv); c.caFile != "" {
			var err error
			if roots, err = x509.SystemCertPool(); err != nil {
				roots = x509.NewCertPool()
			}
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s: cannot read %s: %v", CAFileEnv, c.caFile, errors.Unwrap(err)),
					"set "+CAFileEnv+" to a readable PEM file of the server's CA certificate, or unset it")
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s: %s holds no PEM certificate", CAFileEnv, c.caFile),
					"set "+CAFileEnv+" to the server's CA certificate in PEM form")
			}
		}
	}
	if roots == nil && base.Scheme == "https" {
		// For an https server the system roots start loading now, in the
		// background, while the command reads its session from the
		// keychain and builds its request.
		go x509.SystemCertPool() //nolint:errcheck // the pool is cached for the handshake, or its error met there
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		// HTTPS_PROXY is honoured: an https server is reached through a
		// CONNECT tunnel, so the proxy sees no token or auth key, and Go
		// never proxies loopback addresses (the only plain-http servers).
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect would carry the bearer token elsewhere (Go drops it
		// across hosts, but not across schemes or ports): none is followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Server is the normalised base URL.
func (c *Client) Server() string { return c.base.String() }

// CheckServerURL validates and normalises a server base URL: http or https,
// a host, no user info, query or fragment, and https unless the host is
// loopback (the same rule the server applies to its listener).
func CheckServerURL(raw string) (*url.URL, error) {
	hint := "pass --server https://HOST[:PORT] (http:// only for 127.0.0.1, ::1 or localhost)"
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--server is not a URL of the form https://HOST[:PORT]"), hint)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--server: scheme %q is not http or https", u.Scheme), hint)
	case u.User != nil:
		// Never echo it: it would be a password.
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--server must not carry a user name or password"), hint)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--server must not have a query or fragment"), hint)
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--server %s: plain http is allowed only on loopback; the session tokens would cross the network in the clear", u.Host), hint)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--server: port %q is not 1-65535", p), hint)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// IsLoopback reports whether host (no port) names this machine only.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call is one API request. in, if not nil, is sent as JSON; out, if not
// nil, receives the JSON answer.
type call struct {
	method string
	path   string // already escaped
	query  url.Values
	in     any
	out    any
	// read marks a request that changes nothing on the server, so it may
	// be retried (GETs, and pull, a read sent as POST for its body).
	read bool
	// auth sends the bearer token (and refreshes it when needed).
	auth bool
}

// do runs a call: with the session's token if auth, refreshing it once on
// expiry or a 401, and retrying reads on transient failures.
func (c *Client) do(ctx context.Context, cl call) error {
	var body []byte
	if cl.in != nil {
		var err error
		if body, err = json.Marshal(cl.in); err != nil {
			return errcode.Errorf(errcode.Internal, "encode request: %w", err)
		}
	}
	if !cl.auth {
		return c.attempts(ctx, cl, body, "")
	}
	tok, err := c.accessToken(ctx, "")
	if err != nil {
		return err
	}
	err = c.attempts(ctx, cl, body, tok)
	if !isUnauthorized(err) {
		return err
	}
	// The server refused the token before doing anything, so the request
	// is safe to repeat once with a fresh one, even a write.
	tok2, rerr := c.accessToken(ctx, tok)
	if rerr != nil {
		return rerr
	}
	return c.loginHint(c.attempts(ctx, cl, body, tok2))
}

// attempts sends the request, retrying a read on a transient failure.
func (c *Client) attempts(ctx context.Context, cl call, body []byte, token string) error {
	tries := 1
	if cl.read {
		tries = c.retry.Attempts
	}
	var err error
	for i := 0; i < tries; i++ {
		var wait time.Duration
		wait, err = c.once(ctx, cl, body, token)
		if err == nil || !retriable(err) || i == tries-1 {
			break
		}
		if d := c.backoff(i); wait < d || wait > c.retry.Max {
			wait = min(d, c.retry.Max)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errcode.Errorf(errcode.Unavailable, "%s %s: %v (gave up retrying: %v)", cl.method, cl.path, err, ctx.Err())
		case <-t.C:
		}
	}
	return err
}

// backoff is full jitter over an exponential ceiling: concurrent clients
// that failed together do not come back together.
func (c *Client) backoff(i int) time.Duration {
	ceil := c.retry.Base << i
	if ceil <= 0 || ceil > c.retry.Max {
		ceil = c.retry.Max
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil)) + 1)
}

// transient marks an error a read may retry.
type transient struct {
	err error
}

func (t *transient) Error() string { return t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

func retriable(err error) bool {
	var t *transient
	return errors.As(err, &t)
}

// once sends one request and decodes its answer.
func (c *Client) once(ctx context.Context, cl call, body []byte, token string) (time.Duration, error) {
	u := *c.base
	u.Path = c.base.Path + cl.path
	u.RawPath = c.base.Path + cl.path
	if cl.query != nil {
		u.RawQuery = cl.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), rd)
	if err != nil {
		return 0, errcode.Errorf(errcode.Internal, "build request %s %s: %v", cl.method, cl.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "agentsecrets-sync/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return retryAfter(resp), c.statusError(resp)
	}
	if cl.out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return 0, nil
	}
	return 0, c.decode(resp, cl.out)
}

// decode reads a 2xx JSON answer strictly: the right content type, within
// the size limit, one JSON value of the expected shape and no trailing
// data. A server that answers otherwise is not the agentsecrets server
// the client expects (a captive portal, a proxy's page, another service).
func (c *Client) decode(resp *http.Response, out any) error {
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the sync server at %s answered %s with content type %q, not JSON", c.base.Host, resp.Request.URL.Path, shortType(resp.Header.Get("Content-Type"))),
			"check that --server names an agentsecrets server (not a proxy or a login page)")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return &transient{err: errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the sync server's answer to %s was cut off: %v", resp.Request.URL.Path, err), c.reachHint())}
	}
	if int64(len(b)) > c.maxBody {
		return errcode.WithHint(errcode.Errorf(errcode.TooLarge, "the sync server's answer to %s is larger than %d MiB", resp.Request.URL.Path, c.maxBody>>20),
			"check that --server names an agentsecrets server; a pull that large should be split by project")
	}
	if resp.ContentLength >= 0 && int64(len(b)) < resp.ContentLength {
		return &transient{err: errcode.Errorf(errcode.Unavailable, "the sync server's answer to %s was cut off", resp.Request.URL.Path)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the sync server's answer to %s is not valid: %s", resp.Request.URL.Path, jsonProblem(err)),
			"the server may run another version of agentsecrets: upgrade both, or check --server")
	}
	if dec.More() {
		return errcode.Errorf(errcode.Unavailable, "the sync server's answer to %s has data after the JSON value", resp.Request.URL.Path)
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the input: an
// answer may hold tokens or ciphertext.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

func shortType(ct string) string {
	if len(ct) > 64 {
		return ct[:64] + "…"
	}
	return ct
}

// statusError turns a non-2xx answer into a coded error: the server's
// syncapi.Error when it sent one, else one made from the status. 5xx
// answers are transient (a read may retry them).
func (c *Client) statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body syncapi.Error
	code := errcode.Code("")
	msg := ""
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		code, msg = errcode.Code(body.Error.Code), body.Error.Message
		if !knownCode(code) {
			code = ""
		}
	}
	if code == "" {
		code = codeOfStatus(resp.StatusCode)
		msg = "answered " + resp.Status
	}
	msg = "sync server: " + sanitize(msg)
	var err error
	if len(body.Error.Names) > 0 {
		err = &NamesError{Err: errcode.New(code, msg), Names: body.Error.Names}
	} else {
		err = errcode.New(code, msg)
	}
	switch {
	case code == errcode.Unauthorized && strings.Contains(msg, removedMessage):
		err = errcode.WithHint(err, removedHint)
	case code == errcode.Unauthorized:
		err = errcode.WithHint(err, c.loginCommand())
	case code == errcode.Conflict:
		err = errcode.WithHint(err, "run `agentsecrets secrets diff`, then pull or push again")
	case resp.StatusCode >= 500:
		err = errcode.WithHint(err, "the server failed; check its logs (`agentsecrets server` writes JSON logs to stderr) and retry")
	case code == errcode.RateLimited:
		err = errcode.WithHint(err, "too many attempts: wait a minute and retry")
	}
	if resp.StatusCode >= 500 {
		return &transient{err: err}
	}
	return err
}

// NamesError is a server error about particular secrets (a push conflict
// names every secret whose head moved).
type NamesError struct {
	Err   error
	Names []string
}

func (e *NamesError) Error() string { return e.Err.Error() }
func (e *NamesError) Unwrap() error { return e.Err }

func knownCode(c errcode.Code) bool {
	for _, s := range errcode.Specs() {
		if s.Code == c {
			return true
		}
	}
	return false
}

// codeOfStatus classifies an answer without a syncapi.Error body (a proxy
// or load balancer in front of the server said it).
func codeOfStatus(status int) errcode.Code {
	switch {
	case status == http.StatusUnauthorized:
		return errcode.Unauthorized
	case status == http.StatusForbidden:
		return errcode.Denied
	case status == http.StatusNotFound:
		return errcode.NotFound
	case status == http.StatusConflict:
		return errcode.Conflict
	case status == http.StatusRequestEntityTooLarge:
		return errcode.TooLarge
	case status == http.StatusTooManyRequests:
		return errcode.RateLimited
	case status >= 500:
		return errcode.Unavailable
	case status >= 400:
		return errcode.Usage
	}
	// 1xx/3xx: redirects are not followed (they could carry the token away).
	return errcode.Unavailable
}

// sanitize keeps a server message printable and short: it is shown to the
// user, and a hostile server must not drive their terminal.
func sanitize(s string) string {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return '?'
		}
		return r
	}, s)
}

func retryAfter(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// transportError classifies a failure to get an answer at all.
func (c *Client) transportError(ctx context.Context, err error) error {
	host := c.base.Host
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errcode.Errorf(errcode.Unavailable, "request to the sync server at %s was cancelled", host)
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		recordHdr   tls.RecordHeaderError
		dnsErr      *net.DNSError
		netErr      net.Error
		tlsHintText = "if the server uses a private CA, set " + CAFileEnv + "=PATH to its CA certificate (PEM); otherwise check the server's certificate"
	)
	switch {
	case errors.As(err, &unknownCA):
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS: the certificate of the sync server at %s is signed by an unknown authority", host), tlsHintText))
	case errors.As(err, &hostname):
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS: the certificate of the sync server is not valid for %s", c.base.Hostname()),
			"use the host name the certificate was issued for in --server"))
	case errors.As(err, &invalid):
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS: the certificate of the sync server at %s is invalid (expired or not yet valid, or not for serving)", host), tlsHintText))
	case errors.As(err, &verify):
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS: the certificate of the sync server at %s could not be verified", host), tlsHintText))
	case errors.As(err, &recordHdr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS: %s does not speak TLS", host),
			"use http:// for a loopback server started without --tls-cert, or the server's https:// port"))
	case errors.As(err, &dnsErr):
		return unsent(&transient{err: errcode.WithHint(errcode.Errorf(errcode.Unavailable, "cannot resolve the sync server's host %s", c.base.Hostname()), c.reachHint())})
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &transient{err: errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the sync server at %s did not answer in time", host), c.reachHint())}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return unsent(&transient{err: errcode.WithHint(errcode.Errorf(errcode.Unavailable, "cannot connect to the sync server at %s: %v", host, errors.Unwrap(opErr.Err)), c.reachHint())})
	}
	if strings.Contains(err.Error(), "tls:") {
		return unsent(errcode.WithHint(errcode.Errorf(errcode.Unavailable, "TLS handshake with the sync server at %s failed", host), tlsHintText))
	}
	// A connection reset or closed mid-request (EOF): the server went
	// away; a read may retry.
	return &transient{err: errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the connection to the sync server at %s failed", host), c.reachHint())}
}

// notSent marks a failure before the request reached the server (no
// connection, no name, a refused TLS handshake): the server did nothing.
type notSent struct{ err error }

func (n *notSent) Error() string { return n.err.Error() }
func (n *notSent) Unwrap() error { return n.err }

func unsent(err error) error { return &notSent{err: err} }

// NotSent reports whether err is a failure before the request reached the
// server, so a write certainly did not happen.
func NotSent(err error) bool {
	var n *notSent
	return errors.As(err, &n)
}

func (c *Client) reachHint() string {
	return "check that `agentsecrets server` is running at " + c.base.String() + " and reachable from here, then retry"
}

// loginCommand is the hint of every unauthorized answer: the command that
// opens a new session.
func (c *Client) loginCommand() string {
	if c.hint != "" {
		return c.hint
	}
	cmd := "agentsecrets login --server " + c.base.String()
	if c.email != "" {
		cmd += " --email " + c.email
	} else {
		cmd += " --email EMAIL"
	}
	return "sign in again: `" + cmd + "`"
}

// loginHint makes sure an unauthorized error carries the login hint.
func (c *Client) loginHint(err error) error {
	if rep := errcode.Classify(err); isUnauthorized(err) && rep.Hint != c.loginCommand() && rep.Hint != removedHint {
		return errcode.WithHint(err, c.loginCommand())
	}
	return err
}

func isUnauthorized(err error) bool {
	return err != nil && errcode.Classify(err).Code == errcode.Unauthorized
}
