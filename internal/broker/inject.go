package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// userAgent names agentsecrets to an upstream whose caller chose no
// User-Agent (Go's default names only the HTTP library). Read once: the
// build record does not change while the process runs.
var userAgent = sync.OnceValue(func() string { return "agentsecrets/" + buildinfo.Version() })

// isHopHeader reports whether name, in canonical form, is a
// connection-level header (RFC 9110 §7.6.1), which never crosses the
// broker in either direction.
func isHopHeader(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// removeHopHeaders drops hop-by-hop headers and every header named in
// Connection, as httputil.ReverseProxy does, before anything is injected,
// so a client cannot name an injected header in Connection to strip it.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = textprotoTrim(name); name != "" {
				h.Del(name)
			}
		}
	}
	// One pass over the header, not a Del per hop-by-hop name: Del
	// deletes exactly the key that equals the canonical name, and so does
	// this, for a fraction of the lookups.
	for name := range h {
		if isHopHeader(name) {
			delete(h, name)
		}
	}
}

func textprotoTrim(s string) string { return strings.TrimSpace(s) }

// proxyPrefix starts the headers of the proxy's own protocol (session
// token, target, injections), which never go upstream.
const proxyPrefix = "x-as-"

// outbound builds the request sent upstream from the client's request: it
// never modifies the client's headers, strips hop-by-hop, proxy-only and
// client copies of injected headers, then sets injected values ("injected
// always wins"). values maps secret name to value.
//
// What the bindings that allowed the request ask for is applied here too:
// Range and If-Range are dropped from a request that carries a value unless
// every binding used allows ranges (pieces of an echo, each too short to be
// recognised, would reassemble it), and method-override headers are
// dropped when a binding limits the methods.
func outbound(ctx context.Context, method string, t target, clientHeader http.Header, body []byte, ins []Injection, values map[string][]byte, d policy.Decision) (*http.Request, error) {
	// A new map that shares the client's value slices: below, entries are
	// only set (to new slices) or deleted, never appended to or edited, so
	// the client's header stays as it was (it is used again on a redirect
	// hop) without copying every value.
	h := make(http.Header, len(clientHeader)+2)
	for name, vals := range clientHeader {
		// EqualFold, not ToLower: no allocation per header name.
		if len(name) < len(proxyPrefix) || !strings.EqualFold(name[:len(proxyPrefix)], proxyPrefix) {
			h[name] = vals
		}
	}
	removeHopHeaders(h)
	h.Del("Host")
	h.Del("Content-Length")
	if len(ins) > 0 && !d.AllowRange {
		h.Del("Range")
		h.Del("If-Range")
	}
	if d.RestrictsMethods {
		for _, name := range methodOverrideHeaders {
			h.Del(name)
		}
	}
	// The broker must see responses in a form it can scan, so it decides
	// which encodings the upstream may use.
	h.Set("Accept-Encoding", "gzip, deflate")
	for _, in := range ins {
		switch in.Style {
		case StyleBearer, StyleBasic:
			h.Del("Authorization")
		case StyleHeader:
			h.Del(in.Field)
		}
	}

	u := *t.url
	for _, in := range ins {
		v := values[in.Secret]
		switch in.Style {
		case StyleBearer:
			if err := headerSafe(in, v); err != nil {
				return nil, err
			}
			h.Set("Authorization", "Bearer "+string(v))
		case StyleBasic:
			if !bytes.Contains(v, []byte(":")) {
				return nil, badRequest("secret %s is used with --basic but is not of the form user:password", in.Secret)
			}
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(v))
		case StyleHeader:
			if err := headerSafe(in, v); err != nil {
				return nil, err
			}
			h.Set(in.Field, string(v))
		case StyleQuery:
			u.RawQuery = setQuery(u.RawQuery, in.Field, string(v))
		case StyleBody:
			b, err := setJSONPath(body, in.Field, string(v))
			if err != nil {
				return nil, fmt.Errorf("%w (injecting %s)", err, in.Secret)
			}
			body = b
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", "application/json")
			}
		case StyleForm:
			b, err := setForm(body, in.Field, string(v))
			if err != nil {
				return nil, fmt.Errorf("%w (injecting %s)", err, in.Secret)
			}
			body = b
			h.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	// Keys are canonical here, as everywhere in this function (Del and
	// Set canonicalize); an empty User-Agent the caller set is kept, and
	// sends none.
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{userAgent()}
	}
	// Built from its parts, as httputil.ReverseProxy builds its outbound
	// request: NewRequestWithContext would print the URL only to parse it
	// again, and allocate a header map that is replaced at once.
	req := (&http.Request{Method: method, URL: &u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: u.Host}).WithContext(ctx)
	if len(body) > 0 {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		// The transport replays the body when it retries on a connection
		// that was closed under it.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req, nil
}

// methodOverrideHeaders are the headers method-override middleware
// (Express, Rails, Spring, Laravel, ASP.NET) reads the real method from.
var methodOverrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// hasMethodOverride reports whether a _method parameter (any case, any
// percent-encoding of its name) is in the query, or is a field of a form,
// multipart or JSON body: each is read by some override middleware.
func hasMethodOverride(rawQuery, contentType string, body []byte) bool {
	isOverride := func(k string) bool { return strings.EqualFold(strings.TrimSpace(k), "_method") }
	formHas := func(raw string) bool {
		for _, part := range strings.Split(raw, "&") {
			k, _, _ := strings.Cut(part, "=")
			if dk, err := url.QueryUnescape(k); isOverride(k) || err == nil && isOverride(dk) {
				return true
			}
		}
		return false
	}
	if formHas(rawQuery) {
		return true
	}
	if len(body) == 0 {
		return false
	}
	mt, params, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				// A body that does not parse is judged by its bytes.
				return err != io.EOF && bytes.Contains(bytes.ToLower(body), []byte("_method"))
			}
			if isOverride(p.FormName()) {
				return true
			}
		}
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")):
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return false
		}
		for k := range obj {
			if isOverride(k) {
				return true
			}
		}
		return false
	default:
		// Form-encoded, or a type override middleware may parse as a form
		// anyway (Rack reads the form of any POST).
		return formHas(string(body))
	}
}

// headerSafe refuses values that cannot travel in a header without
// splitting it.
func headerSafe(in Injection, v []byte) error {
	if bytes.ContainsAny(v, "\r\n\x00") {
		return badRequest("secret %s contains a line break and cannot be sent in a header", in.Secret)
	}
	return nil
}

// setQuery replaces or adds one parameter, keeping its name exactly as
// given (no canonicalisation) and every other parameter as it was.
func setQuery(raw, name, value string) string {
	var kept []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if dk, err := url.QueryUnescape(k); err == nil && dk == name {
			continue
		}
		kept = append(kept, part)
	}
	kept = append(kept, url.QueryEscape(name)+"="+url.QueryEscape(value))
	return strings.Join(kept, "&")
}

// setForm sets one field of a form-encoded body, keeping the others.
func setForm(body []byte, name, value string) ([]byte, error) {
	if _, err := url.ParseQuery(string(body)); err != nil {
		return nil, badRequest("the body is not form-encoded")
	}
	return []byte(setQuery(string(body), name, value)), nil
}

// setJSONPath sets a dotted path in a JSON object body to a string value.
// Objects along the path are created; array elements are addressed by
// index and must exist. Numbers keep their exact text.
func setJSONPath(body []byte, path, value string) ([]byte, error) {
	var root any = map[string]any{}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&root); err != nil {
			return nil, badRequest("the body is not JSON")
		}
	}
	parts := strings.Split(path, ".")
	var set func(node any, i int) (any, error)
	set = func(node any, i int) (any, error) {
		if i == len(parts) {
			return value, nil
		}
		p := parts[i]
		switch n := node.(type) {
		case map[string]any:
			child, ok := n[p]
			if !ok {
				child = map[string]any{}
			}
			v, err := set(child, i+1)
			if err != nil {
				return nil, err
			}
			n[p] = v
			return n, nil
		case []any:
			idx, err := strconv.Atoi(p)
			if err != nil || idx < 0 || idx >= len(n) {
				return nil, badRequest("JSON path %q: no element %s in an array of %d", path, p, len(n))
			}
			v, err := set(n[idx], i+1)
			if err != nil {
				return nil, err
			}
			n[idx] = v
			return n, nil
		default:
			if i == len(parts) {
				return value, nil
			}
			return nil, badRequest("JSON path %q: %s is not an object or array", path, strings.Join(parts[:i], "."))
		}
	}
	root, err := set(root, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, badRequest("cannot encode the JSON body")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
