-- Accepted signatures are remembered by the digest nodes already compute: the first 16 bytes of
-- SHA-256 over the access key, a zero byte and the signature. A short binary key makes each
-- insert a cheap comparison of bytes, and the expiry, which grows with time, needs only a block
-- range index to find what to forget. The signatures remembered so far are carried over.
CREATE UNLOGGED TABLE signature_digests (
    digest BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
INSERT INTO signature_digests (digest, expires_at)
SELECT substring(sha256(convert_to(access_key, 'UTF8') || decode('00', 'hex') || convert_to(signature, 'UTF8')) FROM 1 FOR 16),
       MAX(expires_at)
FROM signed_requests GROUP BY 1;
DROP TABLE signed_requests;
CREATE INDEX signature_digests_expiry ON signature_digests USING brin (expires_at);
