-- Notifications. Every timeline event is looked at once by the notifier, which writes what the
-- people concerned should hear of it; `noticed_at` marks the events it has looked at, and the
-- partial index holds only the ones it has not. Events from before notifications existed are
-- marked looked at, so an upgrade does not flood anyone with old news.
ALTER TABLE events ADD COLUMN noticed_at BIGINT;
UPDATE events SET noticed_at = at;
CREATE INDEX events_unnoticed ON events (id) WHERE noticed_at IS NULL;
-- Events about an account or a product rather than an order or an instance (verification,
-- merchant and review decisions).
ALTER TABLE events ADD COLUMN account_id TEXT;
ALTER TABLE events ADD COLUMN product_id TEXT;

-- One notification per event and person; `emailed_at` is set once its e-mail has gone out.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    link TEXT,
    created_at BIGINT NOT NULL,
    read_at BIGINT,
    emailed_at BIGINT,
    UNIQUE (event_id, account_id)
);
CREATE INDEX notifications_by_account ON notifications (account_id, id);
CREATE INDEX notifications_unread ON notifications (account_id) WHERE read_at IS NULL;

-- Who wants which topic by e-mail; no row means the default (yes).
CREATE TABLE notification_prefs (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    topic TEXT NOT NULL,
    email BIGINT NOT NULL,
    PRIMARY KEY (account_id, topic)
);
