package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestCheck(t *testing.T) {
	allow := []AllowEntry{
		{Host: "api.stripe.com"},
		{Host: "127.0.0.1", Port: 8080, AllowHTTP: true, AllowPrivate: true},
		{Host: "api.example.com", Port: 8443},
	}
	bindings := map[string][]Binding{
		"STRIPE": {{Host: "api.stripe.com", PathPrefix: "/v1", Methods: []string{"GET", "POST"}, Surfaces: []string{"header"}}},
		"LOCAL":  {{Host: "127.0.0.1", Port: 8080, Surfaces: []string{"header", "query"}}},
		"EX":     {{Host: "api.example.com", Port: 8443, Surfaces: []string{"body"}}},
	}
	lookup := func(n string) []Binding { return bindings[n] }
	req := func(scheme, host string, port int, path, method string, uses ...Use) Request {
		return Request{Scheme: scheme, Host: host, Port: port, Path: path, Method: method, Uses: uses}
	}
	cases := []struct {
		name   string
		r      Request
		reason string // "" = allowed
	}{
		{"bound, header", req("https", "api.stripe.com", 443, "/v1/charges", "POST", Use{"STRIPE", SurfaceHeader}), ""},
		{"prefix is whole segments", req("https", "api.stripe.com", 443, "/v10/x", "GET", Use{"STRIPE", SurfaceHeader}), ReasonNotBound},
		{"prefix itself", req("https", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader}), ""},
		{"method not bound", req("https", "api.stripe.com", 443, "/v1/x", "DELETE", Use{"STRIPE", SurfaceHeader}), ReasonMethod},
		{"surface not bound", req("https", "api.stripe.com", 443, "/v1/x", "GET", Use{"STRIPE", SurfaceQuery}), ReasonSurface},
		{"not allowlisted", req("https", "evil.com", 443, "/", "GET", Use{"STRIPE", SurfaceHeader}), ReasonNotAllowlisted},
		{"default-port entry does not cover other ports", req("https", "api.stripe.com", 8443, "/v1", "GET", Use{"STRIPE", SurfaceHeader}), ReasonNotAllowlisted},
		{"plain http to an https-only entry", req("http", "api.stripe.com", 80, "/v1", "GET", Use{"STRIPE", SurfaceHeader}), ReasonPlainHTTP},
		{"http on port 443 is not the entry's default port", req("http", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader}), ReasonNotAllowlisted},
		{"local dev entry", req("http", "127.0.0.1", 8080, "/x", "GET", Use{"LOCAL", SurfaceQuery}), ""},
		{"explicit port entry", req("https", "api.example.com", 8443, "/", "POST", Use{"EX", SurfaceBody}), ""},
		{"secret bound elsewhere", req("https", "api.example.com", 8443, "/", "POST", Use{"STRIPE", SurfaceHeader}), ReasonNotBound},
		{"one of two secrets unbound", req("https", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader}, Use{"EX", SurfaceHeader}), ReasonNotBound},
		{"no secrets, allowlisted", req("https", "api.stripe.com", 443, "/", "GET"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Check(allow, lookup, c.r)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				if d.Entry.Host != c.r.Host {
					t.Fatalf("decision entry %v", d.Entry)
				}
				return
			}
			if got := DenyReason(err); got != c.reason {
				t.Fatalf("reason %q, want %q (%v)", got, c.reason, err)
			}
			if !errors.Is(err, ErrDenied) || errcode.Classify(err).Code != errcode.Denied {
				t.Fatalf("not a denial: %v", err)
			}
			if hint := errcode.Classify(err).Hint; !strings.Contains(hint, "agentsecrets ") {
				t.Fatalf("hint %q names no command", hint)
			}
		})
	}
}

func TestPathHasPrefix(t *testing.T) {
	for _, c := range []struct {
		path, prefix string
		want         bool
	}{
		{"/v1/x", "/v1", true}, {"/v1", "/v1", true}, {"/v1/", "/v1/", true}, {"/v10", "/v1", false},
		{"/", "", true}, {"/anything", "/", true}, {"/v", "/v1", false},
	} {
		if got := PathHasPrefix(c.path, c.prefix); got != c.want {
			t.Errorf("PathHasPrefix(%q, %q) = %v", c.path, c.prefix, got)
		}
	}
}
