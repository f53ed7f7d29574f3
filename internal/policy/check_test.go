package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

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
		{"bound, header", req("https", "api.stripe.com", 443, "/v1/charges", "POST", Use{"STRIPE", SurfaceHeader, "Authorization"}), ""},
		{"prefix is whole segments", req("https", "api.stripe.com", 443, "/v10/x", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonNotBound},
		{"prefix itself", req("https", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ""},
		{"method not bound", req("https", "api.stripe.com", 443, "/v1/x", "DELETE", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonMethod},
		{"surface not bound", req("https", "api.stripe.com", 443, "/v1/x", "GET", Use{"STRIPE", SurfaceQuery, ""}), ReasonSurface},
		{"not allowlisted", req("https", "evil.com", 443, "/", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonNotAllowlisted},
		{"default-port entry does not cover other ports", req("https", "api.stripe.com", 8443, "/v1", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonNotAllowlisted},
		{"plain http to an https-only entry", req("http", "api.stripe.com", 80, "/v1", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonPlainHTTP},
		{"http on port 443 is not the entry's default port", req("http", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonNotAllowlisted},
		{"local dev entry", req("http", "127.0.0.1", 8080, "/x", "GET", Use{"LOCAL", SurfaceQuery, ""}), ""},
		{"explicit port entry", req("https", "api.example.com", 8443, "/", "POST", Use{"EX", SurfaceBody, ""}), ""},
		{"secret bound elsewhere", req("https", "api.example.com", 8443, "/", "POST", Use{"STRIPE", SurfaceHeader, "Authorization"}), ReasonNotBound},
		{"one of two secrets unbound", req("https", "api.stripe.com", 443, "/v1", "GET", Use{"STRIPE", SurfaceHeader, "Authorization"}, Use{"EX", SurfaceHeader, "Authorization"}), ReasonNotBound},
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

// TestCheckRoutingBypasses: paths a server routes differently from the
// string policy matched. Dot segments in every encoding and with
// ;parameters are denied for any request; ;parameters for requests that
// carry a value.
func TestCheckRoutingBypasses(t *testing.T) {
	allow := []AllowEntry{{Host: "api.example.com"}}
	bs := map[string][]Binding{"K": {{Host: "api.example.com", PathPrefix: "/public", Surfaces: []string{SurfaceHeader}}}}
	use := Use{"K", SurfaceHeader, "Authorization"}
	cases := []struct {
		path   string
		inject bool
		reason string
	}{
		{"/public/..;/admin", true, ReasonDotSegment},
		{"/public/..;x/admin", true, ReasonDotSegment},
		{"/public/..;/admin", false, ReasonDotSegment},
		{"/public/../admin", true, ReasonDotSegment},
		{"/public/./x", true, ReasonDotSegment},
		{"/public/%2e%2e/admin", true, ReasonDotSegment}, // %252e%252e in the URL, decoded once already
		{"/public/%2E%2e/admin", false, ReasonDotSegment},
		{"/public/.;a=b/x", true, ReasonDotSegment},
		{"/public/x;jsessionid=1/y", true, ReasonPathParameter},
		{"/public;/x", true, ReasonPathParameter},
		{"/public/x%3by", true, ReasonPathParameter},
		{"/public/x;y", false, ""},
		{"/public/x", true, ""},
		{"/public/...", true, ""},
		{"/public/.well-known", true, ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r := Request{Scheme: "https", Host: "api.example.com", Port: 443, Path: c.path, Method: "GET"}
			if c.inject {
				r.Uses = []Use{use}
			}
			_, err := Check(allow, func(n string) []Binding { return bs[n] }, r)
			if got := DenyReason(err); got != c.reason {
				t.Fatalf("reason %q, want %q (%v)", got, c.reason, err)
			}
		})
	}
}

// TestCheckHeaderPinning: a header-surface value goes under Authorization
// or a name the binding pins, nothing else; the hint is the one bind
// command that makes the request pass, keeping what the binding had.
func TestCheckHeaderPinning(t *testing.T) {
	allow := []AllowEntry{{Host: "api.example.com"}}
	old := Binding{Host: "api.example.com", Methods: []string{"GET"}, Surfaces: []string{SurfaceHeader}}
	pinned := old
	if err := pinned.SetHeaderNames([]string{"x-api-key", "X-API-KEY", "Authorization"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pinned.HeaderNames, []string{"X-Api-Key"}) {
		t.Fatalf("header names %v, want canonical, deduplicated, Authorization implied", pinned.HeaderNames)
	}
	cases := []struct {
		name   string
		b      Binding
		header string
		reason string
		hint   string
	}{
		{"bearer on an old binding", old, "Authorization", "", ""},
		{"custom name on an old binding", old, "X-Api-Key", ReasonHeader, "agentsecrets secrets bind K api.example.com --method GET --surface header --header-name X-Api-Key --workspace W --project P"},
		{"agent-chosen name", pinned, "X-Note", ReasonHeader, "agentsecrets secrets bind K api.example.com --method GET --surface header --header-name X-Api-Key --header-name X-Note --workspace W --project P"},
		{"pinned name, any case", pinned, "x-API-key", "", ""},
		{"not bound at all names the header too", Binding{Host: "other.example.com", Surfaces: []string{SurfaceHeader}}, "X-Note", ReasonNotBound, "agentsecrets secrets bind K api.example.com --surface header --header-name X-Note --workspace W --project P"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Request{Scheme: "https", Host: "api.example.com", Port: 443, Path: "/", Method: "GET",
				Uses: []Use{{"K", SurfaceHeader, c.header}}, Workspace: "W", Project: "P"}
			_, err := Check(allow, func(string) []Binding { return []Binding{c.b} }, r)
			if got := DenyReason(err); got != c.reason {
				t.Fatalf("reason %q, want %q (%v)", got, c.reason, err)
			}
			if hint := errcode.Classify(err).Hint; c.hint != "" && hint != "a human runs: "+c.hint {
				t.Fatalf("hint %q\nwant %q", hint, "a human runs: "+c.hint)
			}
		})
	}
}

// TestCheckDecisionFacts: what the bindings used ask of the broker.
func TestCheckDecisionFacts(t *testing.T) {
	allow := []AllowEntry{{Host: "api.example.com"}}
	bs := map[string][]Binding{
		"ANY":   {{Host: "api.example.com", Surfaces: []string{SurfaceHeader}}},
		"GET":   {{Host: "api.example.com", Methods: []string{"GET"}, Surfaces: []string{SurfaceHeader}}},
		"RANGE": {{Host: "api.example.com", Surfaces: []string{SurfaceHeader}, AllowRange: true}},
	}
	for _, c := range []struct {
		secrets         []string
		range_, methods bool
	}{
		{nil, true, false}, {[]string{"ANY"}, false, false}, {[]string{"GET"}, false, true},
		{[]string{"RANGE"}, true, false}, {[]string{"RANGE", "GET"}, false, true},
	} {
		r := Request{Scheme: "https", Host: "api.example.com", Port: 443, Path: "/", Method: "GET"}
		for _, s := range c.secrets {
			r.Uses = append(r.Uses, Use{s, SurfaceHeader, "Authorization"})
		}
		d, err := Check(allow, func(n string) []Binding { return bs[n] }, r)
		if err != nil || d.AllowRange != c.range_ || d.RestrictsMethods != c.methods {
			t.Errorf("%v: %+v %v, want range %v methods %v", c.secrets, d, err, c.range_, c.methods)
		}
	}
}

// TestEchoTripwire: the threshold suspends the binding of that secret to
// that origin only; a suspended binding denies with the re-approval
// command; re-binding counts as widening; the log stays bounded.
func TestEchoTripwire(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(secret, host string, port int, at time.Time) EchoEvent {
		return EchoEvent{Workspace: "W", Project: "P", Secret: secret, Scheme: "https", Host: host, Port: port, At: at}
	}
	var log EchoLog
	for i := 0; i < EchoThreshold-1; i++ {
		if tripped := log.Record([]EchoEvent{ev("K", "a.example.com", 443, now)}, now); len(tripped) != 0 {
			t.Fatalf("tripped after %d events", i+1)
		}
	}
	if tripped := log.Record([]EchoEvent{ev("K", "b.example.com", 443, now), ev("J", "a.example.com", 443, now)}, now); len(tripped) != 0 {
		t.Fatal("other secrets and origins must not count")
	}
	old := EchoLog{Events: []EchoEvent{ev("K", "a.example.com", 443, now.Add(-EchoWindow-time.Second))}}
	if tripped := old.Record([]EchoEvent{ev("K", "a.example.com", 443, now)}, now); len(tripped) != 0 || len(old.Events) != 1 {
		t.Fatalf("events outside the window must be pruned: %+v", old.Events)
	}
	tripped := log.Record([]EchoEvent{ev("K", "a.example.com", 443, now)}, now)
	if len(tripped) != 1 {
		t.Fatalf("threshold %d not tripped", EchoThreshold)
	}
	for i := 0; i < 50; i++ {
		log.Record([]EchoEvent{ev("K", "a.example.com", 443, now)}, now)
	}
	if len(log.Events) > 2+EchoThreshold {
		t.Fatalf("log grows: %d events", len(log.Events))
	}

	bs := []Binding{
		{Host: "a.example.com", Surfaces: []string{SurfaceHeader}, HeaderNames: []string{"X-Api-Key"}, Methods: []string{"GET"}},
		{Host: "a.example.com", Port: 8443, Surfaces: []string{SurfaceHeader}},
	}
	if !Suspend(bs, tripped[0], now) || !bs[0].Suspended() || bs[1].Suspended() {
		t.Fatalf("suspend: %+v", bs)
	}
	allow := []AllowEntry{{Host: "a.example.com"}}
	r := Request{Scheme: "https", Host: "a.example.com", Port: 443, Path: "/any/path", Method: "GET",
		Uses: []Use{{"K", SurfaceHeader, "Authorization"}}, Workspace: "W", Project: "P"}
	_, err := Check(allow, func(string) []Binding { return bs }, r)
	if DenyReason(err) != ReasonEchoTripwire || errcode.Classify(err).Code != errcode.Denied {
		t.Fatalf("suspended binding: %v", err)
	}
	want := "agentsecrets secrets bind K a.example.com --method GET --surface header --header-name X-Api-Key --workspace W --project P"
	if hint := errcode.Classify(err).Hint; !strings.HasSuffix(hint, want) {
		t.Fatalf("hint %q does not end with %q", hint, want)
	}
	if _, err := Check(allow, func(string) []Binding { return bs }, Request{Scheme: "https", Host: "a.example.com", Port: 443, Path: "/", Method: "GET"}); err != nil {
		t.Fatalf("a request injecting nothing is not the tripwire's: %v", err)
	}
	same := bs[0]
	same.SuspendedAt, same.SuspendReason = nil, ""
	if !same.Widens(&bs[0]) {
		t.Fatal("re-binding a suspended binding must need approval")
	}
	log.Forget("W", "P", "K", same)
	for _, e := range log.Events {
		if e.Secret == "K" && e.Host == "a.example.com" {
			t.Fatalf("re-approval must restart the count: %+v", log.Events)
		}
	}
}

// TestBindingWidensPinsAndRange: new header names and Range widen.
func TestBindingWidensPinsAndRange(t *testing.T) {
	old := Binding{Host: "x.com", Surfaces: []string{SurfaceHeader}, HeaderNames: []string{"X-A"}}
	for _, c := range []struct {
		b    Binding
		want bool
	}{
		{Binding{Host: "x.com", Surfaces: []string{SurfaceHeader}, HeaderNames: []string{"X-A"}}, false},
		{Binding{Host: "x.com", Surfaces: []string{SurfaceHeader}}, false},
		{Binding{Host: "x.com", Surfaces: []string{SurfaceHeader}, HeaderNames: []string{"X-A", "X-B"}}, true},
		{Binding{Host: "x.com", Surfaces: []string{SurfaceHeader}, HeaderNames: []string{"X-A"}, AllowRange: true}, true},
	} {
		if got := c.b.Widens(&old); got != c.want {
			t.Errorf("%+v widens = %v, want %v", c.b, got, c.want)
		}
	}
}

// TestAllowEchoExemptsFromTripwire: a binding a human marked as echoing by
// design is never suspended, and marking it so widens.
func TestAllowEchoExemptsFromTripwire(t *testing.T) {
	bs := []Binding{{Host: "echo.example.com", Surfaces: []string{SurfaceHeader}, AllowEcho: true}}
	e := EchoEvent{Secret: "K", Scheme: "https", Host: "echo.example.com", Port: 443, At: time.Now()}
	if Suspend(bs, e, time.Now()) || bs[0].Suspended() {
		t.Fatal("an allow-echo binding was suspended")
	}
	plain := Binding{Host: "echo.example.com", Surfaces: []string{SurfaceHeader}}
	if !bs[0].Widens(&plain) || plain.Widens(&bs[0]) {
		t.Fatal("turning the tripwire off must widen, turning it on must not")
	}
}

// TestAllowlistHints: an allowlist denial names the one command that makes
// the request pass, with every flag it needs, under the target of the entry
// it widens; following it (allowlist add merges) is never denied again
// for the allowlist.
func TestAllowlistHints(t *testing.T) {
	private := func() bool { return true }
	use := Use{"KEY", SurfaceHeader, "Authorization"}
	cases := []struct {
		name  string
		allow []AllowEntry
		r     Request
		hint  string
	}{
		{"loopback http, fresh", nil,
			Request{Scheme: "http", Host: "127.0.0.1", Port: 8080, Uses: []Use{use}, Workspace: "w", Private: private},
			"a human runs: agentsecrets workspace allowlist add 127.0.0.1:8080 --allow-http --allow-private --workspace w"},
		{"loopback https, fresh", nil,
			Request{Scheme: "https", Host: "localhost", Port: 443, Uses: []Use{use}, Workspace: "w", Private: private},
			"a human runs: agentsecrets workspace allowlist add localhost --allow-private --workspace w"},
		{"public http, fresh", nil,
			Request{Scheme: "http", Host: "api.example.com", Port: 80, Uses: []Use{use}, Workspace: "w"},
			"a human runs: agentsecrets workspace allowlist add api.example.com --allow-http --workspace w"},
		{"public https, fresh", nil,
			Request{Scheme: "https", Host: "api.example.com", Port: 443, Uses: []Use{use}, Workspace: "w", Private: func() bool { return false }},
			"a human runs: agentsecrets workspace allowlist add api.example.com --workspace w"},
		{"http without a value needs no --allow-http", nil,
			Request{Scheme: "http", Host: "127.0.0.1", Port: 8080, Workspace: "w", Private: private},
			"a human runs: agentsecrets workspace allowlist add 127.0.0.1:8080 --allow-private --workspace w"},
		{"plain http keeps the entry's private exemption", []AllowEntry{{Host: "127.0.0.1", Port: 8080, AllowPrivate: true}},
			Request{Scheme: "http", Host: "127.0.0.1", Port: 8080, Uses: []Use{use}, Workspace: "w"},
			"use https://, or for local development a human runs: agentsecrets workspace allowlist add 127.0.0.1:8080 --allow-http --allow-private --workspace w"},
		{"plain http adds the private exemption it will need", []AllowEntry{{Host: "10.1.2.3"}},
			Request{Scheme: "http", Host: "10.1.2.3", Port: 80, Uses: []Use{use}, Private: private},
			"use https://, or for local development a human runs: agentsecrets workspace allowlist add 10.1.2.3 --allow-http --allow-private"},
		{"plain http widens the entry that matched, under its target", []AllowEntry{{Host: "api.example.com", Port: 80}},
			Request{Scheme: "http", Host: "api.example.com", Port: 80, Uses: []Use{use}, Workspace: "w"},
			"use https://, or for local development a human runs: agentsecrets workspace allowlist add api.example.com:80 --allow-http --workspace w"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.Path, c.r.Method = "/", "GET"
			_, err := Check(c.allow, func(string) []Binding { return nil }, c.r)
			if got := errcode.Classify(err).Hint; got != c.hint {
				t.Fatalf("hint %q\nwant %q", got, c.hint)
			}
			// Follow it: merge the entry it names into the allowlist.
			cmd := strings.Fields(c.hint[strings.Index(c.hint, "agentsecrets "):])
			target, err := ParseTarget(cmd[4])
			if err != nil {
				t.Fatal(err)
			}
			asked := AllowEntry{Host: target.Host, Port: target.Port, AllowHTTP: slices.Contains(cmd, "--allow-http"), AllowPrivate: slices.Contains(cmd, "--allow-private")}
			allow := slices.Clone(c.allow)
			i := slices.IndexFunc(allow, func(e AllowEntry) bool { return e.Host == asked.Host && e.Port == asked.Port })
			if i < 0 {
				allow = append(allow, asked)
			} else {
				allow[i] = asked.Merged(&allow[i])
			}
			_, err = Check(allow, func(string) []Binding { return nil }, c.r)
			if r := DenyReason(err); r == ReasonNotAllowlisted || r == ReasonPlainHTTP {
				t.Fatalf("after following the hint: %v", err)
			}
		})
	}
}

func TestMergedKeepsExemptions(t *testing.T) {
	added := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := &AllowEntry{Host: "h", AllowHTTP: true, AddedAt: added}
	got := AllowEntry{Host: "h", AllowPrivate: true, AddedAt: added.Add(time.Hour)}.Merged(old)
	if !got.AllowHTTP || !got.AllowPrivate || !got.AddedAt.Equal(added) {
		t.Fatalf("merged %+v", got)
	}
	if !got.Widens(old) || (AllowEntry{Host: "h"}).Merged(old).Widens(old) {
		t.Fatal("merging in a flag the entry has must not widen it; a new one must")
	}
}
