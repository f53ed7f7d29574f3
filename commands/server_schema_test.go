package commands

import (
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

const serverSchemaDir = "../schema/server"

// serverBodies are the bodies of the sync API (internal/syncapi), each
// with the routes that send it; schema/server/NAME.json is generated from
// each type the way the CLI's schemas are.
var serverBodies = []struct {
	name   string
	v      any
	routes string
}{
	{"prelogin_request", &syncapi.PreloginRequest{}, "POST " + syncapi.PathPrelogin + " request"},
	{"prelogin_response", &syncapi.PreloginResponse{}, "POST " + syncapi.PathPrelogin + " response"},
	{"create_account_request", &syncapi.CreateAccountRequest{}, "POST " + syncapi.PathAccounts + " request"},
	{"login_request", &syncapi.LoginRequest{}, "POST " + syncapi.PathSessions + " request"},
	{"refresh_request", &syncapi.RefreshRequest{}, "POST " + syncapi.PathRefresh + " request"},
	{"session_response", &syncapi.SessionResponse{}, "POST " + syncapi.PathAccounts + ", " + syncapi.PathSessions + " and " + syncapi.PathRefresh + " response"},
	{"account", &syncapi.Account{}, "GET " + syncapi.PathAccount + " response"},
	{"device_list", &syncapi.DeviceList{}, "GET " + syncapi.PathDevices + " response"},
	{"workspace_list", &syncapi.WorkspaceList{}, "GET " + syncapi.PathWorkspaces + " response"},
	{"create_workspace_request", &syncapi.CreateWorkspaceRequest{}, "POST " + syncapi.PathWorkspaces + " request"},
	{"workspace", &syncapi.Workspace{}, "POST " + syncapi.PathWorkspaces + " response"},
	{"workspace_detail", &syncapi.WorkspaceDetail{}, "GET " + syncapi.PathWorkspace + " response"},
	{"create_project_request", &syncapi.CreateProjectRequest{}, "POST " + syncapi.PathProjects + " request"},
	{"project", &syncapi.Project{}, "POST " + syncapi.PathProjects + " response"},
	{"pull_request", &syncapi.PullRequest{}, "POST " + syncapi.PathPull + " request"},
	{"pull_response", &syncapi.PullResponse{}, "POST " + syncapi.PathPull + " response"},
	{"push_request", &syncapi.PushRequest{}, "POST " + syncapi.PathPush + " request"},
	{"push_response", &syncapi.PushResponse{}, "POST " + syncapi.PathPush + " response"},
	{"history", &syncapi.History{}, "GET " + syncapi.PathHistory + " response"},
	{"allowlist_versions", &syncapi.AllowlistVersions{}, "GET " + syncapi.PathAllowlist + "?since=N response"},
	{"allowlist_push_request", &syncapi.AllowlistPushRequest{}, "POST " + syncapi.PathAllowlist + " request"},
	{"allowlist_version", &syncapi.AllowlistVersion{}, "POST " + syncapi.PathAllowlist + " response"},
	{"create_invite_request", &syncapi.CreateInviteRequest{}, "POST " + syncapi.PathInvites + " request"},
	{"invite", &syncapi.Invite{}, "POST " + syncapi.PathInvites + " and POST " + syncapi.PathInviteAccept + " response"},
	{"invite_list", &syncapi.InviteList{}, "GET " + syncapi.PathInvites + " and GET " + syncapi.PathMyInvites + " response"},
	{"accept_invite_request", &syncapi.AcceptInviteRequest{}, "POST " + syncapi.PathInviteAccept + " request"},
	{"complete_invite_request", &syncapi.CompleteInviteRequest{}, "POST " + syncapi.PathInviteComplete + " request"},
	{"member", &syncapi.Member{}, "POST " + syncapi.PathInviteComplete + " response"},
	{"create_token_request", &syncapi.CreateTokenRequest{}, "POST " + syncapi.PathTokens + " request"},
	{"token", &syncapi.Token{}, "POST " + syncapi.PathTokens + " response"},
	{"token_list", &syncapi.TokenList{}, "GET " + syncapi.PathTokens + " response"},
	{"token_login_request", &syncapi.TokenLoginRequest{}, "POST " + syncapi.PathTokenLogin + " request (answered with a session_response without a refresh token)"},
	{"rotate_request", &syncapi.RotateRequest{}, "POST " + syncapi.PathRotate + " request"},
	{"rotate_response", &syncapi.RotateResponse{}, "POST " + syncapi.PathRotate + " response"},
	{"audit_upload_request", &syncapi.AuditUploadRequest{}, "POST " + syncapi.PathAudit + " request"},
	{"audit_batch", &syncapi.AuditBatch{}, "POST " + syncapi.PathAudit + " response (without the batch bytes)"},
	{"audit_batches", &syncapi.AuditBatches{}, "GET " + syncapi.PathAudit + " response"},
	{"error", &syncapi.Error{}, "every non-2xx response"},
}

// serverSchemas generates schema/server: every field without omitempty is
// required and no other field is allowed, as the server decodes.
func serverSchemas() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, b := range serverBodies {
		s := reflector(false).Reflect(b.v)
		s.Description = b.routes
		if b.name == "error" {
			if e, ok := s.Properties.Get("error"); ok {
				if code, ok := e.Properties.Get("code"); ok {
					for _, c := range errcode.Codes() {
						code.Enum = append(code.Enum, c)
					}
				}
			}
		}
		raw, err := marshalSchema(s)
		if err != nil {
			return nil, err
		}
		out[b.name+".json"] = append(raw, '\n')
	}
	return out, nil
}

// TestSchemaFilesServer fails when schema/server drifts from
// internal/syncapi; `make schema` rewrites it.
func TestSchemaFilesServer(t *testing.T) {
	want, err := serverSchemas()
	if err != nil {
		t.Fatal(err)
	}
	checkSchemaDir(t, serverSchemaDir, want)
}
