package broker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestDoScanAfterSend: Request.Scan gets the request's redactor only once
// the request has reached the upstream, so building the redactor never
// holds the request back (a one-shot `call` waited for it before sending).
// It still gets it on every path where values were read: with the answer,
// and with an error after the read (here an upstream that is gone); a
// request refused before any value was read hands it nothing.
func TestDoScanAfterSend(t *testing.T) {
	arrived := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-arrived:
		default:
			close(arrived)
		}
		io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
	}))
	defer up.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	cases := []struct {
		name   string
		url    string
		bind   bool
		code   errcode.Code // "" for success
		scans  int
		upWait bool // Scan must come after the upstream had the request
	}{
		{name: "answered", url: up.URL + "/api", bind: true, scans: 1, upWait: true},
		{name: "upstream gone", url: gone.URL + "/api", bind: true, code: errcode.Upstream, scans: 1},
		{name: "refused by policy", url: up.URL + "/api", code: errcode.Denied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, map[string]string{"A": valA})
			if c.bind {
				w.bind("A", c.url, nil)
			}
			scans := 0
			req := &Request{FrontEnd: "call", Selection: w.sel, Method: "GET", URL: c.url,
				Injections: []Injection{bearer("A")}, Timeout: 10 * time.Second,
				Scan: func(r *Redactor) {
					scans++
					if c.upWait {
						select {
						case <-arrived:
						default:
							t.Error("Scan was called before the request reached the upstream")
						}
					}
					if _, hit := r.Bytes([]byte("x " + valA + " y")); !hit {
						t.Error("Scan's redactor does not find the request's value")
					}
				}}
			resp, err := w.broker(0).Do(context.Background(), req)
			if c.code != "" {
				if got := errcode.Classify(err).Code; got != c.code {
					t.Fatalf("Do: %v (code %s), want code %s", err, got, c.code)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				if err := resp.Close(nil); err != nil {
					t.Fatal(err)
				}
			}
			if scans != c.scans {
				t.Errorf("Scan was called %d times, want %d", scans, c.scans)
			}
		})
	}
}
