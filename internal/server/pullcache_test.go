package server

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestFullPullCache: two replicas on one database each answer full pulls
// from their cache; every way the answer may change is seen on the very
// next request through either replica: a push through the other replica
// (new head), a push of a new secret, a push through itself, a pull that
// knows versions (not the cached answer), and a logout (the token no
// longer authenticates although the answer is cached).
func TestFullPullCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		r1 := startServer(t, spec, Options{})
		r2 := startServer(t, spec, Options{})
		replicas := []*testServer{r1, r2}
		u := r1.signup(t, "cache@example.com")
		tok := u.Session.AccessToken
		ws := r1.workspace(t, u, "app")
		pushRel := path(syncapi.PathPush, "ws", ws, "project", "app")
		pullRel := path(syncapi.PathPull, "ws", ws, "project", "app")
		heads := map[string]int{}
		push := func(via *testServer, name string) {
			t.Helper()
			call[syncapi.PushResponse](t, "POST", via.URL+pushRel, tok, pushReq(change(t, name, heads[name])))
			heads[name]++
		}
		// pullAll checks a full pull through each replica, twice (the
		// second from the cache), against the heads pushed so far.
		pullAll := func(step string) []byte {
			t.Helper()
			var first []byte
			for i, r := range replicas {
				for range 2 {
					status, raw := do(t, "POST", r.URL+pullRel, tok, syncapi.PullRequest{Known: map[string]int{}})
					if status != http.StatusOK {
						t.Fatalf("%s: replica %d: status %d: %s", step, i, status, raw)
					}
					if first == nil {
						first = raw
					} else if !bytes.Equal(raw, first) {
						t.Fatalf("%s: replica %d answers differently:\n%s\nvs\n%s", step, i, raw, first)
					}
				}
			}
			res := call[syncapi.PullResponse](t, "POST", r1.URL+pullRel, tok, syncapi.PullRequest{Known: map[string]int{"A": 0}})
			want := 0
			for name, h := range heads {
				want += h
				if res.Heads[name] != h {
					t.Fatalf("%s: head of %s is %d, want %d", step, name, res.Heads[name], h)
				}
			}
			if len(res.Heads) != len(heads) || len(res.Versions) != want {
				t.Fatalf("%s: %d heads and %d versions, want %d and %d", step, len(res.Heads), len(res.Versions), len(heads), want)
			}
			return first
		}
		push(r1, "A")
		pullAll("first push")
		push(r2, "A")
		pullAll("new head through the other replica")
		push(r2, "B")
		pullAll("new secret")
		push(r1, "B")
		full := pullAll("new head through the same replica")

		known := call[syncapi.PullResponse](t, "POST", r1.URL+pullRel, tok, syncapi.PullRequest{Known: map[string]int{"A": heads["A"]}})
		if len(known.Versions) != heads["B"] || known.Versions[0].Name != "B" {
			t.Fatalf("a pull knowing A's head got %s, want only B's versions", versionList(known.Versions))
		}
		if status, raw := do(t, "POST", r2.URL+pullRel, tok, syncapi.PullRequest{Known: map[string]int{"A": heads["A"]}}); status != 200 || bytes.Equal(raw, full) {
			t.Fatalf("a pull knowing versions got the full answer (status %d)", status)
		}

		if status, raw := do(t, "DELETE", r2.URL+syncapi.PathSessionCurrent, tok, nil); status != http.StatusNoContent {
			t.Fatalf("logout: status %d: %s", status, raw)
		}
		for _, r := range replicas {
			apiError(t, "POST", r.URL+pullRel, tok, syncapi.PullRequest{}, http.StatusUnauthorized, "unauthorized")
		}
	})
}

// TestPullCacheBudget: the cache never holds more than its budget, keeps
// one answer per project, and skips an answer larger than the budget.
func TestPullCacheBudget(t *testing.T) {
	c := newPullCache(10)
	const h = 1
	c.put("w", "p1", h, []byte("123456"))
	c.put("w", "p1", h+1, []byte("1234"))
	if _, ok := c.get("w", "p1", h); ok || c.size != 4 || len(c.entries) != 1 {
		t.Fatalf("a new answer for p1 did not replace the old one: size %d, %d entries", c.size, len(c.entries))
	}
	c.put("w", "p2", h, []byte("12345678"))
	if c.size > 10 || len(c.entries) != 1 {
		t.Fatalf("over budget: size %d, %d entries", c.size, len(c.entries))
	}
	if b, ok := c.get("w", "p2", h); !ok || string(b) != "12345678" {
		t.Fatalf("the newest answer is not cached")
	}
	c.put("w", "p3", h, []byte("12345678901"))
	if _, ok := c.get("w", "p3", h); ok {
		t.Fatal("an answer over the budget was cached")
	}
}
