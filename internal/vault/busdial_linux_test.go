package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSessionBusSocket(t *testing.T) {
	tests := []struct {
		addr, runtime string
		want          string
		ok            bool
	}{
		{"unix:path=/run/user/1000/bus", "", "/run/user/1000/bus", true},
		{"unix:path=/tmp/dbus-MKi4ixQoGk,guid=29a107254f6a229e3fac4bb36b1113dc", "", "/tmp/dbus-MKi4ixQoGk", true},
		{"unix:abstract=/tmp/dbus-Xy1,guid=00", "", "@/tmp/dbus-Xy1", true},
		{"unix:path=/tmp/with%20space%2cbus", "", "/tmp/with space,bus", true},
		{"tcp:host=127.0.0.1,port=4000;unix:path=/run/bus", "", "/run/bus", true},
		{"tcp:host=127.0.0.1,port=4000", "", "", false},
		{"unix:runtime=yes", "", "", false},
		{"unix:tmpdir=/tmp", "", "", false},
		{"unix:path=/a%zz", "", "", false},
		{"", "/run/user/7", "/run/user/7/bus", true},
		{"", "", "", false},
	}
	for _, tc := range tests {
		env := map[string]string{"DBUS_SESSION_BUS_ADDRESS": tc.addr, "XDG_RUNTIME_DIR": tc.runtime}
		got, ok := sessionBusSocket(func(k string) string { return env[k] })
		if got != tc.want || ok != tc.ok {
			t.Errorf("sessionBusSocket(%q, runtime %q) = %q, %v; want %q, %v", tc.addr, tc.runtime, got, ok, tc.want, tc.ok)
		}
	}
}

// serveUnix listens on a new unix socket, hands every connection to serve
// in a goroutine of its own, and returns the socket's path.
func serveUnix(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return sock
}

// recordingBus is a unix socket in front of the real session bus that
// holds back everything the bus would say until the client has sent its
// Hello (or 10 s passed), and records what the client sent until then: a
// client that waits for the bus's answers sends no Hello in that time.
type recordingBus struct {
	path string

	mu     sync.Mutex
	before []byte
}

func newRecordingBus(t *testing.T) *recordingBus {
	t.Helper()
	real, ok := sessionBusSocket(os.Getenv)
	if !ok {
		t.Skip("the session bus is not on a unix socket")
	}
	rb := &recordingBus{}
	rb.path = serveUnix(t, func(c net.Conn) {
		var before []byte
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !bytes.Contains(before, []byte("Hello")) {
			n, err := c.Read(buf)
			before = append(before, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.SetReadDeadline(time.Time{})
		rb.mu.Lock()
		rb.before = before
		rb.mu.Unlock()
		up, err := net.Dial("unix", real)
		if err != nil {
			c.Close()
			return
		}
		up.Write(before)
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
		c.Close()
	})
	return rb
}

// TestDialSessionBusPipelined: against the real bus, the client sends its
// whole handshake and Hello before the bus says anything (one round trip,
// where godbus's own connect takes five), and the connection it returns
// works: it has its unique name and reaches the Secret Service.
func TestDialSessionBusPipelined(t *testing.T) {
	testKeychain(t) // skips without a session bus
	rb := newRecordingBus(t)
	conn, err := dialSessionBus(func(k string) string {
		if k == "DBUS_SESSION_BUS_ADDRESS" {
			return "unix:path=" + rb.path
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if names := conn.Names(); len(names) == 0 || !strings.HasPrefix(names[0], ":") {
		t.Errorf("connection names %q: want the unique name Hello gave", names)
	}
	if err := conn.Object(ssName, ssPath).CallWithContext(context.Background(), "org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		t.Fatalf("ping the Secret Service: %v", err)
	}
	rb.mu.Lock()
	before := rb.before
	rb.mu.Unlock()
	for _, want := range [][]byte{[]byte("AUTH EXTERNAL "), []byte("BEGIN\r\n"), []byte("Hello")} {
		if !bytes.Contains(before, want) {
			t.Errorf("the client waited for the bus before sending %q; it sent %q first", want, before)
		}
	}
	if bytes.Contains(before, []byte("NEGOTIATE_UNIX_FD")) || bytes.Count(before, []byte("AUTH")) != 1 {
		t.Errorf("the client sent more of godbus's handshake than one AUTH: %q", before)
	}
}

// fakeBus answers the first line of a handshake with answer and hangs up,
// as a bus that wants another mechanism (REJECTED) or fails (nothing).
func fakeBus(t *testing.T, answer string) string {
	t.Helper()
	return "unix:path=" + serveUnix(t, func(c net.Conn) {
		buf := make([]byte, 1024)
		c.Read(buf)
		io.WriteString(c, answer)
		c.Close()
	})
}

// TestDialSessionBusFallsBackOnlyWhenItMust: a bus that rejects EXTERNAL
// (whether or not the client's Hello could be written before it hung up),
// or an address that is not a unix socket, sends the caller to godbus's own
// connect (errBusUnpipelined); a bus that hangs up is a failure of its own,
// which connecting again would only wait for twice.
func TestDialSessionBusFallsBackOnlyWhenItMust(t *testing.T) {
	env := func(addr string) func(string) string {
		return func(k string) string {
			if k == "DBUS_SESSION_BUS_ADDRESS" {
				return addr
			}
			return ""
		}
	}
	// The bus hangs up after its answer, so the client's Hello may fail on
	// its write (EPIPE) before godbus's reader has read that answer: one
	// dial in six to one in fifty here. Five hundred make that order all but
	// certain.
	rejecting := env(fakeBus(t, "REJECTED DBUS_COOKIE_SHA1\r\n"))
	for range 500 {
		if _, err := dialSessionBus(rejecting); !errors.Is(err, errBusUnpipelined) {
			t.Fatalf("a bus that rejects EXTERNAL: %v, want errBusUnpipelined", err)
		}
	}
	if _, err := dialSessionBus(env("tcp:host=127.0.0.1,port=1")); !errors.Is(err, errBusUnpipelined) {
		t.Errorf("a tcp address: %v, want errBusUnpipelined", err)
	}
	if _, err := dialSessionBus(env(fakeBus(t, ""))); err == nil || errors.Is(err, errBusUnpipelined) {
		t.Errorf("a bus that hangs up: %v, want an error that is not errBusUnpipelined", err)
	}
}

// TestWarmAskedAgainDoesNotWait: while the warm is still connecting (the
// bus has not answered), asking for a warm again returns at once rather
// than waiting on the connection's lock, so a command that opens its store
// twice keeps reading its index meanwhile.
func TestWarmAskedAgainDoesNotWait(t *testing.T) {
	accepted, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sock := serveUnix(t, func(c net.Conn) {
		once.Do(func() { close(accepted) })
		<-release // a bus slow to answer
		c.Close()
	})
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
	k := NewKeychain("warm-again", os.Getenv)
	k.startWarm(context.Background())
	<-accepted // the warm is connecting, holding the connection's lock
	again := make(chan struct{})
	go func() {
		k.startWarm(context.Background())
		close(again)
	}()
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("a second startWarm waited for the first warm's connection")
	}
	close(release)
	if err := k.bus.waitWarm(context.Background()); err == nil {
		t.Error("the warm of a bus that hung up reported no error")
	}
}

// TestPipelinedBusRefusesAnUnknownHandshake: a godbus that spoke its
// handshake differently gets an error from the shim, never a made-up
// answer, and dialSessionBus sends the caller to godbus's own connect.
func TestPipelinedBusRefusesAnUnknownHandshake(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	pb := &pipelinedBus{c: client}
	if _, err := pb.Write([]byte("\x00AUTH EXTERNAL 30\r\n")); !errors.Is(err, errBusHandshake) {
		t.Errorf("AUTH with an initial response: %v, want errBusHandshake", err)
	}
	if _, err := pb.Read(make([]byte, 64)); !errors.Is(err, errBusHandshake) {
		t.Errorf("a read with no answer due: %v, want errBusHandshake", err)
	}
	pb = &pipelinedBus{c: client}
	if _, err := pb.Write([]byte("AUTH\r\nBEGIN\r\nxx")); !errors.Is(err, errBusHandshake) {
		t.Errorf("bytes after BEGIN in one write: %v, want errBusHandshake", err)
	}
}

// TestDialSessionBusHungBus: a bus that accepts the connection and never
// answers fails the dial within KeychainTimeout instead of hanging it.
func TestDialSessionBusHungBus(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	sock := serveUnix(t, func(c net.Conn) {
		<-release
		c.Close()
	})
	_, err := dialSessionBus(func(k string) string {
		if k == "DBUS_SESSION_BUS_ADDRESS" {
			return "unix:path=" + sock
		}
		return ""
	})
	if err == nil || errors.Is(err, errBusUnpipelined) {
		t.Fatalf("dial of a bus that never answers: %v, want a failure of its own", err)
	}
}
