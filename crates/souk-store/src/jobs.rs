//! The durable job queue (outbox): every call that leaves the database is written as a job in the
//! same transaction as the change that causes it, then claimed and run by a worker. Jobs of one
//! instance run in the order they were written.

use crate::decode::{id, int, opt_id, opt_text, parsed, text, time};
use crate::events::{self, NewEvent};
use crate::{fresh, ms, Backend, Error, Result, Store};
use chrono::{DateTime, Duration, Utc};
use souk_core::ids::{Id, InstanceId, JobId};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its `run_at`.
    Pending,
    /// Claimed by a worker whose lease has not ended.
    Running,
    /// Carried out.
    Done,
    /// Given up after its retry budget, or failed for good; an operator can replay it.
    Dead,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            JobState::Pending,
            JobState::Running,
            JobState::Done,
            JobState::Dead,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
        .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// A job to enqueue with a change.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// e.g. `seller.new_instance`.
    pub kind: &'static str,
    /// JSON payload.
    pub payload: String,
}

/// One run of a job: what it asked, what it got back, how long it took, what went wrong.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    /// A summary of the request made (never a secret or a signed URL).
    pub request: Option<String>,
    /// A summary of the answer.
    pub answer: Option<String>,
    pub error: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    /// The instance it concerns, if any.
    pub instance_id: Option<InstanceId>,
    /// Jobs with the same key run one at a time, in the order they were written.
    pub ordering_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub attempts: i64,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// The attempt count when an operator last replayed it: the retry budget counts from here.
    pub budget_start: i64,
    /// The merchant whose endpoint a seller job calls; a node runs only so many jobs of one lane
    /// at once.
    pub lane: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// Attempts made since the job was written or last replayed.
    pub fn attempts_in_budget(&self) -> i64 {
        self.attempts - self.budget_start
    }
}

const JOB: &str = "id, kind, instance_id, ordering_key, payload, state, attempts, run_at, last_error, budget_start, \
    created_at, updated_at, lane";

fn job(row: &AnyRow) -> Result<Job> {
    Ok(Job {
        id: id(row, "id")?,
        kind: text(row, "kind")?,
        instance_id: opt_id(row, "instance_id")?,
        ordering_key: opt_text(row, "ordering_key")?,
        payload: text(row, "payload")?,
        state: parsed(row, "state")?,
        attempts: int(row, "attempts")?,
        run_at: time(row, "run_at")?,
        last_error: opt_text(row, "last_error")?,
        budget_start: int(row, "budget_start")?,
        lane: opt_text(row, "lane")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn attempt(row: &AnyRow) -> Result<Attempt> {
    Ok(Attempt {
        attempt: int(row, "attempt")?,
        started_at: time(row, "started_at")?,
        latency_ms: int(row, "latency_ms")?,
        request: opt_text(row, "request")?,
        answer: opt_text(row, "answer")?,
        error: opt_text(row, "error")?,
    })
}

/// Writes a job inside the caller's transaction, to run at `run_at`; a job about an instance is
/// ordered with the instance's other jobs.
pub async fn enqueue(
    conn: &mut AnyConnection,
    job: &JobSpec,
    instance_id: Option<&InstanceId>,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<JobId> {
    let id: JobId = fresh(now);
    // The lane is the instance's merchant, read in the same transaction that wrote the instance.
    sqlx::query(&format!("INSERT INTO jobs ({JOB}, locked_until) VALUES ($1, $2, $3, $3, $4, $5, 0, $6, NULL, 0, $7, $7, \
                          (SELECT merchant_id FROM instances WHERE id = $3), NULL)"))
        .bind(id.as_str())
        .bind(job.kind)
        .bind(instance_id.map(InstanceId::as_str))
        .bind(&job.payload)
        .bind(JobState::Pending.as_str())
        .bind(ms(run_at))
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Queues jobs about no instance (so with no ordering key and no lane), due now, in as few
/// statements as their number allows.
pub async fn enqueue_unordered(
    conn: &mut AnyConnection,
    jobs: &[JobSpec],
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in jobs.chunks(500) {
        let values: Vec<String> = (0..chunk.len())
            .map(|k| {
                let at = 3 + k * 3;
                format!(
                    "(${at}, ${}, NULL, NULL, ${}, $1, 0, $2, NULL, 0, $2, $2, NULL, NULL)",
                    at + 1,
                    at + 2
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO jobs ({JOB}, locked_until) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query(&sql)
            .persistent(false)
            .bind(JobState::Pending.as_str())
            .bind(ms(now));
        for job in chunk {
            insert = insert
                .bind(fresh::<JobId>(now).to_string())
                .bind(job.kind)
                .bind(job.payload.as_str());
        }
        insert.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How a claimed job ends.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub id: &'a JobId,
    /// The attempt that ran it (only that claim may settle it).
    pub attempts: i64,
    /// `Done` or `Dead`.
    pub state: JobState,
    pub error: Option<&'a str>,
}

impl Store {
    /// Claims up to `limit` pending jobs due at `now` (the injected clock) for `lease`. Leases
    /// run on `wall` (real time): they track live workers, which a test clock jumping ahead must
    /// not declare dead (see [`Store::release_expired_leases`]). On PostgreSQL
    /// concurrent workers skip each other's rows. Jobs of the `busy` lanes are left for later.
    pub async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        wall: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        busy: &[String],
    ) -> Result<Vec<Job>> {
        // On PostgreSQL the choice is a materialized `WITH` that locks what it picks, so the
        // UPDATE only writes rows already locked and never re-runs the choice for a row another
        // node changed meanwhile.
        let (materialized, lock) = match self.backend {
            Backend::Postgres => ("MATERIALIZED ", "FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => ("", ""),
        };
        // The states are written into the statement, not bound: PostgreSQL reuses a generic plan
        // for a prepared statement, and only a literal state lets that plan use the partial index
        // of unfinished jobs (with bound states it scanned every job ever run: a second per claim
        // once a few thousand were queued).
        let (running, pending) = (JobState::Running.as_str(), JobState::Pending.as_str());
        let not_busy = if busy.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..busy.len()).map(|i| format!("${}", i + 4)).collect();
            format!(
                "AND (j.lane IS NULL OR j.lane NOT IN ({})) ",
                marks.join(", ")
            )
        };
        // Pending jobs alone, in order, from their own index (a job whose worker died is put
        // back to pending by `release_expired_leases`). An index scan, unlike the bitmap scan an
        // OR of both states made PostgreSQL choose, marks the entries of jobs that moved on as
        // dead and skips them after: the bitmap scan revisited every job run since the last
        // vacuum (15,000 rows, milliseconds a claim, under the orders benchmark).
        let sql = format!(
            "WITH chosen AS {materialized}( \
               SELECT j.id FROM jobs j \
               WHERE j.state = '{pending}' AND j.run_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.ordering_key = j.ordering_key AND e.id < j.id AND e.state IN ('{pending}', '{running}')) \
               {not_busy}ORDER BY j.run_at, j.id LIMIT $3 {lock}) \
             UPDATE jobs SET state = '{running}', attempts = attempts + 1, locked_until = $1, updated_at = $2 \
             WHERE id IN (SELECT id FROM chosen) \
             RETURNING {JOB}"
        );
        // One statement is atomic on both databases; no explicit transaction is needed. It is
        // planned afresh each time (not prepared): a plan PostgreSQL kept from when the queue was
        // nearly empty compared every unfinished job with every other (seconds a claim once a
        // few thousand were queued, before autovacuum had looked at the table).
        let mut query = sqlx::query(&sql)
            .persistent(false)
            .bind(ms(souk_core::clock::add(wall, lease)))
            .bind(ms(now))
            .bind(limit);
        for lane in busy {
            query = query.bind(lane.as_str());
        }
        let mut jobs = query
            .fetch_all(&self.queue)
            .await?
            .iter()
            .map(job)
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    /// Puts the jobs whose lease ran out by `wall` (their worker died or lost its node) back to
    /// pending, due at once, so the next claim takes them with a new attempt; the old worker can
    /// no longer end them (its end names the old attempt of a running job). Returns how many.
    pub async fn release_expired_leases(
        &self,
        now: DateTime<Utc>,
        wall: DateTime<Utc>,
    ) -> Result<u64> {
        let (running, pending) = (JobState::Running, JobState::Pending);
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET state = '{pending}', locked_until = NULL, updated_at = $1 \
             WHERE state = '{running}' AND locked_until <= $2"
        ))
        .bind(ms(now))
        .bind(ms(wall))
        .execute(&self.queue)
        .await?
        .rows_affected())
    }

    /// How many jobs are pending, running and dead, and the `run_at` of the oldest job due at
    /// `now`. Done jobs are not counted: they are most of the table (until forgotten, see
    /// [`Store::forget_done_jobs`]), and each count here reads only its state's partial index.
    pub async fn job_stats(&self, now: DateTime<Utc>) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let counts = sqlx::query_as(
            &[JobState::Pending, JobState::Running, JobState::Dead]
                .map(|s| format!("SELECT '{s}', COUNT(*) FROM jobs WHERE state = '{s}'"))
                .join(" UNION ALL "),
        )
        .fetch_all(&self.pool)
        .await?;
        let oldest: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT MIN(run_at) FROM jobs WHERE state = '{}' AND run_at <= $1",
            JobState::Pending
        ))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        Ok((counts, oldest))
    }

    /// Vacuums the queue tables holding at least `min_dead` rows that were claimed, ended or
    /// deleted since their last vacuum (PostgreSQL's own count); returns the tables vacuumed.
    ///
    /// Each claimed job and each noticed event leaves a dead row and index entry behind, which
    /// every claim (and every notifier batch) steps over until a vacuum removes them. Under
    /// steady load they pile up by thousands a second while PostgreSQL's autovacuum looks at a
    /// database once a minute by default: on the orders benchmark a claim took 1 ms of reading
    /// dead entries, and as long again to plan. Two nodes never vacuum one table at once (the
    /// second skips it). SQLite reuses the space of deleted rows by itself: nothing to do.
    pub async fn vacuum_queues(&self, min_dead: i64) -> Result<Vec<String>> {
        if self.backend != Backend::Postgres {
            return Ok(Vec::new());
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT relname::TEXT FROM pg_stat_user_tables \
             WHERE relname IN ('jobs', 'unnoticed_events') AND n_dead_tup >= $1 ORDER BY relname",
        )
        .bind(min_dead)
        .fetch_all(&self.pool)
        .await?;
        if !tables.is_empty() {
            // Names from the fixed list above, not from input.
            sqlx::raw_sql(&format!("VACUUM (SKIP_LOCKED) {}", tables.join(", ")))
                .execute(&self.pool)
                .await?;
        }
        Ok(tables)
    }

    /// Forgets at most `limit` done jobs that ended before `before`, oldest first, with their
    /// attempts; returns how many. Dead jobs stay for an operator to read or replay, and an
    /// instance's timeline keeps what its jobs did. Only ids older than `before` are read (ids
    /// begin with their creation time, and a job ends after it is made): a sweep reads no recent
    /// job, only the old ones it keeps (dead, or replayed and done lately) and those it deletes.
    pub async fn forget_done_jobs(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let below = souk_core::ids::make_id(JobId::PREFIX, ms(before), [0; 10]);
        let old = format!(
            "SELECT id FROM jobs WHERE id < $1 AND state = '{}' AND updated_at < $2 ORDER BY id LIMIT $3",
            JobState::Done
        );
        match self.backend {
            Backend::Postgres => {
                let forgotten: i64 = sqlx::query_scalar(&format!(
                    "WITH old AS ({old} FOR UPDATE SKIP LOCKED), \
                     attempts AS (DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM old)), \
                     gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM old) RETURNING id) \
                     SELECT COUNT(*) FROM gone"
                ))
                .bind(&below)
                .bind(ms(before))
                .bind(limit)
                .fetch_one(&self.pool)
                .await?;
                Ok(forgotten as u64)
            }
            Backend::Sqlite => {
                // The single writer holds the transaction: both statements see the same jobs.
                let mut tx = self.begin().await?;
                sqlx::query(&format!("DELETE FROM job_attempts WHERE job_id IN ({old})"))
                    .bind(&below)
                    .bind(ms(before))
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?;
                let forgotten = sqlx::query(&format!("DELETE FROM jobs WHERE id IN ({old})"))
                    .bind(&below)
                    .bind(ms(before))
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(forgotten)
            }
        }
    }

    /// Schedules another attempt at `run_at`.
    pub async fn retry_job(
        &self,
        id: &JobId,
        attempts: i64,
        run_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let settled = settle(
            &mut conn,
            id,
            attempts,
            JobState::Pending,
            Some(run_at),
            Some(error),
            now,
        )
        .await;
        conn.check(settled)
    }

    /// Keeps the record of one attempt of a job.
    pub async fn record_attempt(&self, job: &JobId, a: &Attempt) -> Result<()> {
        sqlx::query("INSERT INTO job_attempts (job_id, attempt, started_at, latency_ms, request, answer, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (job_id, attempt) DO NOTHING")
            .bind(job.as_str())
            .bind(a.attempt)
            .bind(ms(a.started_at))
            .bind(a.latency_ms)
            .bind(&a.request)
            .bind(&a.answer)
            .bind(&a.error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every attempt of a job, first first.
    pub async fn job_attempts(&self, job: &JobId) -> Result<Vec<Attempt>> {
        sqlx::query("SELECT attempt, started_at, latency_ms, request, answer, error FROM job_attempts WHERE job_id = $1 ORDER BY attempt")
            .bind(job.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(attempt)
            .collect()
    }

    /// The attempts of each of `jobs`, oldest first, in one read (a job never run has none).
    pub async fn attempts_of_jobs(&self, jobs: &[JobId]) -> Result<HashMap<JobId, Vec<Attempt>>> {
        let mut out: HashMap<JobId, Vec<Attempt>> = HashMap::new();
        if jobs.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT job_id, attempt, started_at, latency_ms, request, answer, error FROM job_attempts \
             WHERE job_id IN ({}) ORDER BY job_id, attempt",
            crate::placeholders(1, jobs.len())
        );
        let mut query = sqlx::query(&sql);
        for job in jobs {
            query = query.bind(job.as_str());
        }
        for row in query.fetch_all(&self.pool).await? {
            out.entry(id(&row, "job_id")?)
                .or_default()
                .push(attempt(&row)?);
        }
        Ok(out)
    }

    /// One job by id.
    pub async fn job(&self, id: &JobId) -> Result<Job> {
        sqlx::query(&format!("SELECT {JOB} FROM jobs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| job(&r))
            .transpose()?
            .ok_or(Error::NotFound("job"))
    }

    /// Jobs in `state`, newest first, after the job id `before` when given.
    pub async fn jobs_in_state(
        &self,
        state: JobState,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Job>> {
        // The state is written into the statement so PostgreSQL's plan may use its partial index.
        sqlx::query(&format!(
            "SELECT {JOB} FROM jobs WHERE state = '{state}' AND ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job)
        .collect()
    }

    /// The newest jobs about each of `instances` (at most `per_instance` each), newest first, in
    /// one read: what a list of instances shows of their seller calls.
    pub async fn recent_jobs_of_instances(
        &self,
        instances: &[InstanceId],
        per_instance: i64,
    ) -> Result<HashMap<InstanceId, Vec<Job>>> {
        let mut out: HashMap<InstanceId, Vec<Job>> = HashMap::new();
        if instances.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT {JOB} FROM (SELECT jobs.*, ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY id DESC) AS nth \
             FROM jobs WHERE instance_id IN ({})) recent WHERE nth <= ${} ORDER BY id DESC",
            crate::placeholders(1, instances.len()),
            instances.len() + 1
        );
        let mut query = sqlx::query(&sql);
        for instance in instances {
            query = query.bind(instance.as_str());
        }
        for row in query.bind(per_instance).fetch_all(&self.pool).await? {
            let job = job(&row)?;
            if let Some(instance) = job.instance_id.clone() {
                out.entry(instance).or_default().push(job);
            }
        }
        Ok(out)
    }

    /// Puts a dead job back in the queue, due now, with a fresh retry budget; only a dead job
    /// can be replayed (a second replay of the same job finds it pending and is
    /// [`Error::Stale`]).
    pub async fn replay_job(&self, id: &JobId, now: DateTime<Utc>) -> Result<Job> {
        crate::changed(
            sqlx::query("UPDATE jobs SET state = $1, run_at = $2, budget_start = attempts, locked_until = NULL, updated_at = $2 \
                         WHERE id = $3 AND state = $4")
                .bind(JobState::Pending.as_str())
                .bind(ms(now))
                .bind(id.as_str())
                .bind(JobState::Dead.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )?;
        self.job(id).await
    }

    /// Ends a claimed job as `done` or `dead` and records what it did on the timeline, together.
    pub async fn end_job(
        &self,
        end: JobEnd<'_>,
        event: NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        end_in(&mut tx, end, now).await?;
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Ends a claimed job inside the caller's transaction.
pub(crate) async fn end_in(
    conn: &mut AnyConnection,
    end: JobEnd<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if !matches!(end.state, JobState::Done | JobState::Dead) {
        return Err(Error::Corrupt(format!("a job cannot end {}", end.state)));
    }
    settle(conn, end.id, end.attempts, end.state, None, end.error, now).await
}

async fn settle(
    conn: &mut AnyConnection,
    id: &JobId,
    attempts: i64,
    state: JobState,
    run_at: Option<DateTime<Utc>>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::changed(sqlx::query(
        "UPDATE jobs SET state = $1, run_at = COALESCE($2, run_at), last_error = COALESCE($3, last_error), locked_until = NULL, updated_at = $4 \
         WHERE id = $5 AND attempts = $6 AND state = $7",
    )
    .bind(state.as_str())
    .bind(run_at.map(ms))
    .bind(error)
    .bind(ms(now))
    .bind(id.as_str())
    .bind(attempts)
    .bind(JobState::Running.as_str())
    .execute(conn)
    .await?
    .rows_affected())?;
    Ok(())
}
