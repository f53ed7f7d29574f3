package server

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// Bounds of the invite bodies. A statement is a few hundred bytes of
// fields, a signature and a MAC; a proof is one HMAC-SHA-256.
const (
	maxStatement = 4 << 10
	proofSize    = 32
	// maxPendingInvites bounds the open and accepted invites of one
	// workspace: creating one is cheap for the caller and costs a row.
	maxPendingInvites = 100
)

var errNoInvite = errcode.WithHint(errcode.New(errcode.NotFound, "no such pending invite (or it is not addressed to you)"),
	"run `agentsecrets workspace invites`")

func checkInviteID(id string) error {
	return checkHexID("an invite id", id, "run `agentsecrets workspace invites`")
}

func checkRoleName(role string) error {
	switch role {
	case RoleAdmin, RoleMember, RoleReader:
		return nil
	}
	return errcode.WithHint(errcode.New(errcode.Usage, "role must be admin, member or reader"), "use --role member")
}

// inviteError turns the store's invite outcomes into answers.
func inviteError(err error) error {
	switch {
	case errors.Is(err, errMissing):
		return errNoInvite
	case errors.Is(err, errAlreadyMember):
		return errcode.WithHint(errcode.New(errcode.Conflict, "this email is already a member of the workspace"), "run `agentsecrets workspace members`")
	case errors.Is(err, errInvitePending):
		return errcode.WithHint(errcode.New(errcode.Conflict, "an invite for this email is already pending in this workspace"), "run `agentsecrets workspace invites`")
	case errors.Is(err, errExists):
		return errcode.WithHint(errcode.New(errcode.Conflict, "an invite with this id exists"), "generate a new invite id")
	case errors.Is(err, errTooManyInvites):
		return errcode.WithHint(errcode.Errorf(errcode.TooLarge, "this workspace has %d pending invites, the most it may have", maxPendingInvites),
			"wait until invitees join, then invite more (`agentsecrets workspace invites` lists them)")
	case errors.Is(err, errNotAccepted):
		return errcode.WithHint(errcode.New(errcode.Conflict, "the invitee has not accepted this invite yet"),
			"ask them to run `agentsecrets workspace join NAME --code CODE`")
	}
	return err
}

// limitWrite takes one attempt from the caller's write bucket: invite
// creation and acceptance are cheap requests that each add or change a
// row. It is the per-account limit of the auth routes, under a key of its
// own so that neither starves the other.
func (s *Server) limitWrite(r *http.Request, info *reqInfo) error {
	if ok, wait := s.byAccount.allow("write:" + info.account); !ok {
		s.log.Warn("rate limited", slog.String("scope", "account writes"), slog.String("route", r.Pattern), slog.String("ip", info.ip), slog.String("account", info.account))
		return &rateLimitedError{retry: wait, what: "invite requests"}
	}
	return nil
}

// logInvite records an invite event by ids only: never the email, the
// statement, the proof, a record or a key.
func (s *Server) logInvite(r *http.Request, info *reqInfo, event, ws, invite string) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "invite", slog.String("event", event), slog.String("workspace", ws),
		slog.String("invite", invite), slog.String("account", info.account))
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	var req syncapi.CreateInviteRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	email, err := normEmail(req.Email)
	if err != nil {
		return nil, err
	}
	for _, c := range []error{
		checkInviteID(req.ID),
		checkRoleName(req.Role),
		checkBytes("statement", req.Statement, 1, maxStatement),
	} {
		if c != nil {
			return nil, c
		}
	}
	if err := s.limitWrite(r, info); err != nil {
		return nil, err
	}
	inv := syncapi.Invite{ID: req.ID, WorkspaceID: ws, Email: email, Role: req.Role, InvitedBy: info.account,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond), Statement: req.Statement}
	out, err := s.store.CreateInvite(r.Context(), inv, maxPendingInvites)
	if err != nil {
		return nil, inviteError(err)
	}
	s.logInvite(r, info, "created", ws, inv.ID)
	return out, nil
}

func (s *Server) listInvites(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Invites(r.Context(), ws)
	if err != nil {
		return nil, err
	}
	return syncapi.InviteList{Invites: list}, nil
}

func (s *Server) cancelInvite(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("invite")
	if err := checkInviteID(id); err != nil {
		return nil, err
	}
	if err := s.store.CancelInvite(r.Context(), ws, id, s.now()); err != nil {
		return nil, inviteError(err)
	}
	s.logInvite(r, info, "canceled", ws, id)
	return nil, nil
}

func (s *Server) completeInvite(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("invite")
	if err := checkInviteID(id); err != nil {
		return nil, err
	}
	var req syncapi.CompleteInviteRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	for _, c := range []error{
		checkBytes("record", req.Record, 1, maxSealed),
		checkBytes("sealed_key", req.SealedKey, 1, maxSealed),
	} {
		if c != nil {
			return nil, c
		}
	}
	// The server cannot check the record (clients verify every record
	// against the roster); it checks the caller is an admin and the
	// invite accepted, and takes the account and role from the invite.
	now := s.now().UTC().Truncate(time.Microsecond)
	m, err := s.store.CompleteInvite(r.Context(), ws, id, syncapi.Member{Record: req.Record, SealedKey: req.SealedKey, AddedBy: info.account, AddedAt: now}, now)
	if err != nil {
		return nil, inviteError(err)
	}
	s.logInvite(r, info, "completed", ws, id)
	return m, nil
}

func (s *Server) myInvites(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	a, err := s.store.AccountByID(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	list, err := s.store.InvitesFor(r.Context(), a.Email)
	if err != nil {
		return nil, err
	}
	return syncapi.InviteList{Invites: list}, nil
}

// acceptInvite is the invitee's: an invite addressed to another email
// reads exactly like one that does not exist.
func (s *Server) acceptInvite(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	id := r.PathValue("invite")
	if err := checkInviteID(id); err != nil {
		return nil, err
	}
	var req syncapi.AcceptInviteRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := checkBytes("proof", req.Proof, proofSize, proofSize); err != nil {
		return nil, err
	}
	if err := s.limitWrite(r, info); err != nil {
		return nil, err
	}
	a, err := s.store.AccountByID(r.Context(), info.account)
	if err != nil {
		return nil, err
	}
	inv, err := s.store.AcceptInvite(r.Context(), id, a, req.Proof, s.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, inviteError(err)
	}
	s.logInvite(r, info, "accepted", inv.WorkspaceID, id)
	return inv, nil
}
