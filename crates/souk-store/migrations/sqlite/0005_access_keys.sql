-- Machine identity: IAM users of an account, their access keys (the secret sealed by the server),
-- the signatures already accepted (a signed request is accepted once), and the audit of refused
-- signed requests.
CREATE TABLE iam_users (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    console_access BIGINT NOT NULL,
    programmatic_access BIGINT NOT NULL,
    policy TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE access_keys (
    access_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES iam_users (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    secret_enc TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX access_keys_by_user ON access_keys (user_id);

CREATE TABLE signed_requests (
    access_key TEXT NOT NULL,
    signature TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (access_key, signature)
);
CREATE INDEX signed_requests_expiry ON signed_requests (expires_at);

CREATE TABLE auth_audit (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    access_key TEXT,
    account_id TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX auth_audit_by_time ON auth_audit (id);
