-- The notifier's queue. Marking an event noticed used to update the event itself, and since the
-- column was in a partial index the update could never stay on its page: each event was written
-- twice with all its index entries. Now recording an event also queues its id here, and the
-- notifier deletes the ids it has looked at. Events not yet looked at stay queued.
CREATE TABLE unnoticed_events (id TEXT PRIMARY KEY);
INSERT INTO unnoticed_events (id) SELECT id FROM events WHERE noticed_at IS NULL;
DROP INDEX events_unnoticed;
ALTER TABLE events DROP COLUMN noticed_at;
-- A notification is written once and updated once, when it is e-mailed; room left on each page
-- lets that update stay on the page (no new index entries) instead of moving the row.
ALTER TABLE notifications SET (fillfactor = 60);
