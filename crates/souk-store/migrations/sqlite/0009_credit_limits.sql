-- How far below zero finance lets an account's balance go, per currency (no row: not at all).
CREATE TABLE credit_limits (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    currency TEXT NOT NULL,
    limit_minor BIGINT NOT NULL,
    set_by TEXT NOT NULL REFERENCES accounts (id),
    set_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, currency)
);
