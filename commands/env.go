package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/term"
	"github.com/agentsecrets/agentsecrets/internal/vault"
	"github.com/alecthomas/kong"
)

// IO is the process's streams plus what is known about them. TTY logic
// lives here and nowhere else.
type IO struct {
	In        io.Reader
	Out       io.Writer
	Err       io.Writer
	StdinTTY  bool
	StdoutTTY bool
	// Colour says which streams text output may colour (DecideColours);
	// the zero value, no colour, is what tests and the broker get.
	Colour Colours
	// Prompt reads a line from the controlling terminal with echo off.
	Prompt func(prompt string) ([]byte, error)
	// Show writes to the controlling terminal, never to Out or Err: for
	// what only a human may see (the recovery kit).
	Show func(text string) error
}

// TestIO returns streams backed by buffers, every TTY flag false and no
// terminal to prompt on.
func TestIO() (*IO, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errb := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IO{
		In: in, Out: out, Err: errb,
		Prompt: func(string) ([]byte, error) { return nil, term.ErrNoTerminal },
		Show:   func(string) error { return term.ErrNoTerminal },
	}, in, out, errb
}

// Env is everything a command may use, built once per process and bound
// into kong. It holds no state a command can change for another.
type Env struct {
	IO     *IO
	Getenv func(string) string
	// Environ is the whole environment, for the children `env` starts.
	Environ func() []string
	Now     func() time.Time
	// Cwd is where project links (.agentsecrets/project.json) are searched.
	Cwd     string
	Context context.Context
	// Serve runs the sync server; nil in agentsecrets, which hands
	// `server` over to the agentsecrets-server executable (server.go).
	Serve ServeFunc

	globals *Globals
	store   *vault.Store
	// parser is the one that parsed this process's command line; its model
	// is read-only after parsing (mcp serve reads schemas from it).
	parser *kong.Kong

	// guard holds the values this process read or stored, for the output
	// guard (outputguard.go). Main creates it before any command runs; a
	// copy of the Env (mcp serve's per-session one) shares it.
	guard *valueGuard

	// side reaches the user's files and project links; nil is this
	// process's own filesystem (userside.go).
	side userSide
	// limits are what the broker daemon's client may use (nil: anything).
	limits *limits
	// daemon is set when the broker daemon runs the command for a client.
	daemon bool
}

// SystemEnv is the real process environment.
func SystemEnv() *Env {
	cwd, _ := os.Getwd()
	stdoutTTY := term.IsTerminal(os.Stdout)
	return &Env{
		IO: &IO{
			In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
			StdinTTY:  term.IsTerminal(os.Stdin),
			StdoutTTY: stdoutTTY,
			Colour:    DecideColours(stdoutTTY, term.IsTerminal(os.Stderr), os.Getenv),
			Prompt:    term.ReadSecret,
			Show:      term.Show,
		},
		Getenv:  os.Getenv,
		Environ: os.Environ,
		Now:     time.Now,
		Cwd:     cwd,
		Context: context.Background(),
	}
}

// Dirs resolves where files live.
func (e *Env) Dirs() (home.Dirs, error) {
	d, err := home.Resolve(e.Getenv)
	if err != nil {
		return home.Dirs{}, errcode.WithHint(errcode.Errorf(errcode.Usage, "locate home: %w", err), "set AGENTSECRETS_HOME=DIR")
	}
	return d, nil
}

func (e *Env) storeOptions() vault.Options {
	return vault.Options{Getenv: e.Getenv, Now: e.Now, VaultPassphrase: e.vaultPassphrase, OnValue: e.touch, OnUnlock: debug.FreeOSMemory}
}

// Store opens the vault on first use; commands that need none (schema,
// --help) never touch the keychain or the disk.
func (e *Env) Store() (*vault.Store, error) {
	if e.store != nil {
		return e.store, nil
	}
	d, err := e.Dirs()
	if err != nil {
		return nil, err
	}
	st, err := vault.Open(d, e.storeOptions())
	if err != nil {
		return nil, err
	}
	e.store = st
	return st, nil
}

// vaultPassphrase reads the file backend's passphrase from the file named by
// --vault-passphrase-file / AGENTSECRETS_VAULT_PASSPHRASE_FILE, else from
// the terminal. Never from argv, stdin or an environment variable's value.
// A new one (isNew, at init) is asked twice on the terminal.
func (e *Env) vaultPassphrase(isNew bool) ([]byte, error) {
	return e.readVaultPassphrase(isNew, checkNewPassphrase)
}

// vaultPassphraseIntro is shown before a new vault passphrase is asked for.
const vaultPassphraseIntro = `Values will live in an encrypted file: the vault passphrase encrypts it, and
must differ from the admin passphrase. Commands ask for it on the terminal; to
script them (init too), write it to a file only you can read and set
AGENTSECRETS_VAULT_PASSPHRASE_FILE=PATH.
`

// readVaultPassphrase is vaultPassphrase with check the rule a new
// passphrase typed on the terminal must meet before it is confirmed.
func (e *Env) readVaultPassphrase(isNew bool, check func([]byte) error) ([]byte, error) {
	path := e.Getenv("AGENTSECRETS_VAULT_PASSPHRASE_FILE")
	// In the broker daemon the vault's passphrase is its own file: a path a
	// client names is never read as the daemon's user.
	if e.globals != nil && e.globals.VaultPassphraseFile != "" && !e.daemon {
		path = e.globals.VaultPassphraseFile
	}
	if path != "" {
		return readPassphraseFile(path, "--vault-passphrase-file")
	}
	noTerminal := func(err error) error {
		return errcode.WithHint(fmt.Errorf("the file vault needs its passphrase: %w", err),
			"run on a terminal, or set AGENTSECRETS_VAULT_PASSPHRASE_FILE=PATH (a file holding the passphrase)")
	}
	if !isNew {
		p, err := e.IO.Prompt("Vault passphrase: ")
		if err != nil {
			return nil, noTerminal(err)
		}
		return p, nil
	}
	return e.askNew(newSecret{
		intro:  vaultPassphraseIntro,
		prompt: "Choose the vault passphrase (encrypts the vault file): ",
		check:  check, rerun: "agentsecrets init", noTerminal: noTerminal,
	})
}

// userFileError reports a file the user named (with flag) that could not
// be read. The path is quoted only as atomicfile.ShowPath allows: a value
// typed where the path belongs must not come back in the error. The
// *fs.PathError's own text would quote it whole, so only its cause is kept.
func userFileError(flag, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return errcode.Errorf(errcode.NotFound, "read %s %s: %v", flag, atomicfile.ShowPath(path), err)
}

// maxPassphraseFile bounds what is read from a passphrase file.
const maxPassphraseFile = 64 << 10

// readPassphraseFile reads a passphrase from a file, dropping one trailing
// newline. The file must be a regular file (a symlink to one is
// followed), owned by the user and readable by nobody else: never stdin, a
// FIFO, a device or a directory, which is how a passphrase would be piped in
// by another program. A FIFO is opened without blocking. The error never
// contains the file's content, and names the path only as ShowPath allows.
func readPassphraseFile(path, flag string) ([]byte, error) {
	shown := atomicfile.ShowPath(path)
	hint := "write the passphrase to a regular file only you can read (chmod 600 FILE) and pass its path"
	notRegular := func(err error) error {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "%s %s: %v; a passphrase is read only from a regular file, never from stdin, a pipe or a device", flag, shown, err), hint)
	}
	// Stat follows symlinks (and /dev/stdin's magic link) without opening
	// anything, so a FIFO or a device is named before any open.
	if err := atomicfile.CheckRegular(path); err != nil && !errors.Is(err, atomicfile.ErrNotRegular) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s %s: no such file", flag, shown), hint)
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		if err != nil {
			return nil, notRegular(fmt.Errorf("%w (a symlink that does not lead to a file)", atomicfile.ErrNotRegular))
		}
		return nil, notRegular(atomicfile.NotRegular(st.Mode()))
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, notRegular(fmt.Errorf("%w (cannot resolve the symlink)", atomicfile.ErrNotRegular))
	}
	f, err := atomicfile.OpenRegular(real, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, atomicfile.ErrNotRegular) {
			return nil, notRegular(err)
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s %s: cannot open it: %v", flag, shown, errors.Unwrap(err)), hint)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "%s %s: stat: %v", flag, shown, err)
	}
	if err := atomicfile.CheckPrivate(st); err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s %s: %v", flag, shown, err), "chmod 600 "+shown+" (and make sure you own it)")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		return nil, errcode.Errorf(errcode.Unavailable, "%s %s: read: %v", flag, shown, errors.Unwrap(err))
	}
	if len(b) > maxPassphraseFile {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s %s is larger than %d KiB", flag, shown, maxPassphraseFile>>10), hint)
	}
	b = trimNewline(b)
	if len(b) == 0 {
		return nil, errcode.Errorf(errcode.Usage, "%s %s is empty", flag, shown)
	}
	return b, nil
}

func trimNewline(b []byte) []byte {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	return []byte(s)
}

func (e *Env) ctx() context.Context {
	if e.Context != nil {
		return e.Context
	}
	return context.Background()
}

func (e *Env) hasVaultPassphraseFile() bool {
	return e.Getenv("AGENTSECRETS_VAULT_PASSPHRASE_FILE") != "" || e.globals != nil && e.globals.VaultPassphraseFile != ""
}
