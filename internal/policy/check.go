package policy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Use is one secret a request wants injected, and where.
type Use struct {
	Secret  string
	Surface string
	// Header is the header name the value goes under, for the header
	// surface (Authorization for bearer and basic).
	Header string
}

// Request is what the broker is about to send, reduced to what policy
// decides on. Names only: no value reaches this package.
type Request struct {
	Scheme string // http or https
	Host   string // lowercase, no trailing dot
	Port   int    // effective port (443/80 when the URL has none)
	Path   string // URL path, percent-decoded once
	Method string
	Uses   []Use
	// Workspace and Project name where the secrets live, for the commands
	// a denial's hint gives.
	Workspace, Project string
	// Private reports whether the host is, or resolves to, an address the
	// SSRF guard opens only for an entry with AllowPrivate. It is asked
	// only to word an allowlist denial's hint, so that the one command it
	// names carries every flag the request needs; nil means no.
	Private func() bool
}

// Decision is the outcome of an allowed request, and what the bindings
// that allowed it ask of the broker.
type Decision struct {
	Entry AllowEntry
	// AllowRange: every binding used allows Range/If-Range (true when
	// nothing is injected).
	AllowRange bool
	// RestrictsMethods: some binding used allows only some methods, so
	// method-override headers are dropped and _method is refused.
	RestrictsMethods bool
}

// Reasons a request is denied; they appear in audit records and errors.
const (
	ReasonNotAllowlisted = "not_allowlisted"
	ReasonPlainHTTP      = "plain_http"
	ReasonNotBound       = "not_bound"
	ReasonMethod         = "method_not_bound"
	ReasonSurface        = "surface_not_bound"
	ReasonHeader         = "header_not_bound"
	ReasonEchoTripwire   = "echo_tripwire"
	// ReasonDotSegment: a . or .. path segment, in any encoding or with
	// ;parameters, which the server resolves after policy matched.
	ReasonDotSegment = "path_dot_segment"
	// ReasonPathParameter: a ;parameter in the path of a request that
	// carries a value. Servers disagree on what /a;x/b means (Tomcat and
	// Spring drop the parameter, most others keep it), so no single
	// normalisation is right for all, and the request is refused.
	ReasonPathParameter = "path_parameter"
	// ReasonMethodOverride: a _method parameter in a request bound to
	// some methods only; override middleware would change the method.
	ReasonMethodOverride = "method_override"
)

// ErrDenied is the sentinel every policy denial wraps.
var ErrDenied = errcode.New(errcode.Denied, "policy denied the request")

// DenyError says why a request was denied and what a human would run to
// allow it.
type DenyError struct {
	Reason string
	Detail string
	Hint   string
}

func (e *DenyError) Error() string { return "policy denied the request: " + e.Detail }
func (e *DenyError) Unwrap() error { return ErrDenied }

// AuditReason is the denial's reason (see errcode.AuditOf).
func (e *DenyError) AuditReason() string { return e.Reason }

// DenyReason extracts the reason of a policy denial ("" if err is not one).
func DenyReason(err error) string {
	var d *DenyError
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

func deny(reason, hint, format string, args ...any) error {
	return errcode.WithHint(&DenyError{Reason: reason, Detail: fmt.Sprintf(format, args...), Hint: hint}, hint)
}

// DefaultPort is the port a URL without one uses.
func DefaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// Check decides a request against a workspace allowlist and the bindings of
// each secret it uses (looked up by name). Every request and every redirect
// hop goes through it; a denial happens before any value is read.
func Check(allowlist []AllowEntry, bindings func(secret string) []Binding, r Request) (Decision, error) {
	if err := checkPath(r); err != nil {
		return Decision{}, err
	}
	needsHTTP := r.Scheme == "http" && len(r.Uses) > 0
	entry, ok := findEntry(allowlist, r)
	if !ok {
		want := AllowEntry{Host: r.Host, Port: allowTarget(r).Port, AllowHTTP: needsHTTP, AllowPrivate: r.Private != nil && r.Private()}
		return Decision{}, deny(ReasonNotAllowlisted, "a human runs: "+AllowCommand(want, r.Workspace),
			"%s is not on the workspace allowlist", r.hostPort())
	}
	if needsHTTP && !entry.AllowHTTP {
		// The entry that matched is the one to widen, under its own target:
		// an entry for host:443 and one for host both match https://host.
		want := entry
		want.AllowHTTP = true
		want.AllowPrivate = entry.AllowPrivate || r.Private != nil && r.Private()
		return Decision{}, deny(ReasonPlainHTTP, "use https://, or for local development a human runs: "+AllowCommand(want, r.Workspace),
			"refusing to send a secret over plain http:// to %s", r.hostPort())
	}
	d := Decision{Entry: entry, AllowRange: true}
	for _, u := range r.Uses {
		b, err := checkBinding(bindings(u.Secret), r, u)
		if err != nil {
			return Decision{}, err
		}
		d.AllowRange = d.AllowRange && b.AllowRange
		d.RestrictsMethods = d.RestrictsMethods || len(b.Methods) > 0
	}
	return d, nil
}

// hostPort names r's host and port as a denial does. Only a denial needs
// it: an allowed request does not pay for the string.
func (r Request) hostPort() string { return Target{Host: r.Host, Port: r.Port}.String() }

// MethodOverrideError is the denial of a request that asks, by a _method
// parameter, for another method than the one its binding was checked for.
func MethodOverrideError() error {
	return deny(ReasonMethodOverride, "send the method itself, without _method: agentsecrets call -X METHOD --url ... (a binding limited to some methods refuses _method)",
		"the request carries a _method parameter, which method-override middleware would turn into another method")
}

// checkPath refuses paths a server would read differently from policy:
// dot segments, in any percent-encoding and with ;parameters, for every
// request; ;parameters for requests that carry a value.
func checkPath(r Request) error {
	// Segment by segment with Cut rather than a Split into a new slice:
	// every request and every redirect hop is checked.
	for rest, more := r.Path, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		seg = decodeFully(seg)
		name, _, _ := strings.Cut(seg, ";")
		if name == "." || name == ".." {
			return deny(ReasonDotSegment, "resolve the path and resend it: agentsecrets call --url with the path the server should see, without . or .. segments",
				"the URL path has a . or .. segment, which the server would resolve after the binding was matched")
		}
		if strings.Contains(seg, ";") && len(r.Uses) > 0 {
			return deny(ReasonPathParameter, "resend without it: agentsecrets call --url with the ;parameter removed from the path (servers disagree on what it means, so no binding can be matched against it)",
				"the URL path has a ;parameter, which some servers drop before routing")
		}
	}
	return nil
}

// decodeFully percent-decodes s until it no longer changes, so that %252e
// is judged as the "." some server chain may end up seeing.
func decodeFully(s string) string {
	for i := 0; i < 4 && strings.Contains(s, "%"); i++ {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	return s
}

// allowTarget is the target an allowlist entry for r is added under: the
// port only when it is not the scheme's default.
func allowTarget(r Request) Target {
	t := Target{Host: r.Host}
	if r.Port != DefaultPort(r.Scheme) {
		t.Port = r.Port
	}
	return t
}

// AllowCommand is the one command that makes e's flags hold on the
// allowlist of workspace ("" for the current one). allowlist add merges
// flags into an existing entry, so the command never drops one.
func AllowCommand(e AllowEntry, workspace string) string {
	cmd := "agentsecrets workspace allowlist add " + e.Target().String()
	if e.AllowHTTP {
		cmd += " --allow-http"
	}
	if e.AllowPrivate {
		cmd += " --allow-private"
	}
	if workspace != "" {
		cmd += " --workspace " + workspace
	}
	return cmd
}

func findEntry(allowlist []AllowEntry, r Request) (AllowEntry, bool) {
	for _, e := range allowlist {
		if e.Host != r.Host {
			continue
		}
		if e.Port == r.Port || e.Port == 0 && r.Port == DefaultPort(r.Scheme) {
			return e, true
		}
	}
	return AllowEntry{}, false
}

// PathHasPrefix matches whole path segments: /v1 covers /v1 and /v1/x,
// not /v10.
func PathHasPrefix(path, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	prefix = strings.TrimSuffix(prefix, "/")
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// MatchesOrigin reports whether b points at host:port (any path) of a
// URL with this scheme.
func (b Binding) MatchesOrigin(scheme, host string, port int) bool {
	return b.Host == host && (b.Port == port || b.Port == 0 && port == DefaultPort(scheme))
}

// checkBinding returns the binding that allows u in r, or the denial with
// the one bind command that would allow it.
func checkBinding(bs []Binding, r Request, u Use) (Binding, error) {
	target := Target{Host: r.Host}
	if r.Port != DefaultPort(r.Scheme) {
		target.Port = r.Port
	}
	for _, b := range bs {
		if b.Suspended() && b.MatchesOrigin(r.Scheme, r.Host, r.Port) {
			fixed := b
			fixed.SuspendedAt, fixed.SuspendReason = nil, ""
			return Binding{}, deny(ReasonEchoTripwire, "after checking why the upstream echoed it, a human re-approves: "+BindCommand(u.Secret, fixed, r.Workspace, r.Project),
				"secret %s is suspended for %s: the echo tripwire fired (%s)", u.Secret, target, b.SuspendReason)
		}
	}
	var hostMatch, methodMatch, surfaceMatch *Binding
	for i := range bs {
		b := &bs[i]
		if !b.MatchesOrigin(r.Scheme, r.Host, r.Port) || !PathHasPrefix(r.Path, b.PathPrefix) {
			continue
		}
		hostMatch = first(hostMatch, b)
		if len(b.Methods) > 0 && !slices.Contains(b.Methods, r.Method) {
			continue
		}
		methodMatch = first(methodMatch, b)
		if !slices.Contains(b.Surfaces, u.Surface) {
			continue
		}
		surfaceMatch = first(surfaceMatch, b)
		if u.Surface == SurfaceHeader && !b.AllowsHeader(u.Header) {
			continue
		}
		return *b, nil
	}
	hint := func(b *Binding) string {
		if b == nil {
			b = &Binding{Host: target.Host, Port: target.Port}
		}
		return "a human runs: " + BindCommand(u.Secret, widenFor(*b, r, u), r.Workspace, r.Project)
	}
	switch {
	case hostMatch == nil:
		return Binding{}, deny(ReasonNotBound, hint(nil), "secret %s is not bound to %s%s", u.Secret, target, r.Path)
	case methodMatch == nil:
		return Binding{}, deny(ReasonMethod, hint(hostMatch), "secret %s is not bound to %s for method %s", u.Secret, target, r.Method)
	case surfaceMatch == nil:
		return Binding{}, deny(ReasonSurface, hint(methodMatch), "secret %s may not be injected into the %s of requests to %s", u.Secret, u.Surface, target)
	default:
		return Binding{}, deny(ReasonHeader, hint(surfaceMatch), "secret %s may not be injected under header %s for %s (Authorization, and header names a human approved with --header-name, only)",
			u.Secret, CanonicalHeader(u.Header), target)
	}
}

func first(cur, b *Binding) *Binding {
	if cur == nil {
		return b
	}
	return cur
}

// widenFor is b plus what r and u need of it: the method, the surface and
// the header name.
func widenFor(b Binding, r Request, u Use) Binding {
	b.Methods, b.Surfaces, b.HeaderNames = slices.Clone(b.Methods), slices.Clone(b.Surfaces), slices.Clone(b.HeaderNames)
	if len(b.Methods) > 0 && !slices.Contains(b.Methods, r.Method) {
		b.Methods = append(b.Methods, r.Method)
		slices.Sort(b.Methods)
	}
	if !slices.Contains(b.Surfaces, u.Surface) {
		b.Surfaces = append(b.Surfaces, u.Surface)
		slices.Sort(b.Surfaces)
	}
	if u.Surface == SurfaceHeader && !b.AllowsHeader(u.Header) {
		b.HeaderNames = append(b.HeaderNames, CanonicalHeader(u.Header))
		slices.Sort(b.HeaderNames)
	}
	return b
}
