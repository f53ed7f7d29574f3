package commands

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/alecthomas/kong"
)

// clientSide is the client's end of one command forwarded to the broker:
// it answers the broker's calls on the user's side (userside.go) and, for
// `env`, runs the child here, as this user, in this directory, with this
// environment (the daemon runs as the broker's user and must never start
// a process: its child could read the vault).
type clientSide struct {
	env *Env
	// want is the `env` command this user typed, nil for any other
	// command: the broker may start that program with those variables,
	// and nothing else. A broker is trusted with values, not with running
	// arbitrary programs as each of its users.
	want     *EnvCmd
	wantVars []EnvVariable

	// mu orders an interrupt against a child's start and a hidden
	// prompt. Ctrl-C with neither cancels the command on the broker, and
	// the client then ends as the signal ends a local command. While a
	// child runs, signals are the child's (runChild forwards them) and
	// the broker waits for its exit status. While a hidden prompt reads
	// the terminal, they are the prompt's: it switches echo back on and
	// ends the process itself, which must not race an exit from here.
	mu          sync.Mutex
	cancel      context.CancelFunc
	interrupted os.Signal // the signal that cancelled the command
	running     int
	prompting   int
	// pending is a signal that came while a prompt was open. The prompt
	// acts on it unless it came before the prompt caught signals; then
	// it takes effect when the prompt returns.
	pending  os.Signal
	children sync.WaitGroup
}

func newClientSide(env *Env, kctx *kong.Context) *clientSide {
	cs := &clientSide{env: env}
	if kctx == nil {
		return cs
	}
	if n := kctx.Selected(); n != nil {
		if c, ok := n.Target.Addr().Interface().(*EnvCmd); ok {
			// A malformed --only fails on the broker before any spawn.
			if vars, err := parseOnly(c.Only); err == nil {
				cs.want, cs.wantVars = c, vars
			}
		}
	}
	return cs
}

// local is this process's side of a broker command.
func (cs *clientSide) local(in io.Reader, out io.Writer) brokerd.Local {
	return brokerd.Local{In: in, Out: out, Err: cs.env.IO.Err, Prompt: cs.prompt, Show: cs.env.IO.Show, Call: cs.answer}
}

// interruptible is ctx, cancelled by SIGINT or SIGTERM unless a child or
// a hidden prompt owns the signal (onSignal). The signals stay caught
// until stop.
func (cs *clientSide) interruptible(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	cs.mu.Lock()
	cs.cancel = cancel
	cs.mu.Unlock()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			cs.onSignal(sig)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		<-done
		cancel()
	}
}

func (cs *clientSide) onSignal(sig os.Signal) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch {
	case cs.running > 0:
	case cs.prompting > 0:
		cs.pending = sig
	default:
		cs.interruptLocked(sig)
	}
}

func (cs *clientSide) interruptLocked(sig os.Signal) {
	if cs.interrupted != nil {
		return
	}
	cs.interrupted = sig
	if cs.cancel != nil {
		cs.cancel()
	}
}

// interruptedBy is the signal that cancelled the command, or nil.
func (cs *clientSide) interruptedBy() os.Signal {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.interrupted
}

// prompt asks the broker's hidden question on this terminal. None opens
// after an interrupt; one answered after a signal that the prompt could
// not catch (it came as the prompt opened) is dropped, and the signal
// cancels the command then.
func (cs *clientSide) prompt(text string) ([]byte, error) {
	cs.mu.Lock()
	if cs.interrupted != nil {
		cs.mu.Unlock()
		return nil, brokerd.ErrClientGone
	}
	cs.prompting++
	cs.mu.Unlock()
	v, err := cs.env.IO.Prompt(text)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.prompting--
	if cs.pending != nil && cs.prompting == 0 {
		cs.interruptLocked(cs.pending)
		cs.pending = nil
	}
	if cs.interrupted != nil {
		clear(v)
		return nil, brokerd.ErrClientGone
	}
	return v, err
}

var errNotAskedToRun = errcode.WithHint(errcode.New(errcode.Denied, "the broker asked this client to run a program its user did not ask for"),
	"check AGENTSECRETS_BROKER: it should name your machine's broker (`agentsecrets broker status`)")

// checkProgram allows looking up only the program the user named.
func (cs *clientSide) checkProgram(name string) error {
	if cs.want == nil || len(cs.want.argv()) == 0 || cs.want.argv()[0] != name {
		return errNotAskedToRun
	}
	return nil
}

// checkSpawn allows the command line, variables and masking the user
// typed, nothing else.
func (cs *clientSide) checkSpawn(spec childSpec) error {
	if cs.want == nil || !slices.Equal(spec.Argv, cs.want.argv()) || len(spec.Vars) != len(cs.wantVars) {
		return errNotAskedToRun
	}
	for i, v := range spec.Vars {
		if v.Name != cs.wantVars[i].Variable {
			return errNotAskedToRun
		}
	}
	if !spec.Masked && !cs.want.NoMasking {
		return errNotAskedToRun
	}
	return nil
}

// spawn answers the broker's spawn: the values arrive here once, after the
// broker's checks and approval; they go to the child's environment and to
// the redactor of its output, never to this process's output or errors.
func (cs *clientSide) spawn(raw json.RawMessage) (any, error) {
	defer clear(raw)
	var spec childSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		// Not err's text: it could quote part of the arguments.
		return nil, errcode.New(errcode.Internal, "malformed spawn arguments from the broker")
	}
	defer spec.wipe()
	if err := cs.checkSpawn(spec); err != nil {
		return nil, err
	}
	// The program is looked up here again, not taken from the broker.
	path, err := localSide{}.lookPath(spec.Argv[0])
	if err != nil {
		return nil, err
	}
	spec.Path = path
	cs.mu.Lock()
	if cs.interrupted != nil {
		cs.mu.Unlock()
		return nil, brokerd.ErrClientGone
	}
	cs.running++
	cs.children.Add(1)
	cs.mu.Unlock()
	defer func() {
		cs.mu.Lock()
		cs.running--
		cs.mu.Unlock()
		cs.children.Done()
	}()
	values := make([][]byte, 0, len(spec.Vars))
	for _, v := range spec.Vars {
		values = append(values, v.Value)
	}
	return runChild(cs.env, spec, broker.NewRedactor(values))
}
