package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestShutdownAuditsCutOffStream: an event stream still running when a
// stopping proxy's grace ends is cut off, and its audit record is in the
// log once the runtime has closed, like every other request's. Before,
// the stream's handler outlived the shutdown and the process ended under
// it, so the request that sent the value had no record.
func TestShutdownAuditsCutOffStream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			io.WriteString(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer up.Close()
	st, sel := newTestVault(t, up.URL, "sk_shutdown_Qm4Rt8Wz1Xc5Vb9Nd2Lk7Hp3")
	rt := serve.New(serve.Options{Open: func() (*vault.Store, error) { return st, nil }})
	srv := &Server{Runtime: rt, Token: "shutdown-token", Selection: sel, Version: "test"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- serve.Serve(ctx, ln, srv.Handler(), serve.ServerOptions{ShutdownGrace: 100 * time.Millisecond})
	}()

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/proxy", nil)
	req.Header.Set(HeaderToken, "shutdown-token")
	req.Header.Set("X-AS-Target-URL", up.URL+"/v1/events")
	req.Header.Set("X-AS-Inject-Bearer", "KEY")
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "data: tick\n" {
		t.Fatalf("the stream through the proxy: %q, %v (status %d)", line, err, resp.StatusCode)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("close the runtime: %v", err)
	}
	recs, err := audit.Open(st.Dirs.State, audit.Options{}).Read(audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d audit records after the shutdown, want the stream's: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Path != "/v1/events" || strings.Join(r.Secrets, ",") != "KEY" || r.Status != 200 || r.Decision != audit.DecisionError {
		t.Errorf("the cut-off stream's record: %+v", r)
	}
}
