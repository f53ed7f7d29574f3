package broker

import (
	"context"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

func TestParseTarget(t *testing.T) {
	ok := []struct {
		in, host string
		port     int
		path     string
	}{
		{"https://API.Example.com./v1/x?q=1#frag", "api.example.com", 443, "/v1/x"},
		{"http://127.0.0.1:8080/", "127.0.0.1", 8080, "/"},
		{"https://[::1]:8443/a", "::1", 8443, "/a"},
		{"https://example.com", "example.com", 443, ""},
	}
	for _, c := range ok {
		tg, err := parseTarget(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if tg.host != c.host || tg.port != c.port || tg.url.Path != c.path || tg.url.Fragment != "" {
			t.Errorf("%s: host %q port %d path %q", c.in, tg.host, tg.port, tg.url.Path)
		}
		if want := (policy.Target{Host: c.host, Port: c.port}).String(); tg.hostport() != want {
			t.Errorf("%s: hostport %q, want %q", c.in, tg.hostport(), want)
		}
	}
	for _, bad := range []string{
		"", "ftp://x.com/", "//x.com/", "https://user:pw@x.com/", "https://x.com@127.0.0.1/", "https:///path",
		"https://bücher.de/", "https://x.com/a/%2f/b",
		"https://x .com/", "https://x.com\\@evil/", "https://0x7f000001/", "https://2130706433/", "https://x.com:99999/",
		"mailto:a@b.c",
	} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTargetCache: a cached URL answers with the target parseTarget gave
// it, shared, not re-parsed; a failure is never kept; the cache stays
// within its bounds, and a URL too long to keep is still parsed.
func TestTargetCache(t *testing.T) {
	var c targetCache
	const raw = "https://api.example.com:8443/v1/charges?limit=3"
	first, err := c.parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again.url != first.url || again != first {
		t.Errorf("second parse of the same URL was not answered from the cache: %+v vs %+v", again, first)
	}
	want, _ := parseTarget(raw)
	if *first.url != *want.url || first.host != want.host || first.port != want.port || first.hostPort != want.hostPort {
		t.Errorf("cached target %+v differs from parseTarget's %+v", first, want)
	}
	if other, err := c.parse("https://api.example.com:8443/v1/refunds"); err != nil || other.url.Path != "/v1/refunds" {
		t.Errorf("another URL: %+v, %v", other, err)
	}

	for _, bad := range []string{"https://user:pw@x.com/", "ftp://x.com/"} {
		for range 2 {
			if _, err := c.parse(bad); err == nil {
				t.Errorf("%q accepted", bad)
			}
		}
		if _, kept := c.m[bad]; kept {
			t.Errorf("failure for %q was cached", bad)
		}
	}

	long := "https://api.example.com/" + strings.Repeat("a", maxCachedURL)
	if tg, err := c.parse(long); err != nil || tg.host != "api.example.com" {
		t.Errorf("long URL: %+v, %v", tg, err)
	}
	if _, kept := c.m[long]; kept {
		t.Error("a URL longer than maxCachedURL was cached")
	}

	for i := range 3 * maxCachedTargets {
		if _, err := c.parse("https://api.example.com/v1/items/" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > maxCachedTargets {
			t.Fatalf("cache holds %d targets, bound %d", len(c.m), maxCachedTargets)
		}
	}
}

func TestValidateInjections(t *testing.T) {
	base := func(ins ...Injection) *Request {
		return &Request{URL: "https://api.example.com/", Injections: ins}
	}
	good := []*Request{
		base(Injection{Style: StyleBearer, Secret: "A"}),
		base(Injection{Style: StyleHeader, Field: "X-Api-Key", Secret: "A"}, Injection{Style: StyleQuery, Field: "key", Secret: "A"}),
		base(Injection{Style: StyleBody, Field: "a.b.0", Secret: "B"}, Injection{Style: StyleForm, Field: "f", Secret: "C"}),
	}
	for _, r := range good {
		if _, err := r.validate(&targetCache{}); err != nil {
			t.Errorf("%+v: %v", r.Injections, err)
		}
	}
	bad := []*Request{
		base(Injection{Style: "cookie", Field: "x", Secret: "A"}),
		base(Injection{Style: StyleBearer, Secret: "not a name"}),
		base(Injection{Style: StyleBearer, Secret: "A"}, Injection{Style: StyleBasic, Secret: "B"}),
		base(Injection{Style: StyleBearer, Secret: "A"}, Injection{Style: StyleHeader, Field: "authorization", Secret: "B"}),
		base(Injection{Style: StyleHeader, Field: "Bad Header", Secret: "A"}),
		base(Injection{Style: StyleBody, Field: "a..b", Secret: "A"}),
		base(Injection{Style: StyleQuery, Secret: "A"}),
		{URL: "https://x.com/", Method: "get me", Injections: nil},
		{URL: "https://x.com/", Header: http.Header{"X-A": {"a\r\nInjected: 1"}}},
	}
	for _, r := range bad {
		if _, err := r.validate(&targetCache{}); err == nil {
			t.Errorf("accepted %+v %q", r.Injections, r.Method)
		}
	}
}

func TestSetJSONPath(t *testing.T) {
	cases := []struct{ body, path, want string }{
		{``, "key", `{"key":"V"}`},
		{`{"a":{"b":1}}`, "a.c", `{"a":{"b":1,"c":"V"}}`},
		{`{"n":12345678901234567890}`, "k", `{"k":"V","n":12345678901234567890}`},
		{`{"list":[{"x":1},{"x":2}]}`, "list.1.token", `{"list":[{"x":1},{"token":"V","x":2}]}`},
		{`{"a":"<b>&"}`, "k", `{"a":"<b>&","k":"V"}`},
	}
	for _, c := range cases {
		got, err := setJSONPath([]byte(c.body), c.path, "V")
		if err != nil || string(got) != c.want {
			t.Errorf("setJSONPath(%s, %s) = %s, %v; want %s", c.body, c.path, got, err, c.want)
		}
	}
	for _, c := range []struct{ body, path string }{
		{`not json`, "a"}, {`{"list":[1]}`, "list.5"}, {`{"a":"str"}`, "a.b"}, {`{"l":[]}`, "l.x"},
	} {
		if _, err := setJSONPath([]byte(c.body), c.path, "V"); err == nil {
			t.Errorf("setJSONPath(%s, %s) accepted", c.body, c.path)
		}
	}
}

func TestSetQueryKeepsNamesExactly(t *testing.T) {
	for _, c := range []struct{ raw, name, want string }{
		{"", "api_key", "api_key=V"},
		{"a=1&api_key=old&b=2", "api_key", "a=1&b=2&api_key=V"},
		{"API_KEY=1", "api_key", "API_KEY=1&api_key=V"},
		{"camelCase=1", "camelCase", "camelCase=V"},
		{"x=%20y", "n a", "x=%20y&n+a=V"},
	} {
		if got := setQuery(c.raw, c.name, "V"); got != c.want {
			t.Errorf("setQuery(%q, %q) = %q, want %q", c.raw, c.name, got, c.want)
		}
	}
}

func TestOutboundHeaderHygiene(t *testing.T) {
	tg, _ := parseTarget("https://api.example.com/v1")
	client := http.Header{
		"Authorization":       {"Bearer client-copy"},
		"X-Api-Key":           {"client-copy"},
		"Connection":          {"keep-alive, X-Api-Key, X-Keep"},
		"X-Keep":              {"dropped: named in Connection"},
		"X-As-Session-Token":  {"tok"},
		"X-As-Inject-Bearer":  {"A"},
		"Proxy-Authorization": {"Basic x"},
		"Accept-Encoding":     {"br"},
		"X-Plain":             {"kept"},
		"x-as-lower":          {"not canonical, dropped all the same"},
	}
	before := client.Clone()
	ins := []Injection{{Style: StyleBearer, Secret: "A"}, {Style: StyleHeader, Field: "x-api-key", Secret: "B"}}
	out, err := outbound(context.Background(), "GET", tg, client, nil, ins, map[string][]byte{"A": []byte("va"), "B": []byte("vb")}, policy.Decision{})
	if err != nil {
		t.Fatal(err)
	}
	h := out.Header
	if h.Get("Authorization") != "Bearer va" || h.Get("X-Api-Key") != "vb" || len(h.Values("Authorization")) != 1 {
		t.Fatalf("injected values must win: %v", h)
	}
	for _, gone := range []string{"Connection", "X-Keep", "X-As-Session-Token", "X-As-Inject-Bearer", "Proxy-Authorization"} {
		if h.Get(gone) != "" {
			t.Errorf("%s was forwarded", gone)
		}
	}
	if h.Get("X-Plain") != "kept" || h.Get("Accept-Encoding") != "gzip, deflate" {
		t.Errorf("headers: %v", h)
	}
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-as-") {
			t.Errorf("%s was forwarded", name)
		}
	}
	// outbound shares the client's value slices: none may change, since
	// the client's header is used again for a redirect hop.
	if !reflect.DeepEqual(client, before) {
		t.Errorf("the client's headers were modified: %v", client)
	}
	_, err = outbound(context.Background(), "GET", tg, nil, nil, []Injection{{Style: StyleHeader, Field: "X-K", Secret: "A"}},
		map[string][]byte{"A": []byte("line\r\nInjected: yes")}, policy.Decision{})
	if err == nil || strings.Contains(err.Error(), "Injected") {
		t.Fatalf("CR/LF in a value must be refused without echoing it: %v", err)
	}
	_, err = outbound(context.Background(), "GET", tg, nil, nil, []Injection{{Style: StyleBasic, Secret: "A"}}, map[string][]byte{"A": []byte("nocolon")}, policy.Decision{})
	if err == nil {
		t.Fatal("basic needs user:pass")
	}
}

// TestRemoveHopHeadersLikeDel: the one pass over the header removes what
// a Del of each hop-by-hop name removes, for canonical keys and for keys
// in other forms (a header built by hand), which Del leaves alone too.
func TestRemoveHopHeadersLikeDel(t *testing.T) {
	hop := []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	keys := append(slices.Clone(hop), "TE", "te", "connection", "Keep-alive", "X-Other", "Authorization", "Content-Type", "Upgrade-Insecure-Requests")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		h := http.Header{}
		for range rng.IntN(8) {
			h[keys[rng.IntN(len(keys))]] = []string{"v"}
		}
		want := h.Clone()
		for _, name := range hop {
			want.Del(name)
		}
		got := h.Clone()
		removeHopHeaders(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("header %v: got %v, want %v", h, got, want)
		}
	}
}
