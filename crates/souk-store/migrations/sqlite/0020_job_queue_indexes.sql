-- The job claim reads pending jobs alone, in order (a job whose lease ran out is first put back
-- to pending), so each state the queue looks up has an index holding only its own rows: every
-- change of a job's state writes fewer index entries, and the claim walks a short index in
-- order instead of combining two.
DROP INDEX jobs_due;
DROP INDEX jobs_by_state;
DROP INDEX jobs_by_ordering_key;
CREATE INDEX jobs_pending ON jobs (run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';
