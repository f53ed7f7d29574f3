package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// The review's oracle: an upstream reflects agent-chosen bytes and then
// pauses. If the proxy held the reflected bytes back only when they could
// still grow into the value, an agent would learn from *when* its guess
// came back whether the guess was a prefix of the value. These tests put a
// real proxy between a client and such an upstream and compare a right and
// a wrong guess.

const oracleValue = "sk_live_Q7fK2mX9pL4vR8tZ1wN6cB3yH5jD"

// reflector writes "guess=" + q, then waits for resume (or gives up after a
// while) before it ends the body; with fixed it declares a Content-Length
// covering the tail it has not sent yet.
func reflector(resume <-chan struct{}, fixed bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The guess is the last thing before the pause: that is where a
		// content-dependent hold-back would keep a right prefix.
		head := "guess=" + r.URL.Query().Get("q")
		tail := "\n" + strings.Repeat("~", 2048) + "\n"
		if fixed {
			w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(tail)))
		}
		io.WriteString(w, head)
		w.(http.Flusher).Flush()
		select {
		case <-resume:
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, tail)
	})
}

// seenBeforeResume sends one reflected guess through the proxy and reports
// whether the guess reached the client while the upstream was paused, and
// the whole body.
func seenBeforeResume(t *testing.T, p *testProxy, resume chan struct{}, guess string) (bool, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.proxy, nil)
	req.Header.Set("X-AS-Session-Token", p.token)
	req.Header.Set("X-AS-Target-URL", p.upstream+"/reflect?q="+guess)
	req.Header.Set("X-AS-Inject-Bearer", "KEY")
	got := make(chan string, 64)
	done := make(chan string, 1)
	go func() {
		// The status line may itself wait for the body (a body of known
		// length is held whole until its end): read from the start.
		resp, err := newClient().Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		var all strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			all.Write(buf[:n])
			got <- all.String()
			if err != nil {
				done <- all.String()
				return
			}
		}
	}()
	seen := false
	timeout := time.After(1500 * time.Millisecond)
wait:
	for !seen {
		select {
		case sofar := <-got:
			seen = strings.Contains(sofar, "guess="+guess)
		case <-timeout:
			break wait
		}
	}
	close(resume)
	return seen, <-done
}

func TestReflectedGuessTimingIsNoOracle(t *testing.T) {
	right, wrong := oracleValue[:11], "sk_live_Zz0"
	for _, fixed := range []bool{false, true} {
		name := "chunked"
		if fixed {
			name = "content-length"
		}
		t.Run(name, func(t *testing.T) {
			type outcome struct {
				seen bool
				body string
			}
			got := map[string]outcome{}
			for _, guess := range []string{right, wrong} {
				resume := make(chan struct{})
				p := setupProxy(t, reflector(resume, fixed), oracleValue)
				seen, body := seenBeforeResume(t, p, resume, guess)
				got[guess] = outcome{seen, strings.Replace(body, guess, "GUESS", 1)}
			}
			if got[right] != got[wrong] {
				r, w := got[right], got[wrong]
				t.Fatalf("a right prefix and a wrong guess differ: seen while paused %v vs %v; bodies equal: %v",
					r.seen, w.seen, r.body == w.body)
			}
			// A chunked body is released after a quiet spell whatever it
			// holds; a body of known length waits for the rest either way.
			if got[right].seen != !fixed {
				t.Fatalf("guess seen while paused = %v", got[right].seen)
			}
		})
	}
}

// TestReflectedValueTripsTheWire: reflecting the whole value is redacted
// each time, and the EchoThreshold-th echo suspends the binding, so the
// proxy refuses the next request with echo_tripwire.
func TestReflectedValueTripsTheWire(t *testing.T) {
	resume := make(chan struct{})
	close(resume)
	p := setupProxy(t, reflector(resume, false), oracleValue)
	send := func() (*http.Response, string) {
		req, _ := http.NewRequest("GET", p.proxy, nil)
		req.Header.Set("X-AS-Session-Token", p.token)
		req.Header.Set("X-AS-Target-URL", p.upstream+"/reflect?q="+oracleValue)
		req.Header.Set("X-AS-Inject-Bearer", "KEY")
		resp, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for i := 0; i < policy.EchoThreshold; i++ {
		resp, body := send()
		if resp.StatusCode != 200 || strings.Contains(body, oracleValue) || !strings.Contains(body, "guess=[REDACTED]") ||
			resp.Trailer.Get("X-AS-Redacted") != "true" {
			t.Fatalf("echo %d: %d %q trailer %v", i+1, resp.StatusCode, body, resp.Trailer)
		}
	}
	// The last event is recorded as the response closes; give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body := send()
		if resp.StatusCode == http.StatusForbidden {
			var e struct {
				Error struct{ Code, Message, Hint string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "denied" || !strings.Contains(e.Error.Hint, "secrets bind KEY") {
				t.Fatalf("refusal: %q", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("binding not suspended after %d echoes: %d %q", policy.EchoThreshold, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
