package broker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// doUpstream is a real upstream on 127.0.0.1 with one path per behaviour
// the broker must handle. other is the target of cross-origin redirects.
func doUpstream(t *testing.T, other string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/ok", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok auth_len="+strconv.Itoa(len(r.Header.Get("Authorization"))))
	})
	mux.HandleFunc("/api/echo", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
	})
	mux.HandleFunc("/api/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/api/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 4096))
	})
	// Same origin, a path the binding covers: followed.
	mux.HandleFunc("/api/redirect-in", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/ok", http.StatusFound)
	})
	// Same origin, a path the binding does not cover: policy is checked
	// again for the new hop, and denies it.
	mux.HandleFunc("/api/redirect-out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin", http.StatusFound)
	})
	mux.HandleFunc("/admin", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the broker followed a redirect out of the binding (auth_len %d)", len(r.Header.Get("Authorization")))
	})
	mux.HandleFunc("/api/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+"/api/ok", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// allow allowlists the upstream's host:port without binding anything.
func (w *world) allow(upstreamURL string, allowHTTP bool) {
	w.t.Helper()
	u, _ := url.Parse(upstreamURL)
	tgt, err := policy.ParseTarget(u.Host)
	if err != nil {
		w.t.Fatal(err)
	}
	err = w.st.Update(context.Background(), func(ix *vault.Index) error {
		ws := ix.Workspaces[vault.DefaultName]
		ws.Allowlist = append(ws.Allowlist, policy.AllowEntry{Host: tgt.Host, Port: tgt.Port, AllowHTTP: allowHTTP, AllowPrivate: true})
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// TestDo is Broker.Do end to end, one case per outcome: a real file
// vault, real upstreams on 127.0.0.1, and for each the Response (or the
// error's code), and the audit record it leaves, which names the secret
// but never holds its value.
func TestDo(t *testing.T) {
	apiPrefix := func(b *policy.Binding) { b.PathPrefix = "/api" }
	cases := []struct {
		name string
		// setup allowlists and binds; the upstream is up, other a second
		// origin with A bound to it too.
		setup  func(w *world, up, other string)
		method string
		path   string
		inject []Injection
		// timeout and maxResponse of the Request (0: the broker's).
		timeout     time.Duration
		maxResponse int64

		// On success: status, a body substring, whether it was redacted,
		// a note substring.
		status   int
		body     string
		redacted bool
		note     string
		// On failure: the code (from Do or from reading the body) and
		// the audit reason.
		code    errcode.Code
		reason  string
		outcome string // the audit decision
	}{
		{name: "allowed", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/ok", inject: []Injection{bearer("A")},
			status: 200, body: "ok auth_len=" + strconv.Itoa(len("Bearer "+valA)), outcome: audit.DecisionAllowed},
		{name: "not allowlisted", setup: func(*world, string, string) {},
			path: "/api/ok", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonNotAllowlisted, outcome: audit.DecisionBlocked},
		{name: "allowlisted, not bound", setup: func(w *world, up, _ string) { w.allow(up, true) },
			path: "/api/ok", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonNotBound, outcome: audit.DecisionBlocked},
		{name: "path not bound", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/admin", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonNotBound, outcome: audit.DecisionBlocked},
		{name: "method not bound", setup: func(w *world, up, _ string) {
			w.bind("A", up, func(b *policy.Binding) { b.Methods = []string{"GET"} })
		},
			method: "POST", path: "/api/ok", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonMethod, outcome: audit.DecisionBlocked},
		{name: "surface not bound", setup: func(w *world, up, _ string) { w.bind("A", up, nil) },
			path: "/api/ok", inject: []Injection{{Style: StyleQuery, Field: "key", Secret: "A"}},
			code: errcode.Denied, reason: policy.ReasonSurface, outcome: audit.DecisionBlocked},
		{name: "header not bound", setup: func(w *world, up, _ string) { w.bind("A", up, nil) },
			path: "/api/ok", inject: []Injection{{Style: StyleHeader, Field: "X-Note", Secret: "A"}},
			code: errcode.Denied, reason: policy.ReasonHeader, outcome: audit.DecisionBlocked},
		{name: "unknown secret", setup: func(w *world, up, _ string) { w.bind("A", up, nil) },
			path: "/api/ok", inject: []Injection{bearer("NOPE")},
			code: errcode.NotFound, reason: "unknown_secret", outcome: audit.DecisionError},
		{name: "http without allow-http", setup: func(w *world, up, _ string) {
			w.bind("A", up, nil) // allowlists with allow-http
			w.st.Update(context.Background(), func(ix *vault.Index) error {
				ws := ix.Workspaces[vault.DefaultName]
				for i := range ws.Allowlist {
					ws.Allowlist[i].AllowHTTP = false
				}
				return nil
			})
		},
			path: "/api/ok", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonPlainHTTP, outcome: audit.DecisionBlocked},
		{name: "same-origin redirect followed", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/redirect-in", inject: []Injection{bearer("A")},
			status: 200, body: "ok auth_len=" + strconv.Itoa(len("Bearer "+valA)), outcome: audit.DecisionAllowed},
		{name: "same-origin redirect out of the binding re-checked", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/redirect-out", inject: []Injection{bearer("A")},
			code: errcode.Denied, reason: policy.ReasonNotBound, outcome: audit.DecisionBlocked},
		{name: "cross-origin redirect not followed", setup: func(w *world, up, other string) {
			w.bind("A", up, apiPrefix)
			w.bind("A", other, apiPrefix)
		},
			path: "/api/redirect-away", inject: []Injection{bearer("A")},
			status: http.StatusFound, note: "another origin", outcome: audit.DecisionAllowed},
		{name: "upstream timeout", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/slow", inject: []Injection{bearer("A")}, timeout: 100 * time.Millisecond,
			code: errcode.Timeout, reason: "upstream_timeout", outcome: audit.DecisionError},
		{name: "response too large", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/big", inject: []Injection{bearer("A")}, maxResponse: 100,
			code: errcode.TooLarge, reason: "too_large", outcome: audit.DecisionError},
		{name: "echo redacted", setup: func(w *world, up, _ string) { w.bind("A", up, apiPrefix) },
			path: "/api/echo", inject: []Injection{bearer("A")},
			status: 200, body: "you sent Bearer " + Marker, redacted: true, outcome: audit.DecisionRedacted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, map[string]string{"A": valA})
			other := doUpstream(t, "")
			up := doUpstream(t, other.URL)
			c.setup(w, up.URL, other.URL)
			method := c.method
			if method == "" {
				method = "GET"
			}
			resp, err := w.broker(0).Do(context.Background(), &Request{FrontEnd: "call", Selection: w.sel, Method: method,
				URL: up.URL + c.path, Injections: c.inject, Timeout: c.timeout, MaxResponse: c.maxResponse})
			var body []byte
			if err == nil {
				var rerr error
				body, rerr = io.ReadAll(resp.Body)
				resp.Close(rerr)
				if rerr != nil {
					err = ReadError(context.Background(), rerr)
				}
			}
			if strings.Contains(string(body), valA) || err != nil && strings.Contains(err.Error(), valA) {
				t.Fatalf("the value came back: %q %v", body, err)
			}
			if c.code != "" {
				if got := errcode.Classify(err).Code; got != c.code {
					t.Fatalf("Do = %v (code %q, body %q), want code %q", err, got, body, c.code)
				}
				if rep := errcode.Classify(err); rep.Hint == "" {
					t.Errorf("error without a hint: %v", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				if resp.Status != c.status || !strings.Contains(string(body), c.body) || resp.Redacted() != c.redacted {
					t.Errorf("response %d %q redacted %v, want %d containing %q redacted %v", resp.Status, body, resp.Redacted(), c.status, c.body, c.redacted)
				}
				if c.note != "" && !strings.Contains(strings.Join(resp.Notes, "; "), c.note) {
					t.Errorf("notes %q, want one saying %q", resp.Notes, c.note)
				}
				if resp.AuditID == "" {
					t.Error("no audit id")
				}
			}
			recs := w.audits()
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
			}
			rec := recs[0]
			line, _ := json.Marshal(rec)
			if strings.Contains(string(line), valA) {
				t.Fatalf("the audit record holds the value: %s", line)
			}
			wantReason := c.reason
			if c.redacted {
				wantReason = "credential_echo"
			}
			if rec.Decision != c.outcome || rec.Reason != wantReason || rec.Code != string(c.code) ||
				rec.FrontEnd != "call" || rec.Method != method || strings.Join(rec.Secrets, ",") != c.inject[0].Secret {
				t.Errorf("audit record %s\nwant decision %q reason %q code %q", line, c.outcome, wantReason, c.code)
			}
			if c.code == "" && (rec.ID != resp.AuditID || rec.Status != c.status || rec.Host != strings.TrimPrefix(up.URL, "http://") || rec.Path != c.path) {
				t.Errorf("audit record %s does not match the response (id %s, status %d, path %s)", line, resp.AuditID, c.status, c.path)
			}
		})
	}
}

// TestDoFailureAuditWaitsForTheLock: a request that fails after it was
// sent (here a redirect the binding does not cover) is audited after Do
// has cancelled the request's own context. Another process holding the
// audit lock at that moment must make the record wait, not turn the
// denial into "the audit log is locked".
func TestDoFailureAuditWaitsForTheLock(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	lockPath := filepath.Join(w.dirs.State, "audit.lock")
	released := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/redirect-out", func(rw http.ResponseWriter, r *http.Request) {
		// Another writer takes the lock just before the redirect reaches
		// the broker, and keeps it a moment.
		lf, err := filelock.Open(lockPath)
		if err != nil {
			t.Error(err)
			return
		}
		held := make(chan struct{})
		go func() {
			defer close(released)
			lf.With(context.Background(), func() error {
				close(held)
				time.Sleep(300 * time.Millisecond)
				return nil
			})
			lf.Close()
		}()
		<-held
		http.Redirect(rw, r, "/admin", http.StatusFound)
	})
	up := httptest.NewServer(mux)
	defer up.Close()
	w.bind("A", up.URL, func(b *policy.Binding) { b.PathPrefix = "/api" })

	_, err := w.broker(0).Do(context.Background(), &Request{FrontEnd: "call", Selection: w.sel, Method: "GET",
		URL: up.URL + "/api/redirect-out", Injections: []Injection{bearer("A")}, Timeout: 20 * time.Second})
	<-released
	if got := errcode.Classify(err).Code; got != errcode.Denied {
		t.Fatalf("Do = %v (code %q), want denied", err, got)
	}
	recs := w.audits()
	if len(recs) != 1 || recs[0].Decision != audit.DecisionBlocked {
		t.Fatalf("audit records %+v, want one blocked", recs)
	}
}
