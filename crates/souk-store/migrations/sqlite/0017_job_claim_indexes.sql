-- The claim reads unfinished jobs in (run_at, id) order and stops at its limit, checking for each
-- that no earlier job of its ordering key is unfinished. Both reads now have an index holding only
-- unfinished jobs, so a backlog of thousands costs a claim what a few rows do (before, a claim
-- over a fresh backlog checked every candidate against every unfinished job: half a second).
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_unfinished_by_key ON jobs (ordering_key, id) WHERE state IN ('pending', 'running');
