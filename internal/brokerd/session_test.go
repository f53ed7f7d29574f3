package brokerd

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipeSession is a session on one end of an in-memory connection; the
// test plays the client on the other end.
func pipeSession(t *testing.T) (*Session, net.Conn) {
	t.Helper()
	srv, cli := net.Pipe()
	t.Cleanup(func() { srv.Close(); cli.Close() })
	s := newSession(srv, bufio.NewReader(srv), Request{Args: []string{"status"}}, Peer{UID: 1})
	go s.readLoop()
	return s, cli
}

func waitGone(t *testing.T, s *Session) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.dropReason()
	case <-time.After(5 * time.Second):
		t.Fatal("the session kept a client that broke the protocol")
		return nil
	}
}

// readFrom reads the next frame the session sent.
func readFrom(t *testing.T, c net.Conn) (byte, []byte) {
	t.Helper()
	typ, p, err := ReadFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	return typ, p
}

func TestSessionRefusesUnsolicited(t *testing.T) {
	for _, tt := range []struct {
		name string
		typ  byte
		want string
	}{
		{"stdin nobody asked for", FrameStdin, "stdin data nobody asked for"},
		{"an answer to no question", FrameAnswer, "an answer to no question"},
		{"a frame only the broker sends", FrameExit, "unexpected frame type"},
		{"a second request", FrameRequest, "unexpected frame type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, cli := pipeSession(t)
			payload := []byte("x")
			if tt.typ == FrameAnswer {
				payload, _ = json.Marshal(Answer{Data: []byte("admin passphrase sent ahead")})
			}
			if err := WriteFrame(cli, tt.typ, payload); err != nil {
				t.Fatal(err)
			}
			if err := waitGone(t, s); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("drop reason %v, want %q", err, tt.want)
			}
		})
	}
}

// An answer sent ahead of a prompt must not become the prompt's answer
// (approvals are typed when asked), nor may stdin sent ahead become what
// the command reads.
func TestSessionAnswerAheadIsNotTheAnswer(t *testing.T) {
	s, cli := pipeSession(t)
	ahead, _ := json.Marshal(Answer{Data: []byte("typed before the question")})
	if err := WriteFrame(cli, FrameAnswer, ahead); err != nil {
		t.Fatal(err)
	}
	waitGone(t, s)
	go io.Copy(io.Discard, cli) // the prompt's frame, which nobody answers
	if v, err := s.Prompt("Admin passphrase: "); !errors.Is(err, ErrClientGone) || v != nil {
		t.Fatalf("Prompt = %q, %v; want ErrClientGone", v, err)
	}
}

func TestSessionStdinOnDemand(t *testing.T) {
	s, cli := pipeSession(t)
	got := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(s.Stdin())
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(b)
	}()
	for _, chunk := range []string{"new-", "value", ""} {
		typ, p := readFrom(t, cli)
		var rr ReadRequest
		if typ != FrameRead || json.Unmarshal(p, &rr) != nil || rr.Max <= 0 {
			t.Fatalf("frame %q %s, want a read request", typ, p)
		}
		if err := WriteFrame(cli, FrameStdin, []byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if v := <-got; v != "new-value" {
		t.Fatalf("stdin = %q", v)
	}
	select {
	case <-s.Done():
		t.Fatalf("dropped a client that answered what it was asked: %v", s.dropReason())
	default:
	}
}

func TestSessionPromptAnswered(t *testing.T) {
	s, cli := pipeSession(t)
	type result struct {
		v   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, err := s.Prompt("Admin passphrase: ")
		got <- result{v, err}
	}()
	if typ, _ := readFrom(t, cli); typ != FramePrompt {
		t.Fatalf("frame %q, want a prompt", typ)
	}
	a, _ := json.Marshal(Answer{Data: []byte("typed")})
	if err := WriteFrame(cli, FrameAnswer, a); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || string(r.v) != "typed" {
		t.Fatalf("Prompt = %q, %v", r.v, r.err)
	}
	// The question was answered: a second answer is unsolicited.
	if err := WriteFrame(cli, FrameAnswer, a); err != nil {
		t.Fatal(err)
	}
	if err := waitGone(t, s); err == nil {
		t.Fatal("a second answer to one question was accepted")
	}
}

// TestSessionDropReasonQuotesNothing: a malformed answer is dropped with
// a reason for the daemon's log, and that reason holds no byte of what the
// client sent (an answer is a typed passphrase or value).
func TestSessionDropReasonQuotesNothing(t *testing.T) {
	s, cli := pipeSession(t)
	go s.Prompt("Value: ")
	if typ, _ := readFrom(t, cli); typ != FramePrompt {
		t.Fatalf("frame %q, want a prompt", typ)
	}
	if err := WriteFrame(cli, FrameAnswer, []byte("Qsk_live_canary")); err != nil {
		t.Fatal(err)
	}
	err := waitGone(t, s)
	if err == nil || strings.Contains(err.Error(), "Q") || strings.Contains(err.Error(), "canary") {
		t.Fatalf("drop reason %v quotes the answer", err)
	}
}
