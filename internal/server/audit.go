package server

// The team audit stream: members upload sealed batches of their audit
// records; admins page through them. The server stores the bytes opaque.

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// uploadAudit stores one sealed batch from any member of the workspace,
// service tokens included (readers too: they call APIs with what they
// pull). Rate-limited per account under a key of its own, so a chatty
// uploader cannot starve its invite requests nor the other way round.
func (s *Server) uploadAudit(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info)
	if err != nil {
		return nil, err
	}
	if ok, wait := s.byAccount.allow("audit:" + info.account); !ok {
		s.log.Warn("rate limited", slog.String("scope", "audit uploads"), slog.String("route", r.Pattern), slog.String("ip", info.ip), slog.String("account", info.account))
		return nil, &rateLimitedError{retry: wait, what: "audit uploads"}
	}
	req, err := decodeAuditUpload(w, r)
	if err != nil {
		return nil, err
	}
	b, err := s.store.PutAuditBatch(r.Context(), ws, info.account, req.Batch, s.now())
	if err != nil {
		return nil, err
	}
	// Ids and a size only: never the batch.
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "audit batch", slog.String("workspace", ws), slog.String("account", info.account),
		slog.Int64("batch", b.ID), slog.Int("bytes", len(req.Batch)))
	return b, nil
}

// decodeAuditUpload reads an upload strictly: one JSON object of at most a
// batch's size (base64 grows it by a third) plus room for the field name.
func decodeAuditUpload(w http.ResponseWriter, r *http.Request) (syncapi.AuditUploadRequest, error) {
	var req syncapi.AuditUploadRequest
	if err := decodeLimit(w, r, &req, syncapi.MaxAuditBatch/3*4+1024); err != nil {
		return req, err
	}
	if len(req.Batch) > syncapi.MaxAuditBatch {
		return req, errcode.WithHint(errcode.Errorf(errcode.TooLarge, "an audit batch may hold at most %d bytes", syncapi.MaxAuditBatch), "upload fewer records at a time")
	}
	if err := checkBytes("batch", req.Batch, 1, syncapi.MaxAuditBatch); err != nil {
		return req, err
	}
	return req, nil
}

// listAudit answers the batches after ?since=ID to an admin, oldest
// first, a page at a time.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			return nil, errcode.New(errcode.Usage, "since must be a batch id (0 or more)")
		}
	}
	list, more, err := s.store.AuditBatches(r.Context(), ws, since)
	if err != nil {
		return nil, err
	}
	return syncapi.AuditBatches{Batches: list, More: more}, nil
}

// auditPageBytes bounds the batch bytes of one page (each batch may reach
// syncapi.MaxAuditBatch): a page ends after the batch that reaches it.
const auditPageBytes = 8 << 20

// PutAuditBatch stores a batch as the workspace's next id. Two uploads at
// once may pick the same id: the loser's insert violates the primary key
// and it tries the next one.
func (s *SQLStore) PutAuditBatch(ctx context.Context, wsID, uploader string, batch []byte, now time.Time) (syncapi.AuditBatch, error) {
	b := syncapi.AuditBatch{UploaderID: uploader, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	for attempt := 0; ; attempt++ {
		dup := false
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if err := s.row(ctx, tx, "SELECT COALESCE(MAX(id), 0) + 1 FROM audit_batches WHERE workspace_id = ?", wsID).Scan(&b.ID); err != nil {
				return dbError("read audit head", err)
			}
			_, err := s.exec(ctx, tx, "INSERT INTO audit_batches (workspace_id, id, uploader_id, created_at, batch) VALUES (?, ?, ?, ?, ?)",
				wsID, b.ID, uploader, micro(b.CreatedAt), batch)
			if err != nil && s.d.unique(err) {
				dup = true
			}
			if err != nil {
				return dbError("insert audit batch", err)
			}
			return nil
		})
		if !dup || attempt == 4 {
			return b, err
		}
	}
}

// AuditBatches lists a page of a workspace's batches after id since,
// oldest first: at most syncapi.AuditPage, ending after the batch whose
// bytes reach auditPageBytes; more says there are later ones. Rows are
// read one at a time, so memory stays within the page.
func (s *SQLStore) AuditBatches(ctx context.Context, wsID string, since int64) ([]syncapi.AuditBatch, bool, error) {
	rows, err := s.query(ctx, s.db, "SELECT id, uploader_id, created_at, batch FROM audit_batches WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?", wsID, since, syncapi.AuditPage+1)
	if err != nil {
		return nil, false, dbError("read audit batches", err)
	}
	defer rows.Close()
	out := []syncapi.AuditBatch{}
	size := 0
	for rows.Next() {
		if len(out) == syncapi.AuditPage || size >= auditPageBytes {
			return out, true, nil
		}
		var b syncapi.AuditBatch
		var created int64
		if err := rows.Scan(&b.ID, &b.UploaderID, &created, &b.Batch); err != nil {
			return nil, false, dbError("read audit batches", err)
		}
		b.CreatedAt = fromMicro(created)
		size += len(b.Batch)
		out = append(out, b)
	}
	return out, false, rows.Err()
}
