//go:build linux

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCallVerbose: `call -v` shows a person, on the terminal, the request
// the broker sent (method, URL, header names), with the injected header
// and query values masked; nothing on the terminal, piped stderr or stdout
// holds a canary value in any encoding.
func TestCallVerbose(t *testing.T) {
	bearer, query := newCanary(t, "bearer", "+/="), newCanary(t, "query", "&?")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	v := brokerVault(t, map[string]string{"BEARER_KEY": string(bearer), "QUERY_KEY": string(query)}, up)
	args := []string{"call", "--url", up.URL + "/v1/x?a=1", "--bearer", "BEARER_KEY", "--query", "api_key=QUERY_KEY", "-H", "Accept: application/json", "-v"}
	canaries := [][]byte{bearer, query}

	// On a terminal: stdout and stderr are the pty.
	p, slave := ptyOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env, cmd.Dir = v.Env(), v.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	must(t, cmd.Start())
	slave.Close()
	err := cmd.Wait()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close after the program exited")
	}
	tty := p.output()
	if err != nil {
		t.Fatalf("call -v on a terminal: %v\n%s", err, tty)
	}
	for _, want := range []string{"> GET " + up.URL + "/v1/x?a=1&api_key=****", "> Authorization: Bearer ****", "> Accept: application/json"} {
		if !strings.Contains(tty, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, tty)
		}
	}
	assertNoLeak(t, "call -v terminal", []byte(tty), canaries)

	// Piped: the view still goes to stderr only; stdout is one JSON value.
	r := v.Run(args...).OK(t)
	if !bytes.Contains(r.Stderr, []byte("> Authorization: Bearer ****")) || bytes.Contains(r.Stdout, []byte("> GET")) {
		t.Errorf("piped: stderr %q stdout %q", r.Stderr, r.Stdout)
	}
	r.JSON(t)
	assertNoLeak(t, "call -v stderr", r.Stderr, canaries)
	assertNoLeak(t, "call -v stdout", r.Stdout, canaries)

	// The upstream got the values: the view masked what was really sent.
	reqs := up.requests()
	last := reqs[len(reqs)-1]
	if last.Header.Get("Authorization") != "Bearer "+string(bearer) || !strings.Contains(last.Query, "api_key=") {
		t.Errorf("the upstream did not get the injected values")
	}
}
