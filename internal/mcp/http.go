package mcp

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTP endpoint and headers.
const (
	// Path is where the Streamable HTTP endpoint is served.
	Path = "/mcp"
	// HeaderToken carries the session token, as on the local proxy;
	// "Authorization: Bearer TOKEN" works too.
	HeaderToken = "X-AS-Session-Token"
	// statelessVersion is the first protocol revision without sessions:
	// the SDK serves it only from a stateless handler.
	statelessVersion = "2026-07-28"
	sessionIdle      = 30 * time.Minute
)

// ParseLoopbackAddr checks that addr is HOST:PORT with HOST a loopback
// address (127.0.0.0/8, ::1, or localhost, which means 127.0.0.1) and
// returns it in the form to listen on. Anything else is refused: the
// server answers for the user's vault and must not be reachable from
// another machine.
func ParseLoopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "--http wants HOST:PORT on a loopback address"), "e.g. --http 127.0.0.1:8766 (port 0 picks a free one)")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "--http port must be 0-65535"), "e.g. --http 127.0.0.1:8766 (port 0 picks a free one)")
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "--http must be a loopback address (127.0.0.1, ::1 or localhost)"),
			"the MCP server never listens beyond this machine; use --http 127.0.0.1:PORT")
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// HTTPHandler serves Streamable HTTP at Path. Every request must be
// addressed to a loopback name (a page that rebinds its DNS name to
// 127.0.0.1 still sends its own Host) and carry token. Requests at the
// session-less protocol revision go to a stateless handler, all others to
// one that keeps sessions.
func (s *Server) HTTPHandler(token string) http.Handler {
	getServer := func(*http.Request) *sdk.Server { return s.sdk }
	// Sessions a client abandons without DELETE are closed when idle, so a
	// long-running server does not accumulate them.
	stateful := sdk.NewStreamableHTTPHandler(getServer, &sdk.StreamableHTTPOptions{MaxRequestBodyBytes: MaxMessage, SessionTimeout: sessionIdle})
	stateless := sdk.NewStreamableHTTPHandler(getServer, &sdk.StreamableHTTPOptions{Stateless: true, MaxRequestBodyBytes: MaxMessage})
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		if !validToken(r, token) {
			writeError(w, errcode.WithHint(errcode.New(errcode.Unauthorized, "missing or wrong session token"),
				"send Authorization: Bearer TOKEN (or "+HeaderToken+"), TOKEN from the token file `mcp serve --http` printed"))
			return
		}
		if r.Method == http.MethodPost && !checkBody(w, r) {
			return
		}
		if r.Header.Get("Mcp-Protocol-Version") >= statelessVersion {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
	return loopbackOnly(mux)
}

// checkBody applies the stdio filter's checks to a POSTed message: a bad
// one is answered with a JSON-RPC error (HTTP 400, or 413 past
// MaxMessage) and false; a good one replaces the body in its canonical
// form, so the SDK decodes exactly what was checked.
func checkBody(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
	status := http.StatusBadRequest
	var canon, reply []byte
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		status, reply = http.StatusRequestEntityTooLarge, errorReply(nullID, codeInvalidRequest, "message larger than "+strconv.Itoa(MaxMessage>>20)+" MiB")
	case err != nil:
		reply = errorReply(nullID, codeParseError, "parse error: the request body could not be read")
	default:
		if canon, reply = checkMessage(body); canon == nil && reply == nil {
			reply = errorReply(nullID, codeInvalidRequest, "invalid request: empty body")
		}
	}
	if reply != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		w.Write(append(reply, '\n'))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(canon))
	r.ContentLength = int64(len(canon))
	return true
}

func validToken(r *http.Request, token string) bool {
	got := r.Header.Get(HeaderToken)
	if got == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = strings.TrimSpace(v)
		}
	}
	return token != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// loopbackOnly rejects requests whose Host is not a loopback name.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(strings.TrimSuffix(host, ".")), "[]")
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, errcode.WithHint(errcode.New(errcode.Denied, "the MCP server only answers requests addressed to a loopback name (Host: 127.0.0.1 or localhost)"),
			"connect to http://127.0.0.1:PORT"+Path))
	})
}

func writeError(w http.ResponseWriter, err error) {
	rep := errcode.Classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(errcode.Lookup(rep.Code).HTTP)
	json.NewEncoder(w).Encode(ErrorReport{Error: rep})
}
