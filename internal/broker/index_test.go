package broker

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// allowed reports whether the default workspace of ix allowlists host.
func allowed(t *testing.T, ix *vault.Index, host string) bool {
	t.Helper()
	ws, err := ix.Workspace(vault.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(ws.Allowlist, func(e policy.AllowEntry) bool { return e.Host == host })
}

// allowHost allowlists host through st.
func allowHost(t *testing.T, st *vault.Store, host string) {
	t.Helper()
	err := st.Update(context.Background(), func(ix *vault.Index) error {
		ws := ix.Workspaces[vault.DefaultName]
		ws.Allowlist = append(ws.Allowlist, policy.AllowEntry{Host: host, Port: 443})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIndexChangeInProcessSeenAtOnce: a change written through the broker's
// own Store is used by the very next request, within the stat interval.
func TestIndexChangeInProcessSeenAtOnce(t *testing.T) {
	w := newWorld(t, map[string]string{"KEY": valA})
	b := New(Config{Store: w.st})
	if _, err := b.Index(); err != nil {
		t.Fatal(err)
	}
	allowHost(t, w.st, "inprocess.example")
	ix, err := b.Index()
	if err != nil {
		t.Fatal(err)
	}
	if !allowed(t, ix, "inprocess.example") {
		t.Fatal("a change made through the broker's Store was not seen by the next request")
	}
}

// TestIndexChangeByAnotherProcessSeen: a policy change written by another
// process (this test binary, run again as a writer) reaches the broker's
// cached index; it is polled for, since it may take up to IndexRecheck.
func TestIndexChangeByAnotherProcessSeen(t *testing.T) {
	if root := os.Getenv("BROKER_TEST_INDEX_WRITER"); root != "" {
		st, err := vault.Open(testDirs(root), vault.Options{Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		allowHost(t, st, "otherprocess.example")
		return
	}
	w := newWorld(t, map[string]string{"KEY": valA})
	b := New(Config{Store: w.st})
	ix, err := b.Index()
	if err != nil {
		t.Fatal(err)
	}
	if allowed(t, ix, "otherprocess.example") {
		t.Fatal("allowlisted before the writer ran")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIndexChangeByAnotherProcessSeen$")
	cmd.Env = append(os.Environ(), "BROKER_TEST_INDEX_WRITER="+w.dirs.Config)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writer process: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ix, err := b.Index()
		if err != nil {
			t.Fatal(err)
		}
		if allowed(t, ix, "otherprocess.example") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker never saw the other process's change")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testDirs are the dirs newWorld makes under root.
func testDirs(root string) home.Dirs {
	return home.Dirs{Config: root, Data: filepath.Join(root, "data"), State: filepath.Join(root, "state"), Explicit: true}
}

// TestRequestsLeaveSharedIndexAlone: the broker reads the Store's shared
// index (vault.Store.SharedIndex), which the one-shot front ends read for
// their scope too, so every step of a request — allowed, redacted, denied,
// a missing secret, a refused release — must leave it as index.json says.
func TestRequestsLeaveSharedIndexAlone(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA, "B": valB})
	up := echoServer(t)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	for _, ins := range [][]Injection{{bearer("A")}, {bearer("B")}, {bearer("MISSING")}, {bearer("A"), bearer("B")}} {
		w.do(b, "GET", up.URL+"/echo", nil, nil, ins...)
	}
	_, err := Release(context.Background(), w.st, ReleaseRequest{FrontEnd: "env", Mode: policy.ReleaseEnv,
		Refs: []Ref{{Selection: w.sel, Name: "A"}}, Audit: w.log})
	if err == nil {
		t.Fatal("A was released to env without the release flag")
	}
	shared, err := w.st.SharedIndex()
	if err != nil {
		t.Fatal(err)
	}
	if used, err := b.Index(); err != nil || used != shared {
		t.Fatalf("the broker's index (%p, %v) is not the Store's shared one (%p)", used, err, shared)
	}
	fresh, err := w.st.Index()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shared, fresh) {
		t.Fatal("a request modified the shared index")
	}
}

// TestBoundSecretsFollowIndex: a long-running broker keeps, per origin,
// which secrets are bound there (every one of their values is redacted in
// that origin's responses). A secret bound to the origin while it runs is
// redacted from the next response on; another origin keeps its own set.
func TestBoundSecretsFollowIndex(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA, "B": valB})
	up, other := echoServer(t), echoServer(t)
	w.bind("A", up.URL, nil)
	w.bind("A", other.URL, nil)
	b := w.broker(0)
	echoB := http.Header{"X-Note": {valB}}
	for range 2 { // the second from what the broker kept
		if _, body, err := w.do(b, "GET", up.URL+"/echo", echoB, nil, bearer("A")); err != nil || !strings.Contains(body, valB) {
			t.Fatalf("B is bound nowhere, yet its value was taken out of the response: %q, %v", body, err)
		}
	}
	w.bind("B", up.URL, nil)
	_, body, err := w.do(b, "GET", up.URL+"/echo", echoB, nil, bearer("A"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, valB) || strings.Contains(body, valA) {
		t.Fatalf("B, now bound to this origin, reached the response: %q", body)
	}
	if _, body, err := w.do(b, "GET", other.URL+"/echo", echoB, nil, bearer("A")); err != nil || !strings.Contains(body, valB) {
		t.Fatalf("B is not bound to the other origin, yet its value was taken out there: %q, %v", body, err)
	}
	// What was kept for the replaced index is let go.
	ix, err := b.Index()
	if err != nil {
		t.Fatal(err)
	}
	proj, err := ix.Project(w.sel)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	for k := range b.bound {
		if k.proj != proj {
			t.Fatalf("bound secrets kept for %s of an index no longer current", k.host)
		}
	}
	b.mu.Unlock()
	// A request that read the index just before it was replaced finds the
	// secrets bound in that index, and keeps nothing for it.
	w.bind("A", "http://late.example:8080", nil)
	if _, err := b.Index(); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(up.URL)
	port, _ := strconv.Atoi(u.Port())
	if got := b.boundSecrets(ix, proj, target{url: u, host: u.Hostname(), port: port}, nil); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("secrets bound to the origin in the replaced index: %v, want [A B]", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.bound {
		if k.proj == proj {
			t.Fatalf("bound secrets kept for %s of the replaced index", k.host)
		}
	}
}
