package broker

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// TestSentView: the view of a request outbound built shows its method, URL
// and headers, with every injected value masked where it was put, and a
// value typed into a plain header replaced by the redactor.
func TestSentView(t *testing.T) {
	const bearer, hdr, query, basic = "sk_live_bearer_0123456789", "hdr_value_0123456789", "q/value+0123456789", "user:pass_0123456789"
	values := map[string][]byte{"B": []byte(bearer), "H": []byte(hdr), "Q": []byte(query), "U": []byte(basic)}
	tests := []struct {
		name  string
		ins   []Injection
		plain http.Header
		want  []string
	}{
		{"bearer, header and query", []Injection{{Style: StyleBearer, Secret: "B"}, {Style: StyleHeader, Field: "x-api-key", Secret: "H"}, {Style: StyleQuery, Field: "api key", Secret: "Q"}},
			http.Header{"Accept": {"application/json"}},
			[]string{"> GET https://api.example.com/v1/x?a=1&api+key=****\n", "> Accept: application/json", "> Authorization: Bearer ****", "> X-Api-Key: ****"}},
		{"basic", []Injection{{Style: StyleBasic, Secret: "U"}}, nil, []string{"> Authorization: Basic ****"}},
		{"a value typed into -H", []Injection{{Style: StyleHeader, Field: "X-Key", Secret: "H"}}, http.Header{"X-Other": {"token " + hdr}},
			[]string{"> X-Key: ****", "> X-Other: token " + Marker}},
	}
	for _, tt := range tests {
		tg, err := parseTarget("https://api.example.com/v1/x?a=1")
		if err != nil {
			t.Fatal(err)
		}
		out, err := outbound(context.Background(), "GET", tg, tt.plain, nil, tt.ins, values, policy.Decision{})
		if err != nil {
			t.Fatal(err)
		}
		var all [][]byte
		for _, v := range values {
			all = append(all, v)
		}
		got := sentView(out, tt.ins, NewRedactor(all)).String()
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: view lacks %q:\n%s", tt.name, w, got)
			}
		}
		for name, v := range values {
			for _, enc := range []string{string(v), url.QueryEscape(string(v)), base64.StdEncoding.EncodeToString(v)} {
				if strings.Contains(got, enc) {
					t.Errorf("%s: view holds secret %s:\n%s", tt.name, name, got)
				}
			}
		}
	}
}
