-- A member's authority record (issue 11): after a removal, the admin who
-- ran it signs its own new membership record; the record another admin
-- signed for it before is kept here, so every client can still trace that
-- admin's role back to the creator. Opaque to the server, like records.

-- +goose Up
ALTER TABLE members ADD COLUMN authority BYTEA;

-- +goose Down
ALTER TABLE members DROP COLUMN authority;
