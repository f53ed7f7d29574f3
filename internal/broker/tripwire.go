package broker

// The echo tripwire's durable side (policy.EchoLog holds the rules): every
// response in which a value echoed is an event for that secret × origin,
// recorded in a state file beside the index so that one-shot `call`s, the
// proxy and MCP all count towards the same threshold; past it, the
// binding is suspended in the index. Both files change under the index
// lock, in one critical section, so no process loses another's events.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// EchoFile is the tripwire's state file, beside index.json.
func EchoFile(d home.Dirs) string { return filepath.Join(d.Data, "echoes.json") }

// echoedIndexes is the one place that says which of the redactor's values
// echoed in a response: indexes into the values given to NewRedactor, from
// the headers and the body read so far.
func echoedIndexes(resp *Response) []int {
	out := slices.Clone(resp.headerHits)
	if resp.body != nil {
		out = append(out, resp.body.Hits()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// echoedSecrets maps redactor value indexes to secret names, once each.
func echoedSecrets(names []string, idx []int) []string {
	var out []string
	for _, i := range idx {
		if i >= 0 && i < len(names) && !slices.Contains(out, names[i]) {
			out = append(out, names[i])
		}
	}
	return out
}

// tripwired keeps the secrets with a binding to origin that the tripwire
// watches: one a human exempted with AllowEcho costs no state-file write.
func tripwired(proj *vault.Project, secrets []string, origin target) []string {
	var out []string
	for _, name := range secrets {
		s := proj.Secrets[name]
		if s == nil {
			continue
		}
		for _, bd := range s.Bindings {
			if !bd.AllowEcho && bd.MatchesOrigin(origin.url.Scheme, origin.host, origin.port) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// echoBatch is one response's echo events, kept until the state file has
// them.
type echoBatch struct {
	sel     vault.Selection
	secrets []string
	t       target
}

// recordEchoes is recordEcho, keeping the events of a failed write for
// recordUnrecorded: the proxy and MCP have already streamed the response
// when it fails, so the count must not be lost with the error.
func (b *Broker) recordEchoes(ctx context.Context, sel vault.Selection, secrets []string, t target) error {
	err := b.recordEcho(ctx, sel, secrets, t)
	if err != nil {
		b.echoMu.Lock()
		b.unrecorded = append(b.unrecorded, echoBatch{sel, secrets, t})
		b.echoMu.Unlock()
	}
	return err
}

// recordUnrecorded writes the echo events earlier failures kept, oldest
// first; it fails (unavailable) while the state file still cannot take
// them.
func (b *Broker) recordUnrecorded(ctx context.Context) error {
	b.echoMu.Lock()
	defer b.echoMu.Unlock()
	for len(b.unrecorded) > 0 {
		e := b.unrecorded[0]
		if err := b.recordEcho(ctx, e.sel, e.secrets, e.t); err != nil {
			return err
		}
		b.unrecorded = b.unrecorded[1:]
	}
	return nil
}

// recordEcho records one echo event per secret from origin t and
// suspends every binding that reached the threshold. The tripwire is the
// boundary redaction is not, so an event that cannot be recorded fails the
// front end as an unwritable audit log does (`unavailable`): `call` then
// prints nothing, and the next request's check finds the same fault.
func (b *Broker) recordEcho(ctx context.Context, sel vault.Selection, secrets []string, t target) error {
	if len(secrets) == 0 {
		return nil
	}
	now := b.cfg.Now().UTC()
	events := make([]policy.EchoEvent, 0, len(secrets))
	for _, s := range secrets {
		events = append(events, policy.EchoEvent{Workspace: sel.Workspace, Project: sel.Project, Secret: s,
			Scheme: t.url.Scheme, Host: t.host, Port: t.port, At: now})
	}
	err := b.cfg.Store.Update(ctx, func(ix *vault.Index) error {
		log, err := ReadEchoLog(b.cfg.Store.Dirs)
		if err != nil {
			return err
		}
		tripped := log.Record(events, now)
		if err := WriteEchoLog(b.cfg.Store.Dirs, log); err != nil {
			return err
		}
		proj, err := ix.Project(sel)
		if err != nil {
			return vault.ErrUnchanged
		}
		changed := false
		for _, e := range tripped {
			if s := proj.Secrets[e.Secret]; s != nil && policy.Suspend(s.Bindings, e, now) {
				changed = true
			}
		}
		if !changed {
			return vault.ErrUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, vault.ErrUnchanged) {
		return errcode.WithHint(errcode.Errorf(errcode.Unavailable, "record an echo for the tripwire: %w", err), "run `agentsecrets doctor`")
	}
	return nil
}

// ReadEchoLog reads the tripwire state. Call it holding the index lock
// (inside Store.Update). A missing file is an empty log; an unreadable
// one is too, after a crash mid-write cannot leave one (it is replaced
// atomically), so only tampering could, and that needs the rights to
// edit the index itself.
func ReadEchoLog(d home.Dirs) (*policy.EchoLog, error) {
	log := &policy.EchoLog{}
	f, err := atomicfile.OpenRegular(EchoFile(d), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return log, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEchoLog))
	if err != nil {
		return nil, err
	}
	if json.Unmarshal(b, log) != nil {
		return &policy.EchoLog{}, nil
	}
	return log, nil
}

// maxEchoLog bounds what is read: the log keeps a few events per binding.
const maxEchoLog = 16 << 20

// WriteEchoLog replaces the tripwire state atomically. Call it holding the index lock. Its temp file carries the vault's
// temp prefix, so a writer that crashed leaves nothing the next one does
// not remove.
func WriteEchoLog(d home.Dirs, log *policy.EchoLog) error {
	b, err := json.Marshal(log)
	if err != nil {
		return err
	}
	return atomicfile.Write(EchoFile(d), b, 0o600, ".tmp-echoes.json-", nil)
}
