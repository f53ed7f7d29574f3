package server

// Removal with rotation (issue 11, stage C): an admin's client removes a
// member and, in the same request, replaces every key the removed member
// held: a new workspace key sealed to each remaining member, a new key per
// project, and every live secret re-sealed under it. The server checks what
// it can see (roles, the member set, the projects, the heads) and stores
// all of it in one transaction; clients verify the records and envelopes.

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Bounds of a rotation body beyond the body size itself.
const (
	maxRotateMembers  = 10_000
	maxRotateProjects = 10_000
	maxPreviousKeys   = 100_000
	maxAccountID      = 128
)

// Rotation outcomes of the store.
var (
	// errStaleRotation: the workspace key version is not the one the
	// request builds on, or the member or project set changed meanwhile.
	errStaleRotation = errors.New("the workspace changed since the rotation was built")
	errRemoveCreator = errors.New("the creator cannot be removed")
	errNotAMember    = errors.New("not a member")
	errNotAdmin      = errors.New("not an admin")
)

func rotateError(err error) error {
	switch {
	case errors.Is(err, errStaleRotation):
		return errcode.WithHint(errcode.New(errcode.Conflict, "the workspace changed since this removal was prepared (a member joined or left, a project was created, or another admin rotated the keys)"),
			"run the removal again")
	case errors.Is(err, errRemoveCreator):
		return errcode.WithHint(errcode.New(errcode.Conflict, "the workspace's creator cannot be removed: every member's trust derives from the creator's keys"),
			"create a new workspace and move the projects there instead")
	case errors.Is(err, errNotAMember):
		return errcode.WithHint(errcode.New(errcode.NotFound, "that account is not a member of this workspace"), "run `agentsecrets workspace members`")
	case errors.Is(err, errNotAdmin):
		return errcode.WithHint(errcode.New(errcode.Denied, "your role in this workspace does not allow this"), "ask a workspace admin")
	}
	return err
}

// removedFrom answers a non-member that was removed from ws: unauthorized,
// naming the workspace. nil when the account was never removed from it.
func (s *Server) removedFrom(ctx context.Context, ws, account string) error {
	name, ok, err := s.store.Removed(ctx, ws, account)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	return errcode.WithHint(errcode.Errorf(errcode.Unauthorized, "removed from workspace %s", name), "ask a workspace admin")
}

// checkRotate validates a rotation body's shape; the store checks it
// against the workspace.
func checkRotate(caller string, req *syncapi.RotateRequest) error {
	if req.RemovedAccountID == "" || len(req.RemovedAccountID) > maxAccountID {
		return errcode.New(errcode.Usage, "removed_account_id is required")
	}
	if req.RemovedAccountID == caller {
		return errcode.WithHint(errcode.New(errcode.Conflict, "an admin cannot remove themself"), "ask another admin to remove you")
	}
	if req.KeyVersion < 2 {
		return errcode.New(errcode.Usage, "key_version must be 2 or more (the current version plus one)")
	}
	if len(req.Members) == 0 || len(req.Members) > maxRotateMembers || len(req.Projects) > maxRotateProjects {
		return errcode.New(errcode.Usage, "a rotation needs the remaining members (at least the caller) and at most the workspace's projects")
	}
	seen := map[string]bool{}
	for _, m := range req.Members {
		if m.AccountID == "" || len(m.AccountID) > maxAccountID || seen[m.AccountID] {
			return errcode.New(errcode.Usage, "every member needs an account id, once")
		}
		seen[m.AccountID] = true
		for _, c := range []error{checkRoleName(m.Role), checkBytes("record", m.Record, 1, maxSealed), checkBytes("sealed_key", m.SealedKey, 1, maxSealed),
			checkBytes("authority", m.Authority, 0, maxSealed)} {
			if c != nil {
				return c
			}
		}
	}
	if a := req.Allowlist; a != nil {
		if a.BaseVersion < 1 {
			return errcode.New(errcode.Usage, "allowlist.base_version must be the workspace's newest allowlist version")
		}
		if err := checkBytes("allowlist document", a.Document, 1, syncapi.MaxEnvelope); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	previous := 0
	for _, p := range req.Projects {
		if err := vault.CheckSpaceName("project", p.Name); err != nil {
			return err
		}
		if names[p.Name] {
			return errcode.Errorf(errcode.Usage, "project %s appears twice", p.Name)
		}
		names[p.Name] = true
		if p.KeyVersion < 2 {
			return errcode.Errorf(errcode.Usage, "key_version of project %s must be 2 or more", p.Name)
		}
		if err := checkBytes("wrapped_key", p.WrappedKey, 1, maxSealed); err != nil {
			return err
		}
		previous += len(p.PreviousKeys)
		if previous > maxPreviousKeys {
			return errcode.New(errcode.TooLarge, "too many previous keys")
		}
		for _, k := range p.PreviousKeys {
			if err := checkBytes("previous wrapped_key", k.WrappedKey, 1, maxSealed); err != nil {
				return err
			}
		}
		if len(p.Heads) > maxKnown {
			return errcode.Errorf(errcode.TooLarge, "heads lists more than %d names", maxKnown)
		}
		for name, v := range p.Heads {
			if err := vault.CheckSecretName(name); err != nil {
				return err
			}
			if v < 1 {
				return errcode.Errorf(errcode.Usage, "head of %s must be 1 or more", name)
			}
		}
		if err := checkChanges(p.Changes, maxKnown); err != nil {
			return err
		}
	}
	return nil
}

// rotate removes a member and stores the rotated keys and versions.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	var req syncapi.RotateRequest
	if err := decodeLimit(w, r, &req, syncapi.MaxRotateBody); err != nil {
		return nil, err
	}
	if err := checkRotate(info.account, &req); err != nil {
		return nil, err
	}
	n, err := s.store.Rotate(r.Context(), ws, info.account, req, s.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, rotateError(err)
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "rotate", slog.String("event", "member removed"), slog.String("workspace", ws),
		slog.String("removed", req.RemovedAccountID), slog.Int("key_version", req.KeyVersion), slog.Int("versions", n),
		slog.String("account", info.account))
	return syncapi.RotateResponse{KeyVersion: req.KeyVersion, Versions: n}, nil
}

// previousKeys adds each project's older keys (project_keys) to projects.
func (s *SQLStore) previousKeys(ctx context.Context, wsID string, projects []syncapi.Project) error {
	rows, err := s.query(ctx, s.db, "SELECT project, key_version, wrapped_key FROM project_keys WHERE workspace_id = ? ORDER BY project, key_version", wsID)
	if err != nil {
		return dbError("list project keys", err)
	}
	defer rows.Close()
	at := map[string]int{}
	for i, p := range projects {
		at[p.Name] = i
	}
	for rows.Next() {
		var name string
		var k syncapi.ProjectKey
		if err := rows.Scan(&name, &k.KeyVersion, &k.WrappedKey); err != nil {
			return dbError("list project keys", err)
		}
		if i, ok := at[name]; ok {
			projects[i].PreviousKeys = append(projects[i].PreviousKeys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return dbError("list project keys", err)
	}
	return nil
}

func (s *SQLStore) Removed(ctx context.Context, wsID, accountID string) (string, bool, error) {
	var name string
	err := s.row(ctx, s.db, `SELECT w.name FROM removals r JOIN workspaces w ON w.id = r.workspace_id WHERE r.workspace_id = ? AND r.account_id = ?`,
		wsID, accountID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, dbError("read removals", err)
	}
	return name, true, nil
}

// Rotate checks the request against the workspace inside the transaction
// and applies it. The first statement moves the workspace's key version
// from KeyVersion-1 to KeyVersion: of two admins rotating at once (on any
// replicas) the second finds the version moved and gets a conflict; a push
// racing the rotation either lands first (its head moved: conflict) or
// after (its base moved: the pusher's conflict), as the primary key of
// secret_versions decides.
func (s *SQLStore) Rotate(ctx context.Context, wsID, admin string, req syncapi.RotateRequest, now time.Time) (int, error) {
	stored := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stored = 0
		res, err := s.exec(ctx, tx, "UPDATE workspaces SET key_version = ? WHERE id = ? AND key_version = ?", req.KeyVersion, wsID, req.KeyVersion-1)
		if err != nil {
			return dbError("rotate workspace key", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errStaleRotation
		}
		var creator string
		if err := s.row(ctx, tx, "SELECT created_by FROM workspaces WHERE id = ?", wsID).Scan(&creator); err != nil {
			return dbError("read workspace", err)
		}
		if req.RemovedAccountID == creator {
			return errRemoveCreator
		}
		roles, err := s.memberRoles(ctx, tx, wsID)
		if err != nil {
			return err
		}
		if roles[admin] != RoleAdmin {
			return errNotAdmin
		}
		if _, ok := roles[req.RemovedAccountID]; !ok {
			return errNotAMember
		}
		delete(roles, req.RemovedAccountID)
		if len(req.Members) != len(roles) {
			return errStaleRotation
		}
		for _, m := range req.Members {
			if role, ok := roles[m.AccountID]; !ok || role != m.Role {
				return errStaleRotation
			}
		}
		// The projects' row locks first (pushes take them too): heads
		// read after them include every push that committed before.
		if _, err := s.exec(ctx, tx, "UPDATE projects SET key_version = key_version WHERE workspace_id = ?", wsID); err != nil {
			return dbError("lock projects", err)
		}
		if err := s.checkProjects(ctx, tx, wsID, req.Projects); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM members WHERE workspace_id = ? AND account_id = ?", wsID, req.RemovedAccountID); err != nil {
			return dbError("remove member", err)
		}
		// A removed service token is revoked in the same commit: it must
		// not keep signing in only to be refused everywhere.
		if isTokenAccount(req.RemovedAccountID) {
			t, err := scanServiceToken(s.row(ctx, tx, "SELECT "+serviceTokenCols+serviceTokenFrom+"t.account_id = ?", req.RemovedAccountID))
			if err != nil {
				return err
			}
			if err := s.revokeToken(ctx, tx, t, now); err != nil {
				return err
			}
		}
		for _, m := range req.Members {
			if _, err := s.exec(ctx, tx, "UPDATE members SET record = ?, sealed_key = ?, added_by = ?, added_at = ?, authority = ? WHERE workspace_id = ? AND account_id = ?",
				m.Record, m.SealedKey, admin, micro(now), nullBytes(m.Authority), wsID, m.AccountID); err != nil {
				return dbError("rotate member", err)
			}
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM project_keys WHERE workspace_id = ?", wsID); err != nil {
			return dbError("rotate project keys", err)
		}
		for _, p := range req.Projects {
			if _, err := s.exec(ctx, tx, "UPDATE projects SET wrapped_key = ?, key_version = ? WHERE workspace_id = ? AND name = ?",
				p.WrappedKey, p.KeyVersion, wsID, p.Name); err != nil {
				return dbError("rotate project key", err)
			}
			for _, k := range p.PreviousKeys {
				if _, err := s.exec(ctx, tx, "INSERT INTO project_keys (workspace_id, project, key_version, wrapped_key) VALUES (?, ?, ?, ?)",
					wsID, p.Name, k.KeyVersion, k.WrappedKey); err != nil {
					return dbError("rotate project keys", err)
				}
			}
			for _, c := range p.Changes {
				if _, err := s.exec(ctx, tx, "INSERT INTO secret_versions (workspace_id, project, name, version, envelope, author_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
					wsID, p.Name, c.Name, c.BaseVersion+1, c.Envelope, admin, micro(now)); err != nil {
					if s.d.unique(err) {
						return errStaleRotation
					}
					return dbError("insert version", err)
				}
				stored++
			}
		}
		// The allowlist's newest version re-sealed under the new key, when
		// there is an allowlist: without it nobody could open the allowlist
		// from now on.
		var allowHead int
		if err := s.row(ctx, tx, "SELECT COALESCE(MAX(version), 0) FROM allowlist_versions WHERE workspace_id = ?", wsID).Scan(&allowHead); err != nil {
			return dbError("read allowlist head", err)
		}
		switch a := req.Allowlist; {
		case a == nil && allowHead > 0, a != nil && a.BaseVersion != allowHead:
			return errStaleRotation
		case a != nil:
			if err := s.insertAllowlist(ctx, tx, wsID, syncapi.AllowlistVersion{Version: a.BaseVersion + 1, Document: a.Document, AuthorID: admin, CreatedAt: now}); err != nil {
				return err
			}
		}
		// The invites the removed account made can no longer be
		// completed by it; pending ones addressed to it are void too.
		if _, err := s.exec(ctx, tx, `UPDATE invites SET state = ?, completed_at = ? WHERE workspace_id = ? AND state IN (?, ?)
			AND (invited_by = ? OR account_id = ?)`, syncapi.InviteCanceled, micro(now), wsID, syncapi.InviteOpen, syncapi.InviteAccepted,
			req.RemovedAccountID, req.RemovedAccountID); err != nil {
			return dbError("cancel invites", err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO removals (workspace_id, account_id, removed_by, key_version, removed_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (workspace_id, account_id) DO UPDATE SET removed_by = excluded.removed_by, key_version = excluded.key_version, removed_at = excluded.removed_at`,
			wsID, req.RemovedAccountID, admin, req.KeyVersion, micro(now)); err != nil {
			return dbError("record removal", err)
		}
		return nil
	})
	if errors.Is(err, errExists) {
		// A racing write won the commit on a primary key.
		err = errStaleRotation
	}
	return stored, err
}

// memberRoles is account id → role of every member of the workspace.
func (s *SQLStore) memberRoles(ctx context.Context, tx *sql.Tx, wsID string) (map[string]string, error) {
	rows, err := s.query(ctx, tx, "SELECT account_id, role FROM members WHERE workspace_id = ?", wsID)
	if err != nil {
		return nil, dbError("list members", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, role string
		if err := rows.Scan(&id, &role); err != nil {
			return nil, dbError("list members", err)
		}
		out[id] = role
	}
	return out, rows.Err()
}

// checkProjects checks a rotation's projects against the workspace's: the
// same names, each key version the current plus one, the previous keys
// exactly versions 1 to the current, the heads exactly the project's, and
// each change built on its name's head.
func (s *SQLStore) checkProjects(ctx context.Context, tx *sql.Tx, wsID string, projects []syncapi.RotateProject) error {
	rows, err := s.query(ctx, tx, "SELECT name, key_version FROM projects WHERE workspace_id = ?", wsID)
	if err != nil {
		return dbError("list projects", err)
	}
	current := map[string]int{}
	for rows.Next() {
		var name string
		var kv int
		if err := rows.Scan(&name, &kv); err != nil {
			rows.Close()
			return dbError("list projects", err)
		}
		current[name] = kv
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbError("list projects", err)
	}
	if len(projects) != len(current) {
		return errStaleRotation
	}
	for _, p := range projects {
		kv, ok := current[p.Name]
		if !ok || p.KeyVersion != kv+1 || len(p.PreviousKeys) != kv {
			return errStaleRotation
		}
		for i, k := range p.PreviousKeys {
			if k.KeyVersion != i+1 {
				return errStaleRotation
			}
		}
		heads, err := s.heads(ctx, tx, wsID, p.Name)
		if err != nil {
			return err
		}
		if len(heads) != len(p.Heads) {
			return errStaleRotation
		}
		for name, v := range heads {
			if p.Heads[name] != v {
				return errStaleRotation
			}
		}
		for _, c := range p.Changes {
			if h, ok := heads[c.Name]; !ok || h != c.BaseVersion {
				return errStaleRotation
			}
		}
	}
	return nil
}
