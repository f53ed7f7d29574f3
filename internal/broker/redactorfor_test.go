package broker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
)

// TestRedactorBuiltInFlight: a new broker builds its redactor while the
// first requests are in flight; concurrent first requests share that build
// and every response is redacted all the same (run with -race).
func TestRedactorBuiltInFlight(t *testing.T) {
	const n = 8
	w := newWorld(t, map[string]string{"A": valA})
	// Every request is answered once all n have arrived, so all of them
	// passed policy before the echo tripwire counts the first echo.
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		arrived.Done()
		select {
		case <-all:
		case <-time.After(30 * time.Second):
		}
		io.WriteString(rw, "auth="+r.Header.Get("Authorization"))
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	var wg sync.WaitGroup
	bodies := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			resp, body, err := w.do(b, "GET", up.URL+"/echo", nil, nil, bearer("A"))
			if err == nil && !resp.Redacted() {
				body = "not marked redacted: " + body
			}
			bodies[i], errs[i] = body, err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || strings.Contains(bodies[i], valA) || !strings.Contains(bodies[i], Marker) {
			t.Fatalf("request %d: %v %q", i, errs[i], bodies[i])
		}
	}
	b.mu.Lock()
	built := len(b.redactors)
	b.mu.Unlock()
	if built != 1 {
		t.Fatalf("%d redactors for one set of values", built)
	}
}

// TestScanDoesNotWaitForTheBuild: a front end's Scan hook (call's output
// guard, MCP's final scan) does not hold the request back until the
// redactor is built: the request reaches the upstream while the build is
// still running, and the redactor Scan was given is the one built.
func TestScanDoesNotWaitForTheBuild(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	arrived := make(chan struct{}, 2)
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		io.WriteString(rw, "auth="+r.Header.Get("Authorization"))
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	// A first request builds the redactor; its entry is then made to look
	// like a build still running, until the test says it is done.
	if _, _, err := w.do(b, "GET", up.URL+"/first", nil, nil, bearer("A")); err != nil {
		t.Fatal(err)
	}
	<-arrived
	b.mu.Lock()
	if len(b.redactors) != 1 {
		b.mu.Unlock()
		t.Fatalf("%d redactors after one request", len(b.redactors))
	}
	var pending *namedRedactor
	for key, nr := range b.redactors {
		pending = &namedRedactor{built: make(chan struct{}), r: nr.r, names: nr.names}
		b.redactors[key] = pending
	}
	b.mu.Unlock()

	var scanned func() *Redactor
	req := &Request{FrontEnd: audit.FrontEndCall, Selection: w.sel, Method: "GET", URL: up.URL + "/second",
		Injections: []Injection{bearer("A")}, Scan: func(r func() *Redactor) { scanned = r }}
	done := make(chan error, 1)
	go func() {
		resp, err := b.Do(context.Background(), req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			err = errors.Join(err, resp.Close(nil))
		}
		done <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		close(pending.built)
		t.Fatal("the request waited for the redactor's build before going out")
	}
	close(pending.built)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if scanned == nil || scanned() != pending.r {
		t.Error("Scan was not handed the request's redactor")
	}
}
