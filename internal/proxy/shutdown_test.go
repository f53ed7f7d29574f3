package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestInterruptedStreamAudited: an event stream that ends before its end
// is recorded as interrupted (decision error, code unavailable), not as
// the upstream's failure, whichever side ended it:
//   - "server stops": still running when a stopping proxy's grace ends, it
//     is cut off, and its record is in the log once the runtime has
//     closed, like every other request's (before, the handler outlived the
//     shutdown and the process ended under it, with no record);
//   - "client hangs up": the client closes its connection mid-stream, and
//     the record is written while the proxy runs on.
//
// The stream echoes the injected value (a random canary), so the record is
// also the one a redacted response writes off the reply's path
// (Runtime.Async, inline once Close has begun), and no file the proxy
// wrote, nor the client's bytes, may hold any form of it.
func TestInterruptedStreamAudited(t *testing.T) {
	for _, end := range []string{"server stops", "client hangs up"} {
		t.Run(end, func(t *testing.T) { testInterruptedStream(t, end) })
	}
}

func testInterruptedStream(t *testing.T, end string) {
	raw, err := crypto.Random(24)
	if err != nil {
		t.Fatal(err)
	}
	value := "sk_shutdown_" + base64.RawURLEncoding.EncodeToString(raw)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			io.WriteString(w, "data: "+r.Header.Get("Authorization")+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer up.Close()
	st, sel := newTestVault(t, up.URL, value)
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
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: Bearer "+broker.Marker+"\n" {
		t.Fatalf("the stream through the proxy: %q, %v (status %d)", line, err, resp.StatusCode)
	}

	if end == "client hangs up" {
		// Closing a body not read to its end closes the connection.
		resp.Body.Close()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if err := rt.Flush(context.Background()); err != nil {
				t.Fatalf("flush the audit log: %v", err)
			}
			recs, err := audit.Open(st.Dirs.State, audit.Options{}).Read(audit.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no audit record while the proxy runs on, after the client hung up")
			}
		}
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
	if r.Path != "/v1/events" || strings.Join(r.Secrets, ",") != "KEY" || r.Status != 200 || r.Decision != audit.DecisionError ||
		r.Reason != broker.ReasonInterrupted || r.Code != "unavailable" {
		t.Errorf("the interrupted stream's record: %+v", r)
	}

	// The broker's own redactor is the detector: its forms (raw, base64,
	// hex, URL- and JSON-escaped and more) are pinned by
	// TestRedactFormsCanary.
	scan := broker.NewRedactor([][]byte{[]byte(value)})
	seen := map[string][]byte{"the client's stream": []byte(line)}
	files, _ := filepath.Glob(filepath.Join(st.Dirs.State, "*"))
	for _, f := range files {
		if f == st.Dirs.VaultFile() {
			continue // the encrypted vault
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			seen[filepath.Base(f)] = data
		}
	}
	if _, ok := seen["audit.log"]; !ok {
		t.Fatalf("no audit.log among %v", files)
	}
	for where, data := range seen {
		if _, hit := scan.Bytes(data); hit || bytes.Contains(data, []byte(value)) {
			t.Errorf("%s holds a form of the value", where)
		}
	}
}

// TestStreamClientGone: a write to the client that fails (the client's
// connection broke before the server noticed it was gone) ends the stream
// with broker.ErrInterrupted, so the request is recorded as interrupted,
// not as the upstream's failure; the writer's own error text (which names
// addresses) goes nowhere. Both framings: flushed per chunk or not.
func TestStreamClientGone(t *testing.T) {
	for _, flush := range []bool{false, true} {
		w := &brokenClient{ResponseRecorder: httptest.NewRecorder()}
		err := stream(w, strings.NewReader("a body the client will not get"), flush)
		if !errors.Is(err, broker.ErrInterrupted) {
			t.Errorf("flush %v: stream = %v, want broker.ErrInterrupted", flush, err)
		}
	}
}

// brokenClient is a ResponseWriter whose connection is gone.
type brokenClient struct{ *httptest.ResponseRecorder }

func (*brokenClient) Write([]byte) (int, error) {
	return 0, errors.New("write tcp 127.0.0.1:8080->127.0.0.1:51234: write: broken pipe")
}
