// Package brokerd is the broker daemon's socket: a unix socket on which a
// process running under its own OS user runs agentsecrets commands for
// local clients and serves the explicit proxy API, so that values, policy
// and the audit log live where the agent's user cannot read them.
//
// The socket speaks HTTP/1.1. Proxy requests are ordinary requests. A
// command runs on a connection upgraded to "agentsecrets-exec/1", which
// then carries frames both ways: the command line from the client; its
// output, prompts and requests for the user's files from the broker; the
// answers, stdin and an interrupt from the client. Every connection is
// identified by the kernel's peer credentials, never by anything the
// client says.
package brokerd

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Protocol is the Upgrade token of an exec connection.
const Protocol = "agentsecrets-exec/1"

// MaxFrame bounds one frame's payload. Values (at most the vault's 1 MiB)
// and user files travel in one frame; output is chunked below it.
const MaxFrame = 16 << 20

// Frame types. Lower case travel from the client, upper case from the
// broker.
const (
	// client → broker
	FrameRequest   byte = 'q' // JSON Request, first frame only
	FrameStdin     byte = 'i' // stdin bytes answering FrameRead; empty means EOF
	FrameAnswer    byte = 'a' // JSON Answer to FramePrompt / FrameCall
	FrameInterrupt byte = 'c' // the user pressed Ctrl-C: cancel the command

	// broker → client
	FrameStdout byte = 'O'
	FrameStderr byte = 'E'
	FrameRead   byte = 'R' // JSON ReadRequest: the command wants stdin
	FramePrompt byte = 'P' // JSON Prompt: ask on the user's terminal
	FrameCall   byte = 'C' // JSON Call: an operation on the user's side (files, links)
	FrameExit   byte = 'X' // JSON Exit: the command's status; last frame
)

// Request is the first frame of an exec connection.
type Request struct {
	// Args is the command line after the client expanded --input.
	Args []string `json:"args"`
	// StdinTTY and StdoutTTY describe the client's streams: the broker
	// renders and prompts as the command would on them.
	StdinTTY  bool `json:"stdin_tty,omitempty"`
	StdoutTTY bool `json:"stdout_tty,omitempty"`
	// Cwd is the client's working directory (where project links are
	// looked for, on the client's side).
	Cwd string `json:"cwd,omitempty"`
	// Env holds the few client variables a command may read (NO_COLOR);
	// the broker's own environment decides everything else.
	Env map[string]string `json:"env,omitempty"`
	// Token is a per-agent broker token narrowing this client further
	// than its user (`broker token create`).
	Token string `json:"token,omitempty"`
}

// ReadRequest asks for up to Max bytes of the client's stdin.
type ReadRequest struct {
	Max int `json:"max"`
}

// Prompt asks the user a hidden question on the client's terminal.
type Prompt struct {
	Text string `json:"text"`
	// Show is text for the terminal only (the recovery kit): no answer is
	// read.
	Show bool `json:"show,omitempty"`
}

// Call is an operation only the client's side can do: reading a file
// the user named, finding or writing a project link.
type Call struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Answer replies to a Prompt or a Call: Data, or Error (an errcode
// envelope's report) and no data.
type Answer struct {
	// Data is a prompt's answer; Result a call's, as JSON.
	Data   []byte          `json:"data,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *errcode.Report `json:"error,omitempty"`
}

// Exit is the command's exit status.
type Exit struct {
	Status int `json:"status"`
}

// ErrFrameTooLarge: a peer announced a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("frame larger than the protocol allows")

// WriteFrame writes one frame: type, big-endian length, payload.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return ErrFrameTooLarge
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) < 4096 {
		// One write: small frames are most frames.
		_, err := w.Write(append(hdr[:], payload...))
		return err
	}
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame. A length over MaxFrame is refused before
// anything is allocated.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w (%d bytes)", ErrFrameTooLarge, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// frameConn writes whole frames to a connection that several goroutines
// write to (output, prompts and answers interleave, a frame never does).
type frameConn struct {
	conn net.Conn
	wmu  sync.Mutex
}

func (f *frameConn) send(typ byte, payload []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return WriteFrame(f.conn, typ, payload)
}

func (f *frameConn) sendJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.send(typ, b)
}
