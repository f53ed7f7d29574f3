package brokerd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Session is the broker's side of one exec connection: the command's
// streams, prompts and calls to the user's side, all over the connection.
// Every method is safe for concurrent use (`mcp serve` answers tool calls
// concurrently).
type Session struct {
	Request Request
	Peer    Peer

	frameConn
	br *bufio.Reader

	stdinMu  sync.Mutex
	stdin    chan []byte
	stdinEOF bool

	callMu  sync.Mutex // one prompt or call outstanding
	answers chan []byte

	// asked says a read request (stdin) or a question (answer) is
	// outstanding. Each is set before its frame goes out and taken by the
	// reply, so a client cannot slip in data nobody asked for: an answer
	// sent ahead would otherwise be taken as the reply to the next
	// prompt, whatever that prompt turns out to be.
	stdinAsked  atomic.Bool
	answerAsked atomic.Bool

	// gone is closed when the client hangs up or interrupts; the
	// command's context ends with it.
	gone     chan struct{}
	goneOnce sync.Once
	// bad is why the client was dropped, if it broke the protocol.
	bad error
}

// ErrClientGone: the client disconnected or pressed Ctrl-C.
var ErrClientGone = errcode.WithHint(errcode.New(errcode.Unavailable, "the client went away"), "run the command again")

func newSession(conn net.Conn, br *bufio.Reader, req Request, peer Peer) *Session {
	return &Session{Request: req, Peer: peer, frameConn: frameConn{conn: conn}, br: br,
		stdin: make(chan []byte, 1), answers: make(chan []byte, 1), gone: make(chan struct{})}
}

// readLoop routes the client's frames until it hangs up; it ends the
// session on an interrupt or a protocol error.
func (s *Session) readLoop() {
	defer s.hangUp(nil)
	for {
		typ, payload, err := ReadFrame(s.br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.hangUp(fmt.Errorf("read frame: %w", err))
			}
			return
		}
		switch typ {
		case FrameStdin:
			if !s.stdinAsked.CompareAndSwap(true, false) {
				s.hangUp(errors.New("stdin data nobody asked for"))
				return
			}
			s.stdin <- payload // room for one: one read is outstanding
		case FrameAnswer:
			if !s.answerAsked.CompareAndSwap(true, false) {
				s.hangUp(errors.New("an answer to no question"))
				return
			}
			s.answers <- payload // room for one: one question is outstanding
		case FrameInterrupt:
			return
		default:
			s.hangUp(fmt.Errorf("unexpected frame type %q", typ))
			return
		}
	}
}

func (s *Session) hangUp(reason error) {
	s.goneOnce.Do(func() {
		s.bad = reason
		close(s.gone)
	})
}

// dropReason is why the client was dropped for breaking the protocol, or
// nil. bad is written before gone is closed, so it is read only after.
func (s *Session) dropReason() error {
	select {
	case <-s.gone:
		return s.bad
	default:
		return nil
	}
}

// Done is closed when the client is gone.
func (s *Session) Done() <-chan struct{} { return s.gone }

// Context returns ctx ended when the client goes away.
func (s *Session) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.gone:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// outChunk keeps output frames well below MaxFrame.
const outChunk = 256 << 10

type frameWriter struct {
	s   *Session
	typ byte
}

func (w frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p
		if len(c) > outChunk {
			c = c[:outChunk]
		}
		if err := w.s.send(w.typ, c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// Stdout and Stderr are the client's streams.
func (s *Session) Stdout() io.Writer { return frameWriter{s, FrameStdout} }
func (s *Session) Stderr() io.Writer { return frameWriter{s, FrameStderr} }

// Stdin reads the client's stdin on demand: nothing is read from it unless
// the command reads, so a script's stdin is not swallowed by a command
// that never wanted it.
func (s *Session) Stdin() io.Reader { return stdinReader{s} }

type stdinReader struct{ s *Session }

func (r stdinReader) Read(p []byte) (int, error) {
	s := r.s
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdinEOF {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	max := min(len(p), MaxFrame)
	s.stdinAsked.Store(true)
	if err := s.sendJSON(FrameRead, ReadRequest{Max: max}); err != nil {
		s.stdinAsked.Store(false)
		return 0, err
	}
	select {
	case b := <-s.stdin:
		if len(b) == 0 {
			s.stdinEOF = true
			return 0, io.EOF
		}
		if len(b) > max {
			s.hangUp(errors.New("stdin frame larger than asked for"))
			return 0, ErrClientGone
		}
		return copy(p, b), nil
	case <-s.gone:
		return 0, ErrClientGone
	}
}

// ask sends one question and waits for its answer.
func (s *Session) ask(typ byte, q any) (Answer, error) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.answerAsked.Store(true)
	if err := s.sendJSON(typ, q); err != nil {
		s.answerAsked.Store(false)
		return Answer{}, ErrClientGone
	}
	select {
	case b := <-s.answers:
		var a Answer
		if err := json.Unmarshal(b, &a); err != nil {
			// Not the decoder's text: it quotes a byte of the answer,
			// which may be a typed passphrase or value, into the log.
			s.hangUp(errors.New("malformed answer"))
			return Answer{}, ErrClientGone
		}
		if a.Error != nil {
			return Answer{}, ReportErr(*a.Error)
		}
		return a, nil
	case <-s.gone:
		return Answer{}, ErrClientGone
	}
}

// Prompt asks a hidden question on the client's terminal.
func (s *Session) Prompt(text string) ([]byte, error) {
	a, err := s.ask(FramePrompt, Prompt{Text: text})
	return a.Data, err
}

// Show writes text to the client's terminal only.
func (s *Session) Show(text string) error {
	_, err := s.ask(FramePrompt, Prompt{Text: text, Show: true})
	return err
}

// Call runs op on the client's side with args and decodes its result
// into out.
func (s *Session) Call(op string, args, out any) error {
	b, err := json.Marshal(args)
	if err != nil {
		return err
	}
	a, err := s.ask(FrameCall, Call{Op: op, Args: b})
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(a.Result, out); err != nil {
		return errcode.Errorf(errcode.Internal, "decode the client's %s result: %w", op, err)
	}
	return nil
}

// ReportErr turns a report from the wire back into a coded error; a code
// this build does not know is internal.
func ReportErr(r errcode.Report) error {
	code := r.Code
	if errcode.Lookup(code).Code != code {
		code = errcode.Internal
	}
	return errcode.WithHint(errcode.New(code, r.Message), r.Hint)
}

// Report is the report of err, for the wire.
func Report(err error) *errcode.Report {
	rep := errcode.Classify(err)
	return &rep
}
