// Package proxy is the HTTP front end of the broker: the explicit /proxy
// API of the original AgentSecrets, on 127.0.0.1 only, behind a
// per-session token. It translates requests to and from broker.Request and
// streams responses as they arrive; all policy, injection and redaction is
// the broker's.
package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Header names of the explicit proxy protocol.
const (
	HeaderToken     = "X-AS-Session-Token"
	HeaderTargetURL = "X-AS-Target-URL"
	HeaderMethod    = "X-AS-Method"
	HeaderWorkspace = "X-AS-Workspace"
	HeaderProject   = "X-AS-Project"
	HeaderAuditID   = "X-AS-Audit-Id"
	HeaderRedacted  = "X-AS-Redacted"
	injectPrefix    = "X-As-Inject-"
)

// Server serves /proxy and /health.
type Server struct {
	Broker *broker.Broker
	Token  string
	// Selection is the project requests use unless they name another with
	// X-AS-Workspace / X-AS-Project.
	Selection vault.Selection
	Version   string

	// audits counts audit records still being written; Drain waits for them.
	audits sync.WaitGroup
}

// Drain waits until every finished request's audit record is written. Call
// it after http.Server.Shutdown.
func (s *Server) Drain() { s.audits.Wait() }

// Handler returns the routes, wrapped in the loopback Host check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.health)
	mux.HandleFunc("/proxy", s.proxy)
	return loopbackOnly(mux)
}

// loopbackOnly rejects requests whose Host is not a loopback name: a web
// page that rebinds its own DNS name to 127.0.0.1 still sends its own name.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		switch strings.ToLower(strings.TrimSuffix(host, ".")) {
		case "localhost", "127.0.0.1", "::1", "[::1]":
			next.ServeHTTP(w, r)
		default:
			writeError(w, errcode.WithHint(errcode.New(errcode.Denied, "the proxy only answers requests addressed to a loopback name (Host: 127.0.0.1 or localhost)"),
				"send requests to http://127.0.0.1:PORT/proxy"))
		}
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": s.Version})
}

// ErrToken: the session token is missing or wrong.
var ErrToken = errcode.New(errcode.Unauthorized, "missing or wrong "+HeaderToken)

func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get(HeaderToken)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
		writeError(w, errcode.WithHint(ErrToken, "read the token from the token_file shown by `agentsecrets proxy status`"))
		return
	}
	req, err := s.translate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.Broker.Do(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	h.Del("Content-Length") // redaction may change the length
	h.Set(HeaderAuditID, resp.AuditID)
	h.Set("Trailer", HeaderRedacted)
	w.WriteHeader(resp.Status)
	readErr := stream(w, resp.Body, resp.Stream)
	// The audit record is appended off the response path: the client gets
	// its last chunk without waiting on the log's lock and write.
	s.audits.Add(1)
	go func() {
		defer s.audits.Done()
		resp.Close(readErr)
	}()
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		// A truncated 200 would look complete; abort the connection.
		panic(http.ErrAbortHandler)
	}
	if resp.Redacted() {
		h.Set(HeaderRedacted, "true")
	} else {
		h.Set(HeaderRedacted, "false")
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// stream copies the body. For a streaming upstream (server-sent events, a
// body of unknown length) it flushes after every chunk so events reach the
// client as they arrive; otherwise the server's own buffering saves a
// write per response.
func stream(w http.ResponseWriter, body io.Reader, flush bool) error {
	var flusher http.Flusher
	if flush {
		flusher, _ = w.(http.Flusher)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// translate turns a /proxy request into a broker request.
func (s *Server) translate(r *http.Request) (*broker.Request, error) {
	target := r.Header.Get(HeaderTargetURL)
	if target == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "missing "+HeaderTargetURL), "set "+HeaderTargetURL+": https://api.example.com/path")
	}
	method := r.Header.Get(HeaderMethod)
	if method == "" {
		method = r.Method
	}
	ins, err := ParseInjections(r.Header)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, broker.MaxRequestBody+1))
	if err != nil {
		return nil, errcode.Errorf(errcode.Usage, "read request body: %v", err)
	}
	if len(body) > broker.MaxRequestBody {
		return nil, errcode.Errorf(errcode.TooLarge, "request body larger than %d MiB", broker.MaxRequestBody>>20)
	}
	sel := s.Selection
	if ws := r.Header.Get(HeaderWorkspace); ws != "" {
		sel.Workspace = ws
	}
	if p := r.Header.Get(HeaderProject); p != "" {
		sel.Project = p
	}
	plain := http.Header{}
	for k, v := range r.Header {
		if !strings.HasPrefix(k, "X-As-") {
			plain[k] = v
		}
	}
	return &broker.Request{FrontEnd: "proxy", Selection: sel, Method: method, URL: target, Header: plain, Body: body, Injections: ins}, nil
}

// ParseInjections reads the X-AS-Inject-* headers. Header names reach Go
// canonicalised (X-As-Inject-Query-Userid), so the suffix form lower-cases
// query, body and form names; the case-preserving form carries the name in
// the value: "X-AS-Inject-Query: userId=SECRET_NAME" (repeatable).
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
		vals := h[key]
		rest := strings.TrimPrefix(key, injectPrefix)
		kind, suffix, hasSuffix := strings.Cut(rest, "-")
		style := strings.ToLower(kind)
		switch style {
		case broker.StyleBearer, broker.StyleBasic:
			if hasSuffix {
				return nil, errcode.Errorf(errcode.Usage, "unknown proxy header %s", key)
			}
			for _, v := range vals {
				out = append(out, broker.Injection{Style: style, Secret: strings.TrimSpace(v)})
			}
		case broker.StyleHeader, broker.StyleQuery, broker.StyleBody, broker.StyleForm:
			for _, v := range vals {
				if hasSuffix {
					field := suffix
					if style != broker.StyleHeader {
						field = strings.ToLower(suffix)
					}
					out = append(out, broker.Injection{Style: style, Field: field, Secret: strings.TrimSpace(v)})
					continue
				}
				for _, pair := range strings.Split(v, ",") {
					field, name, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok || field == "" || name == "" {
						return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s wants FIELD=SECRET_NAME", key), "e.g. "+key+": userId=API_KEY")
					}
					out = append(out, broker.Injection{Style: style, Field: field, Secret: name})
				}
			}
		default:
			return nil, errcode.Errorf(errcode.Usage, "unknown proxy header %s", key)
		}
	}
	return out, nil
}

// writeError answers with the code's HTTP status and the JSON error shape
// every front end uses.
func writeError(w http.ResponseWriter, err error) {
	rep := errcode.Classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(errcode.Lookup(rep.Code).HTTP)
	json.NewEncoder(w).Encode(errcode.Envelope{Error: rep})
}
