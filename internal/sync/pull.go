package sync

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// state is one project as both sides see it: the index (read once), the
// server's heads, and every version the server returned, verified.
type state struct {
	sel    vault.Selection
	remote vault.RemoteWorkspace
	proj   *vault.Project
	heads  map[string]Remote
	known  map[string]Known
	// opened holds the verified versions per name, oldest first; keys
	// are loaded when there were any (or when the caller needs them).
	opened map[string][]OpenedSecret
	keys   *Keys
}

func (s *state) wipe() {
	for _, vs := range s.opened {
		for _, o := range vs {
			o.Content.Value.Wipe()
		}
	}
	if s.keys != nil {
		s.keys.Wipe()
	}
}

// head returns the newest verified version of name, nil if the server
// returned none (the head is the version this device knows).
func (s *state) head(name string) *OpenedSecret {
	vs := s.opened[name]
	if len(vs) == 0 {
		return nil
	}
	return &vs[len(vs)-1]
}

// headHash is the envelope hash the next version of name must name.
func (s *state) headHash(name string) string {
	if h := s.head(name); h != nil {
		return h.Hash
	}
	return s.known[name].Hash
}

// knownOf is what this device verified of each name: the version a stored
// secret matched, else a tombstone's.
func knownOf(p *vault.Project) map[string]Known {
	out := map[string]Known{}
	if p.Sync != nil {
		for n, t := range p.Sync.Tombstones {
			out[n] = Known{Version: t.Version, Hash: t.Hash}
		}
	}
	for n, s := range p.Secrets {
		if s.Synced != nil {
			out[n] = Known{Version: s.Synced.Version, Hash: s.Synced.Hash}
		}
	}
	return out
}

// fetch asks the server for everything after what this device knows and
// verifies it: every version's signature, associated data and place in
// its hash chain (VerifyChain), and no head below what is known. With
// needKeys, or when anything new came back, it loads the project's keys;
// a diff that finds nothing moved costs one request and no key.
func (c *Conn) fetch(ctx context.Context, sel vault.Selection, needKeys bool) (*state, error) {
	ix := c.ix
	if needKeys || ix == nil {
		// A pull or push decides from the index: an interrupted pull's
		// stored values are adopted first, or they would look like local
		// changes made behind the decision's back.
		if err := c.Store.SettleInterrupted(ctx); err != nil {
			return nil, err
		}
		var err error
		if ix, err = c.Store.Index(); err != nil {
			return nil, err
		}
	}
	c.ix = nil // used once: later steps read the index as it is then
	remote, proj, err := remoteOf(ix, sel)
	if err != nil {
		return nil, err
	}
	if err := c.checkServer(remote); err != nil {
		return nil, err
	}
	st := &state{sel: sel, remote: *remote, proj: proj, known: knownOf(proj), heads: map[string]Remote{}, opened: map[string][]OpenedSecret{}}
	req := syncapi.PullRequest{Known: map[string]int{}}
	for n, k := range st.known {
		req.Known[n] = k.Version
	}
	resp, err := c.Client.Pull(ctx, remote.ID, sel.Project, req)
	if err != nil {
		return nil, err
	}
	// An admin device holding invite codes of this workspace opens its
	// keys anyway: that is where accepted invites get completed.
	if needKeys || len(resp.Versions) > 0 || holdsInvites(ix, remote.ID) {
		if st.keys, err = c.projectKeys(ctx, remote.ID, sel.Project); err != nil {
			return nil, err
		}
	}
	byName := map[string][]syncapi.SecretVersion{}
	for _, v := range resp.Versions {
		byName[v.Name] = append(byName[v.Name], v)
	}
	names := map[string]bool{}
	for n := range resp.Heads {
		names[n] = true
	}
	for n := range st.known {
		names[n] = true
	}
	for n := range byName {
		names[n] = true
	}
	for _, n := range vault.SortedKeys(names) {
		if err := vault.CheckSecretName(n); err != nil {
			st.wipe()
			return nil, errcode.Errorf(errcode.Conflict, "the server listed a secret with an invalid name in project %s", sel.Project)
		}
		keys := ProjectKeys{Current: proj.Sync.KeyVersion}
		var lookup SignerLookup
		if st.keys != nil {
			keys, lookup = st.keys.projectKeySet(), st.keys.lookup
		}
		ref := SecretRef{WorkspaceID: remote.ID, Project: sel.Project, Name: n}
		opened, err := VerifyChain(ref, st.known[n], resp.Heads[n], byName[n], keys, lookup)
		if err != nil {
			st.wipe()
			return nil, err
		}
		st.opened[n] = opened
		if st.keys != nil {
			// Bindings change only by an admin's signature (policy.go).
			if err := checkPolicy(ref, knownBase(proj, n, st.known[n]), opened, st.keys.roster.Role); err != nil {
				st.wipe()
				return nil, err
			}
		}
		r := Remote{Head: resp.Heads[n]}
		if len(opened) > 0 {
			r.Deleted = opened[len(opened)-1].Content.Deleted
		} else if proj.Sync.Tombstones != nil {
			r.Deleted = proj.Sync.Tombstones[n].Deleted && proj.Sync.Tombstones[n].Version == r.Head
		}
		if r.Head > 0 {
			st.heads[n] = r
		}
	}
	return st, nil
}

// fetchDiff fetches sel (fetch) and compares it with the index for
// names: the first step of a diff, a pull and a push. The caller wipes
// the state.
func (c *Conn) fetchDiff(ctx context.Context, sel vault.Selection, names []string, needKeys bool) (*state, []NameDiff, error) {
	st, err := c.fetch(ctx, sel, needKeys)
	if err != nil {
		return nil, nil, err
	}
	diffs, err := DiffProject(st.proj, st.heads, names, c.same(ctx, st))
	if err != nil {
		st.wipe()
		return nil, nil, err
	}
	for i := range diffs {
		if h := st.head(diffs[i].Name); h != nil && h.Content.RotateUpstream && diffs[i].State != LocalNewer {
			// The server's newest version carries the mark (a removal
			// re-sealed it) and a pull would bring it here.
			diffs[i].RotateUpstream = true
		}
	}
	return st, diffs, nil
}

// same compares the local value of name with the remote head by the keyed
// sync fingerprint, and their bindings: the one place a diff reads a
// value, for a name both sides changed.
func (c *Conn) same(ctx context.Context, st *state) func(name string) (bool, error) {
	return func(name string) (bool, error) {
		h := st.head(name)
		local := st.proj.Secrets[name]
		if h == nil || st.keys == nil || local == nil || h.Content.Deleted {
			return false, nil
		}
		v, err := c.Store.Value(ctx, st.sel, name)
		if err != nil {
			return false, err
		}
		defer v.Wipe()
		// The head's fingerprint is keyed by the key it was sealed under.
		key := st.keys.projectKeySet().ByVersion[h.Header.KeyVersion]
		if key == nil {
			return false, nil
		}
		fp, err := SyncFingerprint(key, SecretRef{WorkspaceID: st.remote.ID, Project: st.sel.Project, Name: name}, v)
		if err != nil {
			return false, err
		}
		return crypto.FingerprintEqual(fp, h.Content.Fingerprint) &&
			vault.BindingsDigest(local.Bindings) == vault.BindingsDigest(h.Content.Bindings), nil
	}
}

// DiffResult is a project's diff.
type DiffResult struct {
	Workspace string     `json:"workspace"`
	Project   string     `json:"project"`
	Secrets   []NameDiff `json:"secrets"`
	CheckedAt time.Time  `json:"checked_at"`
	TeamNotes
}

// Diff compares a project with the server and records what is out of sync
// in the index (what `status` shows as drift).
func (c *Conn) Diff(ctx context.Context, sel vault.Selection, names []string) (*DiffResult, error) {
	st, diffs, err := c.fetchDiff(ctx, sel, names, false)
	if err != nil {
		return nil, err
	}
	defer st.wipe()
	now := c.now().UTC()
	if ps := st.proj.Sync; ps.CheckedAt != nil && now.Sub(*ps.CheckedAt) < recheckWrite && sameDrift(ps, diffs, names, now) {
		// Nothing new to record: skipping the locked index write keeps a
		// diff close to the cost of `status`.
		return &DiffResult{Workspace: sel.Workspace, Project: sel.Project, Secrets: diffs, CheckedAt: now, TeamNotes: c.notes}, nil
	}
	err = c.Store.Update(ctx, func(ix *vault.Index) error {
		p, err := ix.Project(sel)
		if err != nil || p.Sync == nil {
			return err
		}
		recordDrift(p.Sync, diffs, names, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &DiffResult{Workspace: sel.Workspace, Project: sel.Project, Secrets: diffs, CheckedAt: now, TeamNotes: c.notes}, nil
}

// recheckWrite is how long a diff that finds the drift unchanged may
// leave the recorded check time alone.
const recheckWrite = time.Minute

// sameDrift reports whether recording diffs would change nothing but the
// check time.
func sameDrift(ps *vault.ProjectSync, diffs []NameDiff, names []string, now time.Time) bool {
	next := *ps
	next.Drift = append([]vault.Drift(nil), ps.Drift...)
	recordDrift(&next, diffs, names, now)
	if len(next.Drift) != len(ps.Drift) {
		return false
	}
	for i := range next.Drift {
		if next.Drift[i] != ps.Drift[i] {
			return false
		}
	}
	return true
}

// recordDrift stores what diffs found out of sync; with names, only those
// names' entries are replaced.
func recordDrift(ps *vault.ProjectSync, diffs []NameDiff, names []string, now time.Time) {
	var keep []vault.Drift
	for _, d := range ps.Drift {
		if len(names) > 0 && !contains(names, d.Name) {
			keep = append(keep, d)
		}
	}
	ps.Drift = append(keep, Drift(diffs)...)
	sort.Slice(ps.Drift, func(i, j int) bool { return ps.Drift[i].Name < ps.Drift[j].Name })
	ps.CheckedAt = &now
}

func contains(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// PullEntry is what a pull did to one name.
type PullEntry struct {
	Name string `json:"name"`
	// State is the diff state the pull decided from.
	State string `json:"state" jsonschema:"enum=in_sync,enum=local_only,enum=remote_only,enum=local_newer,enum=remote_newer,enum=conflict"`
	// Action is created, updated, deleted, unchanged (already the remote
	// version) or skipped (a local change to push, not pull).
	Action        string `json:"action" jsonschema:"enum=created,enum=updated,enum=deleted,enum=unchanged,enum=skipped"`
	Version       int    `json:"version"`
	RemoteVersion int    `json:"remote_version"`
}

// PullResult is a project's pull.
type PullResult struct {
	Workspace string      `json:"workspace"`
	Project   string      `json:"project"`
	Secrets   []PullEntry `json:"secrets"`
	// Synced counts the names whose value or metadata the pull changed.
	Synced int `json:"synced"`
	// Allowlist is the allowlist version now applied, when the pull
	// changed it.
	Allowlist int `json:"allowlist_version,omitempty"`
	TeamNotes
}

// ErrPullConflict: names changed both here and on the server.
var ErrPullConflict = errcode.New(errcode.Conflict, "secrets changed both here and on the server")

// conflictError names the secrets a pull or push cannot settle alone.
func conflictError(base error, names []string, hint string) error {
	return errcode.WithHint(&namedConflict{err: base, names: names}, hint)
}

// namedConflict carries the names of a conflict.
type namedConflict struct {
	err   error
	names []string
}

func (e *namedConflict) Error() string { return e.err.Error() + ": " + strings.Join(e.names, ", ") }
func (e *namedConflict) Unwrap() error { return e.err }

// Pull brings a project to the server's state: every verified newer
// version is written into the local vault in one store update
// (vault.ApplyPull), the allowlist document chain too. A name changed on
// both sides is a conflict and nothing is written, unless force (a human
// on a terminal) takes the server's version over the local change.
func (c *Conn) Pull(ctx context.Context, sel vault.Selection, names []string, force bool) (*PullResult, error) {
	st, diffs, err := c.fetchDiff(ctx, sel, names, true)
	if err != nil {
		return nil, err
	}
	defer st.wipe()
	var conflicts []string
	for _, d := range diffs {
		if d.State == Conflict && !force {
			conflicts = append(conflicts, d.Name)
		}
	}
	if len(conflicts) > 0 {
		return nil, conflictError(ErrPullConflict, conflicts,
			"nothing was pulled; `agentsecrets secrets diff` lists them: pull the other names with `agentsecrets secrets pull NAME…`, keep this device's values with `agentsecrets secrets push --force`, or take the server's with `agentsecrets secrets pull --force` (a human, on a terminal)")
	}
	allow, err := c.pullAllowlist(ctx, st)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Workspace: sel.Workspace, Project: sel.Project, Secrets: []PullEntry{}}
	var pulls []vault.Pulled
	entries := map[string]int{} // name → index in res.Secrets
	for _, d := range diffs {
		e := PullEntry{Name: d.Name, State: d.State, Action: "skipped", Version: d.LocalVersion, RemoteVersion: d.RemoteVersion}
		h := st.head(d.Name)
		local := st.proj.Secrets[d.Name]
		adopt := d.State == RemoteNewer || d.State == RemoteOnly || d.State == Conflict && force ||
			d.State == InSync && h != nil && local != nil // same value reached on both sides: match it
		if d.State == InSync && h == nil {
			e.Action = "unchanged"
		}
		if adopt && h != nil {
			p := vault.Pulled{Name: d.Name, Deleted: h.Content.Deleted, Value: h.Content.Value, Bindings: h.Content.Bindings,
				Source: h.Content.Source, Version: h.Header.Version, Hash: h.Hash, RotateUpstream: h.Content.RotateUpstream}
			if local != nil {
				p.Expect = local.Version
			}
			if p.Deleted && local == nil {
				e.Action = "unchanged"
			}
			pulls = append(pulls, p)
		}
		entries[d.Name] = len(res.Secrets)
		res.Secrets = append(res.Secrets, e)
	}
	// A deletion made on both sides is matched too (DiffProject does not
	// list it), so later fetches start after it.
	for n, t := range st.proj.Sync.Tombstones {
		if h := st.head(n); h != nil && h.Content.Deleted && !t.Deleted && (len(names) == 0 || contains(names, n)) {
			pulls = append(pulls, vault.Pulled{Name: n, Deleted: true, Version: h.Header.Version, Hash: h.Hash})
		}
	}
	now := c.now().UTC()
	results, err := c.Store.ApplyPull(ctx, sel, pulls, func(ix *vault.Index) error {
		p, err := ix.Project(sel)
		if err != nil {
			return err
		}
		if allow != nil {
			if err := allow.apply(ix, sel.Workspace, now); err != nil {
				return err
			}
			res.Allowlist = allow.version
		}
		after := make([]NameDiff, 0, len(diffs))
		for _, d := range diffs {
			if d.State != RemoteNewer && d.State != RemoteOnly && !(d.State == Conflict && force) {
				after = append(after, d)
			}
		}
		if p.Sync == nil {
			p.Sync = &vault.ProjectSync{}
		}
		recordDrift(p.Sync, after, names, now)
		p.Sync.LastPull = &now
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if i, ok := entries[r.Name]; ok {
			e := &res.Secrets[i]
			e.Action, e.Version, e.RemoteVersion = r.Action, r.Version, r.RemoteVersion
			if r.Action != "unchanged" {
				res.Synced++
			}
		}
	}
	c.uploadAudit(ctx, st)
	res.TeamNotes = c.notes
	return res, nil
}

// allowlistPull is a verified newer allowlist to apply.
type allowlistPull struct {
	version int
	hash    string
	entries []policy.AllowEntry
}

// pullAllowlist fetches and verifies the allowlist versions after the one
// this device knows. A local change since the last sync that the remote
// version does not equal is a conflict.
func (c *Conn) pullAllowlist(ctx context.Context, st *state) (*allowlistPull, error) {
	head := st.keys.Detail.AllowlistVersion
	known := Known{Version: st.remote.AllowlistVersion, Hash: st.remote.AllowlistHash}
	if head == known.Version {
		return nil, nil
	}
	var versions []syncapi.AllowlistVersion
	if head > known.Version {
		got, err := c.Client.Allowlist(ctx, st.remote.ID, known.Version)
		if err != nil {
			return nil, err
		}
		versions = got.Versions
	}
	opened, err := VerifyAllowlistChain(st.remote.ID, known, head, versions, st.keys.Workspace, st.keys.admins)
	if err != nil {
		return nil, err
	}
	if len(opened) == 0 {
		return nil, nil
	}
	last := opened[len(opened)-1]
	local, err := c.localAllowlist(st.sel.Workspace)
	if err != nil {
		return nil, err
	}
	localDigest := vault.AllowlistDigest(local)
	if localDigest != st.remote.AllowlistDigest && localDigest != vault.AllowlistDigest(last.Entries) && st.remote.AllowlistVersion > 0 {
		return nil, conflictError(ErrPullConflict, []string{"allowlist"},
			"the workspace allowlist changed here and on the server; compare `agentsecrets workspace allowlist list` with the other device, then push from the one to keep (`agentsecrets secrets push --force`, a human on a terminal)")
	}
	return &allowlistPull{version: last.Header.Version, hash: last.Hash, entries: last.Entries}, nil
}

// localAllowlist is the workspace's allowlist as the index holds it now,
// what a pull and a push compare with the server's.
func (c *Conn) localAllowlist(workspace string) ([]policy.AllowEntry, error) {
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	w, err := ix.Workspace(workspace)
	if err != nil {
		return nil, err
	}
	return w.Allowlist, nil
}

// apply replaces the workspace's allowlist with the pulled one, logging
// each host added, changed or removed.
func (a *allowlistPull) apply(ix *vault.Index, ws string, now time.Time) error {
	w, err := ix.Workspace(ws)
	if err != nil {
		return err
	}
	if w.Remote == nil {
		return errcode.Errorf(errcode.Conflict, "workspace %s stopped being remote during the pull", ws)
	}
	old := map[string]policy.AllowEntry{}
	for _, e := range w.Allowlist {
		old[e.Target().String()] = e
	}
	for _, e := range a.entries {
		prev, ok := old[e.Target().String()]
		switch {
		case !ok:
			w.AllowlistLog = append(w.AllowlistLog, e.Change("added", false, now))
		case prev.AllowHTTP != e.AllowHTTP || prev.AllowPrivate != e.AllowPrivate:
			w.AllowlistLog = append(w.AllowlistLog, e.Change("updated", false, now))
		}
		delete(old, e.Target().String())
	}
	for _, t := range vault.SortedKeys(old) {
		w.AllowlistLog = append(w.AllowlistLog, old[t].Change("removed", false, now))
	}
	w.Allowlist = append([]policy.AllowEntry{}, a.entries...)
	w.Remote.AllowlistVersion, w.Remote.AllowlistHash = a.version, a.hash
	w.Remote.AllowlistDigest = vault.AllowlistDigest(w.Allowlist)
	return nil
}
