package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// cannedTransport answers every request with the same small JSON response
// without a network: BenchmarkDo measures the broker's own work per
// request, which a real round trip would drown.
type cannedTransport struct{}

const cannedBody = `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{
		"Content-Type":   {"application/json"},
		"Date":           {"Thu, 03 Dec 2026 06:44:15 GMT"},
		"Content-Length": {strconv.Itoa(len(cannedBody))},
	}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(cannedBody)),
		ContentLength: int64(len(cannedBody)), Request: r}, nil
}

// BenchmarkDo: one proxied request's work in the broker (policy, values,
// the outbound request, the response's header and body redacted, the
// audit record queued on a batching Writer, as the proxy runs it), the
// upstream replaced by a canned response. Values and redactor are cached,
// as for every request but a process's first. secrets=1000 is a project
// whose 999 other secrets are each bound to an API of their own: what a
// request costs must not grow with the secrets it does not touch.
func BenchmarkDo(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run("secrets="+strconv.Itoa(n), func(b *testing.B) { benchDo(b, n) })
	}
}

func benchDo(b *testing.B, secrets int) {
	values := map[string]string{"KEY": valA}
	for i := 1; i < secrets; i++ {
		values["OTHER_"+strconv.Itoa(i)] = valB + strconv.Itoa(i)
	}
	w := newWorld(b, values)
	const upstream = "http://127.0.0.1:8443"
	w.bind("KEY", upstream, nil)
	// One index write for all the others.
	if err := w.st.Update(context.Background(), func(ix *vault.Index) error {
		p := ix.Workspaces[vault.DefaultName].Projects[vault.DefaultName]
		for i := 1; i < secrets; i++ {
			bd, err := policy.NewBinding(policy.Target{Host: "api" + strconv.Itoa(i) + ".example.com"}, nil, nil, time.Now())
			if err != nil {
				return err
			}
			s := p.Secrets["OTHER_"+strconv.Itoa(i)]
			s.Bindings = append(s.Bindings, bd)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	aw := w.log.NewWriter()
	defer aw.Close()
	brk := New(Config{Store: w.st, Audit: aw, Transport: cannedTransport{}})
	header := http.Header{"X-As-Target-Url": {upstream + "/v1/balance"}, "X-As-Inject-Bearer": {"KEY"},
		"User-Agent": {"Go-http-client/1.1"}, "Accept-Encoding": {"gzip"}}
	do := func() {
		req := &Request{FrontEnd: audit.FrontEndProxy, Selection: w.sel, Method: "GET", URL: upstream + "/v1/balance",
			Header: header, Injections: []Injection{{Secret: "KEY", Style: StyleBearer}}}
		resp, err := brk.Do(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		if err := resp.Close(nil); err != nil {
			b.Fatal(err)
		}
	}
	do()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
}

// TestDoCachesTargets: the broker parses a URL once and answers its next
// requests from its target cache, which no request changes, a followed
// redirect's hop included.
func TestDoCachesTargets(t *testing.T) {
	w := newWorld(t, map[string]string{"KEY": valA})
	const upstream = "http://127.0.0.1:8443"
	w.bind("KEY", upstream, nil)
	brk := New(Config{Store: w.st, Audit: w.log, Transport: cannedTransport{}})
	raw := upstream + "/v1/balance?limit=3"
	for range 3 {
		resp, err := brk.Do(context.Background(), &Request{FrontEnd: audit.FrontEndCall, Selection: w.sel, Method: "GET", URL: raw,
			Injections: []Injection{{Secret: "KEY", Style: StyleBearer}}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if err := resp.Close(nil); err != nil {
			t.Fatal(err)
		}
	}
	cached, ok := brk.targets.m[raw]
	if !ok || len(brk.targets.m) != 1 {
		t.Fatalf("target cache %v: want exactly %s", brk.targets.m, raw)
	}
	want, _ := parseTarget(raw)
	if *cached.url != *want.url || cached.hostPort != "127.0.0.1:8443" {
		t.Errorf("cached target changed by the requests: %+v %+v, want %+v", cached, *cached.url, *want.url)
	}
}

// recordingTransport is cannedTransport that keeps each outbound URL.
type recordingTransport struct{ urls []string }

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.urls = append(rt.urls, r.URL.String())
	return cannedTransport{}.RoundTrip(r)
}

// TestTargetCacheKeepsNoValue: a value injected into the query goes into
// that request's own copy of the URL, never into the cached target, so it
// is neither kept in memory past the request nor carried into the next
// request's URL or audit record.
func TestTargetCacheKeepsNoValue(t *testing.T) {
	w := newWorld(t, map[string]string{"KEY": valA})
	const upstream = "http://127.0.0.1:8443"
	w.bind("KEY", upstream, func(b *policy.Binding) { b.Surfaces = policy.Surfaces; b.SetHeaderNames([]string{"api_key"}) })
	rt := &recordingTransport{}
	brk := New(Config{Store: w.st, Audit: w.log, Transport: rt})
	raw := upstream + "/v1/balance?limit=3"
	for range 2 {
		resp, err := brk.Do(context.Background(), &Request{FrontEnd: audit.FrontEndCall, Selection: w.sel, Method: "GET", URL: raw,
			Injections: []Injection{{Secret: "KEY", Style: StyleQuery, Field: "api_key"}}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if err := resp.Close(nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range rt.urls {
		if n := strings.Count(u, url.QueryEscape(valA)); n != 1 {
			t.Errorf("request %d went out as %s: the value %d times, want once", i, u, n)
		}
	}
	cached, ok := brk.targets.m[raw]
	if !ok {
		t.Fatal("the URL was not cached")
	}
	kept := cached.url.String() + " " + cached.hostPort
	js, _ := json.Marshal(valA)
	for _, form := range []string{valA, base64.StdEncoding.EncodeToString([]byte(valA)), base64.RawURLEncoding.EncodeToString([]byte(valA)),
		hex.EncodeToString([]byte(valA)), url.QueryEscape(valA), string(js[1 : len(js)-1])} {
		if strings.Contains(kept, form) {
			t.Fatalf("the cached target holds the value (as %q): %s", form, kept)
		}
	}
	logged, err := os.ReadFile(filepath.Join(w.dirs.State, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logged, []byte(url.QueryEscape(valA))) || bytes.Contains(logged, []byte(valA)) {
		t.Fatal("the audit log holds the value")
	}
}
