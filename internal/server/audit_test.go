package server

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestAuditStream: every member uploads (admin, member, reader, service
// token), the batch stored as sent; only admins list, oldest first, a
// page at a time, after ?since; a non-member and a removed member are
// refused; bodies are bounded; the log names ids only.
func TestAuditStream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		r := newRotateRig(t, spec)
		ts := r.ts
		dave := ts.signup(t, "dave@example.com")
		ts.addMember(t, r.alice, r.ws, dave, RoleReader)
		tok := tokenReq(t, "ci", RoleReader, nil, time.Now().Add(time.Hour))
		call[syncapi.Token](t, "POST", ts.URL+path(syncapi.PathTokens, "ws", r.ws), r.alice.Session.AccessToken, tok)
		tokSession := ts.tokenLogin(t, tok.ID, tok.AuthKey)
		r.members[dave.Account.ID], r.members[tokSession.Account.ID] = RoleReader, RoleReader
		u := ts.URL + path(syncapi.PathAudit, "ws", r.ws)

		uploaders := []struct {
			name, token, account string
		}{
			{"admin", r.alice.Session.AccessToken, r.alice.Account.ID},
			{"member", r.bob.Session.AccessToken, r.bob.Account.ID},
			{"reader", dave.Session.AccessToken, dave.Account.ID},
			{"token", tokSession.Session.AccessToken, tokSession.Account.ID},
		}
		sent := map[int64][]byte{}
		for i, up := range uploaders {
			batch := append([]byte("opaque-batch-"+up.name+"-"), randomBytes(t, 64)...)
			got := call[syncapi.AuditBatch](t, "POST", u, up.token, syncapi.AuditUploadRequest{Batch: batch})
			if got.ID != int64(i+1) || got.UploaderID != up.account || len(got.Batch) != 0 || got.CreatedAt.IsZero() {
				t.Fatalf("%s upload = %+v", up.name, got)
			}
			sent[got.ID] = batch
		}

		// Listing: admins only.
		for _, tok := range []string{r.bob.Session.AccessToken, dave.Session.AccessToken} {
			apiError(t, "GET", u, tok, nil, 403, "denied")
		}
		apiError(t, "GET", u, tokSession.Session.AccessToken, nil, 403, "denied")
		list := call[syncapi.AuditBatches](t, "GET", u, r.carol.Session.AccessToken, nil)
		if len(list.Batches) != 4 || list.More {
			t.Fatalf("list = %d batches, more %v", len(list.Batches), list.More)
		}
		for i, b := range list.Batches {
			if b.ID != int64(i+1) || !bytes.Equal(b.Batch, sent[b.ID]) || b.UploaderID != uploaders[i].account {
				t.Fatalf("batch %d = %+v", i, b)
			}
		}
		if l := call[syncapi.AuditBatches](t, "GET", u+"?since=3", r.alice.Session.AccessToken, nil); len(l.Batches) != 1 || l.Batches[0].ID != 4 {
			t.Fatalf("since=3: %+v", l)
		}
		for _, bad := range []string{"-1", "x", "1e3"} {
			apiError(t, "GET", u+"?since="+bad, r.alice.Session.AccessToken, nil, 400, "usage")
		}

		// Bounds: empty, too large, malformed.
		apiError(t, "POST", u, r.bob.Session.AccessToken, syncapi.AuditUploadRequest{}, 400, "usage")
		apiError(t, "POST", u, r.bob.Session.AccessToken, syncapi.AuditUploadRequest{Batch: make([]byte, syncapi.MaxAuditBatch+1)}, 413, "too_large")
		apiError(t, "POST", u, r.bob.Session.AccessToken, map[string]any{"batch": "AA==", "more": 1}, 400, "usage")

		// Strangers and removed members.
		eve := ts.signup(t, "eve@example.com")
		apiError(t, "POST", u, eve.Session.AccessToken, syncapi.AuditUploadRequest{Batch: []byte{1}}, 404, "not_found")
		apiError(t, "GET", u, eve.Session.AccessToken, nil, 404, "not_found")
		call[syncapi.RotateResponse](t, "POST", r.url(), r.alice.Session.AccessToken, r.request(t, r.bob.Account.ID))
		apiError(t, "POST", u, r.bob.Session.AccessToken, syncapi.AuditUploadRequest{Batch: []byte{1}}, 401, "unauthorized")

		// The log names ids, never the batch.
		for _, b := range sent {
			for _, enc := range []string{string(b[:20]), base64.StdEncoding.EncodeToString(b)[:20]} {
				if strings.Contains(ts.Log.String(), enc) {
					t.Fatalf("the server log holds batch bytes")
				}
			}
		}
		if !strings.Contains(ts.Log.String(), `"msg":"audit batch"`) {
			t.Fatalf("no audit batch log line")
		}
	})
}

// TestAuditPagination: more than a page of batches comes back a page at a
// time, oldest first, with More set until the last page.
func TestAuditPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		huge := Limit{Burst: 1 << 20, Every: time.Nanosecond}
		ts := startServer(t, spec, Options{AccountLimit: huge})
		alice := ts.signup(t, "alice@example.com")
		ws := ts.workspace(t, alice, "app")
		u := ts.URL + path(syncapi.PathAudit, "ws", ws)
		total := syncapi.AuditPage + 7
		for i := 0; i < total; i++ {
			call[syncapi.AuditBatch](t, "POST", u, alice.Session.AccessToken, syncapi.AuditUploadRequest{Batch: []byte(strconv.Itoa(i))})
		}
		var got []syncapi.AuditBatch
		since, pages := int64(0), 0
		for {
			l := call[syncapi.AuditBatches](t, "GET", u+"?since="+strconv.FormatInt(since, 10), alice.Session.AccessToken, nil)
			pages++
			got = append(got, l.Batches...)
			if !l.More {
				break
			}
			if len(l.Batches) != syncapi.AuditPage {
				t.Fatalf("a page with more after it holds %d batches", len(l.Batches))
			}
			since = l.Batches[len(l.Batches)-1].ID
		}
		if pages != 2 || len(got) != total {
			t.Fatalf("%d pages, %d batches", pages, len(got))
		}
		for i, b := range got {
			if b.ID != int64(i+1) || string(b.Batch) != strconv.Itoa(i) {
				t.Fatalf("batch %d = id %d %q", i, b.ID, b.Batch)
			}
		}
	})
}

// TestAuditPageBytes: a page ends once its batches reach the byte bound,
// however few they are.
func TestAuditPageBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		huge := Limit{Burst: 1 << 20, Every: time.Nanosecond}
		ts := startServer(t, spec, Options{AccountLimit: huge})
		alice := ts.signup(t, "alice@example.com")
		ws := ts.workspace(t, alice, "app")
		u := ts.URL + path(syncapi.PathAudit, "ws", ws)
		n := auditPageBytes/syncapi.MaxAuditBatch + 3
		for i := 0; i < n; i++ {
			call[syncapi.AuditBatch](t, "POST", u, alice.Session.AccessToken, syncapi.AuditUploadRequest{Batch: make([]byte, syncapi.MaxAuditBatch)})
		}
		first := call[syncapi.AuditBatches](t, "GET", u, alice.Session.AccessToken, nil)
		if len(first.Batches) != auditPageBytes/syncapi.MaxAuditBatch || !first.More {
			t.Fatalf("first page: %d batches, more %v", len(first.Batches), first.More)
		}
		last := first.Batches[len(first.Batches)-1].ID
		rest := call[syncapi.AuditBatches](t, "GET", u+"?since="+strconv.FormatInt(last, 10), alice.Session.AccessToken, nil)
		if len(rest.Batches) != 3 || rest.More || rest.Batches[0].ID != last+1 {
			t.Fatalf("second page: %d batches, more %v", len(rest.Batches), rest.More)
		}
	})
}

// TestAuditRateLimit: uploads take from a per-account bucket of their own.
func TestAuditRateLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{AccountLimit: Limit{Burst: 2, Every: time.Hour}})
		alice := ts.signup(t, "alice@example.com")
		ws := ts.workspace(t, alice, "app")
		u := ts.URL + path(syncapi.PathAudit, "ws", ws)
		for i := 0; i < 2; i++ {
			call[syncapi.AuditBatch](t, "POST", u, alice.Session.AccessToken, syncapi.AuditUploadRequest{Batch: []byte{1}})
		}
		apiError(t, "POST", u, alice.Session.AccessToken, syncapi.AuditUploadRequest{Batch: []byte{1}}, 429, "rate_limited")
		// Another bucket is untouched: listing still answers.
		call[syncapi.AuditBatches](t, "GET", u, alice.Session.AccessToken, nil)
	})
}

func FuzzDecodeAuditUpload(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathAudit, "ws", fx.ws) }, syncapi.AuditUploadRequest{Batch: []byte("batch")})
}
