package e2e

// A loopback reverse proxy in front of a real `agentsecrets server` (or
// several replicas, as a round-robin load balancer): it records every
// request and response byte (for the canary scan), can edit responses (to
// play a malicious server) and times each round trip (for the benchmarks'
// network share).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Exchange is one recorded request and its response.
type Exchange struct {
	Method, Path string
	Target       string // the server that answered
	Request      []byte // request line, headers and body as sent on
	Response     []byte // status line, headers and body as returned
	ReqBody      []byte
	RespBody     []byte
	Took         time.Duration // the upstream round trip
}

// ResponseEdit rewrites the body of a response to method+path; it returns
// the body unchanged for responses it leaves alone.
type ResponseEdit func(t testing.TB, method, path string, body []byte) []byte

// TrafficProxy is the recording proxy.
type TrafficProxy struct {
	*httptest.Server
	t       testing.TB
	targets []string

	mu        sync.Mutex
	exchanges []Exchange
	edit      ResponseEdit
	turns     map[string]int // per path: the next target's turn
	gate      *gate
}

// gate holds requests to paths ending in suffix until n of them wait,
// then lets them all go at once: a race the test does not leave to luck.
type gate struct {
	suffix  string
	n       int
	waiting int
	open    chan struct{}
}

// RecordTraffic puts a recording proxy in front of srv and points srv.URL
// at it, so every account, device and command created from srv afterwards
// talks through the proxy.
func RecordTraffic(t testing.TB, srv *SyncServer) *TrafficProxy {
	t.Helper()
	p := NewTrafficProxy(t, srv.URL)
	srv.URL = p.URL
	return p
}

// NewTrafficProxy starts a recording proxy for the servers at targets.
// With several, each path's requests go to them in turn (so two pushes of
// one project in a row reach two different replicas).
func NewTrafficProxy(t testing.TB, targets ...string) *TrafficProxy {
	p := &TrafficProxy{t: t, targets: targets, turns: map[string]int{}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		p.mu.Lock()
		target := p.targets[p.turns[r.URL.Path]%len(p.targets)]
		p.turns[r.URL.Path]++
		var wait chan struct{}
		if g := p.gate; g != nil && strings.HasSuffix(r.URL.Path, g.suffix) {
			wait = g.open
			if g.waiting++; g.waiting == g.n {
				close(g.open)
				g.open, g.waiting = make(chan struct{}), 0
			}
		}
		p.mu.Unlock()
		if wait != nil {
			select {
			case <-wait:
			case <-time.After(20 * time.Second):
				t.Errorf("gate %s: the other requests never came", r.URL.Path)
			}
		}
		out, err := http.NewRequest(r.Method, target+r.URL.RequestURI(), bytes.NewReader(reqBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		start := time.Now()
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		p.mu.Lock()
		edit := p.edit
		p.mu.Unlock()
		if edit != nil && resp.StatusCode < 300 {
			body = edit(t, r.Method, r.URL.Path, body)
		}
		var reqRec, respRec bytes.Buffer
		fmt.Fprintf(&reqRec, "%s %s %s\r\n", r.Method, r.URL.RequestURI(), r.Proto)
		r.Header.Write(&reqRec)
		reqRec.WriteString("\r\n")
		reqRec.Write(reqBody)
		fmt.Fprintf(&respRec, "%s %s\r\n", resp.Proto, resp.Status)
		resp.Header.Write(&respRec)
		respRec.WriteString("\r\n")
		respRec.Write(body)
		p.mu.Lock()
		p.exchanges = append(p.exchanges, Exchange{Method: r.Method, Path: r.URL.Path, Target: target, Request: reqRec.Bytes(), Response: respRec.Bytes(),
			ReqBody: reqBody, RespBody: body, Took: took})
		p.mu.Unlock()
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(p.Close)
	return p
}

// Edit sets (or with nil clears) the response editor.
func (p *TrafficProxy) Edit(e ResponseEdit) {
	p.mu.Lock()
	p.edit = e
	p.mu.Unlock()
}

// Gate makes requests to paths ending in suffix wait for each other in
// groups of n (n = 0 removes the gate).
func (p *TrafficProxy) Gate(suffix string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = nil
	if n > 0 {
		p.gate = &gate{suffix: suffix, n: n, open: make(chan struct{})}
	}
}

// Exchanges returns what was recorded so far.
func (p *TrafficProxy) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.exchanges...)
}

// Reset forgets what was recorded.
func (p *TrafficProxy) Reset() {
	p.mu.Lock()
	p.exchanges = nil
	p.mu.Unlock()
}

// scanTraffic checks every recorded byte for the canaries: the raw
// exchange, the strings of its JSON bodies once decoded, and every JSON
// string that is base64 once decoded (envelopes, sealed and wrapped keys:
// a value in a cleartext header would show there).
func scanTraffic(t testing.TB, p *TrafficProxy, canaries [][]byte) {
	t.Helper()
	ex := p.Exchanges()
	if len(ex) == 0 {
		t.Fatal("the recording proxy saw no traffic: the devices bypassed it")
	}
	decoded := 0
	for i, e := range ex {
		where := fmt.Sprintf("exchange %d (%s %s)", i, e.Method, e.Path)
		assertNoLeak(t, "request of "+where, e.Request, canaries)
		assertNoLeak(t, "response of "+where, e.Response, canaries)
		for _, body := range [][]byte{e.ReqBody, e.RespBody} {
			strs, ok := jsonStrings(body)
			if !ok {
				continue
			}
			assertNoLeak(t, "decoded JSON of "+where, strs, canaries)
			for _, s := range bytes.Split(strs, []byte("\n")) {
				if raw, err := base64.StdEncoding.DecodeString(string(s)); err == nil && len(raw) > 0 {
					decoded++
					assertNoLeak(t, "base64-decoded field of "+where, raw, canaries)
				}
			}
		}
	}
	t.Logf("scanned %d exchanges (%d base64 fields decoded) for %d canaries", len(ex), decoded, len(canaries))
}

// TestSyncTrafficScanDetector proves the traffic scan sees a value that
// crosses the recording proxy only inside a base64 field at an offset
// where its own base64 spelling does not appear (as a cleartext envelope
// header would carry it), and stays quiet on clean traffic.
func TestSyncTrafficScanDetector(t *testing.T) {
	c := newCanary(t, "traffic", "")
	var payload []byte
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"envelope":%q}`, base64.StdEncoding.EncodeToString(payload))
	}))
	t.Cleanup(backend.Close)
	p := NewTrafficProxy(t, backend.URL)
	for _, leak := range []bool{true, false} {
		p.Reset()
		payload = []byte("hdr:" + randomB64(t, 16))
		if leak {
			payload = append([]byte("x:"), c...) // 2 bytes in: off the 3-byte grid
		}
		resp, err := http.Get(p.URL + "/v1/anything")
		must(t, err)
		resp.Body.Close()
		rec := &leakRecorder{TB: t}
		scanTraffic(rec, p, [][]byte{c})
		switch {
		case leak && !strings.Contains(strings.Join(rec.msgs, "\n"), "base64-decoded field"):
			t.Errorf("a value inside a base64 field was not found: %q", rec.msgs)
		case !leak && len(rec.msgs) > 0:
			t.Errorf("false positives: %q", rec.msgs)
		}
	}
}
