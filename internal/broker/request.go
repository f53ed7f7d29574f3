package broker

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Injection styles: the six ways a value can be put into a request.
const (
	StyleBearer = "bearer" // Authorization: Bearer VALUE
	StyleBasic  = "basic"  // Authorization: Basic base64(VALUE), VALUE is user:pass
	StyleHeader = "header" // Field: VALUE
	StyleQuery  = "query"  // ?Field=VALUE, name kept exactly as given
	StyleBody   = "body"   // JSON body, Field is a dotted path (arrays by index)
	StyleForm   = "form"   // form-encoded body field, name kept exactly
)

// Injection asks for one secret, by name, to be put somewhere in a request.
type Injection struct {
	Style  string `json:"style"`
	Field  string `json:"field,omitempty"`
	Secret string `json:"secret"`
}

// Surface is where the style puts the value, for policy.
func (in Injection) Surface() string {
	switch in.Style {
	case StyleQuery:
		return policy.SurfaceQuery
	case StyleBody:
		return policy.SurfaceBody
	case StyleForm:
		return policy.SurfaceForm
	default:
		return policy.SurfaceHeader
	}
}

// headerName is the header the injection puts the value under, for
// header-name pinning ("" for other surfaces).
func (in Injection) headerName() string {
	switch in.Style {
	case StyleBearer, StyleBasic:
		return policy.AuthorizationHeader
	case StyleHeader:
		return in.Field
	}
	return ""
}

// Request is what a front end asks the broker to send. It carries secret
// names only; values are added by the broker and never leave it.
type Request struct {
	FrontEnd   string
	Selection  vault.Selection
	Method     string
	URL        string
	Header     http.Header
	Body       []byte
	Injections []Injection
	// Timeout bounds the whole exchange up to the response headers and the
	// body's delivery; 0 means the broker's default.
	Timeout time.Duration
	// MaxResponse caps the decoded response body in bytes; 0 means the
	// broker's. Per request, so that a front end serving many callers
	// keeps one broker (and one connection pool) whatever they ask.
	MaxResponse int64
	// Scan, if set, is handed the redactor of this request's values with
	// the upstream's answer (or Do's error, once the values were read), so
	// the front end can give its final output one more scan for them. Not
	// sooner: the redactor is built while the request is in flight.
	Scan func(*Redactor)
	// Sent, if set, is handed each request as it goes upstream (once per
	// redirect hop), injected values masked (see Sent).
	Sent func(Sent)
}

// ErrBadRequest wraps every validation failure of a Request.
var ErrBadRequest = errcode.New(errcode.Usage, "invalid request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// target is a validated URL plus what policy needs to know about it. It
// is a value, and url is never modified once parseTarget returns: a
// target is shared by every request for the same URL (targetCache).
type target struct {
	url  *url.URL
	host string
	port int
	// hostPort is host:port with the effective port, as the audit log and
	// errors name an origin.
	hostPort string
}

func (t target) origin() string {
	return t.url.Scheme + "://" + t.hostport()
}

func (t target) hostport() string { return t.hostPort }

// Bounds of a targetCache: enough distinct URLs for any client that
// repeats itself, few enough that a client that never does (a new query
// string per request) costs a bounded map, rebuilt when full. Longer URLs
// are parsed every time rather than kept.
const (
	maxCachedTargets = 1024
	maxCachedURL     = 1024
)

// targetCache holds parsed targets by URL. A long-running front end sees
// the same few URLs again and again, and parsing one (url.Parse, the host
// normalised as the allowlist matches it) cost more than the policy check
// it feeds. Failures are not kept: they end the request anyway.
type targetCache struct {
	mu sync.Mutex
	m  map[string]target
}

// parse is parseTarget, answered from the cache when it can be.
func (c *targetCache) parse(raw string) (target, error) {
	if len(raw) > maxCachedURL {
		return parseTarget(raw)
	}
	c.mu.Lock()
	t, ok := c.m[raw]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := parseTarget(raw)
	if err != nil {
		return t, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedTargets {
		c.m = make(map[string]target)
	}
	c.m[raw] = t
	c.mu.Unlock()
	return t, nil
}

// parseTarget validates a URL the way the allowlist is matched: an exact,
// normalised host, an explicit effective port, and no way to make the
// string the policy sees differ from what is dialled.
func parseTarget(raw string) (target, error) {
	if raw == "" {
		return target{}, badRequest("no URL")
	}
	if strings.ContainsAny(raw, " \t\r\n\\") {
		return target{}, badRequest("the URL contains whitespace or a backslash")
	}
	if !strings.Contains(raw, "://") {
		if s := withScheme(raw); s != "" {
			return target{}, errcode.WithHint(badRequest("the URL has no scheme"),
				"give it one: "+s+" (http:// only for hosts allowlisted with --allow-http)")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, badRequest("the URL does not parse")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return target{}, badRequest("the URL must start with https:// (or http:// for allowlisted local hosts)")
	}
	if u.User != nil {
		return target{}, badRequest("user information in the URL (user@host) is not allowed; use --basic NAME")
	}
	if u.Opaque != "" || u.Host == "" {
		return target{}, badRequest("the URL has no host")
	}
	host := u.Hostname()
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return target{}, badRequest("the host is not ASCII; use its punycode (xn--) form")
		}
	}
	t, err := policy.ParseTarget(u.Host)
	if err != nil {
		return target{}, fmt.Errorf("%w: %v", ErrBadRequest, errcode.Classify(err).Message)
	}
	port := t.Port
	if port == 0 {
		port = policy.DefaultPort(u.Scheme)
	}
	if hasEncodedSlash(u.EscapedPath()) {
		return target{}, badRequest("the URL path has an encoded / or \\ in a segment; give the path the server should see")
	}
	u.Fragment, u.RawFragment = "", ""
	u.Host = policy.Target{Host: t.Host, Port: t.Port}.String()
	return target{url: u, host: t.Host, port: port, hostPort: policy.Target{Host: t.Host, Port: port}.String()}, nil
}

// withScheme is raw with https:// in front, without its query or fragment,
// when raw reads as host[:port][/path] with a host that is an IP address,
// localhost or a dotted name; else "". The query is left out of the
// suggestion because a value pasted into the URL would sit there.
func withScheme(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	hostport, path, _ := strings.Cut(raw, "/")
	t, err := policy.ParseTarget(hostport)
	if err != nil || t.Host != "localhost" && !strings.Contains(t.Host, ".") && !strings.Contains(t.Host, ":") {
		return ""
	}
	s := "https://" + hostport
	if path != "" {
		s += "/" + path
	}
	return s
}

// hasEncodedSlash finds %2F and %5C in path segments, which some servers
// decode into separators after policy matched the path. Dot segments are
// policy's to refuse (policy.ReasonDotSegment), on every hop.
func hasEncodedSlash(escaped string) bool {
	s := strings.ToLower(escaped)
	return strings.Contains(s, "%2f") || strings.Contains(s, "%5c")
}

// validMethod accepts an HTTP token in upper case.
func validMethod(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

// validate checks everything about a request that needs no index or value.
func (r *Request) validate(targets *targetCache) (target, error) {
	r.Method = strings.ToUpper(strings.TrimSpace(r.Method))
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	if !validMethod(r.Method) {
		return target{}, badRequest("invalid method")
	}
	t, err := targets.parse(r.URL)
	if err != nil {
		return target{}, err
	}
	for name, vals := range r.Header {
		if !validHeaderName(name) {
			return target{}, badRequest("invalid header name %q", name)
		}
		for _, v := range vals {
			if strings.ContainsAny(v, "\r\n\x00") {
				return target{}, badRequest("header %s contains a line break", name)
			}
		}
	}
	seen := map[string]bool{}
	for _, in := range r.Injections {
		if err := vault.CheckSecretName(in.Secret); err != nil {
			return target{}, err
		}
		switch in.Style {
		case StyleBearer, StyleBasic:
			if in.Field != "" {
				return target{}, badRequest("%s injection takes no field", in.Style)
			}
		case StyleHeader:
			if !validHeaderName(in.Field) {
				return target{}, badRequest("invalid header name %q for %s", in.Field, in.Secret)
			}
		case StyleQuery, StyleForm, StyleBody:
			if in.Field == "" || strings.ContainsAny(in.Field, "\r\n\x00") {
				return target{}, badRequest("%s injection of %s needs a field name", in.Style, in.Secret)
			}
			if in.Style == StyleBody {
				for _, p := range strings.Split(in.Field, ".") {
					if p == "" {
						return target{}, badRequest("invalid JSON path %q", in.Field)
					}
				}
			}
		default:
			return target{}, badRequest("unknown injection style %q", in.Style)
		}
		key := in.Style + ":" + canonicalField(in)
		if in.Style == StyleBearer || in.Style == StyleBasic {
			key = "authorization"
		}
		if seen[key] {
			return target{}, badRequest("two injections target the same place (%s)", key)
		}
		seen[key] = true
	}
	if seen["authorization"] && seen["header:authorization"] {
		return target{}, badRequest("two injections target the Authorization header")
	}
	return t, nil
}

func canonicalField(in Injection) string {
	if in.Style == StyleHeader {
		return strings.ToLower(in.Field)
	}
	return in.Field
}

func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// styles lists the distinct styles of a request, for the audit record.
// Field names are left out: the record holds names of secrets, not
// whatever a client chose to call a header or parameter.
func styles(ins []Injection) []string {
	out := []string{}
	for _, in := range ins {
		if !slices.Contains(out, in.Style) {
			out = append(out, in.Style)
		}
	}
	return out
}

func secretNames(ins []Injection) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, in := range ins {
		if !seen[in.Secret] {
			seen[in.Secret] = true
			out = append(out, in.Secret)
		}
	}
	return out
}

// ParseInjection is the one translator of an injection spec, whichever
// front end it came from (call flags, X-AS-Inject-* headers, the MCP
// injections map). style is one of the Style constants, in any case; spec
// is the secret's name for bearer and basic, and FIELD=NAME for the
// others. Its errors never quote spec: a value typed where a name belongs
// must not come back; the front end says which flag, header or key it was.
func ParseInjection(style, spec string) (Injection, error) {
	style = lowerStyle(style)
	spec = strings.TrimSpace(spec)
	switch style {
	case StyleBearer, StyleBasic:
		if spec == "" || strings.ContainsAny(spec, "= \t\r\n") {
			return Injection{}, errcode.New(errcode.Usage, "a "+style+" injection names one secret")
		}
		return Injection{Style: style, Secret: spec}, nil
	case StyleHeader, StyleQuery, StyleBody, StyleForm:
		field, name, ok := strings.Cut(spec, "=")
		name = strings.TrimSpace(name)
		if !ok || field == "" || name == "" || strings.ContainsAny(name, "= \t\r\n") {
			return Injection{}, errcode.New(errcode.Usage, "a "+style+" injection wants FIELD=SECRET_NAME")
		}
		return Injection{Style: style, Field: field, Secret: name}, nil
	}
	return Injection{}, errcode.New(errcode.Usage, "not an injection style: bearer, basic, header, query, body or form")
}

// FieldStyle reports whether style takes a FIELD (header, query, body,
// form) rather than only a name (bearer, basic).
func FieldStyle(style string) bool {
	switch lowerStyle(style) {
	case StyleHeader, StyleQuery, StyleBody, StyleForm:
		return true
	}
	return false
}

// styleNames are the Style constants.
var styleNames = [...]string{StyleBearer, StyleBasic, StyleHeader, StyleQuery, StyleBody, StyleForm}

// lowerStyle is strings.ToLower(style) without its allocation for a style
// name in another case (a canonicalised header gives "Bearer"): the
// constant it names, compared ignoring ASCII case only, as ToLower folds no
// other letter into these; any other string unchanged, which no style
// switch accepts either way.
func lowerStyle(style string) string {
	for _, name := range styleNames {
		if len(style) == len(name) && asciiEqualFold(style, name) {
			return name
		}
	}
	return style
}

// asciiEqualFold compares strings of the same length ignoring ASCII case:
// unlike strings.EqualFold, ſ is not s and K (Kelvin) is not k.
func asciiEqualFold(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// ParseHeaderLines reads plain, non-secret headers in curl's form
// ("Name: value"), as `call -H` and api_call's request_header give them;
// its error names the call flag, which api_call mirrors.
func ParseHeaderLines(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "-H wants 'Name: value'"),
				"to send a secret in a header use --header Name=SECRET_NAME")
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// DefaultMethod is the method of a request that names none: POST when it
// has a body or puts a value into one, else GET.
func DefaultMethod(body []byte, ins []Injection) string {
	if len(body) > 0 {
		return http.MethodPost
	}
	for _, in := range ins {
		if in.Style == StyleBody || in.Style == StyleForm {
			return http.MethodPost
		}
	}
	return http.MethodGet
}

// ParseTimeout reads a per-call timeout ("" is DefaultTimeout; the
// commands' kong defaults are tied to DefaultTimeout by a test). Its error
// does not quote s: a value typed in the wrong place must not come back.
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errcode.New(errcode.Usage, "--timeout is not a positive duration like 30s")
	}
	return d, nil
}

// Specs are injection specs as flags or tool inputs give them: a secret's
// name for bearer and basic, FIELD=NAME lists for the others.
type Specs struct {
	Bearer, Basic                  string
	Header, Query, BodyField, Form []string
}

// Injections parses every spec with ParseInjection, in a fixed order.
// Errors name the call command's flag (--body-field), which api_call's
// inputs mirror (body_field): both front ends fail alike.
func (s Specs) Injections() ([]Injection, error) {
	label := func(style string) string {
		switch style {
		case StyleBody:
			return "--body-field"
		case StyleForm:
			return "--form-field"
		}
		return "--" + style
	}
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	var ins []Injection
	for _, g := range []struct {
		style string
		specs []string
	}{
		{StyleBearer, one(s.Bearer)}, {StyleBasic, one(s.Basic)},
		{StyleHeader, s.Header}, {StyleQuery, s.Query}, {StyleBody, s.BodyField}, {StyleForm, s.Form},
	} {
		for _, spec := range g.specs {
			if g.style == StyleHeader {
				if err := plainHeaderSpec(spec); err != nil {
					return nil, err
				}
			}
			in, err := ParseInjection(g.style, spec)
			if err != nil {
				example := "STRIPE_KEY"
				if FieldStyle(g.style) {
					example = "api_key=STRIPE_KEY"
				}
				return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s: %v", label(g.style), err),
					"the right-hand side is a secret's name, e.g. "+label(g.style)+" "+example)
			}
			ins = append(ins, in)
		}
	}
	return ins, nil
}

// plainHeaderSpec refuses a --header spec in curl's "Name: value" form: that
// is a plain header, which -H sends. The hint names the header (a valid
// header name is no value) but never what follows the colon, which is
// often a credential (--header "Authorization: Bearer ...").
func plainHeaderSpec(spec string) error {
	field, _, _ := strings.Cut(spec, "=")
	name, _, colon := strings.Cut(field, ":")
	if !colon {
		return nil
	}
	name = strings.TrimSpace(name)
	if !validHeaderName(name) {
		name = "Name"
	}
	return errcode.WithHint(errcode.New(errcode.Usage, "--header wants Name=SECRET_NAME; a 'Name: value' header is sent with -H"),
		"send a plain header with -H '"+name+": ...', or a secret with --header "+name+"=SECRET_NAME")
}
