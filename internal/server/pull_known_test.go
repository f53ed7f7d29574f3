package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestPullKnownMixes: whatever mix of known versions a client sends (none,
// some, every head, above the head, names the server does not have), the
// pull returns exactly the versions known < v <= head of every name,
// oldest first per name, in name order.
func TestPullKnownMixes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		u := ts.signup(t, "pull@example.com")
		tok := u.Session.AccessToken
		ws := ts.workspace(t, u, "app")
		pushURL := ts.URL + path(syncapi.PathPush, "ws", ws, "project", "app")
		pullURL := ts.URL + path(syncapi.PathPull, "ws", ws, "project", "app")
		heads := map[string]int{"A": 3, "B": 1, "C": 4, "D": 2, "E": 5}
		for v := 1; v <= 5; v++ {
			var changes []syncapi.PushChange
			for _, n := range []string{"A", "B", "C", "D", "E"} {
				if v <= heads[n] {
					changes = append(changes, change(t, n, v-1))
				}
			}
			call[syncapi.PushResponse](t, "POST", pushURL, tok, pushReq(changes...))
		}
		for _, known := range []map[string]int{
			nil,
			{"A": 1},
			{"A": 3, "B": 1, "C": 4, "D": 2, "E": 5},
			{"A": 2, "B": 0, "C": 2, "D": 1, "E": 2},
			{"A": 9, "C": 3, "ZZ": 4},
			{"A": 1, "B": 1, "C": 1, "D": 1, "E": 1},
		} {
			var want []string
			for _, n := range []string{"A", "B", "C", "D", "E"} {
				for v := known[n] + 1; v <= heads[n]; v++ {
					want = append(want, fmt.Sprintf("%s%d", n, v))
				}
			}
			got := call[syncapi.PullResponse](t, "POST", pullURL, tok, syncapi.PullRequest{Known: known})
			if versionList(got.Versions) != strings.Join(want, " ") {
				t.Errorf("known %v: versions %q, want %q", known, versionList(got.Versions), strings.Join(want, " "))
			}
			if len(got.Heads) != len(heads) {
				t.Errorf("known %v: heads %v", known, got.Heads)
			}
		}
	})
}

// TestPoolKeepsConnections: concurrent requests reuse the pool's
// connections instead of closing all but two after each burst and opening
// (for SQLite: opening and configuring the file) new ones for the next:
// under 50 clients that churn cost the server a third of its throughput.
func TestPoolKeepsConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		u := ts.signup(t, "pool@example.com")
		tok := u.Session.AccessToken
		ws := ts.workspace(t, u, "app")
		pullURL := ts.URL + path(syncapi.PathPull, "ws", ws, "project", "app")
		changes := make([]syncapi.PushChange, 100)
		for i := range changes {
			changes[i] = syncapi.PushChange{Name: fmt.Sprintf("S%03d", i), Envelope: randomBytes(t, 600)}
		}
		call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), tok, pushReq(changes...))
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 4 {
					if code, body := do(t, "POST", pullURL, tok, syncapi.PullRequest{}); code != 200 {
						t.Errorf("pull: %d %s", code, body)
					}
				}
			}()
		}
		wg.Wait()
		if st := ts.Store.db.Stats(); st.MaxIdleClosed > 0 {
			t.Errorf("%d connections closed for want of idle slots (open %d)", st.MaxIdleClosed, st.OpenConnections)
		}
	})
}
