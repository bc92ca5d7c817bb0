//! The durable job queue (outbox): every call that leaves the database is written as a job in the
//! same transaction as the change that causes it, then claimed and run by a worker. Jobs of one
//! instance run in the order they were written.

use crate::events::{self, NewEvent};
use crate::{ms, new_id, Backend, Result, Store};
use chrono::{DateTime, Duration, Utc};
use sqlx::AnyConnection;

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub instance_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB: &str =
    "id, kind, instance_id, payload, state, attempts, run_at, last_error, created_at, updated_at";

/// Writes a job inside the caller's transaction, to run at `run_at`.
pub async fn enqueue(
    conn: &mut AnyConnection,
    kind: &str,
    instance_id: Option<&str>,
    payload: &str,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String> {
    let id = new_id("job", now);
    sqlx::query(&format!("INSERT INTO jobs ({JOB}, locked_until) VALUES ($1, $2, $3, $4, 'pending', 0, $5, NULL, $6, $6, NULL)"))
        .bind(&id)
        .bind(kind)
        .bind(instance_id)
        .bind(payload)
        .bind(ms(run_at))
        .bind(ms(now))
        .execute(conn)
        .await?;
    Ok(id)
}

impl Store {
    /// Claims up to `limit` jobs due at `now` (the injected clock) for `lease`; a job whose
    /// worker died is claimed again once its lease ends. Leases run on `wall` (real time): they
    /// track live workers, which a test clock jumping ahead must not declare dead. On PostgreSQL
    /// concurrent workers skip each other's rows.
    pub async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        wall: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2 WHERE id IN ( \
               SELECT j.id FROM jobs j \
               WHERE ((j.state = 'pending' AND j.run_at <= $2) OR (j.state = 'running' AND j.locked_until <= $4)) \
               AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.instance_id = j.instance_id AND e.id < j.id AND e.state IN ('pending', 'running')) \
               ORDER BY j.run_at, j.id LIMIT $3 {lock}) \
             RETURNING {JOB}"
        );
        // One statement is atomic on both databases; no explicit transaction is needed.
        let mut jobs: Vec<JobRow> = sqlx::query_as(&sql)
            .bind(ms(wall + lease))
            .bind(ms(now))
            .bind(limit)
            .bind(ms(wall))
            .fetch_all(&self.pool)
            .await?;
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs)
    }

    /// How many jobs are in each state, and the `run_at` of the oldest job due at `now`.
    pub async fn job_stats(&self, now: DateTime<Utc>) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let counts =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs WHERE state = 'pending' AND run_at <= $1",
        )
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        Ok((counts, oldest))
    }

    /// Marks a claimed job done (only the claim that ran it, identified by its attempt).
    pub async fn finish_job(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        attempts: i64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        settle(conn, id, attempts, "done", None, None, now).await
    }

    /// Schedules another attempt at `run_at`.
    pub async fn retry_job(
        &self,
        id: &str,
        attempts: i64,
        run_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        settle(
            &mut conn,
            id,
            attempts,
            "pending",
            Some(run_at),
            Some(error),
            now,
        )
        .await
    }

    /// Gives up on a job: it stays visible as dead for operators.
    pub async fn bury_job(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        attempts: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        settle(conn, id, attempts, "dead", None, Some(error), now).await
    }

    /// Ends a claimed job as `done` or `dead` and records what it did on the timeline, together.
    pub async fn end_job(
        &self,
        id: &str,
        attempts: i64,
        dead: bool,
        error: Option<&str>,
        event: NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        settle(
            &mut tx,
            id,
            attempts,
            if dead { "dead" } else { "done" },
            None,
            error,
            now,
        )
        .await?;
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn settle(
    conn: &mut AnyConnection,
    id: &str,
    attempts: i64,
    state: &str,
    run_at: Option<DateTime<Utc>>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::changed(sqlx::query(
        "UPDATE jobs SET state = $1, run_at = COALESCE($2, run_at), last_error = COALESCE($3, last_error), locked_until = NULL, updated_at = $4 \
         WHERE id = $5 AND attempts = $6 AND state = 'running'",
    )
    .bind(state)
    .bind(run_at.map(ms))
    .bind(error)
    .bind(ms(now))
    .bind(id)
    .bind(attempts)
    .execute(conn)
    .await?
    .rows_affected())?;
    Ok(())
}
