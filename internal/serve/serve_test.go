package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestLoopbackHost is the one Host rule of every loopback front end:
// localhost or a loopback IP literal, with any port; nothing a rebound
// DNS name can be.
func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1":           true,
		"127.0.0.1:8765":      true,
		"127.0.0.2:8766":      true, // mcp serve --http 127.0.0.2:PORT
		"127.255.255.254":     true,
		"localhost":           true,
		"LOCALHOST:1":         true,
		"localhost.":          true,
		"localhost.:8765":     true,
		"[::1]":               true,
		"[::1]:8765":          true,
		"::1":                 true,
		"[0:0:0:0:0:0:0:1]:1": true,
		"":                    false,
		"example.com":         false,
		"evil.localhost":      false,
		"localhost.evil.com":  false,
		"127.0.0.1.nip.io":    false,
		"10.0.0.1":            false,
		"0.0.0.0":             false,
		"[::]":                false,
		"[fe80::1%25lo]":      false,
		"127.1":               false,
		"2130706433":          false,
		"[::ffff:127.0.0.1]":  true, // an IPv4-mapped loopback literal is still a literal
	} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestLoopbackOnly: a refused Host gets the JSON error envelope, denied.
func TestLoopbackOnly(t *testing.T) {
	h := LoopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), "the test server", "use 127.0.0.1")
	for host, status := range map[string]int{"127.0.0.1:1": 204, "rebound.example:1": 403} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != status {
			t.Errorf("%s: status %d, want %d", host, w.Code, status)
		}
		if status != 204 {
			var env errcode.Envelope
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error.Code != errcode.Denied || env.Error.Hint != "use 127.0.0.1" {
				t.Errorf("%s: body %s", host, w.Body)
			}
		}
	}
}

func TestTokenOK(t *testing.T) {
	for _, c := range []struct {
		got, want string
		ok        bool
	}{
		{"abc", "abc", true},
		{"abd", "abc", false},
		{"", "abc", false},
		{"", "", false},
		{"abc", "", false},
		{"abcd", "abc", false},
	} {
		if TokenOK(c.got, c.want) != c.ok {
			t.Errorf("TokenOK(%q, %q) != %v", c.got, c.want, c.ok)
		}
	}
}

// TestListenServeShutdown: the token file is private and names the bound
// port; Serve answers until its context ends and then returns.
func TestListenServeShutdown(t *testing.T) {
	dir := t.TempDir()
	l, err := Listen("127.0.0.1:0", "pick another", func(addr string) string {
		return filepath.Join(dir, strings.ReplaceAll(addr, ":", "_")+".token")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(l.TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(l.TokenFile, strings.ReplaceAll(l.Addr().String(), ":", "_")) {
		t.Fatalf("token file %s: %v %v", l.TokenFile, fi, err)
	}
	if b, _ := os.ReadFile(l.TokenFile); strings.TrimSpace(string(b)) != l.Token || len(l.Token) != 64 {
		t.Fatalf("token file holds %q", b)
	}
	if _, err := Listen(l.Addr().String(), "pick another", func(string) string { return filepath.Join(dir, "x") }); errcode.Classify(err).Code != errcode.Unavailable {
		t.Errorf("a taken port: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WriteError(w, errors.New("boom")) }), ServerOptions{})
	}()
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("WriteError: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// TestServeCutsOffAfterGrace: a request still running when the shutdown
// grace ends has its connection closed, which cancels its context, and
// Serve returns only once its handler has ended (so that the handler's
// audit record is queued before the caller drains); a handler that ignores
// its context is waited for up to CutOffWait, and Serve says it was left
// running.
func TestServeCutsOffAfterGrace(t *testing.T) {
	for _, tc := range []struct {
		name      string
		honours   bool
		wait      time.Duration // CutOffWait: long where the handler ends, so a slow machine cannot fail it
		wantError bool
	}{
		{"honours its context", true, 10 * time.Second, false},
		{"ignores its context", false, 300 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			started, ended, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
			defer close(release)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				close(started)
				if tc.honours {
					<-r.Context().Done()
				} else {
					<-release
				}
				close(ended)
			})
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() {
				served <- Serve(ctx, ln, h, ServerOptions{ShutdownGrace: 100 * time.Millisecond, CutOffWait: tc.wait})
			}()
			resp, err := http.Get("http://" + ln.Addr().String() + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			<-started
			cancel()
			var serr error
			select {
			case serr = <-served:
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
			select {
			case <-ended:
				if !tc.honours {
					t.Error("the handler that ignores its context ended")
				}
			default:
				if tc.honours {
					t.Error("Serve returned while the cut-off handler was still running")
				}
			}
			if (serr != nil) != tc.wantError {
				t.Fatalf("Serve: %v, want an error: %v", serr, tc.wantError)
			}
			if rep := errcode.Classify(serr); serr != nil && (rep.Code != errcode.Internal || !strings.Contains(rep.Message, "1 request(s) still running") || !strings.Contains(rep.Hint, "agentsecrets proxy logs")) {
				t.Errorf("Serve's error: %v", serr)
			}
		})
	}
}
