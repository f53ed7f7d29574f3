package server

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Roles of a workspace member.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// maxSealed bounds a membership record, a sealed key or a wrapped key:
// each is a few hundred bytes of ciphertext and signature.
const maxSealed = 16 << 10

func checkWorkspaceID(id string) error {
	return checkHexID("a workspace id", id, "run `agentsecrets workspace list`")
}

// checkHexID checks a client-made id (a workspace or an invite): 32
// lowercase hex digits.
func checkHexID(what, id, hint string) error {
	ok := len(id) == 32
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] >= '0' && id[i] <= '9' || id[i] >= 'a' && id[i] <= 'f'
	}
	if !ok {
		return errcode.WithHint(errcode.New(errcode.Usage, what+" is 32 lowercase hex digits"), hint)
	}
	return nil
}

var errNoWorkspace = errcode.WithHint(errcode.New(errcode.NotFound, "no such workspace on this server (or you are not a member)"),
	"run `agentsecrets workspace list`")

// member checks that the caller belongs to the path's workspace and, when
// roles are given, has one of them. Not being a member reads exactly like
// a workspace that does not exist.
func (s *Server) member(r *http.Request, info *reqInfo, roles ...string) (string, error) {
	ws := r.PathValue("ws")
	if err := checkWorkspaceID(ws); err != nil {
		return "", err
	}
	role, err := s.store.Role(r.Context(), ws, info.account)
	if errors.Is(err, errMissing) {
		if rerr := s.removedFrom(r.Context(), ws, info.account); rerr != nil {
			return "", rerr
		}
	}
	if err := checkRole(role, err, roles); err != nil {
		return "", err
	}
	return ws, nil
}

// checkRole turns a membership lookup into the answer member and project
// give: not a member, a role not among roles (when given), or nil.
func checkRole(role string, err error, roles []string) error {
	if errors.Is(err, errMissing) {
		return errNoWorkspace
	}
	if err != nil || len(roles) == 0 || slices.Contains(roles, role) {
		return err
	}
	return errcode.WithHint(errcode.Errorf(errcode.Denied, "your role in this workspace (%s) does not allow this", role), "ask a workspace admin")
}

// project resolves the path's workspace and project, checking that the
// caller is a member (with one of roles, when given).
func (s *Server) project(r *http.Request, info *reqInfo, roles ...string) (ws, project string, err error) {
	name := r.PathValue("project")
	if err := vault.CheckSpaceName("project", name); err != nil {
		// Membership is answered first, as for a valid name.
		if _, merr := s.member(r, info, roles...); merr != nil {
			return "", "", merr
		}
		return "", "", err
	}
	ws = r.PathValue("ws")
	if err := checkWorkspaceID(ws); err != nil {
		return "", "", err
	}
	// Membership and the project in one query: every sync request
	// runs this.
	role, ok, err := s.store.ProjectRole(r.Context(), ws, name, info.account)
	if errors.Is(err, errMissing) {
		if rerr := s.removedFrom(r.Context(), ws, info.account); rerr != nil {
			return "", "", rerr
		}
	}
	if err := checkRole(role, err, roles); err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", errcode.WithHint(errcode.Errorf(errcode.NotFound, "no project %q in this workspace on the server", name), "run `agentsecrets project link` to publish it")
	}
	return ws, name, nil
}

func (s *Server) workspaces(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	list, err := s.store.Workspaces(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	return syncapi.WorkspaceList{Workspaces: list}, nil
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.CreateWorkspaceRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	for _, c := range []error{
		checkWorkspaceID(req.ID),
		vault.CheckSpaceName("workspace", req.Name),
		checkBytes("record", req.Record, 1, maxSealed),
		checkBytes("sealed_key", req.SealedKey, 1, maxSealed),
	} {
		if c != nil {
			return nil, c
		}
	}
	a, err := s.store.AccountByID(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	ws := syncapi.Workspace{ID: req.ID, Name: req.Name, Role: RoleAdmin, CreatedBy: info.account, CreatedAt: now}
	m := syncapi.Member{AccountID: info.account, Email: a.Email, Role: RoleAdmin, Record: req.Record, SealedKey: req.SealedKey, AddedBy: info.account, AddedAt: now}
	if err := s.store.CreateWorkspace(r.Context(), ws, m); errors.Is(err, errExists) {
		return nil, errcode.WithHint(errcode.New(errcode.Conflict, "a workspace with this id exists"), "generate a new workspace id")
	} else if err != nil {
		return nil, err
	}
	return ws, nil
}

func (s *Server) workspace(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info)
	if err != nil {
		return nil, err
	}
	d, err := s.store.WorkspaceDetail(r.Context(), ws, info.account)
	if errors.Is(err, errMissing) {
		return nil, errNoWorkspace
	}
	scopeProjects(info, &d)
	return d, err
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin, RoleMember)
	if err != nil {
		return nil, err
	}
	var req syncapi.CreateProjectRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := vault.CheckSpaceName("project", req.Name); err != nil {
		return nil, err
	}
	if err := checkBytes("wrapped_key", req.WrappedKey, 1, maxSealed); err != nil {
		return nil, err
	}
	if req.KeyVersion < 1 {
		return nil, errcode.New(errcode.Usage, "key_version must be 1 or more")
	}
	p := syncapi.Project{Name: req.Name, WrappedKey: req.WrappedKey, KeyVersion: req.KeyVersion, CreatedBy: info.account, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.CreateProject(r.Context(), ws, p); errors.Is(err, errExists) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "project %q exists in this workspace", req.Name), "run `agentsecrets project use "+req.Name+"`")
	} else if err != nil {
		return nil, err
	}
	return p, nil
}

// maxKnown bounds the names a pull may list.
const maxKnown = 100_000

func (s *Server) pull(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, project, err := s.project(r, info)
	if err != nil {
		return nil, err
	}
	var req syncapi.PullRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if len(req.Known) > maxKnown {
		return nil, errcode.Errorf(errcode.TooLarge, "known lists more than %d names", maxKnown)
	}
	for name, v := range req.Known {
		if err := vault.CheckSecretName(name); err != nil {
			return nil, err
		}
		if v < 0 {
			return nil, errcode.Errorf(errcode.Usage, "known version of %s is negative", name)
		}
	}
	// A full pull (nothing known, as a new device sends) is the same
	// answer for everyone while the project holds the same versions: see
	// pullCache.
	full := true
	for _, v := range req.Known {
		full = full && v == 0
	}
	if !full {
		return s.store.Pull(r.Context(), ws, project, req.Known)
	}
	count, err := s.store.VersionCount(r.Context(), ws, project)
	if err != nil {
		return nil, err
	}
	if body, ok := s.pulls.get(ws, project, count); ok {
		return rawJSON(body), nil
	}
	res, err := s.store.Pull(r.Context(), ws, project, nil)
	if err != nil {
		return nil, err
	}
	body, err := encodeJSON(res)
	if err != nil {
		return nil, err
	}
	// Keyed by what it holds, not by count: a push may have landed
	// between the two reads, and this answer is then the newer one.
	s.pulls.put(ws, project, len(res.Versions), body)
	return body, nil
}

func (s *Server) push(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, project, err := s.project(r, info, RoleAdmin, RoleMember)
	if err != nil {
		return nil, err
	}
	var req syncapi.PushRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if len(req.Changes) == 0 {
		return nil, errcode.New(errcode.Usage, "a push needs at least one change")
	}
	if err := checkChanges(req.Changes, syncapi.MaxPushChanges); err != nil {
		return nil, err
	}
	versions, err := s.store.Push(r.Context(), ws, project, info.account, req.Changes, s.now())
	if err != nil {
		return nil, err
	}
	return syncapi.PushResponse{Versions: versions}, nil
}

// checkChanges validates the changes of a push or a rotation: at most
// limit, each name valid and once, base versions not negative, envelopes
// present and bounded.
func checkChanges(changes []syncapi.PushChange, limit int) error {
	if len(changes) > limit {
		return errcode.WithHint(errcode.Errorf(errcode.TooLarge, "a push may change at most %d secrets", limit), "push fewer secrets at a time")
	}
	seen := map[string]bool{}
	for _, c := range changes {
		if err := vault.CheckSecretName(c.Name); err != nil {
			return err
		}
		if seen[c.Name] {
			return errcode.Errorf(errcode.Usage, "%s appears twice in one push", c.Name)
		}
		seen[c.Name] = true
		if c.BaseVersion < 0 {
			return errcode.Errorf(errcode.Usage, "base_version of %s is negative", c.Name)
		}
		if len(c.Envelope) == 0 {
			return errcode.Errorf(errcode.Usage, "envelope of %s is empty", c.Name)
		}
		if len(c.Envelope) > syncapi.MaxEnvelope {
			return errcode.Errorf(errcode.TooLarge, "envelope of %s exceeds %d bytes", c.Name, syncapi.MaxEnvelope)
		}
	}
	return nil
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, project, err := s.project(r, info)
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if err := vault.CheckSecretName(name); err != nil {
		return nil, err
	}
	versions, err := s.store.History(r.Context(), ws, project, name)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "no secret %s in project %s on the server", name, project), "run `agentsecrets secrets diff`")
	}
	return syncapi.History{Name: name, Versions: versions}, nil
}

func (s *Server) allowlist(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info)
	if err != nil {
		return nil, err
	}
	since := 0
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = strconv.Atoi(v); err != nil || since < 0 {
			return nil, errcode.New(errcode.Usage, "since must be a version number (0 or more)")
		}
	}
	versions, err := s.store.Allowlist(r.Context(), ws, since)
	if err != nil {
		return nil, err
	}
	return syncapi.AllowlistVersions{Versions: versions}, nil
}

// pushAllowlist needs an admin: the allowlist is policy, and widening it
// is what the local admin passphrase guards.
func (s *Server) pushAllowlist(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	var req syncapi.AllowlistPushRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if req.BaseVersion < 0 {
		return nil, errcode.New(errcode.Usage, "base_version is negative")
	}
	if err := checkBytes("document", req.Document, 1, syncapi.MaxEnvelope); err != nil {
		return nil, err
	}
	v, err := s.store.PushAllowlist(r.Context(), ws, req.BaseVersion, req.Document, info.account, s.now())
	if errors.Is(err, errExists) {
		err = &conflictError{}
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
