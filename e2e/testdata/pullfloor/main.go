// Command pullfloor is the floor BenchmarkSyncServerLoad measures beside
// the real server: a bare net/http handler that checks the Authorization
// header against a fixed string and answers every request with the bytes a
// real full pull returned, from memory. No database, no routing, no JSON:
// what any Go HTTP server on this machine pays to serve that response.
//
// Usage: pullfloor RESPONSE_FILE (the bearer header in PULLFLOOR_AUTH);
// it prints its address on stdout and serves until killed.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pullfloor RESPONSE_FILE")
		os.Exit(2)
	}
	body, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	auth := os.Getenv("PULLFLOOR_AUTH")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the real server reads the request body too
		if r.Header.Get("Authorization") != auth {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, h))
	os.Exit(1)
}
