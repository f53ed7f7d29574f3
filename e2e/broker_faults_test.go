//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	enc "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
)

// faultBroker runs the broker as this process's user (no root needed),
// with a client of the same user, a secret KEY=old bound to up.
func faultBroker(t *testing.T, up *upstream, old string) (*brokerDaemon, *client) {
	t.Helper()
	dir := t.TempDir()
	b := runBroker(t, binary, filepath.Join(dir, "state"), filepath.Join(dir, "run", "broker.sock"), "--user", strconv.Itoa(os.Getuid()))
	home := filepath.Join(dir, "client")
	must(t, os.MkdirAll(home, 0o700))
	admin := filepath.Join(home, "admin.pass")
	must(t, os.WriteFile(admin, []byte(adminPassphrase+"\n"), 0o600))
	c := &client{t: t, bin: binary, Socket: b.Socket, Home: home}
	c.Run("init", "--admin-passphrase-file", admin).OK(t)
	c.RunIn([]byte(old), "secrets", "set", "KEY", "--from-stdin").OK(t)
	c.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", admin).OK(t)
	c.Run("secrets", "bind", "KEY", up.hostport(), "--header-name", "X-Api-Key", "--passphrase-file", admin).OK(t)
	return b, c
}

// healthyAfter checks that a killed daemon left nothing half-written: it
// starts again, doctor is healthy, the index parses, no temporary file is
// left in its state directory.
func healthyAfter(t *testing.T, b *brokerDaemon, c *client) {
	t.Helper()
	b.restart()
	if d := c.Run("doctor").OK(t).JSON(t); d["healthy"] != true {
		t.Fatalf("doctor after the kill: %v", d)
	}
	idx, err := os.ReadFile(filepath.Join(b.State, "index.json"))
	must(t, err)
	if !json.Valid(idx) {
		t.Fatalf("index.json does not parse: %s", idx)
	}
	ents, err := os.ReadDir(b.State)
	must(t, err)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind in the state directory: %s", e.Name())
		}
	}
}

// lostBroker asserts the client's report of a daemon that died under it.
func lostBroker(t *testing.T, r *Result) {
	t.Helper()
	e := r.ErrorCode(t, "unavailable", 7)
	if hint, _ := e["hint"].(string); !strings.Contains(hint, "broker status") {
		t.Fatalf("hint does not name the next command: %v", e)
	}
}

// slowCall starts a call of up's /slow through c and returns once the
// upstream has it, with the call's output buffers.
func slowCall(t *testing.T, c *client, up *upstream, arrived <-chan struct{}) (cmd *exec.Cmd, out, errb *bytes.Buffer) {
	t.Helper()
	cmd = c.command(nil, "call", "--url", up.URL+"/slow", "--header", "X-Api-Key=KEY")
	out, errb = startUntil(t, cmd, arrived)
	return cmd, out, errb
}

func TestBrokerKilledMidRequest(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, "{}")
	})
	defer close(release)
	b, c := faultBroker(t, up, "old-value-1234")
	cmd, out, errb := slowCall(t, c, up, arrived)
	b.kill()
	r := rbResult(t, []string{"call"}, cmd.Wait(), out, errb)
	lostBroker(t, r)
	healthyAfter(t, b, c)
	c.Run("call", "--url", up.URL+"/after", "--header", "X-Api-Key=KEY").OK(t)
}

// TestBrokerClientInterruptedMidRequest: Ctrl-C on a client whose call
// waits on the upstream ends the client as SIGINT ends a local command,
// with nothing printed; the daemon cancels the request and keeps serving.
func TestBrokerClientInterruptedMidRequest(t *testing.T) {
	up, arrived, cancelled := holdingUpstream(t)
	_, c := faultBroker(t, up, "old-value-4321")
	cmd, out, errb := slowCall(t, c, up, arrived)
	interrupt(t, cmd, syscall.SIGINT, out, errb)
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not cancel the upstream request")
	}
	c.Run("call", "--url", up.URL+"/after", "--header", "X-Api-Key=KEY").OK(t)
}

func TestBrokerKilledDuringSecretsSet(t *testing.T) {
	const old = "old-value-5678"
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "{}") })
	b, c := faultBroker(t, up, old)
	pr, pw := io.Pipe()
	cmd := c.command(pr, "secrets", "set", "KEY", "--from-stdin")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	must(t, cmd.Start())
	// Half of the new value, slowly: the daemon is reading the stream.
	if _, err := pw.Write([]byte("new-val")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	b.kill()
	pw.Write([]byte("ue-9999"))
	pw.Close()
	lostBroker(t, rbResult(t, []string{"secrets", "set"}, cmd.Wait(), &out, &errb))
	healthyAfter(t, b, c)
	c.Run("call", "--url", up.URL+"/check", "--header", "X-Api-Key=KEY").OK(t)
	reqs := up.requests()
	if got := reqs[len(reqs)-1].Header.Get("X-Api-Key"); got != old {
		t.Fatalf("the call injected %q after the interrupted set, want the old value", got)
	}
}

func TestBrokerSocketPermissionsWrong(t *testing.T) {
	requireRootUsers(t)
	root, bin := openRoot(t)
	agent := newOSUser(t, root, "a")
	run := filepath.Join(root, "run")
	must(t, os.MkdirAll(run, 0o755))
	b := runBroker(t, bin, filepath.Join(root, "state"), filepath.Join(run, "broker.sock"), "--user", agent.Name)
	must(t, os.Chmod(b.Socket, 0o600)) // root's alone: the agent is not let in
	c := &client{t: t, bin: bin, as: &agent, Socket: b.Socket, Home: agent.Home}
	e := c.Run("status").ErrorCode(t, "denied", 4)
	msg, _ := e["message"].(string)
	hint, _ := e["hint"].(string)
	if !strings.Contains(msg, b.Socket) || !strings.Contains(msg, "permission denied") || !strings.Contains(hint, "broker install") {
		t.Fatalf("the error does not name the socket and the fix: %v", e)
	}
}

// TestBrokerMalformedClients: a client that breaks the protocol is
// dropped with a reason in the daemon's log, and the daemon goes on.
func TestBrokerMalformedClients(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "{}") })
	b, c := faultBroker(t, up, "value-0000")
	// garbage is 1 GiB of it, sent until the daemon hangs up.
	garbage := func(conn net.Conn) {
		chunk := bytes.Repeat([]byte("\xffgarbage\x00"), 6554) // 64 KiB
		for sent := 0; sent < 1<<30; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
		t.Error("the daemon read 1 GiB of garbage without hanging up")
	}
	hdr := func(typ byte, n uint32) []byte {
		h := []byte{typ, 0, 0, 0, 0}
		enc.BigEndian.PutUint32(h[1:], n)
		return h
	}
	for _, tt := range []struct {
		name    string
		upgrade bool
		send    func(t *testing.T, conn net.Conn, br *bufio.Reader)
		log     string
	}{
		{"1 GiB of garbage", false, func(t *testing.T, conn net.Conn, br *bufio.Reader) { garbage(conn) }, "no complete request"},
		{"half a request", false, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			io.WriteString(conn, "POST /exec HTTP/1.1\r\nHost: broker\r\nUpgr")
		}, "no complete request"},
		{"oversized headers", false, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			io.WriteString(conn, "POST /exec HTTP/1.1\r\nHost: broker\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n")
		}, "no complete request"},
		{"1 GiB of garbage after the upgrade", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) { garbage(conn) }, "dropped: read the request"},
		{"closed before the request", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {}, "dropped: read the request: EOF"},
		{"half a frame", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			conn.Write(append(hdr(brokerd.FrameRequest, 100), `{"args":`...))
		}, "unexpected EOF"},
		{"oversized frame header", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			conn.Write(hdr(brokerd.FrameRequest, 0xffffffff))
		}, "frame larger than the protocol allows"},
		{"first frame of another type", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			brokerd.WriteFrame(conn, brokerd.FrameStdin, []byte("x"))
		}, "not a request"},
		{"a frame of an unexpected type mid-command", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			sendRequest(t, conn, "secrets", "set", "OTHER", "--from-stdin")
			if typ, p, _ := nextFrame(t, br); typ != brokerd.FrameRead {
				t.Fatalf("frame %q %s, want a read request", typ, p)
			}
			brokerd.WriteFrame(conn, 'Z', nil)
		}, "unexpected frame type 'Z'"},
		{"an oversized frame mid-command", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			sendRequest(t, conn, "secrets", "set", "OTHER", "--from-stdin")
			if typ, p, _ := nextFrame(t, br); typ != brokerd.FrameRead {
				t.Fatalf("frame %q %s, want a read request", typ, p)
			}
			conn.Write(hdr(brokerd.FrameStdin, brokerd.MaxFrame+1))
		}, "frame larger than the protocol allows"},
		{"an answer nobody asked for", true, func(t *testing.T, conn net.Conn, br *bufio.Reader) {
			sendRequest(t, conn, "secrets", "set", "OTHER", "--from-stdin")
			brokerd.WriteFrame(conn, brokerd.FrameAnswer, []byte(`{"data":"c3Rvbw=="}`))
		}, "an answer to no question"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mark := len(b.Log.Bytes())
			conn, err := net.Dial("unix", b.Socket)
			must(t, err)
			defer conn.Close()
			var br *bufio.Reader
			if tt.upgrade {
				br = upgradeExec(t, conn)
			}
			tt.send(t, conn, br)
			if uc, ok := conn.(*net.UnixConn); ok {
				uc.CloseWrite()
			}
			b.waitLog(t, mark, tt.log)
			c.Run("secrets", "list").OK(t)
		})
	}
	if list := c.Run("secrets", "list").OK(t); strings.Contains(string(list.Stdout), "OTHER") {
		t.Fatal("a dropped client's command took effect")
	}
	if err := exec.Command("kill", "-0", strconv.Itoa(b.cmd.Process.Pid)).Run(); err != nil {
		t.Fatal("the daemon is gone")
	}
}
