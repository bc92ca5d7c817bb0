-- Jobs carry a generic ordering key (one job at a time per key, in order), restart their retry
-- budget when an operator replays them, and keep every attempt.
ALTER TABLE jobs ADD COLUMN ordering_key TEXT;
UPDATE jobs SET ordering_key = instance_id;
ALTER TABLE jobs ADD COLUMN budget_start BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_ordering_key ON jobs (ordering_key, id);
CREATE INDEX jobs_by_state ON jobs (state, id);

CREATE TABLE job_attempts (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    request TEXT,
    answer TEXT,
    error TEXT,
    PRIMARY KEY (job_id, attempt)
);
