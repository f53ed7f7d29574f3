package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Use is one secret a request wants injected, and where.
type Use struct {
	Secret  string
	Surface string
}

// Request is what the broker is about to send, reduced to what policy
// decides on. Names only: no value reaches this package.
type Request struct {
	Scheme string // http or https
	Host   string // lowercase, no trailing dot
	Port   int    // effective port (443/80 when the URL has none)
	Path   string // URL path, already checked for dot segments
	Method string
	Uses   []Use
}

// Decision is the outcome of an allowed request.
type Decision struct {
	Entry AllowEntry
}

// Reasons a request is denied; they appear in audit records and errors.
const (
	ReasonNotAllowlisted = "not_allowlisted"
	ReasonPlainHTTP      = "plain_http"
	ReasonNotBound       = "not_bound"
	ReasonMethod         = "method_not_bound"
	ReasonSurface        = "surface_not_bound"
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
	hostport := Target{Host: r.Host, Port: r.Port}.String()
	entry, ok := findEntry(allowlist, r)
	if !ok {
		return Decision{}, deny(ReasonNotAllowlisted, "a human runs: agentsecrets workspace allowlist add "+allowTarget(r),
			"%s is not on the workspace allowlist", hostport)
	}
	if r.Scheme == "http" && len(r.Uses) > 0 && !entry.AllowHTTP {
		return Decision{}, deny(ReasonPlainHTTP, "use https://, or for local development a human runs: agentsecrets workspace allowlist add "+allowTarget(r)+" --allow-http",
			"refusing to send a secret over plain http:// to %s", hostport)
	}
	for _, u := range r.Uses {
		if err := checkBinding(bindings(u.Secret), r, u); err != nil {
			return Decision{}, err
		}
	}
	return Decision{Entry: entry}, nil
}

func allowTarget(r Request) string {
	t := Target{Host: r.Host}
	if r.Port != DefaultPort(r.Scheme) {
		t.Port = r.Port
	}
	return t.String()
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

func checkBinding(bs []Binding, r Request, u Use) error {
	target := Target{Host: r.Host}
	if r.Port != DefaultPort(r.Scheme) {
		target.Port = r.Port
	}
	var hostMatch, methodMatch bool
	for _, b := range bs {
		if b.Host != r.Host || !(b.Port == r.Port || b.Port == 0 && r.Port == DefaultPort(r.Scheme)) || !PathHasPrefix(r.Path, b.PathPrefix) {
			continue
		}
		hostMatch = true
		if len(b.Methods) > 0 && !slices.Contains(b.Methods, r.Method) {
			continue
		}
		methodMatch = true
		if slices.Contains(b.Surfaces, u.Surface) {
			return nil
		}
	}
	bind := "a human runs: agentsecrets secrets bind " + u.Secret + " " + target.String()
	switch {
	case !hostMatch:
		return deny(ReasonNotBound, bind, "secret %s is not bound to %s%s", u.Secret, target, r.Path)
	case !methodMatch:
		return deny(ReasonMethod, bind+" --method "+r.Method, "secret %s is not bound to %s for method %s", u.Secret, target, r.Method)
	default:
		return deny(ReasonSurface, bind+" --surface "+u.Surface, "secret %s may not be injected into the %s of requests to %s", u.Secret, u.Surface, target)
	}
}
