package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// Options configure a Server.
type Options struct {
	Store Store
	// Signup "closed" (the default) refuses account creation except the
	// first account of an empty server and an email with an open invite;
	// "open" lets anyone create one.
	Signup string
	// Logger receives one JSON line per request and per auth event; it
	// never receives a token, auth key, ciphertext or body.
	Logger *slog.Logger
	Now    func() time.Time
	// AccountLimit and IPLimit throttle the authentication endpoints per
	// account email and per client IP (zero values: the defaults).
	AccountLimit Limit
	IPLimit      Limit
	// LimitLoopback applies IPLimit to loopback clients too. By default
	// they are exempt: behind a TLS-terminating proxy on the same host
	// every client is 127.0.0.1, and one shared bucket would lock all of
	// them out together. The per-account limit applies to everyone.
	LimitLoopback bool
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
}

// Defaults of Options.
var (
	DefaultAccountLimit = Limit{Burst: 10, Every: 6 * time.Second}
	DefaultIPLimit      = Limit{Burst: 30, Every: 2 * time.Second}
)

const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 30 * 24 * time.Hour
	// serverKeyName is the row of server_keys keyed for prelogin answers.
	serverKeyName = "prelogin"
)

// Server is the sync API: an http.Handler over a Store.
type Server struct {
	opts      Options
	store     Store
	log       *slog.Logger
	now       func() time.Time
	serverKey []byte
	hasher    *hasher
	pulls     *pullCache
	byAccount *limiter
	byIP      *limiter
	mux       *http.ServeMux
}

// New builds the server. It reads (or creates, once for all replicas) the
// server key in the database.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if opts.AccountLimit == (Limit{}) {
		opts.AccountLimit = DefaultAccountLimit
	}
	if opts.IPLimit == (Limit{}) {
		opts.IPLimit = DefaultIPLimit
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = DefaultAccessTTL
	}
	if opts.RefreshTTL == 0 {
		opts.RefreshTTL = DefaultRefreshTTL
	}
	if opts.Signup == "" {
		opts.Signup = "closed"
	}
	if opts.Signup != "open" && opts.Signup != "closed" {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--signup must be open or closed"), "use --signup closed (only the first account) or --signup open")
	}
	fresh, err := crypto.Random(32)
	if err != nil {
		return nil, err
	}
	key, err := opts.Store.ServerKey(ctx, serverKeyName, fresh)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, store: opts.Store, log: opts.Logger, now: opts.Now, serverKey: key,
		hasher: newHasher(4), pulls: newPullCache(pullCacheBudget), byAccount: newLimiter(opts.AccountLimit, opts.Now), byIP: newLimiter(opts.IPLimit, opts.Now)}
	s.routes()
	return s, nil
}

// handler answers one endpoint: a body to send with 200, nil for 204, or
// an error.
type handler func(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET "+syncapi.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET "+syncapi.PathReady, s.ready)
	pub := func(pattern string, h handler) { m.Handle(pattern, s.endpoint(h, false)) }
	auth := func(pattern string, h handler) { m.Handle(pattern, s.endpoint(h, true)) }
	pub("POST "+syncapi.PathPrelogin, s.prelogin)
	pub("POST "+syncapi.PathAccounts, s.createAccount)
	pub("POST "+syncapi.PathSessions, s.login)
	pub("POST "+syncapi.PathRefresh, s.refresh)
	auth("DELETE "+syncapi.PathSessionCurrent, s.logout)
	auth("GET "+syncapi.PathAccount, s.account)
	auth("GET "+syncapi.PathDevices, s.devices)
	auth("DELETE "+syncapi.PathDevice, s.revokeDevice)
	auth("GET "+syncapi.PathWorkspaces, s.workspaces)
	auth("POST "+syncapi.PathWorkspaces, s.createWorkspace)
	auth("GET "+syncapi.PathWorkspace, s.workspace)
	auth("POST "+syncapi.PathProjects, s.createProject)
	auth("POST "+syncapi.PathPull, s.pull)
	auth("POST "+syncapi.PathPush, s.push)
	auth("GET "+syncapi.PathHistory, s.history)
	auth("GET "+syncapi.PathAllowlist, s.allowlist)
	auth("POST "+syncapi.PathAllowlist, s.pushAllowlist)
	auth("GET "+syncapi.PathInvites, s.listInvites)
	auth("POST "+syncapi.PathInvites, s.createInvite)
	auth("DELETE "+syncapi.PathInvite, s.cancelInvite)
	auth("POST "+syncapi.PathInviteComplete, s.completeInvite)
	auth("GET "+syncapi.PathMyInvites, s.myInvites)
	auth("POST "+syncapi.PathInviteAccept, s.acceptInvite)
	auth("GET "+syncapi.PathTokens, s.listTokens)
	auth("POST "+syncapi.PathTokens, s.createToken)
	auth("DELETE "+syncapi.PathToken, s.revokeToken)
	pub("POST "+syncapi.PathTokenLogin, s.tokenLogin)
	auth("POST "+syncapi.PathRotate, s.rotate)
	auth("POST "+syncapi.PathAudit, s.uploadAudit)
	auth("GET "+syncapi.PathAudit, s.listAudit)
	// Everything else, a wrong method included, is a JSON not_found.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errcode.WithHint(errcode.New(errcode.NotFound, "no such endpoint"), "check the server URL; the API lives under /"+syncapi.Version))
	})
	s.mux = m
}

// reqInfo is what the request log line needs from inside a handler.
type reqInfo struct {
	ip      string
	account string
	device  string
	code    errcode.Code
	// token is set when the caller is a service token: its scope.
	token *serviceToken
}

type infoKey struct{}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// ServeHTTP logs one line per request: method, route pattern (never the
// query or a header), status, duration, account and client IP.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{ip: clientIP(r)}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	rec.Header().Set("X-Content-Type-Options", "nosniff")
	rec.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(rec, r)
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", rec.status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000), slog.String("ip", info.ip),
	}
	if info.account != "" {
		attrs = append(attrs, slog.String("account", info.account), slog.String("device", info.device))
	}
	if info.code != "" {
		attrs = append(attrs, slog.String("code", string(info.code)))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Error("database unreachable", slog.String("error", err.Error()))
		s.writeError(w, r, errcode.New(errcode.Unavailable, "database unreachable"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// endpoint adds authentication (when authed) and answer writing to h.
func (s *Server) endpoint(h handler, authed bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ := r.Context().Value(infoKey{}).(*reqInfo)
		if authed {
			if err := s.authenticate(r, info); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		body, err := h(w, r, info)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if body == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

// rawJSON is an answer already encoded by encodeJSON, sent as it is.
type rawJSON []byte

// encodeJSON is the bytes writeJSON sends for body: its JSON and a newline.
func encodeJSON(body any) (rawJSON, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encode the answer: %v", err)
	}
	return append(b, '\n'), nil
}

// writeJSON encodes the whole answer before the status goes out, so it
// can send a Content-Length and a failure can still be a 500.
func writeJSON(w http.ResponseWriter, status int, body any) {
	raw, ok := body.(rawJSON)
	if !ok {
		var err error
		if raw, err = encodeJSON(body); err != nil {
			status, raw = http.StatusInternalServerError, rawJSON(`{"error":{"code":"internal","message":"the server failed (internal); see its log"}}`+"\n")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(status)
	w.Write(raw)
}

// rateLimitedError carries how long the client should wait and what it
// did too often ("authentication attempts").
type rateLimitedError struct {
	retry time.Duration
	what  string
}

func (e *rateLimitedError) Error() string { return "too many attempts" }

// writeError answers with the code's HTTP status and syncapi.Error. An
// internal or database failure is logged in full and answered in general
// terms: its text may name tables or drivers, nothing a client needs.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	body := syncapi.ErrorBody{}
	var rl *rateLimitedError
	var ce *conflictError
	switch {
	case errors.As(err, &rl):
		body.Code, body.Message = string(errcode.RateLimited), "too many "+rl.what+"; retry after "+strconv.Itoa(int(rl.retry.Seconds())+1)+"s"
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.retry.Seconds())+1))
	case errors.As(err, &ce):
		body.Code, body.Names = string(errcode.Conflict), ce.names
		body.Message = "changed on the server since your base version: " + strings.Join(ce.names, ", ")
		if len(ce.names) == 0 {
			body.Message = "changed on the server since your base version"
		}
	default:
		rep := errcode.Classify(err)
		body.Code, body.Message = string(rep.Code), rep.Message
		if rep.Code == errcode.Internal || rep.Code == errcode.Unavailable {
			s.log.Error("request failed", slog.String("route", r.Pattern), slog.String("error", err.Error()))
			body.Message = "the server failed (" + string(rep.Code) + "); see its log"
		}
	}
	if info, _ := r.Context().Value(infoKey{}).(*reqInfo); info != nil {
		info.code = errcode.Code(body.Code)
	}
	status := errcode.Lookup(errcode.Code(body.Code)).HTTP
	writeJSON(w, status, syncapi.Error{Error: body})
}

// decode reads a request body strictly: at most syncapi.MaxBody bytes, one
// JSON value, no unknown fields, nothing after it. Its errors never quote
// the body.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, syncapi.MaxBody)
}

// decodeLimit is decode with another size bound.
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return bodyError(err)
		}
		return errcode.WithHint(errcode.New(errcode.Usage, "malformed request body: data after the JSON value"), "send exactly one JSON object")
	}
	return nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errcode.WithHint(errcode.Errorf(errcode.TooLarge, "request body exceeds %d bytes", tooBig.Limit), "push fewer secrets at a time")
	}
	msg := "malformed request body"
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		msg += ": invalid JSON at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		msg += ": wrong type for field " + strconv.Quote(typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg += ": unknown field " + printableField(strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		msg += ": empty or truncated"
	default:
		msg += ": not the expected JSON object"
	}
	return errcode.WithHint(errcode.New(errcode.Usage, msg), "see schema/server for the request bodies")
}

// printableField echoes an unknown field name only when it is shaped like
// the API's own (short snake_case): a value pasted as a key must not come
// back.
func printableField(quoted string) string {
	name, err := strconv.Unquote(quoted)
	if err != nil || len(name) > 32 {
		return "<" + strconv.Itoa(len(quoted)) + " bytes>"
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z') {
			return "<" + strconv.Itoa(len(name)) + " bytes>"
		}
	}
	return strconv.Quote(name)
}
