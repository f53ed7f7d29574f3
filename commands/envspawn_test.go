package commands

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestDaemonStartsNoProcess: in the broker daemon, starting env's child
// is refused even on the local path (a daemon Env without its remote
// side), and nothing runs.
func TestDaemonStartsNoProcess(t *testing.T) {
	env, _ := testEnv(t)
	env.daemon = true
	marker := filepath.Join(env.Cwd, "started")
	sh, err := localSide{}.lookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	spec := childSpec{Argv: []string{"sh", "-c", "touch " + marker}, Path: sh, Masked: true}
	_, err = env.user().spawn(env, spec, nil)
	if errcode.Classify(err).Code != errcode.Internal {
		t.Fatalf("spawn in the daemon: %v, want the internal refusal", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the daemon started the command")
	}
}

// TestClientSpawnOnlyWhatWasTyped: the broker's client starts only the
// program, arguments and variables its user typed, masked unless the user
// asked for --no-masking; anything else is refused and nothing runs.
func TestClientSpawnOnlyWhatWasTyped(t *testing.T) {
	env, _ := testEnv(t)
	marker := filepath.Join(env.Cwd, "started")
	script := "touch " + marker
	side := func(args ...string) *clientSide {
		cli := &CLI{}
		exited := -1
		parser, err := newParser(cli, env, &exited)
		if err != nil {
			t.Fatal(err)
		}
		kctx, err := parser.Parse(args)
		if err != nil {
			t.Fatal(err)
		}
		return newClientSide(env, kctx)
	}
	typed := []string{"env", "--only", "A,V=B", "--", "sh", "-c", script}
	vars := []childVar{{Name: "A", Value: []byte("a-value")}, {Name: "V", Value: []byte("b-value")}}
	for _, tc := range []struct {
		name string
		cs   *clientSide
		spec childSpec
	}{
		{"another command", side("secrets", "list"), childSpec{Argv: []string{"sh", "-c", script}, Vars: vars, Masked: true}},
		{"another program", side(typed...), childSpec{Argv: []string{"bash", "-c", script}, Vars: vars, Masked: true}},
		{"other arguments", side(typed...), childSpec{Argv: []string{"sh", "-c", script + "; true"}, Vars: vars, Masked: true}},
		{"another variable", side(typed...), childSpec{Argv: []string{"sh", "-c", script}, Vars: []childVar{vars[0], {Name: "PATH", Value: []byte("/x")}}, Masked: true}},
		{"a variable less", side(typed...), childSpec{Argv: []string{"sh", "-c", script}, Vars: vars[:1], Masked: true}},
		{"unmasked", side(typed...), childSpec{Argv: []string{"sh", "-c", script}, Vars: vars}},
	} {
		raw, err := json.Marshal(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tc.cs.answer(opSpawn, raw)
		if errcode.Classify(err).Code != errcode.Denied {
			t.Errorf("%s: %v, want denied", tc.name, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the client ran it", tc.name)
		}
	}
	if _, err := side(typed...).answer(opLookPath, json.RawMessage(`{"path":"bash"}`)); errcode.Classify(err).Code != errcode.Denied {
		t.Errorf("look_path of another program: %v, want denied", err)
	}

	// What was typed runs, unmasked when --no-masking was typed.
	for _, args := range [][]string{typed, {"env", "--no-masking", "--only", "A,V=B", "--", "sh", "-c", script}} {
		cs := side(args...)
		spec := childSpec{Argv: []string{"sh", "-c", script}, Vars: vars, Masked: args[1] != "--no-masking"}
		raw, _ := json.Marshal(spec)
		x, err := cs.answer(opSpawn, raw)
		if err != nil || x.(childExit).ExitCode != 0 {
			t.Fatalf("%v: %v %v", args, x, err)
		}
		if _, err := os.Stat(marker); err != nil {
			t.Fatalf("%v: the command did not run", args)
		}
		os.Remove(marker)
	}
}

// TestClientSideSignalOwner: Ctrl-C on a forwarded command cancels it
// unless a child or a hidden prompt owns the signal. A prompt that ends
// normally after a signal it could not catch gives no answer, and the
// signal cancels the command then; no prompt opens after an interrupt.
func TestClientSideSignalOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		// during runs while the command waits, with the client side in
		// the state the case describes.
		during        func(cs *clientSide) (answer []byte, err error)
		wantCancelled bool
		wantAnswer    string
		wantErr       error
	}{
		{"no prompt, no child", func(cs *clientSide) ([]byte, error) {
			cs.onSignal(syscall.SIGINT)
			return nil, nil
		}, true, "", nil},
		{"a child running", func(cs *clientSide) ([]byte, error) {
			cs.mu.Lock()
			cs.running++
			cs.mu.Unlock()
			cs.onSignal(syscall.SIGINT)
			return nil, nil
		}, false, "", nil},
		{"a prompt answered", func(cs *clientSide) ([]byte, error) {
			return cs.prompt("Value: ")
		}, false, "typed", nil},
		{"a signal the prompt missed", func(cs *clientSide) ([]byte, error) {
			cs.env.IO.Prompt = func(string) ([]byte, error) {
				cs.onSignal(syscall.SIGINT)
				if cs.interruptedBy() != nil {
					t.Error("the command was cancelled while the prompt was open")
				}
				return []byte("typed"), nil
			}
			return cs.prompt("Value: ")
		}, true, "", brokerd.ErrClientGone},
		{"a prompt after an interrupt", func(cs *clientSide) ([]byte, error) {
			cs.onSignal(syscall.SIGTERM)
			cs.env.IO.Prompt = func(string) ([]byte, error) {
				t.Error("a prompt opened after the interrupt")
				return []byte("typed"), nil
			}
			return cs.prompt("Value: ")
		}, true, "", brokerd.ErrClientGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(t)
			env.IO.Prompt = func(string) ([]byte, error) { return []byte("typed"), nil }
			cs := newClientSide(env, nil)
			ctx, stop := cs.interruptible(context.Background())
			answer, err := tc.during(cs)
			got := ctx.Err() != nil
			stop()
			if got != tc.wantCancelled {
				t.Errorf("cancelled %v, want %v", got, tc.wantCancelled)
			}
			if (cs.interruptedBy() != nil) != tc.wantCancelled {
				t.Errorf("interrupted by %v, want cancelled %v", cs.interruptedBy(), tc.wantCancelled)
			}
			if string(answer) != tc.wantAnswer {
				t.Errorf("answer %q, want %q", answer, tc.wantAnswer)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}
