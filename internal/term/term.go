// Package term reads from the controlling terminal, never from stdin, so a
// program that pipes into agentsecrets cannot answer a prompt meant for a
// human (the approval passphrase, a hidden secret value).
package term

import (
	"errors"
	"fmt"
	"os"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	xterm "golang.org/x/term"
)

// ErrNoTerminal: there is no controlling terminal to prompt on.
var ErrNoTerminal = errcode.New(errcode.Usage, "no terminal to prompt on")

// ReadSecret prints prompt on the controlling terminal and reads one line
// with echo off. The line ending is not included.
func ReadSecret(prompt string) ([]byte, error) {
	in, out, err := openTerminal()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	defer in.Close()
	if out != in {
		defer out.Close()
	}
	if !xterm.IsTerminal(int(in.Fd())) {
		return nil, ErrNoTerminal
	}
	fmt.Fprint(out, prompt)
	b, err := xterm.ReadPassword(int(in.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("read from terminal: %w", err)
	}
	return b, nil
}

// ReadSecretConfirmed asks twice and fails if the answers differ.
func ReadSecretConfirmed(prompt string) ([]byte, error) {
	a, err := ReadSecret(prompt)
	if err != nil {
		return nil, err
	}
	b, err := ReadSecret("Repeat to confirm: ")
	if err != nil {
		return nil, err
	}
	if string(a) != string(b) {
		return nil, errcode.New(errcode.Usage, "the two entries differ")
	}
	return a, nil
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
