// Package term reads from the controlling terminal, never from stdin, so a
// program that pipes into agentsecrets cannot answer a prompt meant for a
// human (the approval passphrase, a hidden secret value).
package term

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	xterm "golang.org/x/term"
)

// ErrNoTerminal: there is no controlling terminal to prompt on.
var ErrNoTerminal = errcode.New(errcode.Usage, "no terminal to prompt on")

// ReadSecret prints prompt on the controlling terminal and reads one line
// with echo off. The line ending is not included. A signal that ends the
// process while echo is off (Ctrl-C, SIGTERM, a hang-up) first restores the
// terminal as it was, then ends the process as the signal would have: not
// every shell restores the terminal of a program a signal killed.
func ReadSecret(prompt string) ([]byte, error) {
	in, out, err := openTerminal()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	defer in.Close()
	if out != in {
		defer out.Close()
	}
	fd := int(in.Fd())
	if !xterm.IsTerminal(fd) {
		return nil, ErrNoTerminal
	}
	saved, err := xterm.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read the terminal's settings: %w", err)
	}
	// Caught before echo goes off, so no signal finds it off unhandled.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, endSignals...)
	defer signal.Stop(sigs)
	fmt.Fprint(out, prompt)
	type line struct {
		b   []byte
		err error
	}
	read := make(chan line, 1)
	go func() {
		b, err := xterm.ReadPassword(fd)
		read <- line{b, err}
	}()
	select {
	case l := <-read:
		fmt.Fprintln(out)
		if l.err != nil {
			return nil, fmt.Errorf("read from terminal: %w", l.err)
		}
		return l.b, nil
	case sig := <-sigs:
		restoreErr := xterm.Restore(fd, saved)
		fmt.Fprintln(out)
		if restoreErr != nil {
			fmt.Fprintf(out, "agentsecrets: could not switch echo back on (%v); run `stty sane`\n", restoreErr)
		}
		EndBy(sig)
		return nil, errors.New("interrupted at the prompt") // not reached: EndBy ends the process
	}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return f != nil && xterm.IsTerminal(int(f.Fd()))
}

var errNoTTY = errors.New("cannot open the controlling terminal")

// Show writes text to the controlling terminal, never to stdout or
// stderr: for what only the human at the terminal may see (the account's
// recovery kit), which a program capturing the output must not get.
func Show(text string) error {
	in, out, err := openTerminal()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	defer in.Close()
	if out != in {
		defer out.Close()
	}
	if !xterm.IsTerminal(int(out.Fd())) {
		return ErrNoTerminal
	}
	_, err = fmt.Fprint(out, text)
	return err
}
