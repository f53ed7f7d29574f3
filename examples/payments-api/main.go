// Command payments-api is the local example API of the agentsecrets demo:
// a tiny payments service (balance, charges, an event stream) that checks a
// Bearer key, plus /echo, which sends back everything it received — the
// kind of upstream that leaks a credential back to whoever called it. The
// demo shows the broker redacting that echo.
//
//	payments-api -addr 127.0.0.1:0 -key-file PATH
//
// It prints its base URL on stdout once it listens. The expected key is
// read from a file so that it never appears in argv.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	keyFile := flag.String("key-file", "", "file holding the API key clients must send as Bearer")
	flag.Parse()
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatalf("read -key-file: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	srv := &http.Server{Handler: newAPI(strings.TrimSpace(string(key))), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

func newAPI(key string) http.Handler {
	mux := http.NewServeMux()
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+key {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"type": "invalid_request_error", "message": "Invalid API key provided"}})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /v1/balance", authed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"object":    "balance",
			"available": []map[string]any{{"amount": 48213, "currency": "usd"}},
			"pending":   []map[string]any{{"amount": 1250, "currency": "usd"}},
		})
	}))
	mux.HandleFunc("POST /v1/charges", authed(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		writeJSON(w, http.StatusOK, map[string]any{"object": "charge", "id": "ch_demo_1", "amount": r.Form.Get("amount"),
			"currency": r.Form.Get("currency"), "status": "succeeded"})
	}))
	mux.HandleFunc("GET /v1/events", authed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f, _ := w.(http.Flusher)
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "event: charge.succeeded\ndata: {\"id\":\"ch_demo_%d\"}\n\n", i)
			if f != nil {
				f.Flush()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}))
	// /echo is deliberately careless: it returns the request's headers,
	// query and body, so any credential sent to it comes straight back.
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		writeJSON(w, http.StatusOK, map[string]any{"method": r.Method, "headers": r.Header, "query": r.URL.Query(), "body": string(body)})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
