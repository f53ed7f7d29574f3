package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// fuzzFixture is a real server (handler and SQLite store) with an account,
// a workspace and a project, and a second account invited to it (the
// invite accepted), for feeding request bodies straight to the handler.
type fuzzFixture struct {
	srv          *Server
	token        string
	ws           string
	inviteeToken string
	invite       string
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+filepath.Join(f.TempDir(), "server.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	// Limits out of the way: the fuzzer is one client sending thousands.
	huge := Limit{Burst: 1 << 30, Every: time.Nanosecond}
	srv, err := New(ctx, Options{Store: st, Signup: "open", AccountLimit: huge, IPLimit: huge})
	if err != nil {
		f.Fatal(err)
	}
	fx := &fuzzFixture{srv: srv}
	req := createAccountRequest(f, "fuzz@example.com", make([]byte, 32))
	var res syncapi.SessionResponse
	fx.post(f, syncapi.PathAccounts, mustJSONF(f, req), &res)
	fx.token = res.Session.AccessToken
	fx.ws = "0123456789abcdef0123456789abcdef"
	fx.post(f, syncapi.PathWorkspaces, mustJSONF(f, syncapi.CreateWorkspaceRequest{ID: fx.ws, Name: "w", Record: []byte{1}, SealedKey: []byte{1}}), nil)
	fx.post(f, path(syncapi.PathProjects, "ws", fx.ws), mustJSONF(f, syncapi.CreateProjectRequest{Name: "app", WrappedKey: []byte{1}, KeyVersion: 1}), nil)
	fx.post(f, syncapi.PathAccounts, mustJSONF(f, createAccountRequest(f, "invitee@example.com", make([]byte, 32))), &res)
	fx.inviteeToken = res.Session.AccessToken
	fx.invite = "00000000000000000000000000000002"
	fx.post(f, path(syncapi.PathInvites, "ws", fx.ws), mustJSONF(f, syncapi.CreateInviteRequest{ID: fx.invite, Email: "invitee@example.com", Role: RoleMember, Statement: []byte{1}}), nil)
	fx.postAs(f, fx.inviteeToken, path(syncapi.PathInviteAccept, "invite", fx.invite), mustJSONF(f, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}), nil)
	return fx
}

func mustJSONF(f *testing.F, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func (fx *fuzzFixture) serveAs(token, route string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", route, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	fx.srv.ServeHTTP(rec, req)
	return rec
}

func (fx *fuzzFixture) post(f *testing.F, route string, body []byte, out any) {
	fx.postAs(f, fx.token, route, body, out)
}

func (fx *fuzzFixture) postAs(f *testing.F, token, route string, body []byte, out any) {
	rec := fx.serveAs(token, route, body)
	if rec.Code != http.StatusOK {
		f.Fatalf("%s: %d %s", route, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			f.Fatal(err)
		}
	}
}

// fuzzBody feeds arbitrary bytes to one route of the real handler: it must
// never fail with a 5xx, and every refusal must be a syncapi.Error with a
// documented code and the code's HTTP status.
func fuzzBody(f *testing.F, route func(fx *fuzzFixture) string, seeds ...any) {
	fuzzBodyAs(f, func(fx *fuzzFixture) string { return fx.token }, route, seeds...)
}

// fuzzBodyAs is fuzzBody with the token who gives.
func fuzzBodyAs(f *testing.F, who func(fx *fuzzFixture) string, route func(fx *fuzzFixture) string, seeds ...any) {
	fx := newFuzzFixture(f)
	for _, s := range seeds {
		f.Add(mustJSONF(f, s))
	}
	f.Add([]byte(`{"unknown": 1}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"changes": [{"name": "A", "base_version": -1, "envelope": ""}]}`))
	codes := errcode.Codes()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fx.serveAs(who(fx), route(fx), body)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Code < 300 {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("status %d with a body that is not JSON", rec.Code)
			}
			return
		}
		var e syncapi.Error
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("status %d: error body %v", rec.Code, err)
		}
		if !slices.Contains(codes, e.Error.Code) || errcode.Lookup(errcode.Code(e.Error.Code)).HTTP != rec.Code {
			t.Fatalf("status %d with code %q", rec.Code, e.Error.Code)
		}
	})
}

func static(p string) func(*fuzzFixture) string { return func(*fuzzFixture) string { return p } }

func FuzzDecodePrelogin(f *testing.F) {
	fuzzBody(f, static(syncapi.PathPrelogin), syncapi.PreloginRequest{Email: "a@b.c"})
}

func FuzzDecodeCreateAccount(f *testing.F) {
	fuzzBody(f, static(syncapi.PathAccounts), createAccountRequest(f, "new@example.com", make([]byte, 32)))
}

func FuzzDecodeLogin(f *testing.F) {
	fuzzBody(f, static(syncapi.PathSessions), syncapi.LoginRequest{Email: "fuzz@example.com", AuthKey: make([]byte, 32), DeviceName: "d"})
}

func FuzzDecodeRefresh(f *testing.F) {
	fuzzBody(f, static(syncapi.PathRefresh), syncapi.RefreshRequest{RefreshToken: RefreshPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
}

func FuzzDecodeCreateWorkspace(f *testing.F) {
	fuzzBody(f, static(syncapi.PathWorkspaces), syncapi.CreateWorkspaceRequest{ID: "00000000000000000000000000000001", Name: "w2", Record: []byte{1}, SealedKey: []byte{2}})
}

func FuzzDecodeCreateProject(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathProjects, "ws", fx.ws) },
		syncapi.CreateProjectRequest{Name: "p", WrappedKey: []byte{1}, KeyVersion: 1})
}

func FuzzDecodePull(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathPull, "ws", fx.ws, "project", "app") },
		syncapi.PullRequest{Known: map[string]int{"A": 1}})
}

func FuzzDecodePush(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathPush, "ws", fx.ws, "project", "app") },
		syncapi.PushRequest{Changes: []syncapi.PushChange{{Name: "A", BaseVersion: 0, Envelope: []byte("x")}}})
}

func FuzzDecodeAllowlistPush(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathAllowlist, "ws", fx.ws) },
		syncapi.AllowlistPushRequest{BaseVersion: 0, Document: []byte("doc")})
}

func FuzzDecodeCreateInvite(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathInvites, "ws", fx.ws) },
		syncapi.CreateInviteRequest{ID: "00000000000000000000000000000003", Email: "new@example.com", Role: RoleReader, Statement: []byte("statement")})
}

func FuzzDecodeAcceptInvite(f *testing.F) {
	fuzzBodyAs(f, func(fx *fuzzFixture) string { return fx.inviteeToken }, func(fx *fuzzFixture) string { return path(syncapi.PathInviteAccept, "invite", fx.invite) },
		syncapi.AcceptInviteRequest{Proof: make([]byte, 32)})
}

func FuzzDecodeCompleteInvite(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string {
		return path(syncapi.PathInviteComplete, "ws", fx.ws, "invite", fx.invite)
	},
		syncapi.CompleteInviteRequest{Record: []byte("record"), SealedKey: []byte("sealed")})
}

func FuzzDecodeRotate(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathRotate, "ws", fx.ws) },
		syncapi.RotateRequest{RemovedAccountID: "someone", KeyVersion: 2, Members: []syncapi.RotateMember{{AccountID: "a", Role: RoleAdmin, Record: []byte{1}, SealedKey: []byte{1}}},
			Projects: []syncapi.RotateProject{{Name: "app", KeyVersion: 2, WrappedKey: []byte{1}, PreviousKeys: []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: []byte{1}}},
				Heads: map[string]int{"A": 1}, Changes: []syncapi.PushChange{{Name: "A", BaseVersion: 1, Envelope: []byte("x")}}}}})
}
