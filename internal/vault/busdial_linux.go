package vault

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dbus "github.com/godbus/dbus/v5"
)

// The session bus handshake, pipelined.
//
// godbus's Connect walks the authentication one line at a time: AUTH (to
// list the mechanisms), AUTH EXTERNAL, DATA, NEGOTIATE_UNIX_FD and BEGIN,
// then Hello: five round trips to the bus daemon before the first call.
// A one-shot `call` on the keychain waits for them (its values are read on
// this connection), and on a busy machine each costs a few hundred
// microseconds. The D-Bus specification lets a client send its side of the
// handshake without waiting for the server's (sd-bus does): AUTH EXTERNAL
// with the uid, BEGIN, and the first message at once. dialSessionBus does
// that, so the handshake and Hello cost one round trip.
//
// godbus still runs its own handshake on the connection it is given, so
// pipelinedBus answers that locally, from what it has already sent, and
// checks the daemon's real answer (OK) when the first reply is read. Any
// line it does not expect fails the dial, and keychainConn falls back to
// godbus's own connect.

// errBusHandshake: godbus's handshake or the daemon's answer was not the
// one pipelinedBus expects.
var errBusHandshake = errors.New("session bus handshake")

// errBusUnpipelined: the pipelined handshake cannot be used (not a unix
// socket, EXTERNAL rejected, or a godbus whose handshake pipelinedBus does
// not know) while godbus's own connect may still work. Every other failure
// is the bus's, and connecting again would only wait for it twice.
var errBusUnpipelined = errors.New("session bus does not take a pipelined EXTERNAL handshake")

// sessionBusSocket returns the unix socket of the session bus: the first
// unix entry of DBUS_SESSION_BUS_ADDRESS (path= or abstract=), else
// $XDG_RUNTIME_DIR/bus as godbus finds it. ok is false for any other
// transport, which godbus's own connect handles.
func sessionBusSocket(getenv func(string) string) (string, bool) {
	addr := getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
			return filepath.Join(rt, "bus"), true
		}
		return "", false
	}
	for _, entry := range strings.Split(addr, ";") {
		rest, isUnix := strings.CutPrefix(entry, "unix:")
		if !isUnix {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v, err := url.PathUnescape(v) // D-Bus addresses escape as %XX
			if err != nil || v == "" {
				continue
			}
			switch k {
			case "path":
				return v, true
			case "abstract":
				return "@" + v, true
			}
		}
		// unix:dir= and unix:tmpdir= are for servers; runtime= needs
		// $XDG_RUNTIME_DIR semantics godbus has. Leave them to it.
		return "", false
	}
	return "", false
}

// dialSessionBus connects to the session bus with the handshake pipelined.
func dialSessionBus(getenv func(string) string) (*dbus.Conn, error) {
	path, ok := sessionBusSocket(getenv)
	if !ok {
		return nil, fmt.Errorf("%w: not a unix socket address", errBusUnpipelined)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Geteuid())))
	if _, err := c.Write([]byte("\x00AUTH EXTERNAL " + uid + "\r\nBEGIN\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	pb := &pipelinedBus{c: c, r: bufio.NewReader(c), answered: make(chan struct{})}
	conn, err := dbus.NewConn(pb)
	if err != nil {
		c.Close()
		return nil, err
	}
	// godbus talks only to pipelinedBus here: a failure means its
	// handshake is not the one pipelinedBus answers (another godbus
	// version), and its own connect will do.
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Geteuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %v", errBusUnpipelined, err)
	}
	// Sent before the daemon's OK arrived: its reply comes after it, and
	// pipelinedBus checks the OK on the way. Bounded as every call is: a
	// bus that accepts and never answers is reported, not waited on.
	c.SetDeadline(time.Now().Add(KeychainTimeout))
	err = conn.Hello()
	if err != nil {
		// Hello can fail on its write (the daemon rejected the handshake
		// and hung up) before godbus's reader got to the daemon's answer:
		// what it answered decides, and the deadline bounds the wait.
		select {
		case <-pb.answered:
		case <-time.After(KeychainTimeout):
		}
		conn.Close()
		if pb.rejected.Load() {
			return nil, fmt.Errorf("%w: %v", errBusUnpipelined, err)
		}
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return conn, nil
}

// pipelinedBus is the connection godbus is given. Until godbus sends
// BEGIN it plays the server's part of the handshake that dialSessionBus
// already completed on the socket; after that, it passes bytes through,
// once it has read the daemon's OK from the front of the stream.
//
// The handshake runs in the dialling goroutine alone (godbus's Auth); after
// BEGIN, godbus's reader goroutine is the only reader, and writers share
// the socket as they would without it. So only begun is shared state: no
// lock, and a Write never waits for the daemon's OK (that wait would undo
// the pipelining).
type pipelinedBus struct {
	c net.Conn
	r *bufio.Reader

	// begun: godbus sent BEGIN; writes go to the socket.
	begun atomic.Bool
	// line collects a handshake line godbus is writing.
	line []byte
	// answers are the handshake lines godbus is to read next.
	answers bytes.Buffer
	// okRead: the reader has consumed the daemon's OK from r.
	okRead bool
	// rejected: the daemon answered the handshake with something other
	// than OK (REJECTED: it wants another mechanism).
	rejected atomic.Bool
	// answered is closed once the reader has read the daemon's answer to
	// the handshake (rejected is set by then) or failed to.
	answered     chan struct{}
	answeredOnce sync.Once
}

// The answers to godbus's handshake (see Conn.Auth): the mechanism list,
// then OK for EXTERNAL. The GUID in that OK is a placeholder: the daemon's
// own arrives later, and godbus uses the GUID for nothing a client needs.
const (
	busRejected = "REJECTED EXTERNAL\r\n"
	busOK       = "OK 00000000000000000000000000000000\r\n"
)

func (b *pipelinedBus) Write(p []byte) (int, error) {
	if b.begun.Load() {
		return b.c.Write(p)
	}
	for i, c := range p {
		if c == 0 && len(b.line) == 0 {
			continue // the credentials byte: sent already
		}
		b.line = append(b.line, c)
		if !bytes.HasSuffix(b.line, []byte("\r\n")) {
			continue
		}
		line := string(b.line[:len(b.line)-2])
		b.line = b.line[:0]
		switch line {
		case "AUTH":
			b.answers.WriteString(busRejected)
		case "AUTH EXTERNAL":
			b.answers.WriteString(busOK)
		case "BEGIN":
			if i != len(p)-1 {
				return 0, fmt.Errorf("%w: bytes after BEGIN", errBusHandshake)
			}
			b.begun.Store(true)
		default:
			return 0, fmt.Errorf("%w: unexpected %q from the client", errBusHandshake, line)
		}
	}
	return len(p), nil
}

func (b *pipelinedBus) Read(p []byte) (int, error) {
	if !b.begun.Load() {
		if b.answers.Len() == 0 {
			return 0, fmt.Errorf("%w: the client waits for a line the server would not send", errBusHandshake)
		}
		return b.answers.Read(p)
	}
	if !b.okRead {
		line, err := b.r.ReadString('\n')
		defer b.answeredOnce.Do(func() { close(b.answered) })
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errBusHandshake, err)
		}
		if !strings.HasPrefix(line, "OK ") {
			b.rejected.Store(true)
			return 0, fmt.Errorf("%w: the bus answered %q", errBusHandshake, strings.TrimSpace(line))
		}
		b.okRead = true
	}
	return b.r.Read(p)
}

func (b *pipelinedBus) Close() error { return b.c.Close() }
