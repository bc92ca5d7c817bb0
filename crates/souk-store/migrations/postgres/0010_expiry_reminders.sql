-- The buyer is told 7 days and 1 day before an expiry; one row per reminder sent, so each is
-- sent exactly once per expiry even with several schedulers (a renewal's new expiry gets its own).
CREATE TABLE expiry_reminders (
    instance_id TEXT NOT NULL REFERENCES instances (id),
    expires_at BIGINT NOT NULL,
    days BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (instance_id, expires_at, days)
);
