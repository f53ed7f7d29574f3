package proxy

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/broker"
)

func TestParseInjections(t *testing.T) {
	h := http.Header{}
	h.Set("X-AS-Inject-Bearer", "STRIPE_KEY")
	h.Set("X-AS-Inject-Header-X-Api-Key", "K1")
	h.Set("X-AS-Inject-Query-API_KEY", "K2") // arrives canonicalised; sent lower-case
	h.Add("X-AS-Inject-Query", "userId=K3, pageToken=K4")
	h.Set("X-AS-Inject-Body-Auth.Token", "K5")
	h.Set("X-AS-Inject-Form", "client_Secret=K6")
	h.Set("X-AS-Target-URL", "https://x.example/") // not an injection
	got, err := ParseInjections(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []broker.Injection{
		{Style: "bearer", Secret: "STRIPE_KEY"},
		{Style: "body", Field: "auth.token", Secret: "K5"},
		{Style: "form", Field: "client_Secret", Secret: "K6"},
		{Style: "header", Field: "X-Api-Key", Secret: "K1"},
		{Style: "query", Field: "userId", Secret: "K3"},
		{Style: "query", Field: "pageToken", Secret: "K4"},
		{Style: "query", Field: "api_key", Secret: "K2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []map[string]string{
		{"X-AS-Inject-Cookie": "A"},
		{"X-AS-Inject-Bearer-Extra": "A"},
		{"X-AS-Inject-Query": "no-equals-sign"},
		{"X-AS-Inject-Form": "=NAME"},
	} {
		h := http.Header{}
		for k, v := range bad {
			h.Set(k, v)
		}
		if _, err := ParseInjections(h); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// FuzzParseInjections: arbitrary header names and values never panic, and
// every injection returned names a style the broker knows.
func FuzzParseInjections(f *testing.F) {
	f.Add("Query-api_key", "K")
	f.Add("Query", "a=B,c=D")
	f.Add("Body-a.b.0", "K")
	f.Add("Bearer", "")
	f.Fuzz(func(t *testing.T, suffix, value string) {
		h := http.Header{}
		h[http.CanonicalHeaderKey("X-AS-Inject-"+suffix)] = []string{value}
		ins, err := ParseInjections(h)
		if err != nil {
			return
		}
		for _, in := range ins {
			switch in.Style {
			case "bearer", "basic", "header", "query", "body", "form":
			default:
				t.Fatalf("unknown style %q", in.Style)
			}
			if strings.Contains(in.Style, "\n") {
				t.Fatal("newline in style")
			}
		}
	})
}
