package commands

import (
	"bytes"
	"sync"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
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

// valueGuard holds the values a process handled and their redactor, built
// once per set (by the broker, which alone reveals the bytes). Long-running
// servers touch values from concurrent requests, hence the lock.
type valueGuard struct {
	mu      sync.Mutex
	values  []secret.Value
	scanner *broker.Redactor
	scanned int
	// preparing is closed when the build prepareScanner started ends.
	preparing chan struct{}
}

// touch records a value this process handled, for the output guard. A
// server reads the same values again as versions change; each is kept once.
func (e *Env) touch(v secret.Value) {
	if v.Empty() {
		return
	}
	if e.guard == nil {
		e.guard = &valueGuard{} // only before Main: tests that call a command's parts directly
	}
	g := e.guard
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.values {
		if t.Equal(v) {
			return
		}
	}
	// A copy: the owner (a Released, a cache) may wipe its value while
	// output that could hold it is still to be scanned.
	g.values = append(g.values, v.Clone())
}

// guardMinValue is the shortest value the guard looks for. A shorter one
// (a test's "v", a PIN) occurs by chance in ordinary output — versions,
// timestamps, names — and a guard that fails honest commands gets turned
// off; the redactor still replaces such values in upstream responses.
const guardMinValue = 8

// outputScanner returns the redactor of every touched value, or nil.
func (e *Env) outputScanner() *broker.Redactor {
	g := e.guard
	if g == nil {
		return nil
	}
	g.mu.Lock()
	preparing := g.preparing
	g.mu.Unlock()
	if preparing != nil {
		<-preparing
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.scanner == nil || g.scanned != len(g.values) {
		g.scanner, g.scanned = broker.NewValueRedactor(g.values, guardMinValue), len(g.values)
	}
	return g.scanner
}

// prepareScanner readies the scanner of the values touched so far, for a
// command that waits (a request in flight) between reading its values and
// printing: outputScanner then finds it ready instead of building it on
// the way to the output. have is the redactor the command's request built:
// when it was built for exactly those values, it is the scanner, and
// nothing is built again; else the scanner is built in the background.
// Values touched later are added by outputScanner as usual.
func (e *Env) prepareScanner(have *broker.Redactor) {
	g := e.guard
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.preparing != nil || g.scanned == len(g.values) {
		return
	}
	if have.BuiltFor(g.values, guardMinValue) {
		g.scanner, g.scanned = have, len(g.values)
		return
	}
	done := make(chan struct{})
	g.preparing = done
	// The values are the guard's own copies and only ever appended to, so
	// the prefix read here does not change under the build.
	values := g.values
	go func() {
		defer close(done)
		r := broker.NewValueRedactor(values, guardMinValue)
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(values) > g.scanned {
			g.scanner, g.scanned = r, len(values)
		}
		g.preparing = nil
	}()
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
	raw := env.globals != nil && env.globals.Raw
	if err := render(&buffered, format, selectPath, raw, result); err != nil {
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
