-- Sessions end after a spell of inactivity as well as at their absolute expiry; last_seen_at is
-- refreshed at most once a minute per session. NULL (sessions from before) counts as created_at.
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
