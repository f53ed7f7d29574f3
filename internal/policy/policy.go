// Package policy owns what a secret may reach and who may widen it: the
// workspace allowlist, per-secret bindings, and the admin approval that
// guards every change that widens either.
//
// The types here are stored in the vault index and read by the broker; the
// checks are pure functions of them, so the CLI, the proxy and MCP agree.
package policy

import (
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Surfaces a value may be injected into. Header is the default because it is
// the one an upstream is least likely to log or echo.
const (
	SurfaceHeader = "header"
	SurfaceQuery  = "query"
	SurfaceBody   = "body"
	SurfaceForm   = "form"
)

// Surfaces lists every valid surface.
var Surfaces = []string{SurfaceHeader, SurfaceQuery, SurfaceBody, SurfaceForm}

// Target is a host with an optional port and path prefix, as typed by a
// human: api.stripe.com, 127.0.0.1:8080, api.github.com/repos/acme.
type Target struct {
	Host       string `json:"host"`
	Port       int    `json:"port,omitempty"`
	PathPrefix string `json:"path_prefix,omitempty"`
}

func (t Target) String() string {
	h := t.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if t.Port != 0 {
		h += ":" + strconv.Itoa(t.Port)
	}
	return h + t.PathPrefix
}

// HostPort is the target without its path.
func (t Target) HostPort() Target { return Target{Host: t.Host, Port: t.Port} }

// ErrInvalidTarget is returned for a host the broker could not match safely.
var ErrInvalidTarget = errcode.New(errcode.Usage, "invalid target")

// ParseTarget parses HOST[:PORT][/PATH-PREFIX]. It normalises the host
// (lowercase, no trailing dot) and refuses forms that could make a later
// string match disagree with what is dialled: userinfo, schemes, non-ASCII
// names (give the punycode form), wildcards, queries and fragments.
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("%w %q: %s", ErrInvalidTarget, s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.Contains(s, "://") {
		return bad("give a host, not a URL (drop the scheme)")
	}
	for _, r := range s {
		if r > 0x7e || r < 0x21 {
			return bad("only printable ASCII is allowed; write internationalised names in punycode (xn--...)")
		}
	}
	if strings.ContainsAny(s, "@?#*\\") {
		return bad("userinfo, query, fragment, wildcard and backslash are not allowed")
	}
	hostport, path := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hostport, path = s[:i], s[i:]
	}
	if path != "" {
		clean, err := url.PathUnescape(path)
		if err != nil || clean != path {
			return bad("path prefix must not be percent-encoded")
		}
		if strings.Contains(path, "/../") || strings.HasSuffix(path, "/..") || strings.Contains(path, "/./") || strings.HasSuffix(path, "/.") || strings.Contains(path, "//") {
			return bad("path prefix must be a clean path")
		}
	}
	host, portStr, hasPort := hostport, "", false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return bad("unterminated IPv6 literal")
		}
		host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return bad("garbage after IPv6 literal")
			}
			portStr, hasPort = rest[1:], true
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return bad("not an IPv6 address")
		}
	} else if strings.Count(hostport, ":") > 1 {
		return bad("write IPv6 addresses in brackets, e.g. [::1]:8080")
	} else if i := strings.IndexByte(hostport, ':'); i >= 0 {
		host, portStr, hasPort = hostport[:i], hostport[i+1:], true
	}
	port := 0
	if hasPort {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != portStr {
			return bad("port must be a number from 1 to 65535")
		}
		port = p
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return bad("empty host")
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	} else if err := checkHostname(host); err != nil {
		return bad(err.Error())
	}
	return Target{Host: host, Port: port, PathPrefix: path}, nil
}

func checkHostname(h string) error {
	if len(h) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return errors.New("empty or over-long label in host name")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("a host name label cannot start or end with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("invalid character %q in host name", c)
			}
		}
	}
	// A name made only of digits and dots is an IP literal in some legacy
	// notation (octal, hex-free decimal parts); refuse it rather than guess.
	// So is one whose last label is a number: inet_aton and the WHATWG URL
	// parser read "127.0x1" or "0x7f.1" as an IPv4 address, and no real
	// top-level domain is numeric.
	if strings.Trim(h, "0123456789.") == "" || strings.HasPrefix(h, "0x") || numericLabel(labels[len(labels)-1]) {
		return errors.New("write IPv4 addresses in dotted decimal")
	}
	return nil
}

// numericLabel reports whether l is a decimal, octal or 0x-hex number, the
// forms legacy IPv4 parsers accept as one part of an address.
func numericLabel(l string) bool {
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// AllowEntry is one host on a workspace allowlist.
type AllowEntry struct {
	Host string `json:"host"`
	// Port 0 means the scheme's default port (443, or 80 when AllowHTTP).
	Port int `json:"port,omitempty"`
	// AllowHTTP permits injection over plain http:// to this host.
	AllowHTTP bool `json:"allow_http"`
	// AllowPrivate exempts this host from the private-address guard
	// (never for cloud metadata addresses).
	AllowPrivate bool      `json:"allow_private"`
	AddedAt      time.Time `json:"added_at"`
}

// AllowlistChange is one entry of a workspace's allowlist history: what
// changed, when, and whether the admin passphrase approved it. Removals
// need no approval, so Approved is false for them.
type AllowlistChange struct {
	At           time.Time `json:"at"`
	Action       string    `json:"action" jsonschema:"enum=added,enum=updated,enum=removed"`
	Host         string    `json:"host"`
	Port         int       `json:"port,omitempty"`
	AllowHTTP    bool      `json:"allow_http"`
	AllowPrivate bool      `json:"allow_private"`
	Approved     bool      `json:"approved"`
}

// Change records e being added, updated or removed at t.
func (e AllowEntry) Change(action string, approved bool, t time.Time) AllowlistChange {
	return AllowlistChange{At: t.UTC(), Action: action, Host: e.Host, Port: e.Port,
		AllowHTTP: e.AllowHTTP, AllowPrivate: e.AllowPrivate, Approved: approved}
}

// Target returns the entry as a Target.
func (e AllowEntry) Target() Target { return Target{Host: e.Host, Port: e.Port} }

// Merged is e with the exemptions old (nil: absent) already had: adding
// an entry again only ever adds flags, so following one hint cannot undo
// what an earlier one granted. Narrowing is allowlist remove, then add.
func (e AllowEntry) Merged(old *AllowEntry) AllowEntry {
	if old != nil {
		e.AllowHTTP = e.AllowHTTP || old.AllowHTTP
		e.AllowPrivate = e.AllowPrivate || old.AllowPrivate
		e.AddedAt = old.AddedAt
	}
	return e
}

// Widens reports whether setting e where old stood (nil: absent) grants
// anything old did not.
func (e AllowEntry) Widens(old *AllowEntry) bool {
	if old == nil {
		return true
	}
	return e.AllowHTTP && !old.AllowHTTP || e.AllowPrivate && !old.AllowPrivate
}

// Binding lets one secret be injected into requests to one target.
type Binding struct {
	Host       string `json:"host"`
	Port       int    `json:"port,omitempty"`
	PathPrefix string `json:"path_prefix,omitempty"`
	// Methods the binding allows; empty means any method.
	Methods []string `json:"methods"`
	// Surfaces the value may be injected into; never empty.
	Surfaces []string `json:"surfaces"`
	// HeaderNames are the header names, canonical form, the value may be
	// injected under besides Authorization (which --bearer and --basic use
	// and every header-surface binding implies). An agent-chosen name such
	// as X-Note could be stored and echoed by the upstream later, so each
	// other name is approved by a human.
	HeaderNames []string `json:"header_names,omitempty"`
	// AllowRange lets requests carrying the value forward Range and
	// If-Range. Off by default: ranges of an echo, each too short to be
	// recognised, reassemble it.
	AllowRange bool `json:"allow_range,omitempty"`
	// AllowEcho turns the echo tripwire off for this binding: for an
	// upstream a human knows echoes the value by design (a debug or echo
	// service). Echoes are still redacted; they just never suspend it.
	AllowEcho bool      `json:"allow_echo,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// SuspendedAt is set when the echo tripwire suspended the binding;
	// every request that would inject the secret to the target is then
	// denied until a human binds it again.
	SuspendedAt   *time.Time `json:"suspended_at,omitempty"`
	SuspendReason string     `json:"suspend_reason,omitempty"`
}

// AuthorizationHeader is the header every header-surface binding allows.
const AuthorizationHeader = "Authorization"

// CanonicalHeader is the canonical form of a header name, or "" if it is
// not a valid HTTP token.
func CanonicalHeader(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return ""
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// SetHeaderNames pins the header names the binding allows besides
// Authorization: canonical, sorted, without duplicates.
func (b *Binding) SetHeaderNames(names []string) error {
	out := []string{}
	for _, n := range names {
		c := CanonicalHeader(n)
		if c == "" {
			return errcode.Errorf(errcode.Usage, "invalid header name %q", shortWord(n))
		}
		if c != AuthorizationHeader && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		out = nil
	}
	b.HeaderNames = out
	return nil
}

// AllowsHeader reports whether the value may be injected under header
// name (any case).
func (b Binding) AllowsHeader(name string) bool {
	c := CanonicalHeader(name)
	return c == AuthorizationHeader || slices.Contains(b.HeaderNames, c)
}

// Suspended reports whether the echo tripwire suspended the binding.
func (b Binding) Suspended() bool { return b.SuspendedAt != nil }

// SameGrant reports whether b and old grant exactly the same (suspension
// and creation time aside).
func (b Binding) SameGrant(old Binding) bool {
	return b.Target() == old.Target() && slices.Equal(b.Methods, old.Methods) && slices.Equal(b.Surfaces, old.Surfaces) &&
		slices.Equal(b.HeaderNames, old.HeaderNames) && b.AllowRange == old.AllowRange && b.AllowEcho == old.AllowEcho
}

// BindCommand is the command a human runs to create b exactly as it is
// (it replaces the binding of the same target), in workspace/project.
func BindCommand(secret string, b Binding, workspace, project string) string {
	var sb strings.Builder
	sb.WriteString("agentsecrets secrets bind " + secret + " " + b.Target().String())
	for _, m := range b.Methods {
		sb.WriteString(" --method " + m)
	}
	for _, s := range b.Surfaces {
		sb.WriteString(" --surface " + s)
	}
	for _, h := range b.HeaderNames {
		sb.WriteString(" --header-name " + h)
	}
	if b.AllowRange {
		sb.WriteString(" --allow-range")
	}
	if b.AllowEcho {
		sb.WriteString(" --allow-echo")
	}
	if workspace != "" {
		sb.WriteString(" --workspace " + workspace)
	}
	if project != "" {
		sb.WriteString(" --project " + project)
	}
	return sb.String()
}

// Describe is the full grant of b in words, for approval prompts.
func (b Binding) Describe() string {
	methods := "any method"
	if len(b.Methods) > 0 {
		methods = "methods " + strings.Join(b.Methods, ", ")
	}
	parts := []string{"target " + b.Target().String(), methods, "surfaces " + strings.Join(b.Surfaces, ", ")}
	if slices.Contains(b.Surfaces, SurfaceHeader) {
		parts = append(parts, "header names "+strings.Join(append([]string{AuthorizationHeader}, b.HeaderNames...), ", "))
	}
	if b.AllowRange {
		parts = append(parts, "Range requests allowed")
	} else {
		parts = append(parts, "Range requests not forwarded")
	}
	if b.AllowEcho {
		parts = append(parts, "echo tripwire OFF (echoes are redacted but never suspend the binding)")
	} else {
		parts = append(parts, fmt.Sprintf("echo tripwire on (%d echoes within %s suspend it)", EchoThreshold, EchoWindow))
	}
	return strings.Join(parts, "; ")
}

// Target returns where the binding points.
func (b Binding) Target() Target {
	return Target{Host: b.Host, Port: b.Port, PathPrefix: b.PathPrefix}
}

// NewBinding validates and normalises methods and surfaces for t.
func NewBinding(t Target, methods, surfaces []string, now time.Time) (Binding, error) {
	b := Binding{Host: t.Host, Port: t.Port, PathPrefix: t.PathPrefix, Methods: []string{}, CreatedAt: now.UTC()}
	for _, m := range methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.Trim(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return Binding{}, errcode.Errorf(errcode.Usage, "invalid HTTP method %q", shortWord(m))
		}
		if !slices.Contains(b.Methods, m) {
			b.Methods = append(b.Methods, m)
		}
	}
	slices.Sort(b.Methods)
	if len(surfaces) == 0 {
		surfaces = []string{SurfaceHeader}
	}
	for _, s := range surfaces {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.Contains(Surfaces, s) {
			return Binding{}, errcode.Errorf(errcode.Usage, "invalid surface %q (want one of %s)", shortWord(s), strings.Join(Surfaces, ", "))
		}
		if !slices.Contains(b.Surfaces, s) {
			b.Surfaces = append(b.Surfaces, s)
		}
	}
	slices.Sort(b.Surfaces)
	return b, nil
}

// Widens reports whether b grants anything old (same target, nil if none)
// did not: a new target, a method, surface or header name old lacked,
// "any method" where old named some, Range where old had none, or
// anything at all where old is suspended (lifting a suspension is a human's
// re-approval).
func (b Binding) Widens(old *Binding) bool {
	if old == nil || old.Suspended() {
		return true
	}
	if b.AllowRange && !old.AllowRange || b.AllowEcho && !old.AllowEcho {
		return true
	}
	for _, h := range b.HeaderNames {
		if !slices.Contains(old.HeaderNames, h) {
			return true
		}
	}
	if len(old.Methods) > 0 {
		if len(b.Methods) == 0 {
			return true
		}
		for _, m := range b.Methods {
			if !slices.Contains(old.Methods, m) {
				return true
			}
		}
	}
	for _, s := range b.Surfaces {
		if !slices.Contains(old.Surfaces, s) {
			return true
		}
	}
	return false
}

// shortWord echoes a rejected word only if it looks like one: a value typed
// in the wrong place must not come back in the error.
func shortWord(s string) string {
	if len(s) > 16 || strings.Trim(strings.ToLower(s), "abcdefghijklmnopqrstuvwxyz") != "" {
		return fmt.Sprintf("<%d bytes>", len(s))
	}
	return s
}
