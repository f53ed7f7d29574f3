package mcp

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/broker"
)

func TestInjectionsMap(t *testing.T) {
	cases := []struct {
		in   string
		want []broker.Injection
		err  bool
	}{
		{`{"bearer":"A"}`, []broker.Injection{{Style: "bearer", Secret: "A"}}, false},
		{`{"basic":"B","header:X-Api-Key":"C"}`, []broker.Injection{{Style: "basic", Secret: "B"}, {Style: "header", Field: "X-Api-Key", Secret: "C"}}, false},
		{`{"query:userId":"Q","body:auth.token":"T","form:client_secret":"F"}`, []broker.Injection{
			{Style: "body", Field: "auth.token", Secret: "T"}, {Style: "form", Field: "client_secret", Secret: "F"}, {Style: "query", Field: "userId", Secret: "Q"}}, false},
		{`{"Bearer":"A"}`, []broker.Injection{{Style: "bearer", Secret: "A"}}, false},
		{`{"bearer:x":"A"}`, nil, true},
		{`{"header":"A"}`, nil, true},
		{`{"header:":"A"}`, nil, true},
		{`{"header:a=b":"A"}`, nil, true},
		{`{"cookie:sid":"A"}`, nil, true},
		{`{"bearer":""}`, nil, true},
		{`{"bearer":5}`, nil, true},
		{`["bearer"]`, nil, true},
	}
	for _, c := range cases {
		got, err := injectionsMap([]byte(c.in))
		if (err != nil) != c.err || !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
	// A key or name that could be a pasted value is not echoed.
	for _, in := range []string{`{"sk_live_0123456789 abcdef":"A"}`, `{"bearer":"sk_live_0123456789 abcdef"}`, `{"query:p":"sk_live_0123456789 abcdef"}`} {
		_, err := injectionsMap([]byte(in))
		if err == nil || strings.Contains(err.Error(), "sk_live") {
			t.Errorf("%s: value echoed: %v", in, err)
		}
	}
}

func TestAPICallBody(t *testing.T) {
	for _, c := range []struct {
		in     string
		body   string
		isJSON bool
	}{
		{`"a=b&c=d"`, "a=b&c=d", false},
		{`{"x":1}`, `{"x":1}`, true},
		{` [1,2] `, `[1,2]`, true},
		{`null`, "", false},
	} {
		b, isJSON, err := apiCallBody([]byte(c.in))
		if err != nil || string(b) != c.body || isJSON != c.isJSON {
			t.Errorf("%s: %q %v %v", c.in, b, isJSON, err)
		}
	}
}

// TestAPICallRequest: api_call's input becomes a broker.Request directly,
// with the broker's defaults, the session cap, list-of-one inputs, JSON
// bodies typed, and errors that name inputs, never values.
func TestAPICallRequest(t *testing.T) {
	req := func(in string) (*broker.Request, error) {
		c, err := decodeCall([]byte(in))
		if err != nil {
			return nil, err
		}
		return c.request()
	}
	r, err := req(`{"url":"https://x.example/","bearer":"K","query":"p=Q"}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != http.MethodGet || r.Timeout != broker.DefaultTimeout || r.MaxResponse != MaxAPIResponse ||
		!reflect.DeepEqual(r.Injections, []broker.Injection{{Style: "bearer", Secret: "K"}, {Style: "query", Field: "p", Secret: "Q"}}) {
		t.Errorf("defaults: %+v", r)
	}
	r, err = req(`{"url":"https://x.example/","body":{"a":1},"injections":{"body:token":"K"},"timeout":"2s","max_response":100,"request_header":"X-A: 1","headers":{"X-B":"2"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != http.MethodPost || string(r.Body) != `{"a":1}` || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("X-A") != "1" || r.Header.Get("X-B") != "2" || r.Timeout != 2*time.Second || r.MaxResponse != 100 {
		t.Errorf("options: %+v", r)
	}
	for in, code := range map[string]string{
		`{}`: "url",
		`{"url":"https://x.example/","max_response":0}`:                             "max_response",
		`{"url":"https://x.example/","timeout":"sk_live_0123456789"}`:               "timeout",
		`{"url":"https://x.example/","data":"a","body":"b"}`:                        "not both",
		`{"url":"https://x.example/","data_file":"/etc/passwd"}`:                    "not an input",
		`{"url":"https://x.example/","sk_live_0123456789 ABC":1}`:                   "not an input",
		`{"url":"https://x.example/","bearer":["A","B"]}`:                           "bearer",
		`{"url":"https://x.example/","header":"sk_live_0123456789"}`:                "header",
		`{"url":"https://x.example/","headers":["sk_live_0123456789"]}`:             "headers",
		`{"url":"https://x.example/","request_header":"sk_live_0123456789"}`:        "-H",
		`{"url":"https://x.example/","injections":{"cookie":"sk_live_0123456789"}}`: "injection key",
	} {
		_, err := req(in)
		if err == nil || !strings.Contains(err.Error(), code) || strings.Contains(err.Error(), "sk_live") {
			t.Errorf("%s: %v (want an error about %s, no value)", in, err, code)
		}
	}
}
