package commands

import (
	"bytes"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// The output guard is the last line of defence of "no value out": whatever
// a command prints — its result in any format, --select output, warnings,
// its error — is scanned for every value the command touched (read from or
// written to the vault in this process) before a byte of it is written. A
// hit means a bug upstream of here: the output is replaced by an `internal`
// error and never printed.

// errOutputLeak is the error that replaces output that held a value. Its
// text names no value and no field.
var errOutputLeak = errcode.WithHint(
	errcode.New(errcode.Internal, "the command's output contained a secret value it had used; the output was withheld"),
	"this is a bug in agentsecrets: please report the command you ran (never the value); `agentsecrets proxy logs --last 5` shows the request")

// touch records a value this process handled, for the output guard.
func (e *Env) touch(v []byte) {
	if len(v) > 0 {
		e.touched = append(e.touched, v)
	}
}

// outputScanner returns the redactor of every touched value, or nil.
func (e *Env) outputScanner() *broker.Redactor {
	if len(e.touched) == 0 {
		return nil
	}
	if e.scanner == nil || e.scanned != len(e.touched) {
		e.scanner, e.scanned = broker.NewRedactor(e.touched), len(e.touched)
	}
	return e.scanner
}

// guardOutput reports whether any of bufs holds a form of a touched value.
func (e *Env) guardOutput(bufs ...[]byte) bool {
	r := e.outputScanner()
	if r == nil {
		return false
	}
	for _, b := range bufs {
		if _, hit := r.Bytes(b); hit {
			return true
		}
	}
	return false
}

// renderGuarded renders result into buffers, scans them, and only then
// writes them to the real streams.
func renderGuarded(env *Env, format, selectPath string, result any) error {
	var out, errOut bytes.Buffer
	buffered := *env.IO
	buffered.Out, buffered.Err = &out, &errOut
	if err := render(&buffered, format, selectPath, result); err != nil {
		return err
	}
	if env.guardOutput(out.Bytes(), errOut.Bytes()) {
		return errOutputLeak
	}
	if errOut.Len() > 0 {
		env.IO.Err.Write(errOut.Bytes())
	}
	if out.Len() == 0 {
		// Nothing to print (mcp serve over stdio): its stdout may be closed.
		return nil
	}
	_, err := env.IO.Out.Write(out.Bytes())
	return err
}
