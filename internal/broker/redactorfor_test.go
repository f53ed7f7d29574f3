package broker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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
