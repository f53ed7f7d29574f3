package brokerd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Local is the client's side of a command: its streams, its terminal and
// the operations only it can do (Call).
type Local struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Prompt func(text string) ([]byte, error)
	Show   func(text string) error
	// Call runs an operation on the user's side and returns its result,
	// which is sent back as JSON.
	Call func(op string, args json.RawMessage) (any, error)
}

// Address resolution.
const (
	// EnvBroker names the broker: unix:PATH, or "none" to run every
	// command in this process even where a broker is installed.
	EnvBroker = "AGENTSECRETS_BROKER"
	// EnvToken holds a per-agent broker token (never its file's path).
	EnvTokenFile = "AGENTSECRETS_BROKER_TOKEN_FILE"
)

// DefaultSocket is where an installed broker listens on this OS
// (brokersvc's standard layout, docs/broker.md).
func DefaultSocket() string { return brokersvc.DefaultPlan(runtime.GOOS).Socket() }

// Resolve returns the socket path this process should use, or "" for
// none: AGENTSECRETS_BROKER if set, else the standard socket if it exists.
func Resolve(getenv func(string) string) (string, error) {
	v := getenv(EnvBroker)
	switch {
	case v == "none":
		return "", nil
	case strings.HasPrefix(v, "unix:"):
		path := strings.TrimPrefix(v, "unix:")
		if path == "" {
			break
		}
		return path, nil
	case v != "":
	default:
		if fi, err := os.Stat(DefaultSocket()); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return DefaultSocket(), nil
		}
		return "", nil
	}
	return "", errcode.WithHint(errcode.Errorf(errcode.Usage, "%s must be unix:PATH or none", EnvBroker),
		"set "+EnvBroker+"=unix:"+DefaultSocket()+", or unset it")
}

// Dial connects to the broker's socket, saying what went wrong in terms a
// user can act on.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		return c, nil
	}
	switch {
	case errors.Is(err, os.ErrPermission):
		return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "cannot connect to the broker at %s: permission denied (this user is not allowed to use it)", path),
			"ask the machine's admin to run `sudo agentsecrets broker install --user $USER`, then log in again so the group applies")
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "the broker is not running at %s", path),
			"run `agentsecrets broker status`, or start it (`sudo systemctl start agentsecrets-broker`)")
	}
	return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "connect to the broker at %s: %v", path, err), "run `agentsecrets broker status`")
}

// Exec runs one command on the broker and returns its exit status.
// Cancelling ctx (Ctrl-C) interrupts the command on the broker.
func Exec(ctx context.Context, path string, req Request, local Local) (int, error) {
	conn, err := Dial(ctx, path)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if err := upgrade(conn, br, "/exec", Protocol, nil); err != nil {
		return 0, err
	}
	c := &client{frameConn: frameConn{conn: conn}, local: local}
	if err := c.sendJSON(FrameRequest, req); err != nil {
		return 0, lostBroker(err)
	}
	// After an interrupt the command's output is dropped: a local command
	// would have ended at Ctrl-C, and what the broker still sends is its
	// report of the interrupt.
	var interrupted atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		interrupted.Store(true)
		c.send(FrameInterrupt, nil)
	})
	defer stop()
	for {
		typ, payload, err := ReadFrame(br)
		if err != nil {
			return 0, lostBroker(err)
		}
		switch typ {
		case FrameStdout, FrameStderr:
			if interrupted.Load() {
				continue
			}
			if typ == FrameStderr {
				local.Err.Write(payload)
			} else if _, err := local.Out.Write(payload); err != nil {
				// Our stdout is gone (`| head`): the command's output has
				// nowhere to go, so it is interrupted, as a local command
				// would get EPIPE.
				c.send(FrameInterrupt, nil)
			}
		case FrameRead:
			var rr ReadRequest
			if err := json.Unmarshal(payload, &rr); err != nil || rr.Max <= 0 || rr.Max > MaxFrame {
				return 0, lostBroker(errors.New("malformed read request"))
			}
			go c.readStdin(rr.Max)
		case FramePrompt:
			var p Prompt
			if err := json.Unmarshal(payload, &p); err != nil {
				return 0, lostBroker(errors.New("malformed prompt"))
			}
			go c.prompt(p)
		case FrameCall:
			var call Call
			if err := json.Unmarshal(payload, &call); err != nil {
				return 0, lostBroker(errors.New("malformed call"))
			}
			go c.call(call)
		case FrameExit:
			var x Exit
			if err := json.Unmarshal(payload, &x); err != nil {
				return 0, lostBroker(errors.New("malformed exit"))
			}
			return x.Status, nil
		default:
			return 0, lostBroker(fmt.Errorf("unexpected frame type %q", typ))
		}
	}
}

// upgrade asks for an exec or proxy connection (POST path, Upgrade:
// protocol, plus header); a refusal carries the broker's error envelope.
func upgrade(conn net.Conn, br *bufio.Reader, path, protocol string, header http.Header) error {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	req := &http.Request{Method: "POST", URL: &url.URL{Path: path}, Host: "broker", Header: header.Clone(), ProtoMajor: 1, ProtoMinor: 1}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Upgrade", protocol)
	req.Header.Set("Connection", "Upgrade")
	if err := req.Write(conn); err != nil {
		return lostBroker(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return lostBroker(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	defer resp.Body.Close()
	var env errcode.Envelope
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&env); err != nil || env.Error.Code == "" {
		return errcode.Errorf(errcode.Unavailable, "the broker refused the connection (HTTP %d)", resp.StatusCode)
	}
	return ReportErr(env.Error)
}

func lostBroker(err error) error {
	return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "lost the broker before the command finished: %v", err),
		"run `agentsecrets broker status`; nothing was half-written, so run the command again")
}

type client struct {
	frameConn
	local Local
}

func (c *client) readStdin(max int) {
	buf := make([]byte, max)
	n, err := c.local.In.Read(buf)
	if n == 0 && err != nil {
		c.send(FrameStdin, nil) // EOF, or a read error the command sees as one
		return
	}
	c.send(FrameStdin, buf[:n])
}

func (c *client) answer(a Answer, err error) {
	if err != nil {
		a = Answer{Error: Report(err)}
	}
	if c.sendJSON(FrameAnswer, a) == nil || a.Error != nil {
		return
	}
	// The answer did not fit a frame (or could not be encoded): the
	// command gets an error rather than waiting for an answer forever.
	c.sendJSON(FrameAnswer, Answer{Error: Report(errcode.Errorf(errcode.TooLarge, "the answer is larger than the broker protocol carries (%d MiB)", MaxFrame>>20))})
}

func (c *client) prompt(p Prompt) {
	if p.Show {
		c.answer(Answer{}, c.local.Show(p.Text))
		return
	}
	v, err := c.local.Prompt(p.Text)
	c.answer(Answer{Data: v}, err)
	clear(v)
}

func (c *client) call(call Call) {
	out, err := c.local.Call(call.Op, call.Args)
	if err != nil {
		c.answer(Answer{}, err)
		return
	}
	b, err := json.Marshal(out)
	c.answer(Answer{Result: b}, err)
}
