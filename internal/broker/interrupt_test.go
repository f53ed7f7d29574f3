package broker

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestDoInterrupted: a request whose caller cancels it after the value went
// out is recorded as interrupted (decision error, code unavailable), not as
// the upstream's failure, whether the cancellation comes while the
// upstream is still to answer or while its body streams. The control case
// is an upstream that really breaks off mid-body: still upstream_error.
func TestDoInterrupted(t *testing.T) {
	cases := []struct {
		name string
		// path on the upstream; cancel is when the caller cancels: once
		// the upstream has the request ("upstream"), once the first line
		// of the body is read ("body"), or never ("").
		path   string
		cancel string
		code   errcode.Code
		reason string
	}{
		{name: "before the answer", path: "/api/hold", cancel: "upstream", code: errcode.Unavailable, reason: ReasonInterrupted},
		{name: "mid-body", path: "/api/trickle", cancel: "body", code: errcode.Unavailable, reason: ReasonInterrupted},
		{name: "upstream breaks off (control)", path: "/api/broken", code: errcode.Upstream, reason: "upstream_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			mux := http.NewServeMux()
			mux.HandleFunc("/api/hold", func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done()
			})
			mux.HandleFunc("/api/trickle", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first part\n")
				w.(http.Flusher).Flush()
				arrived <- struct{}{}
				<-r.Context().Done()
			})
			mux.HandleFunc("/api/broken", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				io.WriteString(w, "first part\n")
				w.(http.Flusher).Flush()
				arrived <- struct{}{}
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			})
			up := httptest.NewServer(mux)
			defer up.Close()
			w := newWorld(t, map[string]string{"A": valA})
			w.bind("A", up.URL, nil)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-arrived
				if c.cancel == "upstream" {
					cancel()
				}
			}()
			resp, err := w.broker(0).Do(ctx, &Request{FrontEnd: "call", Selection: w.sel, Method: "GET",
				URL: up.URL + c.path, Injections: []Injection{bearer("A")}, Timeout: 30 * time.Second})
			if err == nil {
				br := bufio.NewReader(resp.Body)
				if c.cancel == "body" {
					// The redactor releases what cannot be the start of
					// an echo: the line is through it, so the value was
					// sent and the body is streaming.
					if first, rerr := br.ReadString('\n'); rerr != nil || first != "first part\n" {
						t.Fatalf("the body's first line: %q, %v", first, rerr)
					}
					cancel()
				}
				_, rerr := io.ReadAll(br)
				resp.Close(rerr)
				err = ReadError(ctx, rerr)
				if err == nil {
					t.Fatal("the body ended without an error")
				}
			}
			if rep := errcode.Classify(err); rep.Code != c.code || rep.Hint == "" {
				t.Errorf("error %v: code %q hint %q, want code %q and a hint", err, rep.Code, rep.Hint, c.code)
			}
			if strings.Contains(err.Error(), valA) {
				t.Fatalf("the error holds the value: %v", err)
			}
			if c.cancel != "" && !errors.Is(err, ErrInterrupted) {
				t.Errorf("error %v, want ErrInterrupted", err)
			}
			recs := w.audits()
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
			}
			r := recs[0]
			if r.Decision != audit.DecisionError || r.Reason != c.reason || r.Code != string(c.code) || r.Path != c.path || strings.Join(r.Secrets, ",") != "A" {
				t.Errorf("audit record %+v, want decision error, reason %q, code %q", r, c.reason, c.code)
			}
		})
	}
}

// TestReadErrorInterrupted: the transport ends a body read with the
// context's cause; ReadError names it the caller's going away.
func TestReadErrorInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range []error{context.Canceled, ErrInterrupted, &wrapped{context.Canceled}} {
		if got := ReadError(ctx, err); !errors.Is(got, ErrInterrupted) {
			t.Errorf("ReadError(%v) = %v, want ErrInterrupted", err, got)
		}
	}
	if got := ReadError(ctx, io.ErrUnexpectedEOF); errcode.AuditOf(got).Reason != "upstream_error" {
		t.Errorf("ReadError(unexpected EOF) = %v, want upstream_error", got)
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "read: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }
