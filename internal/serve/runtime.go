// Package serve is the runtime every long-running front end shares (the
// local proxy, `mcp serve`, and the forward proxy and broker daemon to
// come): the vault opened once, one broker with its index and value caches,
// the batching audit writer and the loopback HTTP plumbing (listen, token
// file, Host and token checks, JSON errors, shutdown and drain). Front ends
// are thin adapters on it; the commands only parse flags and render.
package serve

import (
	"context"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Options configure a Runtime.
type Options struct {
	// Open opens the vault. It is called on first use and again after a
	// failure: a server started before `agentsecrets init` works once the
	// vault exists.
	Open func() (*vault.Store, error)
	// MaxResponse and Timeout are the broker's defaults; requests may
	// carry their own.
	MaxResponse int64
	Timeout     time.Duration
	Now         func() time.Time
}

// Runtime is what a long-running front end keeps between requests. It is
// safe for concurrent use.
type Runtime struct {
	opts Options

	mu      sync.Mutex
	st      *vault.Store
	auditor *audit.Writer
	brk     *broker.Broker
	// closing is set by Close: from then on Async runs its work on the
	// caller's goroutine, which the server's shutdown waits for.
	closing bool
	// audits counts audit records still being written off the reply's
	// path; Flush and Close wait for them.
	audits inFlight
}

// New returns a runtime; nothing is opened until first use.
func New(opts Options) *Runtime { return &Runtime{opts: opts} }

// Broker opens the vault on first use and returns the one broker. Nothing
// per call (response cap, timeout) selects it: those travel on the
// broker.Request, so one transport and connection pool serve every caller.
func (r *Runtime) Broker() (*broker.Broker, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.brk != nil {
		return r.brk, nil
	}
	st, err := r.opts.Open()
	if err != nil {
		return nil, err
	}
	// A long-running front end writes its audit records in batches,
	// keeping the log open; Close writes what is queued and syncs.
	r.st = st
	r.auditor = audit.Open(st.Dirs.State, audit.Options{}).NewWriter()
	r.brk = broker.New(broker.Config{Store: st, Audit: r.auditor, MaxResponse: r.opts.MaxResponse, Timeout: r.opts.Timeout, Now: r.opts.Now})
	return r.brk, nil
}

// Store is the opened vault.
func (r *Runtime) Store() (*vault.Store, error) {
	if _, err := r.Broker(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st, nil
}

// Index is the vault's index from the broker's cache (re-read only when
// the file was replaced): the user may switch projects while a server runs.
func (r *Runtime) Index() (*vault.Index, error) {
	b, err := r.Broker()
	if err != nil {
		return nil, err
	}
	return b.Index()
}

// Check proves the vault's values can be read: the backend opens (a file
// vault has its passphrase), answers, and holds the fingerprint key. A server whose
// vault cannot be opened is not healthy, however well it listens.
func (r *Runtime) Check(ctx context.Context) error {
	st, err := r.Store()
	if err != nil {
		return err
	}
	return st.Probe(ctx)
}

// Async runs f (closing a response, which appends its audit record) off
// the reply's path. A failed append makes the writer refuse the next
// requests (broker.Auditor's Ready), so nothing is lost silently. Once
// Close has begun, f runs before Async returns: a request cut off at
// shutdown still ends in its handler, which the server waits for, and not
// in a goroutine the process would not wait for.
func (r *Runtime) Async(f func()) {
	r.mu.Lock()
	closing := r.closing
	if !closing {
		r.audits.start()
	}
	r.mu.Unlock()
	if closing {
		f()
		return
	}
	go func() {
		defer r.audits.end()
		f()
	}()
}

// Flush waits until the records of every request answered so far are in
// the log: a front end reads its own writes.
func (r *Runtime) Flush(ctx context.Context) error {
	r.audits.wait(0)
	r.mu.Lock()
	w := r.auditor
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.Flush(ctx)
}

// Close waits for pending records, writes them and syncs the log. Call it
// after the HTTP server has shut down.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.audits.wait(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auditor == nil {
		return nil
	}
	return r.auditor.Close()
}
