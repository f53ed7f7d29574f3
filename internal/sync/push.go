package sync

import (
	"context"
	"errors"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// PushEntry is what a push did to one name.
type PushEntry struct {
	Name  string `json:"name"`
	State string `json:"state" jsonschema:"enum=in_sync,enum=local_only,enum=remote_only,enum=local_newer,enum=remote_newer,enum=conflict"`
	// Action is pushed, deleted (a deletion version), unchanged or
	// skipped (a remote change to pull, not push).
	Action        string `json:"action" jsonschema:"enum=pushed,enum=deleted,enum=unchanged,enum=skipped"`
	RemoteVersion int    `json:"remote_version"`
}

// PushResult is a project's push.
type PushResult struct {
	Workspace string      `json:"workspace"`
	Project   string      `json:"project"`
	Secrets   []PushEntry `json:"secrets"`
	// Synced counts the versions stored.
	Synced int `json:"synced"`
	// Forced is true when --force built on remote changes.
	Forced bool `json:"forced,omitempty"`
	// Allowlist is the allowlist version pushed, if the push stored one.
	Allowlist int `json:"allowlist_version,omitempty"`
	TeamNotes
}

// ErrPushConflict: the server holds versions this push did not build on.
var ErrPushConflict = errcode.New(errcode.Conflict, "the server has newer versions of secrets this push would overwrite")

const pushConflictHint = "run `agentsecrets secrets diff`, then `agentsecrets secrets pull`, then push again"

// pushed is one change sent, with what to record once stored.
type pushed struct {
	name     string
	version  int
	hash     string
	deleted  bool
	localVer int
	bindings string
}

// Push stores local changes as new versions in one server transaction. A
// name changed on the server since this device last matched it is a
// conflict naming it, unless force (a human on a terminal) builds the new
// version on the current remote head: content is overwritten, history
// never. Local deletions are pushed as deletion versions; a changed
// allowlist as its next version.
func (c *Conn) Push(ctx context.Context, sel vault.Selection, names []string, force bool) (*PushResult, error) {
	st, diffs, err := c.fetchDiff(ctx, sel, names, true)
	if err != nil {
		return nil, err
	}
	defer st.wipe()
	res := &PushResult{Workspace: sel.Workspace, Project: sel.Project, Secrets: []PushEntry{}, Forced: force}
	var blocked []string
	var send []NameDiff
	for _, d := range diffs {
		switch d.State {
		case LocalNewer, LocalOnly:
			send = append(send, d)
		case RemoteNewer, Conflict:
			if force && !(d.State == RemoteNewer && len(names) == 0) {
				send = append(send, d)
			} else if d.State == Conflict || len(names) > 0 {
				blocked = append(blocked, d.Name)
			}
		}
	}
	if len(blocked) > 0 {
		return nil, conflictError(ErrPushConflict, blocked, pushConflictHint)
	}
	for _, d := range send {
		if local := st.proj.Secrets[d.Name]; local != nil {
			if err := st.checkPushBindings(c.Account.ID, d.Name, local); err != nil {
				return nil, err
			}
		}
	}
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	now := c.now().UTC()
	var changes []syncapi.PushChange
	var sent []pushed
	for _, d := range send {
		base := st.heads[d.Name].Head
		h := SecretHeader{SecretRef: SecretRef{WorkspaceID: st.remote.ID, Project: sel.Project, Name: d.Name},
			Version: base + 1, Prev: st.headHash(d.Name), AuthorID: c.Account.ID, KeyVersion: st.keys.KeyVersion, CreatedAt: now}
		p := pushed{name: d.Name, version: base + 1}
		var content SecretContent
		if local := st.proj.Secrets[d.Name]; local != nil {
			v, err := c.Store.Value(ctx, sel, d.Name)
			if err != nil {
				return nil, err
			}
			// The mark travels until a new value clears it (vault.PutSecrets).
			content = SecretContent{Value: v, Bindings: local.Bindings, Source: local.Source, UpdatedAt: local.UpdatedAt, RotateUpstream: local.RotateUpstream}
			p.localVer, p.bindings = local.Version, vault.BindingsDigest(local.Bindings)
		} else {
			content = SecretContent{Deleted: true, UpdatedAt: now}
			p.deleted = true
		}
		env, err := SealSecret(id, h, st.keys.Project, content)
		content.Value.Wipe()
		if err != nil {
			return nil, err
		}
		p.hash = EnvelopeHash(env)
		changes = append(changes, syncapi.PushChange{Name: d.Name, BaseVersion: base, Envelope: env})
		sent = append(sent, p)
	}
	allow, err := c.allowlistChange(ctx, st, id, force, now)
	if err != nil {
		return nil, err
	}
	if len(changes) > 0 {
		if _, err := c.Client.Push(ctx, st.remote.ID, sel.Project, syncapi.PushRequest{Changes: changes}); err != nil {
			var ne *NamesError
			if errors.As(err, &ne) && errcode.Classify(err).Code == errcode.Conflict {
				return nil, conflictError(ErrPushConflict, ne.Names, "another device pushed first; "+pushConflictHint)
			}
			return nil, err
		}
	}
	if allow != nil {
		if _, err := c.Client.PushAllowlist(ctx, st.remote.ID, allow.req); err != nil {
			if errcode.Classify(err).Code == errcode.Conflict {
				err = conflictError(ErrPushConflict, []string{"allowlist"}, "another device changed the allowlist first; "+pushConflictHint)
			}
			if len(changes) > 0 {
				// The secrets are stored; record them before reporting.
				if rerr := c.recordPush(ctx, sel, sent, nil, diffs, names, now); rerr != nil {
					return nil, rerr
				}
			}
			return nil, err
		}
		res.Allowlist = allow.req.BaseVersion + 1
	}
	if err := c.recordPush(ctx, sel, sent, allow, diffs, names, now); err != nil {
		return nil, err
	}
	stored := map[string]pushed{}
	for _, p := range sent {
		stored[p.name] = p
	}
	for _, d := range diffs {
		e := PushEntry{Name: d.Name, State: d.State, Action: "unchanged", RemoteVersion: d.RemoteVersion}
		if p, ok := stored[d.Name]; ok {
			e.Action, e.RemoteVersion = "pushed", p.version
			if p.deleted {
				e.Action = "deleted"
			}
			res.Synced++
		} else if d.State == RemoteNewer || d.State == RemoteOnly {
			e.Action = "skipped"
		}
		res.Secrets = append(res.Secrets, e)
	}
	c.uploadAudit(ctx, st)
	res.TeamNotes = c.notes
	return res, nil
}

// recordPush marks what the server stored as matched, in one index write.
func (c *Conn) recordPush(ctx context.Context, sel vault.Selection, sent []pushed, allow *allowlistPush, diffs []NameDiff, names []string, now time.Time) error {
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		p, err := ix.Project(sel)
		if err != nil {
			return err
		}
		if p.Sync == nil {
			p.Sync = &vault.ProjectSync{}
		}
		done := map[string]bool{}
		for _, s := range sent {
			done[s.name] = true
			if s.deleted {
				if p.Sync.Tombstones == nil {
					p.Sync.Tombstones = map[string]vault.SecretSync{}
				}
				if _, back := p.Secrets[s.name]; !back {
					p.Sync.Tombstones[s.name] = vault.SecretSync{Version: s.version, Hash: s.hash, Deleted: true}
				}
				continue
			}
			delete(p.Sync.Tombstones, s.name)
			// The version read, not the current one: a change made while
			// the push ran stays a local change.
			if sec := p.Secrets[s.name]; sec != nil {
				sec.Synced = &vault.SecretSync{Version: s.version, Hash: s.hash, LocalVersion: s.localVer, Bindings: s.bindings}
			}
		}
		var after []NameDiff
		for _, d := range diffs {
			if !done[d.Name] {
				after = append(after, d)
			}
		}
		recordDrift(p.Sync, after, names, now)
		p.Sync.LastPush = &now
		if allow != nil {
			if w := ix.Workspaces[sel.Workspace]; w != nil && w.Remote != nil {
				w.Remote.AllowlistVersion, w.Remote.AllowlistHash, w.Remote.AllowlistDigest = allow.req.BaseVersion+1, allow.hash, allow.digest
			}
		}
		return nil
	})
}

// allowlistPush is the next allowlist version to store.
type allowlistPush struct {
	req    syncapi.AllowlistPushRequest
	hash   string
	digest string
}

// allowlistChange seals the local allowlist as the next version when it
// changed since the last sync. A remote change since is a conflict unless
// force.
func (c *Conn) allowlistChange(ctx context.Context, st *state, id Identity, force bool, now time.Time) (*allowlistPush, error) {
	local, err := c.localAllowlist(st.sel.Workspace)
	if err != nil {
		return nil, err
	}
	digest := vault.AllowlistDigest(local)
	if digest == st.remote.AllowlistDigest {
		return nil, nil // unchanged since the last sync (or adoption)
	}
	head := st.keys.Detail.AllowlistVersion
	prev := st.remote.AllowlistHash
	if head != st.remote.AllowlistVersion {
		if !force {
			return nil, conflictError(ErrPushConflict, []string{"allowlist"}, pushConflictHint)
		}
		got, err := c.Client.Allowlist(ctx, st.remote.ID, st.remote.AllowlistVersion)
		if err != nil {
			return nil, err
		}
		opened, err := VerifyAllowlistChain(st.remote.ID, Known{Version: st.remote.AllowlistVersion, Hash: st.remote.AllowlistHash}, head, got.Versions, st.keys.Workspace, st.keys.admins)
		if err != nil {
			return nil, err
		}
		if len(opened) > 0 {
			prev = opened[len(opened)-1].Hash
		}
	}
	doc, err := SealAllowlist(id, AllowlistHeader{WorkspaceID: st.remote.ID, Version: head + 1, Prev: prev, AuthorID: c.Account.ID, CreatedAt: now},
		st.keys.Workspace, local)
	if err != nil {
		return nil, err
	}
	return &allowlistPush{req: syncapi.AllowlistPushRequest{BaseVersion: head, Document: doc}, hash: EnvelopeHash(doc), digest: digest}, nil
}
