-- The notifier's queue: recording an event also queues its id here, and the notifier deletes
-- the ids it has looked at (on PostgreSQL this spares each event a second write; the schema is
-- the same on both databases).
CREATE TABLE unnoticed_events (id TEXT PRIMARY KEY);
INSERT INTO unnoticed_events (id) SELECT id FROM events WHERE noticed_at IS NULL;
DROP INDEX events_unnoticed;
ALTER TABLE events DROP COLUMN noticed_at;
