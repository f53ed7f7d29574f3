//go:build linux

package e2e

// Prompts on a real pseudo-terminal. The binary runs in its own session
// whose controlling terminal is a pty this test opened, so /dev/tty is that
// pty; stdout is a pipe, so results are JSON. The test reads the terminal
// like a human would, waits for the prompt and for echo to be switched off,
// then types the answer.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyTerminal is the master side of a pty plus everything read from it.
type ptyTerminal struct {
	t      *testing.T
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	seen   int // offset up to which prompts were consumed
	done   chan struct{}
}

// ptyOpen opens a new pty pair: /dev/ptmx, unlock, find /dev/pts/N.
func ptyOpen(t *testing.T) (*ptyTerminal, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n int
	var ioErr error
	// Control, unlike Fd, leaves the file in non-blocking mode, so Close
	// interrupts the reader goroutine.
	err = ptyControl(master, func(fd int) {
		if ioErr = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(fd, unix.TIOCGPTN)
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		master.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	p := &ptyTerminal{t: t, master: master, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			k, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:k])
			p.mu.Unlock()
			if err != nil {
				return // EIO once every slave descriptor is closed
			}
		}
	}()
	t.Cleanup(func() { master.Close(); slave.Close() })
	return p, slave
}

func ptyControl(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// output is everything the program wrote to the terminal so far.
func (p *ptyTerminal) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// echoOff reports whether the terminal's ECHO flag is clear. On Linux
// TCGETS on the master returns the slave's settings.
func (p *ptyTerminal) echoOff() bool {
	var tio *unix.Termios
	var ioErr error
	if err := ptyControl(p.master, func(fd int) { tio, ioErr = unix.IoctlGetTermios(fd, unix.TCGETS) }); err != nil || ioErr != nil {
		p.t.Fatalf("read terminal settings: %v %v", err, ioErr)
	}
	return tio.Lflag&unix.ECHO == 0
}

// answer waits for prompt (after earlier prompts), then for echo to be off,
// then types line and Enter.
func (p *ptyTerminal) answer(prompt, line string, exited <-chan struct{}) {
	p.t.Helper()
	p.awaitHidden(prompt, exited)
	if _, err := p.master.Write([]byte(line + "\n")); err != nil {
		p.t.Fatalf("type answer: %v", err)
	}
}

// awaitHidden waits for prompt (after earlier prompts), then for echo to be
// off.
func (p *ptyTerminal) awaitHidden(prompt string, exited <-chan struct{}) {
	p.t.Helper()
	deadline := p.awaitText(prompt, exited)
	// The prompt is printed before echo is switched off: typing earlier
	// would be echoed by the line discipline, not by the program.
	for !p.echoOff() {
		select {
		case <-exited:
			p.t.Fatalf("the program exited at prompt %q", prompt)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("echo was never switched off at prompt %q: a typed secret would be shown", prompt)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// awaitText waits for text on the terminal (after what earlier waits
// consumed) and returns the deadline of what follows.
func (p *ptyTerminal) awaitText(prompt string, exited <-chan struct{}) time.Time {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		i := strings.Index(p.out.String()[p.seen:], prompt)
		if i >= 0 {
			p.seen += i + len(prompt)
		}
		p.mu.Unlock()
		if i >= 0 {
			break
		}
		select {
		case <-exited:
			p.t.Fatalf("the program exited before prompting %q; terminal: %q", prompt, p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no prompt %q on the terminal; got %q", prompt, p.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return deadline
}

// ptyStep is one prompt and the line typed at it.
type ptyStep struct{ prompt, line string }

// ptyProc is a program running with a pty as its controlling terminal
// (and stdin), stdout and stderr captured.
type ptyProc struct {
	*ptyTerminal
	args      []string
	cmd       *exec.Cmd
	ctx       context.Context
	cancel    context.CancelFunc
	out, errb bytes.Buffer
	exited    chan struct{}
	err       error
}

// ptyStart starts argv (argv[0] is the program) on a new pty.
func ptyStart(t *testing.T, env []string, dir string, argv ...string) *ptyProc {
	t.Helper()
	term, slave := ptyOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), rbTimeout)
	p := &ptyProc{ptyTerminal: term, args: argv[1:], ctx: ctx, cancel: cancel, exited: make(chan struct{})}
	t.Cleanup(cancel)
	p.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	p.cmd.Env, p.cmd.Dir = env, dir
	p.cmd.Stdin = slave
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	slave.Close() // the child has its own copy; EOF on the master when it exits
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p
}

// step answers one prompt.
func (p *ptyProc) step(s ptyStep) { p.t.Helper(); p.answer(s.prompt, s.line, p.exited) }

// wait waits for the program, and for every process holding the terminal,
// to exit. It returns the result (Code -1 when a signal ended it) and
// everything shown on the terminal.
func (p *ptyProc) wait() (*Result, string) {
	p.t.Helper()
	<-p.exited
	if p.ctx.Err() != nil {
		p.t.Fatalf("%v: still running after %s; terminal: %q", p.args, rbTimeout, p.output())
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("the terminal did not close after the program exited")
	}
	code := 0
	if p.err != nil {
		var ee *exec.ExitError
		if !errors.As(p.err, &ee) {
			p.t.Fatalf("run %v: %v", p.args, p.err)
		}
		code = ee.ExitCode()
	}
	return &Result{Args: p.args, Stdout: p.out.Bytes(), Stderr: p.errb.Bytes(), Code: code}, p.output()
}

// ptyRun runs the binary with the pty as its controlling terminal (and
// stdin), answers steps in order, and returns the result and everything
// shown on the terminal.
func ptyRun(t *testing.T, env []string, dir string, steps []ptyStep, args ...string) (*Result, string) {
	t.Helper()
	p := ptyStart(t, env, dir, append([]string{binary}, args...)...)
	for _, s := range steps {
		p.step(s)
	}
	return p.wait()
}

func TestPTYBindApproval(t *testing.T) {
	v := NewVault(t, "file")
	v.rbRunIn([]byte("bind me\n"), "secrets", "set", "API_KEY", "--from-stdin").OK(t)
	v.rbRunIn([]byte("other\n"), "secrets", "set", "OTHER_KEY", "--from-stdin").OK(t)

	r, tty := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", adminPassphrase}},
		"secrets", "bind", "API_KEY", "api.example.com")
	m := r.OK(t).JSON(t)
	if m["approved"] != true || m["action"] != "added" {
		t.Errorf("bind with the right passphrase: %s", r.Stdout)
	}
	if !strings.Contains(tty, "approve binding API_KEY to api.example.com") {
		t.Errorf("the terminal does not say what is being approved: %q", tty)
	}
	if strings.Contains(tty, adminPassphrase) || bytes.Contains(r.Stdout, []byte(adminPassphrase)) || bytes.Contains(r.Stderr, []byte(adminPassphrase)) {
		t.Errorf("the admin passphrase was echoed")
	}
	if bytes.Contains(r.Stdout, []byte("Admin passphrase")) {
		t.Errorf("the prompt went to stdout, not the terminal: %s", r.Stdout)
	}

	before := rbSnapshot(t, v.Home)
	r, _ = ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", "not the admin passphrase"}},
		"secrets", "bind", "OTHER_KEY", "api.example.com")
	rbHint(t, r, r.ErrorCode(t, "denied", 4))
	rbSameSnapshot(t, "bind with a wrong passphrase", before, rbSnapshot(t, v.Home))

	list := v.rbRun("secrets", "list").OK(t).JSON(t)
	for _, s := range list["secrets"].([]any) {
		s := s.(map[string]any)
		n := len(s["bindings"].([]any))
		if want := map[string]int{"API_KEY": 1, "OTHER_KEY": 0}[s["name"].(string)]; n != want {
			t.Errorf("%s has %d bindings, want %d", s["name"], n, want)
		}
	}
}

func TestPTYSetPrompt(t *testing.T) {
	v := NewVault(t, "file")
	value := "typed-" + rbRandomHex(t, 20)
	r, tty := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"(hidden)", value}}, "secrets", "set", "TYPED")
	r.OK(t)
	if !strings.Contains(tty, "Value for TYPED (hidden): ") {
		t.Errorf("prompt not shown on the terminal: %q", tty)
	}
	for where, b := range map[string]string{"terminal": tty, "stdout": string(r.Stdout), "stderr": string(r.Stderr)} {
		if strings.Contains(b, value) {
			t.Errorf("the typed value appears on %s: %q", where, b)
		}
	}
	if got := rbSecrets(t, v.rbRun("secrets", "list").OK(t)); got["TYPED"] != 1 {
		t.Errorf("TYPED not stored with version 1: %v", got)
	}
	if got, err := rbStore(t, v).Value(context.Background(), rbDefault(), "TYPED"); err != nil || string(got.Reveal()) != value {
		t.Errorf("the vault does not hold the typed value (err %v)", err)
	}
}

func TestPTYInit(t *testing.T) {
	t.Run("match", func(t *testing.T) {
		root := t.TempDir()
		agHome := filepath.Join(root, "home")
		env := rbBareEnv(root, agHome)
		const admin, vaultPass = "typed admin passphrase", "typed vault passphrase"
		// No passphrase file at all: the admin and the vault passphrase are
		// each asked twice.
		r, tty := ptyRun(t, env, root, []ptyStep{
			{"Choose the admin passphrase", admin},
			{"Repeat to confirm", admin},
			{"Choose the vault passphrase", vaultPass},
			{"Repeat to confirm", vaultPass},
		}, "init", "--backend", "file")
		m := r.OK(t).JSON(t)
		if m["created"] != true || m["backend"] != "file" {
			t.Errorf("init: %s", r.Stdout)
		}
		if strings.Contains(tty, admin) || strings.Contains(tty, vaultPass) {
			t.Errorf("a passphrase was echoed: %q", tty)
		}
		// The typed passphrases are the ones that took effect.
		adminFile := filepath.Join(root, "typed-admin.pass")
		vaultFile := filepath.Join(root, "typed-vault.pass")
		must(t, os.WriteFile(adminFile, []byte(admin+"\n"), 0o600))
		must(t, os.WriteFile(vaultFile, []byte(vaultPass+"\n"), 0o600))
		env = append(env, "AGENTSECRETS_VAULT_PASSPHRASE_FILE="+vaultFile)
		rbRun(t, env, root, []byte("v\n"), "secrets", "set", "AFTER_INIT", "--from-stdin").OK(t)
		b := rbRun(t, env, root, nil, "secrets", "bind", "AFTER_INIT", "api.example.com", "--passphrase-file", adminFile).OK(t).JSON(t)
		if b["approved"] != true {
			t.Errorf("bind with the typed admin passphrase: %v", b)
		}
	})
}

// TestPTYNoApprovalFromStdin: without a controlling terminal a passphrase
// piped on stdin is not an approval, and a value prompt fails cleanly.
func TestPTYNoApprovalFromStdin(t *testing.T) {
	v := NewVault(t, "file")
	v.rbRunIn([]byte("bind me\n"), "secrets", "set", "API_KEY", "--from-stdin").OK(t)
	before := rbSnapshot(t, v.Home)

	// rbRun starts the child with Setsid and no Ctty: no controlling terminal.
	r := v.rbRunIn([]byte(adminPassphrase+"\n"), "secrets", "bind", "API_KEY", "api.example.com")
	e := r.ErrorCode(t, "approval_required", 5)
	if h := rbHint(t, r, e); !strings.Contains(h, "secrets bind API_KEY api.example.com") {
		t.Errorf("hint %q does not give the command a human runs", h)
	}
	r = v.rbRunIn([]byte(adminPassphrase+"\n"), "workspace", "allowlist", "add", "api.example.com")
	rbHint(t, r, r.ErrorCode(t, "approval_required", 5))

	// A value is not read from stdin without --from-stdin either.
	r = v.rbRunIn([]byte("piped value\n"), "secrets", "set", "PIPED")
	if h := rbHint(t, r, r.ErrorCode(t, "usage", 2)); !strings.Contains(h, "--from-stdin") {
		t.Errorf("hint %q does not mention --from-stdin", h)
	}
	rbSameSnapshot(t, "commands without a terminal", before, rbSnapshot(t, v.Home))
}
