package sync

// Removal rotates (issue 11, stage C; docs/protocol.md, "Removal"): the
// admin's client makes a new workspace key and a new key per project,
// re-seals every live secret under it as a new version marked
// rotate_upstream, seals the new workspace key to every remaining member
// and signs their new records, and sends it all in one request the server
// applies in one transaction. The removed member never receives anything
// under the new keys.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// RotatedProject is one project's part of a removal.
type RotatedProject struct {
	Project    string `json:"project"`
	KeyVersion int    `json:"key_version"`
	// RotateUpstream names the secrets the removed member could read,
	// re-sealed under the new key and marked rotate_upstream. Every live
	// secret is re-sealed; a scoped token's other projects are not marked.
	RotateUpstream []string `json:"rotate_upstream"`
}

// RemoveResult reports `workspace remove`.
type RemoveResult struct {
	Workspace   string `json:"workspace"`
	WorkspaceID string `json:"workspace_id"`
	// Removed is the removed member's email (token:NAME for a service
	// token), RemovedID its account id.
	Removed   string `json:"removed"`
	RemovedID string `json:"removed_account_id"`
	// KeyVersion is the new workspace key version.
	KeyVersion int `json:"key_version"`
	// Members counts the remaining members.
	Members  int              `json:"members"`
	Projects []RotatedProject `json:"projects"`
	// Reencrypted counts the secret versions stored under the new keys.
	Reencrypted int `json:"reencrypted"`
	TeamNotes
}

// RemoveMember removes who (an email, or token:NAME) from the remote
// workspace wsName and rotates every key they held. The device's account
// must be a verified admin; the creator cannot be removed, nor can an
// admin remove themself. Values come from the server (verified chains),
// never from the keychain, and are wiped once re-sealed.
func (c *Conn) RemoveMember(ctx context.Context, wsName, who string) (*RemoveResult, error) {
	return c.removeMember(ctx, wsName, who, nil)
}

// removeMember removes who and rotates every key. readable says which
// projects' secrets the member could read and so get rotate_upstream
// (nil: all of them); every project's keys rotate regardless, because
// the member held the workspace key that wrapped them.
func (c *Conn) removeMember(ctx context.Context, wsName, who string, readable func(project string) bool) (*RemoveResult, error) {
	remote, k, err := c.adminKeys(ctx, wsName, "remove members")
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	target, err := findMember(k.roster, wsName, who)
	if err != nil {
		return nil, err
	}
	switch target {
	case k.roster.CreatorID:
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s created workspace %s and cannot be removed: every member's trust derives from the creator's keys", who, wsName),
			"create a new workspace, move the projects there, and stop using this one")
	case c.Account.ID:
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "an admin cannot remove themself from workspace %s", wsName),
			"ask another admin to run `agentsecrets workspace remove "+c.Account.Email+"`")
	}
	plan, err := c.planRotation(ctx, k, target, readable)
	if err != nil {
		return nil, err
	}
	if _, err := c.Client.Rotate(ctx, remote.ID, plan.req); err != nil {
		if errcode.Classify(err).Code == errcode.Conflict {
			return nil, errcode.WithHint(err, "the workspace changed meanwhile; run `agentsecrets workspace remove "+who+"` again")
		}
		return nil, err
	}
	if err := c.recordRotation(ctx, remote.ID, target, plan); err != nil {
		return nil, err
	}
	res := &RemoveResult{Workspace: wsName, WorkspaceID: remote.ID, Removed: k.roster.Members[target].Record.Email, RemovedID: target,
		KeyVersion: plan.req.KeyVersion, Members: len(plan.req.Members), Projects: plan.projects, TeamNotes: c.notes}
	for _, p := range plan.req.Projects {
		res.Reencrypted += len(p.Changes)
	}
	return res, nil
}

// findMember resolves an email or token:NAME to a verified member's id.
func findMember(r *Roster, wsName, who string) (string, error) {
	want := strings.TrimSpace(who)
	if !strings.HasPrefix(want, TokenEmailPrefix) {
		var err error
		if want, err = NormEmail(want); err != nil {
			return "", err
		}
	}
	for _, id := range vault.SortedKeys(r.Members) {
		if strings.EqualFold(r.Members[id].Record.Email, want) {
			return id, nil
		}
	}
	return "", errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s is not a member of workspace %s", want, wsName), "run `agentsecrets workspace members`")
}

// rotation is a prepared removal: the request, and what this device
// records once the server stored it.
type rotation struct {
	req      syncapi.RotateRequest
	projects []RotatedProject
	// resealed: project → name → the old head and the new version.
	resealed map[string]map[string]resealed
	// allowlist: the allowlist's old head and its re-sealed version.
	allowlist *resealed
}

type resealed struct {
	oldVersion int
	oldHash    string
	newVersion int
	newHash    string
	marked     bool
}

// planRotation builds the rotation request: the new workspace key sealed
// to every member but target, their new records, and per project the new
// key, the older keys re-wrapped and every live head re-sealed.
func (c *Conn) planRotation(ctx context.Context, k *Keys, target string, readable func(project string) bool) (*rotation, error) {
	wsKey, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(wsKey)
	kv := max(k.Detail.KeyVersion, 1) + 1
	now := c.now().UTC()
	plan := &rotation{req: syncapi.RotateRequest{RemovedAccountID: target, KeyVersion: kv, Members: []syncapi.RotateMember{}, Projects: []syncapi.RotateProject{}},
		projects: []RotatedProject{}, resealed: map[string]map[string]resealed{}}
	for _, id := range vault.SortedKeys(k.roster.Members) {
		if id == target {
			continue
		}
		rec := k.roster.Members[id].Record
		sealed, err := SealWorkspaceKey(rec.PublicKeys, wsKey)
		if err != nil {
			return nil, err
		}
		signed, err := SignMembership(k.id, MembershipRecord{WorkspaceID: k.WorkspaceID, AccountID: id, Email: rec.Email, Role: rec.Role,
			PublicKeys: rec.PublicKeys, KeyVersion: kv, AddedBy: c.Account.ID, AddedAt: now}, sealed)
		if err != nil {
			return nil, err
		}
		plan.req.Members = append(plan.req.Members, syncapi.RotateMember{AccountID: id, Role: rec.Role, Record: signed, SealedKey: sealed,
			Authority: authorityFor(k.roster, id, c.Account.ID)})
	}
	if plan.req.Allowlist, plan.allowlist, err = c.rotateAllowlist(ctx, k, wsKey, now); err != nil {
		return nil, err
	}
	for _, p := range k.Detail.Projects {
		rp, info, done, err := c.rotateProject(ctx, k, p, wsKey, now, readable == nil || readable(p.Name))
		if err != nil {
			return nil, err
		}
		plan.req.Projects = append(plan.req.Projects, rp)
		plan.projects = append(plan.projects, info)
		plan.resealed[p.Name] = done
	}
	return plan, nil
}

// authorityFor is the authority record a rotation keeps for member id.
// Only the rotating admin (self) signs its own new record; unless it is
// the creator (the root), it keeps the latest record another admin
// signed for it, so every client still traces its role to the creator.
func authorityFor(r *Roster, id, self string) []byte {
	if id != self || id == r.CreatorID {
		return nil
	}
	m := r.Members[id]
	if m.Record.AddedBy == id {
		return m.Listing.Authority
	}
	return m.Listing.Record
}

// rotateAllowlist re-seals the allowlist's newest version under the new
// workspace key as the next version (same entries): after the rotation
// only the newest version is ever opened. None when there is no allowlist.
func (c *Conn) rotateAllowlist(ctx context.Context, k *Keys, wsKey []byte, now time.Time) (*syncapi.AllowlistPushRequest, *resealed, error) {
	head := k.Detail.AllowlistVersion
	if head == 0 {
		return nil, nil, nil
	}
	versions, err := c.Client.Allowlist(ctx, k.WorkspaceID, 0)
	if err != nil {
		return nil, nil, err
	}
	opened, err := VerifyAllowlistChain(k.WorkspaceID, Known{}, head, versions.Versions, k.Workspace, k.admins)
	if err != nil {
		return nil, nil, err
	}
	last := opened[len(opened)-1]
	doc, err := SealAllowlist(k.id, AllowlistHeader{WorkspaceID: k.WorkspaceID, Version: head + 1, Prev: last.Hash, AuthorID: c.Account.ID, CreatedAt: now},
		wsKey, last.Entries)
	if err != nil {
		return nil, nil, err
	}
	return &syncapi.AllowlistPushRequest{BaseVersion: head, Document: doc},
		&resealed{oldVersion: head, oldHash: last.Hash, newVersion: head + 1, newHash: EnvelopeHash(doc)}, nil
}

// rotateProject makes one project's part of a rotation: a full pull,
// every chain verified with the project's keys, each live head re-sealed
// under a new key (version+1, same value and bindings, rotate_upstream).
func (c *Conn) rotateProject(ctx context.Context, k *Keys, p syncapi.Project, wsKey []byte, now time.Time, mark bool) (syncapi.RotateProject, RotatedProject, map[string]resealed, error) {
	fail := func(err error) (syncapi.RotateProject, RotatedProject, map[string]resealed, error) {
		return syncapi.RotateProject{}, RotatedProject{}, nil, err
	}
	keys, err := unwrapPrevious(k.Workspace, k.WorkspaceID, p)
	if err != nil {
		return fail(err)
	}
	cur, err := UnwrapProjectKey(k.Workspace, k.WorkspaceID, p.Name, p.KeyVersion, p.WrappedKey)
	if err != nil {
		return fail(err)
	}
	keys[p.KeyVersion] = cur
	defer func() {
		for _, key := range keys {
			clear(key)
		}
	}()
	newKey, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return fail(err)
	}
	defer clear(newKey)
	nv := p.KeyVersion + 1
	rp := syncapi.RotateProject{Name: p.Name, KeyVersion: nv, PreviousKeys: []syncapi.ProjectKey{}, Heads: map[string]int{}, Changes: []syncapi.PushChange{}}
	if rp.WrappedKey, err = WrapProjectKey(wsKey, k.WorkspaceID, p.Name, nv, newKey); err != nil {
		return fail(err)
	}
	for v := 1; v <= p.KeyVersion; v++ {
		if keys[v] == nil {
			return fail(refuse(fmt.Sprintf("the keys of project %s in workspace %s", p.Name, k.WorkspaceID), CheckKeyVersion,
				fmt.Sprintf("the server lists no key version %d of current version %d", v, p.KeyVersion)))
		}
		wrapped, err := WrapProjectKey(wsKey, k.WorkspaceID, p.Name, v, keys[v])
		if err != nil {
			return fail(err)
		}
		rp.PreviousKeys = append(rp.PreviousKeys, syncapi.ProjectKey{KeyVersion: v, WrappedKey: wrapped})
	}
	resp, err := c.Client.Pull(ctx, k.WorkspaceID, p.Name, syncapi.PullRequest{Known: map[string]int{}})
	if err != nil {
		return fail(err)
	}
	byName := map[string][]syncapi.SecretVersion{}
	for _, v := range resp.Versions {
		byName[v.Name] = append(byName[v.Name], v)
	}
	info := RotatedProject{Project: p.Name, KeyVersion: nv, RotateUpstream: []string{}}
	done := map[string]resealed{}
	set := ProjectKeys{Current: p.KeyVersion, ByVersion: keys}
	for _, name := range vault.SortedKeys(resp.Heads) {
		if err := vault.CheckSecretName(name); err != nil {
			return fail(errcode.Errorf(errcode.Conflict, "the server listed a secret with an invalid name in project %s", p.Name))
		}
		ref := SecretRef{WorkspaceID: k.WorkspaceID, Project: p.Name, Name: name}
		opened, err := VerifyChain(ref, Known{}, resp.Heads[name], byName[name], set, k.lookup)
		if err != nil {
			return fail(err)
		}
		head := opened[len(opened)-1]
		for _, o := range opened[:len(opened)-1] {
			o.Content.Value.Wipe()
		}
		rp.Heads[name] = head.Header.Version
		if head.Content.Deleted {
			continue
		}
		content := head.Content
		content.RotateUpstream = content.RotateUpstream || mark
		env, err := SealSecret(k.id, SecretHeader{SecretRef: ref, Version: head.Header.Version + 1, Prev: head.Hash, AuthorID: c.Account.ID,
			KeyVersion: nv, CreatedAt: now}, newKey, content)
		head.Content.Value.Wipe()
		if err != nil {
			return fail(err)
		}
		rp.Changes = append(rp.Changes, syncapi.PushChange{Name: name, BaseVersion: head.Header.Version, Envelope: env})
		if mark {
			info.RotateUpstream = append(info.RotateUpstream, name)
		}
		done[name] = resealed{oldVersion: head.Header.Version, oldHash: head.Hash, newVersion: head.Header.Version + 1, newHash: EnvelopeHash(env), marked: content.RotateUpstream}
	}
	return rp, info, done, nil
}

// recordRotation brings this device's index to what the server stored: a
// secret that matched the old head now matches the re-sealed version and
// carries the mark (its value is the same, so nothing is written to the
// keychain); the projects' key versions move; the removed account's pin
// loses its admin mark.
func (c *Conn) recordRotation(ctx context.Context, wsID, target string, plan *rotation) error {
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		if p := ix.Team(wsID, c.Account.Server).Pins[target]; p != nil {
			p.Admin = false
		}
		for _, w := range ix.Workspaces {
			if w.Remote == nil || w.Remote.ID != wsID {
				continue
			}
			if a := plan.allowlist; a != nil && w.Remote.AllowlistVersion == a.oldVersion && w.Remote.AllowlistHash == a.oldHash {
				w.Remote.AllowlistVersion, w.Remote.AllowlistHash = a.newVersion, a.newHash
			}
			for _, rp := range plan.req.Projects {
				proj := w.Projects[rp.Name]
				if proj == nil || proj.Sync == nil {
					continue
				}
				proj.Sync.KeyVersion = rp.KeyVersion
				for name, r := range plan.resealed[rp.Name] {
					s := proj.Secrets[name]
					if s == nil || s.Synced == nil || s.Synced.Version != r.oldVersion || s.Synced.Hash != r.oldHash {
						continue // the next pull settles it
					}
					s.Synced.Version, s.Synced.Hash = r.newVersion, r.newHash
					s.RotateUpstream = r.marked
				}
			}
		}
		return nil
	})
}

// Rotate sends a removal with its rotated keys and versions.
func (c *Client) Rotate(ctx context.Context, ws string, req syncapi.RotateRequest) (syncapi.RotateResponse, error) {
	var out syncapi.RotateResponse
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathRotate, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// A removed account's requests on the workspace answer unauthorized with
// removedMessage: signing in again does not help, an admin does.
const (
	removedMessage = "removed from workspace"
	removedHint    = "ask a workspace admin: this account was removed from the workspace"
)
