// Command proxyfloor is the floor BenchmarkProxyXProc measures our proxy
// against: a bare httputil.ReverseProxy that sends every request to one
// upstream with a fixed Authorization header. No token, no policy, no
// redaction, no audit: what any Go reverse proxy on this machine pays.
//
// It is its own executable, built the way agentsecrets is (CGO_ENABLED=0),
// as any proxy a user runs is: not the executable of the load client and
// the upstream. Run as the test binary that also plays those two, it
// answered 26 to 94 µs faster per request at 1 client on a 2-core VM than
// the same code built on its own (both in the same rounds): as much as the
// difference being measured. A copy of that test binary was as fast, and
// the same code built without cgo was not; sharing the client's and the
// upstream's code layout is the likeliest reason.
//
// Usage: PROXYFLOOR_TARGET=http://host:port PROXYFLOOR_AUTH='Bearer …'
// proxyfloor. It prints its address on stdout and serves until killed;
// with AGENTSECRETS_TRACE set it writes a runtime execution trace there,
// as the proxy does, and ends the trace and itself on SIGINT.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/trace"
	"time"
)

func main() {
	target, err := url.Parse(os.Getenv("PROXYFLOOR_TARGET"))
	if err != nil || target.Host == "" {
		fmt.Fprintf(os.Stderr, "proxyfloor: bad PROXYFLOOR_TARGET: %v\n", err)
		os.Exit(2)
	}
	auth := os.Getenv("PROXYFLOOR_AUTH")
	// Idle connections for every load client: without them a bare proxy
	// opens a connection per request at 16 clients and the floor is no
	// floor.
	h := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Set("Authorization", auth)
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if path := os.Getenv("AGENTSECRETS_TRACE"); path != "" {
		if err := traceUntilInterrupt(path); err != nil {
			fmt.Fprintln(os.Stderr, "trace:", err)
			os.Exit(1)
		}
	}
	fmt.Println(ln.Addr().String())
	fmt.Fprintln(os.Stderr, http.Serve(ln, h))
	os.Exit(1)
}

// traceUntilInterrupt writes an execution trace to path until SIGINT, then
// exits.
func traceUntilInterrupt(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	go func() {
		<-stop
		trace.Stop()
		f.Close()
		os.Exit(0)
	}()
	return nil
}
