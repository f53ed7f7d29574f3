package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestParseTargetValid(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		{"api.stripe.com", Target{Host: "api.stripe.com"}},
		{"API.Stripe.COM.", Target{Host: "api.stripe.com"}},
		{"api.stripe.com.:443", Target{Host: "api.stripe.com", Port: 443}},
		{"localhost", Target{Host: "localhost"}},
		{"my_host.internal", Target{Host: "my_host.internal"}},
		{"xn--bcher-kva.de", Target{Host: "xn--bcher-kva.de"}},
		{"1.example.com", Target{Host: "1.example.com"}},
		{"a-b.c-d.com", Target{Host: "a-b.c-d.com"}},
		{strings.Repeat("a", 63) + ".com", Target{Host: strings.Repeat("a", 63) + ".com"}},
		{"127.0.0.1", Target{Host: "127.0.0.1"}},
		{"127.0.0.1:8080", Target{Host: "127.0.0.1", Port: 8080}},
		{"x.com:1", Target{Host: "x.com", Port: 1}},
		{"x.com:65535", Target{Host: "x.com", Port: 65535}},
		{"[::1]:8443", Target{Host: "::1", Port: 8443}},
		{"[::1]", Target{Host: "::1"}},
		{"[2001:db8::1]", Target{Host: "2001:db8::1"}},
		{"[2001:DB8:0:0:0:0:0:1]", Target{Host: "2001:db8::1"}},
		{"[2001:db8::1]:443/v1", Target{Host: "2001:db8::1", Port: 443, PathPrefix: "/v1"}},
		{"[::ffff:127.0.0.1]", Target{Host: "127.0.0.1"}},
		{"api.stripe.com/v1/charges", Target{Host: "api.stripe.com", PathPrefix: "/v1/charges"}},
		{"api.github.com:443/repos/acme", Target{Host: "api.github.com", Port: 443, PathPrefix: "/repos/acme"}},
		{"x.com/", Target{Host: "x.com", PathPrefix: "/"}},
		{"x.com/v1/", Target{Host: "x.com", PathPrefix: "/v1/"}},
		{"x.com/a.b/..c/.d", Target{Host: "x.com", PathPrefix: "/a.b/..c/.d"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseTarget(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			// String round-trips to the same Target.
			again, err := ParseTarget(got.String())
			if err != nil {
				t.Fatalf("ParseTarget(%q) (from String): %v", got.String(), err)
			}
			if again != got {
				t.Fatalf("round trip %q -> %#v, want %#v", got.String(), again, got)
			}
			if hp := got.HostPort(); hp.PathPrefix != "" || hp.Host != got.Host || hp.Port != got.Port {
				t.Fatalf("HostPort() = %#v", hp)
			}
		})
	}
}

func TestTargetString(t *testing.T) {
	tests := []struct {
		t    Target
		want string
	}{
		{Target{Host: "x.com"}, "x.com"},
		{Target{Host: "x.com", Port: 8080}, "x.com:8080"},
		{Target{Host: "x.com", PathPrefix: "/v1"}, "x.com/v1"},
		{Target{Host: "::1"}, "[::1]"},
		{Target{Host: "::1", Port: 8443, PathPrefix: "/a"}, "[::1]:8443/a"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestParseTargetInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"scheme", "https://x.com"},
		{"userinfo", "user@x.com"},
		{"query", "x.com?q=1"},
		{"fragment", "x.com#f"},
		{"wildcard", "*.x.com"},
		{"port 0", "x.com:0"},
		{"port 65536", "x.com:65536"},
		{"port leading zero", "x.com:08"},
		{"port plus sign", "x.com:+80"},
		{"port letters", "x.com:abc"},
		{"empty port", "x.com:"},
		{"empty port after IPv6", "[::1]:"},
		{"only a port", ":80"},
		{"unbracketed IPv6", "::1"},
		{"unbracketed IPv6 with port", "2001:db8::1:443"},
		{"unterminated IPv6", "[::1"},
		{"garbage after IPv6", "[::1]x"},
		{"IPv6 zone", "[fe80::1%25eth0]"},
		{"bracketed IPv4", "[1.2.3.4]"},
		{"bracketed name", "[x.com]"},
		{"empty brackets", "[]"},
		{"non-ASCII", "bücher.de"},
		{"invalid UTF-8", "x\xff.com"},
		{"space", "x .com"},
		{"tab", "x.com\t"},
		{"control", "x.com\x00"},
		{"hex IPv4", "0x7f000001"},
		{"decimal IPv4", "2130706433"},
		{"octal IPv4", "017700000001"},
		{"short IPv4", "127.1"},
		{"short IPv4 trailing dot", "127.1."},
		{"leading-zero IPv4", "127.000.000.001"},
		{"octal dotted IPv4", "0177.0.0.1"},
		{"five-part IPv4", "1.2.3.4.5"},
		{"hex part IPv4", "127.0x1"},
		{"mixed hex IPv4", "0x7f.0.0.0x1"},
		{"numeric TLD", "x.123"},
		{"uppercase hex IPv4", "0X7F000001"},
		{"only dots", "."},
		{"two dots", ".."},
		{"empty label", "x..com"},
		{"leading dot", ".x.com"},
		{"two trailing dots", "x.com.."},
		{"leading hyphen", "-x.com"},
		{"trailing hyphen", "x-.com"},
		{"label hyphen end", "a.b-.com"},
		{"64-char label", strings.Repeat("a", 64) + ".com"},
		{"name over 253", strings.Repeat(strings.Repeat("a", 63)+".", 4) + "com"},
		{"dot-dot path", "x.com/../admin"},
		{"dot-dot path end", "x.com/a/.."},
		{"dot path", "x.com/a/./b"},
		{"dot path end", "x.com/a/."},
		{"double slash", "x.com/a//b"},
		{"double slash start", "x.com//a"},
		{"encoded dots", "x.com/%2e%2e"},
		{"encoded slash", "x.com/a%2fb"},
		{"bad escape", "x.com/a%zz"},
		{"backslash", `x.com\admin`},
		{"backslash path", `x.com/a\..\b`},
		{"percent in host", "x%2ecom"},
		{"bang in host", "x!.com"},
		{"no host with path", "/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if err == nil {
				t.Fatalf("ParseTarget(%q) = %#v, want error", tt.in, got)
			}
			if got != (Target{}) {
				t.Fatalf("ParseTarget(%q) returned %#v alongside an error", tt.in, got)
			}
			if c := errcode.Classify(err).Code; c != errcode.Usage {
				t.Fatalf("ParseTarget(%q) error %v classifies as %q, want usage", tt.in, err, c)
			}
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("ParseTarget(%q) error %v is not ErrInvalidTarget", tt.in, err)
			}
		})
	}
}

func TestNewBinding(t *testing.T) {
	target := Target{Host: "api.stripe.com", Port: 443, PathPrefix: "/v1"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	tests := []struct {
		name         string
		methods      []string
		surfaces     []string
		wantMethods  []string
		wantSurfaces []string
		wantErr      bool
	}{
		{"defaults", nil, nil, []string{}, []string{"header"}, false},
		{"empty slices", []string{}, []string{}, []string{}, []string{"header"}, false},
		{"upper-cased", []string{"get", "Post"}, nil, []string{"GET", "POST"}, []string{"header"}, false},
		{"trimmed", []string{" get "}, []string{" Query "}, []string{"GET"}, []string{"query"}, false},
		{"deduped and sorted", []string{"PUT", "get", "GET", "delete", "put"}, nil, []string{"DELETE", "GET", "PUT"}, []string{"header"}, false},
		{"surfaces deduped and sorted", nil, []string{"query", "header", "BODY", "query", "form"}, []string{}, []string{"body", "form", "header", "query"}, false},
		{"empty method", []string{""}, nil, nil, nil, true},
		{"blank method", []string{"  "}, nil, nil, nil, true},
		{"method with digit", []string{"GET2"}, nil, nil, nil, true},
		{"method with hyphen", []string{"M-SEARCH"}, nil, nil, nil, true},
		{"method with space", []string{"GE T"}, nil, nil, nil, true},
		{"method wildcard", []string{"*"}, nil, nil, nil, true},
		{"one bad method among good", []string{"GET", "P/ST"}, nil, nil, nil, true},
		{"invalid surface", nil, []string{"cookie"}, nil, nil, true},
		{"empty surface", nil, []string{""}, nil, nil, true},
		{"one bad surface among good", nil, []string{"header", "path"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBinding(target, tt.methods, tt.surfaces, now)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewBinding = %+v, want error", b)
				}
				if c := errcode.Classify(err).Code; c != errcode.Usage {
					t.Fatalf("error %v classifies as %q, want usage", err, c)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBinding: %v", err)
			}
			if b.Methods == nil || !slices.Equal(b.Methods, tt.wantMethods) {
				t.Errorf("Methods = %#v, want %#v", b.Methods, tt.wantMethods)
			}
			if !slices.Equal(b.Surfaces, tt.wantSurfaces) {
				t.Errorf("Surfaces = %#v, want %#v", b.Surfaces, tt.wantSurfaces)
			}
			if b.Target() != target {
				t.Errorf("Target() = %#v, want %#v", b.Target(), target)
			}
			if !b.CreatedAt.Equal(now) || b.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt = %v, want %v in UTC", b.CreatedAt, now)
			}
		})
	}
}

func TestNewBindingDoesNotAliasInput(t *testing.T) {
	surfaces := []string{"query", "header"}
	if _, err := NewBinding(Target{Host: "x.com"}, nil, surfaces, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(surfaces, []string{"query", "header"}) {
		t.Fatalf("NewBinding modified its surfaces argument: %v", surfaces)
	}
}

func TestBindingWidens(t *testing.T) {
	b := func(methods []string, surfaces ...string) Binding {
		if methods == nil {
			methods = []string{}
		}
		return Binding{Host: "x.com", Methods: methods, Surfaces: surfaces}
	}
	ptr := func(b Binding) *Binding { return &b }
	anyM := []string{}
	tests := []struct {
		name string
		new  Binding
		old  *Binding
		want bool
	}{
		{"nil old", b(anyM, "header"), nil, true},
		{"same any-method", b(anyM, "header"), ptr(b(anyM, "header")), false},
		{"same methods", b([]string{"GET", "POST"}, "header"), ptr(b([]string{"GET", "POST"}, "header")), false},
		{"adds a method", b([]string{"GET", "POST"}, "header"), ptr(b([]string{"GET"}, "header")), true},
		{"different method", b([]string{"DELETE"}, "header"), ptr(b([]string{"GET"}, "header")), true},
		{"specific to any method", b(anyM, "header"), ptr(b([]string{"GET"}, "header")), true},
		{"any to specific method", b([]string{"GET"}, "header"), ptr(b(anyM, "header")), false},
		{"method subset", b([]string{"GET"}, "header"), ptr(b([]string{"GET", "POST"}, "header")), false},
		{"adds a surface", b(anyM, "header", "query"), ptr(b(anyM, "header")), true},
		{"different surface", b(anyM, "body"), ptr(b(anyM, "header")), true},
		{"surface subset", b(anyM, "header"), ptr(b(anyM, "header", "query")), false},
		{"both subsets", b([]string{"GET"}, "header"), ptr(b([]string{"GET", "PUT"}, "body", "header")), false},
		{"method subset, surface added", b([]string{"GET"}, "header", "form"), ptr(b([]string{"GET", "PUT"}, "header")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.new.Widens(tt.old); got != tt.want {
				t.Fatalf("Widens = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllowEntryWidens(t *testing.T) {
	e := func(http, private bool) AllowEntry {
		return AllowEntry{Host: "x.com", AllowHTTP: http, AllowPrivate: private}
	}
	ptr := func(e AllowEntry) *AllowEntry { return &e }
	tests := []struct {
		name string
		new  AllowEntry
		old  *AllowEntry
		want bool
	}{
		{"nil old", e(false, false), nil, true},
		{"same", e(false, false), ptr(e(false, false)), false},
		{"same with both", e(true, true), ptr(e(true, true)), false},
		{"http turned on", e(true, false), ptr(e(false, false)), true},
		{"private turned on", e(false, true), ptr(e(false, false)), true},
		{"both turned on", e(true, true), ptr(e(false, false)), true},
		{"http off, private on", e(false, true), ptr(e(true, false)), true},
		{"http turned off", e(false, false), ptr(e(true, false)), false},
		{"private turned off", e(false, false), ptr(e(false, true)), false},
		{"both turned off", e(false, false), ptr(e(true, true)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.new.Widens(tt.old); got != tt.want {
				t.Fatalf("Widens = %v, want %v", got, tt.want)
			}
		})
	}
	if got := (AllowEntry{Host: "x.com", Port: 8443}).Target(); got != (Target{Host: "x.com", Port: 8443}) {
		t.Fatalf("Target() = %#v", got)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"api.stripe.com", "API.Stripe.COM.", "127.0.0.1:8080", "[::1]:8443",
		"[2001:db8::1]", "api.stripe.com/v1/charges", "x.com:443/path",
		"https://x.com", "user@x.com", "x.com?q=1", "*.x.com", "x.com:0",
		"::1", "[::1", "[1.2.3.4]", "bücher.de", "0x7f000001", "127.1",
		"127.0x1", "x..com", "-x.com", "x.com/../admin", "x.com/%2e%2e",
		`x.com\a`, "[::ffff:1.2.3.4]:1/a", "x.com:", "my_host.internal",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTarget(s)
		if err != nil {
			if c := errcode.Classify(err).Code; c != errcode.Usage {
				t.Fatalf("ParseTarget(%q) error %v classifies as %q, want usage", s, err, c)
			}
			return
		}
		again, err := ParseTarget(got.String())
		if err != nil {
			t.Fatalf("ParseTarget(%q) = %#v, but its String %q does not parse: %v", s, got, got.String(), err)
		}
		if again != got {
			t.Fatalf("ParseTarget(%q) = %#v, re-parsed %q = %#v", s, got, got.String(), again)
		}
		h := got.Host
		if h == "" || h != strings.ToLower(h) || strings.HasSuffix(h, ".") {
			t.Fatalf("ParseTarget(%q) host %q not normalised", s, h)
		}
		for i := 0; i < len(h); i++ {
			c := h[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':') {
				t.Fatalf("ParseTarget(%q) host %q contains %q", s, h, c)
			}
		}
		if got.Port < 0 || got.Port > 65535 {
			t.Fatalf("ParseTarget(%q) port %d", s, got.Port)
		}
		if p := got.PathPrefix; p != "" {
			if p[0] != '/' || strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.Contains(p, "/./") ||
				strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") || strings.ContainsAny(p, "%?#@\\") {
				t.Fatalf("ParseTarget(%q) path %q is not clean", s, p)
			}
		}
	})
}
