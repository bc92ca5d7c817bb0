//! Instances and their lifecycle. Each row carries `next_transition_at` (indexed), so the
//! scheduler reads only the rows that are due; every transition applies only to the version it
//! was decided on, so two schedulers (or a scheduler and a renewal) never both apply one.

use crate::events::{self, NewEvent};
use crate::jobs::enqueue;
use crate::ledger::{self, Movement};
use crate::orders::{JobSpec, OrderRow};
use crate::{ms, new_id, Backend, Error, Result, Store};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// An instance as stored; `access_enc` is the seller's access data, encrypted by the server.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: String,
    pub buyer_id: String,
    pub product_id: String,
    pub plan_id: String,
    pub merchant_id: String,
    pub order_id: String,
    pub state: String,
    pub period: String,
    pub expires_at: i64,
    pub next_transition_at: Option<i64>,
    pub version: i64,
    pub business_id: String,
    pub seller_instance_id: Option<String>,
    pub access_enc: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const INSTANCE: &str = "id, buyer_id, product_id, plan_id, merchant_id, order_id, state, period, expires_at, next_transition_at, \
    version, business_id, seller_instance_id, access_enc, failure_reason, created_at, updated_at";

/// A transition decided by core, to store with its seller calls and timeline event.
pub struct Change<'a> {
    pub state: &'a str,
    pub next_transition_at: Option<DateTime<Utc>>,
    pub jobs: Vec<JobSpec>,
    /// The timeline event (kind, detail); `None` when only the schedule moves.
    pub event: Option<(&'a str, String)>,
}

pub(crate) async fn insert(conn: &mut AnyConnection, i: &InstanceRow) -> Result<()> {
    sqlx::query(&format!("INSERT INTO instances ({INSTANCE}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"))
        .bind(&i.id)
        .bind(&i.buyer_id)
        .bind(&i.product_id)
        .bind(&i.plan_id)
        .bind(&i.merchant_id)
        .bind(&i.order_id)
        .bind(&i.state)
        .bind(&i.period)
        .bind(i.expires_at)
        .bind(i.next_transition_at)
        .bind(i.version)
        .bind(&i.business_id)
        .bind(&i.seller_instance_id)
        .bind(&i.access_enc)
        .bind(&i.failure_reason)
        .bind(i.created_at)
        .bind(i.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

async fn set_state(
    conn: &mut AnyConnection,
    i: &InstanceRow,
    state: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::changed(sqlx::query("UPDATE instances SET state = $1, next_transition_at = $2, version = version + 1, updated_at = $3 WHERE id = $4 AND version = $5")
        .bind(state)
        .bind(next.map(ms))
        .bind(ms(now))
        .bind(&i.id)
        .bind(i.version)
        .execute(conn)
        .await?
        .rows_affected())?;
    Ok(())
}

impl Store {
    /// One instance by id.
    pub async fn instance(&self, id: &str) -> Result<InstanceRow> {
        sqlx::query_as(&format!("SELECT {INSTANCE} FROM instances WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("instance"))
    }

    /// An instance with where and how to call its seller: the product's endpoint and sealed
    /// signing key, in one read (the dispatcher's path).
    pub async fn instance_for_call(
        &self,
        id: &str,
    ) -> Result<(InstanceRow, Option<String>, String)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            instance: InstanceRow,
            endpoint_url: Option<String>,
            signing_key_enc: String,
        }
        let cols = INSTANCE
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let r: Row = sqlx::query_as(&format!(
            "SELECT {cols}, p.endpoint_url, p.signing_key_enc FROM instances i JOIN products p ON p.id = i.product_id WHERE i.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("instance"))?;
        Ok((r.instance, r.endpoint_url, r.signing_key_enc))
    }

    /// How many instances are in each state, and the earliest transition due at `now`.
    pub async fn instance_stats(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(String, i64)>, Option<i64>)> {
        let counts =
            sqlx::query_as("SELECT state, COUNT(*) FROM instances GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        let due: Option<i64> = sqlx::query_scalar("SELECT MIN(next_transition_at) FROM instances WHERE next_transition_at IS NOT NULL AND next_transition_at <= $1")
            .bind(ms(now))
            .fetch_one(&self.pool)
            .await?;
        Ok((counts, due))
    }

    /// A buyer's instances, newest first.
    pub async fn instances_of_buyer(
        &self,
        buyer_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(&format!("SELECT {INSTANCE} FROM instances WHERE buyer_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"))
            .bind(buyer_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Instances whose next transition is due at `now`, most overdue first. Reads only the due
    /// rows through the partial index on `next_transition_at`.
    pub async fn due_instances(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {INSTANCE} FROM instances WHERE next_transition_at IS NOT NULL AND next_transition_at <= $1 \
             ORDER BY next_transition_at LIMIT $2"
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores a transition with its jobs and event, if the instance is unchanged since read.
    pub async fn transition(
        &self,
        i: &InstanceRow,
        c: Change<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        set_state(&mut tx, i, c.state, c.next_transition_at, now).await?;
        for job in &c.jobs {
            enqueue(&mut tx, job.kind, Some(&i.id), &job.payload, now, now).await?;
        }
        if let Some((kind, detail)) = c.event {
            events::record(
                &mut tx,
                NewEvent {
                    order_id: None,
                    instance_id: Some(&i.id),
                    kind,
                    detail,
                    actor: None,
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The seller created the instance: store what it returned and finish the job, together,
    /// with a `follow_up` job when the access data must still be asked for.
    #[allow(clippy::too_many_arguments)]
    pub async fn provisioned(
        &self,
        i: &InstanceRow,
        job_id: &str,
        attempts: i64,
        seller_instance_id: &str,
        access_enc: Option<&str>,
        next: Option<DateTime<Utc>>,
        follow_up: Option<&JobSpec>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let detail = format!("the seller created instance {seller_instance_id}");
        if self.backend == Backend::Postgres {
            // One statement instead of a five-round-trip transaction: the instance only changes
            // while this claim of the job is live, and the job, follow-up and event only follow it.
            let n: i64 = sqlx::query_scalar(
                "WITH i AS (UPDATE instances SET state = 'active', seller_instance_id = $1, access_enc = $2, next_transition_at = $3, \
                            version = version + 1, updated_at = $4 \
                            WHERE id = $5 AND version = $6 AND state = 'provisioning' \
                            AND EXISTS (SELECT 1 FROM jobs WHERE id = $7 AND attempts = $8 AND state = 'running') RETURNING id), \
                      j AS (UPDATE jobs SET state = 'done', locked_until = NULL, updated_at = $4 \
                            WHERE id = $7 AND attempts = $8 AND state = 'running' AND EXISTS (SELECT 1 FROM i)), \
                      f AS (INSERT INTO jobs (id, kind, instance_id, payload, state, attempts, run_at, last_error, created_at, updated_at, locked_until) \
                            SELECT $9, $10, $5, $11, 'pending', 0, $4, NULL::text, $4, $4, NULL::bigint FROM i WHERE $10::text IS NOT NULL), \
                      e AS (INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) \
                            SELECT $12, $13, $5, $4, 'instance.active', $14, NULL::text FROM i) \
                 SELECT COUNT(*) FROM i",
            )
            .bind(seller_instance_id)
            .bind(access_enc)
            .bind(next.map(ms))
            .bind(ms(now))
            .bind(&i.id)
            .bind(i.version)
            .bind(job_id)
            .bind(attempts)
            .bind(new_id("job", now))
            .bind(follow_up.map(|j| j.kind))
            .bind(follow_up.map(|j| j.payload.as_str()))
            .bind(new_id("evt", now))
            .bind(&i.order_id)
            .bind(&detail)
            .fetch_one(&self.pool)
            .await?;
            return if n == 1 { Ok(()) } else { Err(Error::Stale) };
        }
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query(
            "UPDATE instances SET state = 'active', seller_instance_id = $1, access_enc = $2, next_transition_at = $3, version = version + 1, updated_at = $4 \
             WHERE id = $5 AND version = $6 AND state = 'provisioning'",
        )
        .bind(seller_instance_id)
        .bind(access_enc)
        .bind(next.map(ms))
        .bind(ms(now))
        .bind(&i.id)
        .bind(i.version)
        .execute(&mut *tx)
        .await?
        .rows_affected())?;
        self.finish_job(&mut tx, job_id, attempts, now).await?;
        if let Some(job) = follow_up {
            enqueue(&mut tx, job.kind, Some(&i.id), &job.payload, now, now).await?;
        }
        events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&i.order_id),
                instance_id: Some(&i.id),
                kind: "instance.active",
                detail,
                actor: None,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Updates the stored access data of an instance (a later `queryInstance` answer).
    pub async fn set_access(&self, id: &str, access_enc: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE instances SET access_enc = $1, updated_at = $2 WHERE id = $3")
            .bind(access_enc)
            .bind(ms(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The seller could not create the instance: mark it failed, refund the order in full and
    /// end the job, in one transaction.
    pub async fn provisioning_failed(
        &self,
        i: &InstanceRow,
        order: &OrderRow,
        job_id: &str,
        attempts: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query(
            "UPDATE instances SET state = 'failed', failure_reason = $1, next_transition_at = NULL, version = version + 1, updated_at = $2 \
             WHERE id = $3 AND version = $4 AND state = 'provisioning'",
        )
        .bind(reason)
        .bind(ms(now))
        .bind(&i.id)
        .bind(i.version)
        .execute(&mut *tx)
        .await?
        .rows_affected())?;
        let refunded =
            sqlx::query("UPDATE orders SET state = 'refunded' WHERE id = $1 AND state = 'paid'")
                .bind(&order.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if refunded == 1 && order.amount_minor > 0 {
            ledger::apply(
                &mut tx,
                &Movement {
                    account_id: &order.buyer_id,
                    currency: &order.currency,
                    amount_minor: order.amount_minor,
                    kind: "refund",
                    order_id: Some(&order.id),
                    reference: None,
                    memo: &format!("refund: provisioning failed ({reason})"),
                    created_by: None,
                    idempotency_key: None,
                },
                now,
            )
            .await?;
        }
        self.bury_job(&mut tx, job_id, attempts, reason, now)
            .await?;
        events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&order.id),
                instance_id: Some(&i.id),
                kind: "instance.failed",
                detail: format!("{reason}; the order was refunded"),
                actor: None,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
