-- SQLite serves one node, which remembers the signed requests it accepted in memory and writes
-- them here a second's worth at a time, one row a batch (one line a signature: the hex of the
-- first 16 bytes of SHA-256 over access key, a zero byte and signature, a tab, and its expiry
-- in ms), so that remembering them costs the single writer one insert a second rather than one
-- a request. PostgreSQL nodes share
-- `signed_requests` instead.
CREATE TABLE signature_batches (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    signatures TEXT NOT NULL
);
CREATE INDEX signature_batches_expiry ON signature_batches (expires_at);
