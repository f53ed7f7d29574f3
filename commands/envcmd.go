package commands

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// EnvCmd is value mode: for programs that only read credentials from their
// environment. It is one of the two paths on which a value leaves the
// broker (DESIGN section 1), so every secret it injects needs a human's
// `secrets bind NAME --release env`, and the child's output is masked.
type EnvCmd struct {
	Only      []string `required:"" placeholder:"NAME|VAR=NAME" sep:"," help:"Secrets to inject, comma-separated or repeated: NAME sets variable NAME, VAR=NAME sets VAR. Each needs 'secrets bind NAME --release env'." json:"only"`
	NoMasking bool     `help:"Pass the child's stdout and stderr through unmasked (needs the admin passphrase)." json:"no_masking,omitempty"`
	Command   []string `arg:"" name:"command" passthrough:"partial" help:"The command and its arguments (after --, or after the first word that is not a flag)." json:"command"`
	Scope
	Approval
}

// EnvVariable is one injected variable and the secret behind it.
type EnvVariable struct {
	Variable string `json:"variable"`
	Secret   string `json:"secret"`
}

// EnvResult describes a finished child. It is not printed: the child had
// stdout, so agentsecrets exits with the child's status and writes nothing
// of its own (errors before the child starts are reported as usual).
type EnvResult struct {
	Workspace string        `json:"workspace"`
	Project   string        `json:"project"`
	Command   string        `json:"command"`
	Variables []EnvVariable `json:"variables"`
	Masked    bool          `json:"masked"`
	// ExitCode is the child's status, 128+N when signal N killed it.
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	AuditID  string `json:"audit_id"`
}

// ExitStatus makes agentsecrets exit as the child did.
func (r *EnvResult) ExitStatus() int { return r.ExitCode }

// Environment variables a child gets when a proxy is running, so that it
// can reach the explicit proxy API without being configured for it.
const (
	EnvProxyURL       = "AGENTSECRETS_PROXY_URL"
	EnvProxyTokenFile = "AGENTSECRETS_PROXY_TOKEN_FILE"
)

// maskDrainTimeout bounds how long output is still masked after the child
// exited, while a process it left behind holds the pipe open.
const maskDrainTimeout = 2 * time.Second

func (c *EnvCmd) Run(env *Env) (res *EnvResult, err error) {
	vars, err := parseOnly(c.Only)
	if err != nil {
		return nil, err
	}
	c.Command = c.argv()
	if len(c.Command) == 0 || c.Command[0] == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "no command given"), "run `agentsecrets env --only NAME -- CMD [ARGS]`")
	}
	st, ix, sel, err := env.openProjectToRead(c.Scope)
	if err != nil {
		return nil, err
	}
	refs := make([]broker.Ref, 0, len(vars))
	for _, v := range vars {
		refs = append(refs, broker.Ref{Selection: sel.Selection, Name: v.Secret})
	}
	// The broker checks the release flags and audits the release: a
	// refusal here is already recorded, and every later return goes
	// through Finish (deferred below), so no run goes unrecorded.
	rel, err := broker.Release(env.ctx(), st, broker.ReleaseRequest{FrontEnd: audit.FrontEndEnv, Mode: policy.ReleaseEnv, Refs: refs,
		Audit: audit.Open(st.Dirs.State, audit.Options{}), Now: env.Now})
	if err != nil {
		return nil, err
	}
	defer rel.Wipe()
	// The command's name is recorded only once argv is known to hold no
	// value: before that check it could be anything, a value included.
	var command string
	var exitCode int
	defer func() {
		// The child may have run; what is left to refuse is a success.
		if ferr := rel.Finish(env.ctx(), broker.ReleaseOutcome{Err: err, Command: command, ExitCode: exitCode}); ferr != nil {
			res, err = nil, ferr
		}
	}()

	values := make([][]byte, 0, len(refs))
	for _, ref := range refs {
		values = append(values, rel.Value(ref).Reveal())
	}
	if argvLeaks(c.Command, values, rel.Contains) {
		return nil, errcode.WithHint(broker.ErrValueInArgv,
			"pass it through the variable instead and let the child expand it, e.g. agentsecrets env --only NAME -- sh -c 'cmd \"$NAME\"'")
	}
	path, err := env.user().lookPath(c.Command[0])
	if err != nil {
		return nil, err
	}

	command = filepath.Base(c.Command[0])
	if c.NoMasking {
		// Asked only now: the program's name is shown once argv is known to
		// hold none of the released values, and its arguments never are
		// (they could hold anything); their count tells a human whether
		// this is the command they meant.
		what := fmt.Sprintf("running %s with the values of %s and its output UNMASKED", command, strings.Join(secretsOf(vars), ", "))
		change := []string{
			"command:    " + command + fmt.Sprintf(" with %d argument(s) (not shown: they could hold anything)", len(c.Command)-1),
			"variables:  " + strings.Join(c.Only, ", "),
			"output:     UNMASKED (values the command prints reach the terminal as they are)",
		}
		rerun := fmt.Sprintf("agentsecrets env --only %s --no-masking --workspace %s --project %s -- CMD", strings.Join(c.Only, ","), sel.Workspace, sel.Project)
		if err := c.Approval.approve(env, ix, sel, what, change, rerun); err != nil {
			return nil, err
		}
	}

	spec := childSpec{Argv: c.Command, Path: path, Masked: !c.NoMasking}
	for _, v := range vars {
		// Revealed for the child's environment: handing values to it is
		// what env is for.
		spec.Vars = append(spec.Vars, childVar{Name: v.Variable, Value: rel.Value(broker.Ref{Selection: sel.Selection, Name: v.Secret}).Reveal()})
	}
	// Where the child starts is the user's side: this process, or the
	// broker's client (never the daemon, which runs as another user).
	x, err := env.user().spawn(env, spec, rel.Redactor())
	if err != nil {
		return nil, err
	}
	exitCode = x.ExitCode
	return &EnvResult{Workspace: sel.Workspace, Project: sel.Project, Command: command, Variables: vars, Masked: !c.NoMasking,
		ExitCode: x.ExitCode, Signal: x.Signal, AuditID: rel.AuditID()}, nil
}

// childSpec is what starting env's child takes once the release and its
// approval are done: the command, the variables to set (values: SECRET,
// never log) and whether to mask. It is also the spawn operation's
// arguments on the broker's socket.
type childSpec struct {
	Argv []string `json:"argv"`
	// Path is the program found on the side that runs it (never sent:
	// the client looks it up itself).
	Path   string     `json:"-"`
	Vars   []childVar `json:"vars"`
	Masked bool       `json:"masked"`
}

type childVar struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// wipe overwrites the values, once the child holds its copies.
func (s *childSpec) wipe() {
	for _, v := range s.Vars {
		clear(v.Value)
	}
}

// childExit is how the child ended.
type childExit struct {
	// ExitCode is the child's status, 128+N when signal N killed it.
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
}

// errDaemonSpawn: the broker daemon was about to start a process. It runs
// as the broker's user, so a child there could read the vault; env's
// child always starts on the client's side.
var errDaemonSpawn = errcode.WithHint(errcode.New(errcode.Internal, "the broker daemon never starts a process itself"),
	"this is a bug in agentsecrets: please report the command you ran")

// notRunnable: the first word after -- names no program. The error does
// not name it: it could be a value of a secret not released here, which
// nothing can check.
var notRunnable = errcode.WithHint(errcode.New(errcode.NotFound, "cannot run the command: not found in PATH or not executable"),
	"check the first word after -- (give the program's path, or fix PATH)")

// runChild starts spec's command with this process's stdio, working
// directory and environment plus the variables, masks its output with r
// unless told not to, forwards signals to it and waits for it.
func runChild(env *Env, spec childSpec, r *broker.Redactor) (x childExit, err error) {
	if env.daemon {
		return x, errDaemonSpawn
	}
	child := exec.Command(spec.Path, spec.Argv[1:]...)
	child.Args[0] = spec.Argv[0]
	child.Dir = env.Cwd
	child.Env = childEnv(env, spec.Vars)
	child.Stdin = env.IO.In

	var copies sync.WaitGroup
	var readEnds, writeEnds []*os.File
	if !spec.Masked {
		child.Stdout, child.Stderr = env.IO.Out, env.IO.Err
	} else {
		// Masking needs the output to pass through this process. Pipes we
		// own (rather than exec's) let the copy outlive Wait by a bound.
		for _, s := range []struct {
			dst io.Writer
			set *io.Writer
		}{{env.IO.Out, &child.Stdout}, {env.IO.Err, &child.Stderr}} {
			pr, pw, err := os.Pipe()
			if err != nil {
				return x, errcode.Errorf(errcode.Internal, "create pipe: %w", err)
			}
			defer pw.Close()
			defer pr.Close()
			*s.set = pw
			readEnds, writeEnds = append(readEnds, pr), append(writeEnds, pw)
			rr := r.StreamReader(pr, broker.StreamFlushAfter)
			copies.Add(1)
			go func(dst io.Writer, src *os.File) {
				defer copies.Done()
				defer rr.Release()
				if _, err := io.Copy(dst, rr); err != nil {
					// Our side is gone (stdout closed, as by `| head`):
					// closing the pipe gives the child the EPIPE or
					// SIGPIPE it would have had without us in between.
					src.Close()
				}
			}(s.dst, pr)
		}
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals()...)
	defer signal.Stop(sigs)
	// A write to a closed stdout must come back as EPIPE (see the copy
	// above) rather than kill this process unaudited. Caught, not ignored:
	// an ignored SIGPIPE would be inherited by the child.
	if ps := brokenPipeSignals(); len(ps) > 0 { // Notify with none means all
		pipeSig := make(chan os.Signal, 1)
		signal.Notify(pipeSig, ps...)
		defer signal.Stop(pipeSig)
	}
	if err := child.Start(); err != nil {
		return x, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "cannot start the command: %v", errors.Unwrap(err)),
			"check that the first word after -- is an executable program")
	}
	// The child holds the values now; this process no longer needs them,
	// only the redactor's forms. (The environment's strings cannot be
	// overwritten; they are garbage from here on.)
	spec.wipe()
	child.Env = nil
	// Only the child may hold the write ends, so its exit ends the copies.
	for _, f := range writeEnds {
		f.Close()
	}
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for s := range sigs {
			child.Process.Signal(s)
		}
	}()

	waitErr := child.Wait()
	signal.Stop(sigs)
	close(sigs)
	<-forwarded
	x.ExitCode, x.Signal = exitStatus(child.ProcessState, waitErr)

	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(maskDrainTimeout):
		// Something the child left running still writes. Closing the read
		// ends drops what the redactor holds back (it could be half of an
		// echo) and gives the writer EPIPE.
		for _, f := range readEnds {
			f.Close()
		}
		<-drained
	}
	return x, nil
}

// argv is the child's command line: kong keeps the "--" that ends
// agentsecrets' own flags (passthrough mode), so one leading "--" goes.
func (c *EnvCmd) argv() []string {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		return c.Command[1:]
	}
	return c.Command
}

// parseOnly turns --only entries into variables, refusing duplicates.
func parseOnly(only []string) ([]EnvVariable, error) {
	var out []EnvVariable
	seen := map[string]bool{}
	for _, o := range only {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		variable, secret, mapped := strings.Cut(o, "=")
		if !mapped {
			secret = variable
		}
		if err := vault.CheckSecretName(secret); err != nil {
			return nil, err
		}
		if err := vault.CheckSecretName(variable); err != nil {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "invalid variable name in --only"),
				"use --only VAR=NAME with VAR a letter or '_' followed by letters, digits or '_'")
		}
		if seen[variable] {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "variable %s is named twice in --only", variable), "name each variable once")
		}
		seen[variable] = true
		out = append(out, EnvVariable{Variable: variable, Secret: secret})
	}
	if len(out) == 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--only names no secret"), "run `agentsecrets env --only NAME -- CMD`")
	}
	return out, nil
}

func secretsOf(vars []EnvVariable) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		if !containsString(out, v.Secret) {
			out = append(out, v.Secret)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// childEnv is this process's environment with the injected variables set
// (replacing any inherited copy) and, when a proxy of this user's home is
// running, where it listens and where its session token is. The token
// itself is not put in the environment: children can pass their
// environment on, and a file keeps it to processes that can read the
// user's files anyway.
func childEnv(env *Env, vars []childVar) []string {
	set := map[string]bool{}
	for _, v := range vars {
		set[v.Name] = true
	}
	var extra []string
	if dirs, err := env.Dirs(); err == nil {
		// The proxy's state is a file of the home, read without opening
		// the vault (the broker's client has none).
		if p, err := probeProxy(dirs); err == nil && p.Running {
			extra = append(extra, EnvProxyURL+"=http://"+p.Address, EnvProxyTokenFile+"="+p.TokenFile)
		}
	}
	var out []string
	if env.Environ != nil {
		for _, kv := range env.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if set[k] || k == EnvProxyURL || k == EnvProxyTokenFile {
				continue
			}
			out = append(out, kv)
		}
	}
	out = append(out, extra...)
	for _, v := range vars {
		out = append(out, v.Name+"="+string(v.Value))
	}
	return out
}

// exitStatus is the shell's convention: the exit code, or 128+N for a
// child killed by signal N.
func exitStatus(ps *os.ProcessState, waitErr error) (int, string) {
	if ps == nil {
		return 1, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal().String()
	}
	if code := ps.ExitCode(); code >= 0 {
		return code, ""
	}
	if waitErr != nil {
		return 1, ""
	}
	return 0, ""
}

// minArgvForm is the shortest encoded form argvLeaks looks for: shorter
// ones would match ordinary arguments by chance.
const minArgvForm = 8

// argvLeaks reports whether argv carries a released value. It is a net, not
// a boundary (a program can always be handed a value in a form nobody
// anticipated): each argument, and all arguments joined with and without a
// space (a value split across arguments and re-joined by a shell), are
// checked against every form contains knows (the redactor's: raw, base64,
// hex, URL, JSON escaping), and, ignoring letter case, against hex and
// base32 (standard and extended-hex alphabets, with or without padding).
func argvLeaks(argv []string, values [][]byte, contains func(string) bool) bool {
	hay := append(append([]string{}, argv...), strings.Join(argv, ""), strings.Join(argv, " "))
	for _, s := range hay {
		if contains(s) {
			return true
		}
	}
	var forms []string
	for _, v := range values {
		for _, f := range []string{
			hex.EncodeToString(v),
			base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(v),
			base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(v),
		} {
			// The unpadded form is a prefix of the padded one, so finding it
			// covers both.
			if len(f) >= minArgvForm {
				forms = append(forms, strings.ToLower(f))
			}
		}
	}
	for _, s := range hay {
		low := strings.ToLower(s)
		for _, f := range forms {
			if strings.Contains(low, f) {
				return true
			}
		}
	}
	return false
}
