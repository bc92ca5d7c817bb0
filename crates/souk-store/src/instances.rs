//! Instances and their lifecycle. Each row carries `next_transition_at` (indexed), so the
//! scheduler reads only the rows that are due; every transition core decides is applied only to
//! the version and state it was decided on, so two schedulers (or a scheduler and a renewal) never
//! both apply one.

use crate::decode::{id, int, opt_text, opt_time, parsed, text, time};
use crate::events::{self, NewEvent};
use crate::jobs::{self, enqueue, JobEnd, JobSpec, JobState};
use crate::ledger::{self, Movement};
use crate::{fresh, ms, Backend, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, InstanceId, MerchantId, OrderId, PlanId, ProductId};
use souk_core::ledger::EntryKind;
use souk_core::lifecycle::{Effect, InstanceState, Transition};
use souk_core::money::Money;
use souk_core::orders::OrderState;
use souk_core::plans::Period;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// A subscribed instance; `access_enc` is the seller's access data, sealed by the server.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    pub buyer_id: AccountId,
    pub product_id: ProductId,
    pub plan_id: PlanId,
    pub merchant_id: MerchantId,
    /// The order that bought it.
    pub order_id: OrderId,
    pub state: InstanceState,
    /// What a renewal buys.
    pub period: Period,
    pub expires_at: DateTime<Utc>,
    pub next_transition_at: Option<DateTime<Utc>>,
    /// Bumped by every change; writes apply only to the version they were decided on.
    pub version: i64,
    /// The id the seller is given for the purchase (constant across retries).
    pub business_id: String,
    pub seller_instance_id: Option<String>,
    pub access_enc: Option<String>,
    pub failure_reason: Option<String>,
    /// A free trial, until it is converted to a paid subscription.
    pub trial: bool,
    /// While the account is in arrears: the paid expiry to restore when they are paid.
    pub arrears_expiry: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const INSTANCE: &str = "i.id, i.buyer_id, i.product_id, i.plan_id, i.merchant_id, i.order_id, i.state, i.period, i.expires_at, \
    i.next_transition_at, i.version, i.business_id, i.seller_instance_id, i.access_enc, i.failure_reason, i.created_at, i.updated_at, i.trial, i.arrears_expiry";

pub(crate) fn instance(row: &AnyRow) -> Result<Instance> {
    Ok(Instance {
        id: id(row, "id")?,
        buyer_id: id(row, "buyer_id")?,
        product_id: id(row, "product_id")?,
        plan_id: id(row, "plan_id")?,
        merchant_id: id(row, "merchant_id")?,
        order_id: id(row, "order_id")?,
        state: parsed(row, "state")?,
        period: parsed(row, "period")?,
        expires_at: time(row, "expires_at")?,
        next_transition_at: opt_time(row, "next_transition_at")?,
        version: int(row, "version")?,
        business_id: text(row, "business_id")?,
        seller_instance_id: opt_text(row, "seller_instance_id")?,
        access_enc: opt_text(row, "access_enc")?,
        failure_reason: opt_text(row, "failure_reason")?,
        trial: int(row, "trial")? != 0,
        arrears_expiry: opt_time(row, "arrears_expiry")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A refund core asked for ([`Effect::RefundOrder`]): the order moves `from` -> `to` and its
/// amount goes back to the buyer.
pub struct Refund<'a> {
    pub order_id: &'a OrderId,
    pub buyer_id: &'a AccountId,
    pub amount: Money,
    pub from: OrderState,
    pub to: OrderState,
    pub memo: String,
}

/// A transition decided by core, to store with everything that goes with it.
pub struct Change<'a> {
    pub transition: &'a Transition,
    /// The transition's seller calls, as jobs.
    pub jobs: Vec<JobSpec>,
    /// Required when the transition refunds the order.
    pub refund: Option<Refund<'a>>,
    /// What the seller returned, when it created the instance.
    pub seller_instance_id: Option<&'a str>,
    pub access_enc: Option<&'a str>,
    /// Why provisioning failed.
    pub failure_reason: Option<&'a str>,
    /// The timeline event; `None` when only the schedule moves.
    pub event: Option<NewEvent<'a>>,
    /// The claimed job this change settles, if a job made it.
    pub job: Option<JobEnd<'a>>,
}

pub(crate) async fn insert(conn: &mut AnyConnection, i: &Instance) -> Result<()> {
    sqlx::query("INSERT INTO instances (id, buyer_id, product_id, plan_id, merchant_id, order_id, state, period, expires_at, next_transition_at, \
                 version, business_id, seller_instance_id, access_enc, failure_reason, created_at, updated_at, trial) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)")
        .bind(i.id.as_str())
        .bind(i.buyer_id.as_str())
        .bind(i.product_id.as_str())
        .bind(i.plan_id.as_str())
        .bind(i.merchant_id.as_str())
        .bind(i.order_id.as_str())
        .bind(i.state.as_str())
        .bind(i.period.as_str())
        .bind(ms(i.expires_at))
        .bind(i.next_transition_at.map(ms))
        .bind(i.version)
        .bind(&i.business_id)
        .bind(&i.seller_instance_id)
        .bind(&i.access_enc)
        .bind(&i.failure_reason)
        .bind(ms(i.created_at))
        .bind(ms(i.updated_at))
        .bind(i64::from(i.trial))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a transition's state, expiry and schedule, if the instance is still at the version and
/// in the state it was decided on.
pub(crate) async fn set_state(
    conn: &mut AnyConnection,
    i: &Instance,
    t: &Transition,
    now: DateTime<Utc>,
) -> Result<()> {
    crate::changed(sqlx::query("UPDATE instances SET state = $1, expires_at = $2, next_transition_at = $3, version = version + 1, updated_at = $4 \
                                WHERE id = $5 AND version = $6 AND state = $7")
        .bind(t.state.as_str())
        .bind(ms(t.expiry))
        .bind(t.next_at.map(ms))
        .bind(ms(now))
        .bind(i.id.as_str())
        .bind(i.version)
        .bind(i.state.as_str())
        .execute(conn)
        .await?
        .rows_affected())?;
    Ok(())
}

/// Where and how souk calls a product's seller.
#[derive(Debug, Clone)]
pub struct SellerEndpoint {
    /// The listed endpoint.
    pub url: Option<String>,
    /// The product's signing key, sealed.
    pub signing_key_enc: String,
    /// Its answers must carry a valid `Body-Sign` (always so under V1).
    pub signed_answers: bool,
    pub protocol: souk_core::review::SellerProtocol,
}

impl Store {
    /// One instance by id.
    pub async fn instance(&self, id: &InstanceId) -> Result<Instance> {
        sqlx::query(&format!(
            "SELECT {INSTANCE} FROM instances i WHERE i.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| instance(&r))
        .transpose()?
        .ok_or(Error::NotFound("instance"))
    }

    /// An instance with where and how to call its seller, in one read (the dispatcher's path).
    pub async fn instance_for_call(&self, id: &InstanceId) -> Result<(Instance, SellerEndpoint)> {
        let row = sqlx::query(&format!(
            "SELECT {INSTANCE}, p.endpoint_url, p.signing_key_enc, p.signed_answers, p.seller_protocol \
             FROM instances i JOIN products p ON p.id = i.product_id WHERE i.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("instance"))?;
        Ok((
            instance(&row)?,
            SellerEndpoint {
                url: opt_text(&row, "endpoint_url")?,
                signing_key_enc: text(&row, "signing_key_enc")?,
                signed_answers: int(&row, "signed_answers")? != 0,
                protocol: parsed(&row, "seller_protocol")?,
            },
        ))
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
        buyer_id: &AccountId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Instance>> {
        sqlx::query(&format!("SELECT {INSTANCE} FROM instances i WHERE i.buyer_id = $1 AND ($2 IS NULL OR i.id < $2) ORDER BY i.id DESC LIMIT $3"))
            .bind(buyer_id.as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(instance)
            .collect()
    }

    /// The instances of a merchant's products, newest first.
    pub async fn instances_of_merchant(
        &self,
        merchant_id: &MerchantId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Instance>> {
        sqlx::query(&format!("SELECT {INSTANCE} FROM instances i WHERE i.merchant_id = $1 AND ($2 IS NULL OR i.id < $2) ORDER BY i.id DESC LIMIT $3"))
            .bind(merchant_id.as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(instance)
            .collect()
    }

    /// Instances whose next transition is due at `now`, most overdue first. Reads only the due
    /// rows through the partial index on `next_transition_at`.
    pub async fn due_instances(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Instance>> {
        sqlx::query(&format!(
            "SELECT {INSTANCE} FROM instances i WHERE i.next_transition_at IS NOT NULL AND i.next_transition_at <= $1 \
             ORDER BY i.next_transition_at LIMIT $2"
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(instance)
        .collect()
    }

    /// Active instances expiring within 7 days of `now` whose reminder for that expiry (7 days
    /// out, or 1 day within the last day) has not been sent; read through the schedule index.
    pub async fn instances_to_remind(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Instance>> {
        let day = chrono::Duration::days(1);
        sqlx::query(&format!(
            "SELECT {INSTANCE} FROM instances i WHERE i.next_transition_at > $1 AND i.next_transition_at <= $2 \
             AND i.state = $3 AND NOT EXISTS (SELECT 1 FROM expiry_reminders r WHERE r.instance_id = i.id \
             AND r.expires_at = i.expires_at AND r.days = CASE WHEN i.expires_at <= $4 THEN 1 ELSE 7 END) \
             ORDER BY i.next_transition_at LIMIT $5"
        ))
        .bind(ms(now))
        .bind(ms(now + day * 7))
        .bind(InstanceState::Active.as_str())
        .bind(ms(now + day))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(instance)
        .collect()
    }

    /// Records that the `days`-before reminder of `i`'s current expiry was sent, with its
    /// timeline event; false (and nothing written) when it already was.
    pub async fn record_reminder(
        &self,
        i: &Instance,
        days: i64,
        event: NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let sent = sqlx::query(
            "INSERT INTO expiry_reminders (instance_id, expires_at, days, sent_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(i.id.as_str())
        .bind(ms(i.expires_at))
        .bind(days)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if sent == 0 {
            return Ok(false);
        }
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a transition core decided with its jobs, refund, event and the job it settles, in
    /// one transaction, if the instance is unchanged since it was read.
    pub async fn apply_change(
        &self,
        i: &Instance,
        c: Change<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let refunds = c.transition.effects.contains(&Effect::RefundOrder);
        if refunds != c.refund.is_some() {
            return Err(Error::Corrupt(
                "a refund is stored exactly when core's transition refunds".into(),
            ));
        }
        if self.backend == Backend::Postgres && self.fast_paths && one_statement_fits(&c) {
            return provisioned_in_one_statement(self, i, &c, now).await;
        }
        let mut tx = self.begin().await?;
        set_state(&mut tx, i, c.transition, now).await?;
        if c.seller_instance_id.is_some() || c.access_enc.is_some() || c.failure_reason.is_some() {
            sqlx::query("UPDATE instances SET seller_instance_id = COALESCE($1, seller_instance_id), access_enc = COALESCE($2, access_enc), \
                         failure_reason = COALESCE($3, failure_reason) WHERE id = $4")
                .bind(c.seller_instance_id)
                .bind(c.access_enc)
                .bind(c.failure_reason)
                .bind(i.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(r) = &c.refund {
            crate::changed(
                sqlx::query("UPDATE orders SET state = $1, refunded_minor = refunded_minor + $4 WHERE id = $2 AND state = $3")
                    .bind(r.to.as_str())
                    .bind(r.order_id.as_str())
                    .bind(r.from.as_str())
                    .bind(r.amount.minor)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
            )?;
            if r.amount.minor > 0 {
                ledger::apply(
                    &mut tx,
                    &Movement {
                        account_id: r.buyer_id,
                        amount: r.amount,
                        kind: EntryKind::Refund,
                        order_id: Some(r.order_id),
                        reference: None,
                        memo: &r.memo,
                        created_by: None,
                        idempotency_key: None,
                        floor_minor: 0,
                        overdraw: false,
                    },
                    now,
                )
                .await?;
            }
        }
        if i.trial && c.transition.state == InstanceState::Failed {
            // The seller never set the trial up: the buyer has not had it, and may take it again.
            sqlx::query("DELETE FROM trials WHERE instance_id = $1")
                .bind(i.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for job in &c.jobs {
            enqueue(&mut tx, job, Some(&i.id), now, now).await?;
        }
        if let Some(end) = c.job {
            jobs::end_in(&mut tx, end, now).await?;
        }
        if let Some(event) = c.event {
            events::record(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a transition into or out of arrears with its seller calls and event: entering
    /// keeps the paid expiry to restore (`paid_expiry`), leaving forgets it.
    pub async fn apply_arrears(
        &self,
        i: &Instance,
        t: &Transition,
        paid_expiry: Option<DateTime<Utc>>,
        jobs: Vec<JobSpec>,
        event: NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        set_state(&mut tx, i, t, now).await?;
        sqlx::query("UPDATE instances SET arrears_expiry = $1 WHERE id = $2")
            .bind(paid_expiry.map(ms))
            .bind(i.id.as_str())
            .execute(&mut *tx)
            .await?;
        for job in &jobs {
            enqueue(&mut tx, job, Some(&i.id), now, now).await?;
        }
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A buyer's instances that go into arrears with an account in `currency`: running (or
    /// expired but not released) instances of plans that meter use, not already in arrears.
    pub async fn metered_instances(
        &self,
        buyer_id: &AccountId,
        currency: &str,
        in_arrears: bool,
    ) -> Result<Vec<Instance>> {
        sqlx::query(&format!(
            "SELECT {INSTANCE} FROM instances i JOIN plans pl ON pl.id = i.plan_id \
             WHERE i.buyer_id = $1 AND pl.currency = $2 AND pl.dimensions IS NOT NULL \
             AND i.state IN ('active', 'grace', 'frozen') AND i.arrears_expiry IS {} NULL ORDER BY i.id",
            if in_arrears { "NOT" } else { "" }
        ))
        .bind(buyer_id.as_str())
        .bind(currency)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(instance)
        .collect()
    }

    /// Accounts (with the currency) holding instances in arrears although their balance is back
    /// at or above its floor: their arrears are paid and the instances get their time back.
    pub async fn paid_arrears(
        &self,
        limit: i64,
    ) -> Result<Vec<(AccountId, souk_core::money::Currency)>> {
        sqlx::query(
            "SELECT DISTINCT i.buyer_id, pl.currency FROM instances i JOIN plans pl ON pl.id = i.plan_id \
             LEFT JOIN balances b ON b.account_id = i.buyer_id AND b.currency = pl.currency \
             LEFT JOIN credit_limits c ON c.account_id = i.buyer_id AND c.currency = pl.currency \
             WHERE i.arrears_expiry IS NOT NULL AND i.state IN ('active', 'grace', 'frozen') \
             AND COALESCE(b.amount_minor, 0) >= 0 - COALESCE(c.limit_minor, 0) \
             ORDER BY i.buyer_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((id(row, "buyer_id")?, parsed(row, "currency")?)))
        .collect()
    }

    /// Replaces the access data only if it is still `expected` and the instance has neither failed
    /// nor been released, recording `event`; false when either changed meanwhile (the caller reads
    /// again and retries), so two concurrent partial updates cannot drop one another's fields.
    pub async fn replace_access(
        &self,
        id: &InstanceId,
        expected: Option<&str>,
        access_enc: &str,
        event: NewEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE instances SET access_enc = $1, updated_at = $2 WHERE id = $3 \
             AND (access_enc = $4 OR (access_enc IS NULL AND $4 IS NULL)) AND state <> $5 AND state <> $6",
        )
        .bind(access_enc)
        .bind(ms(now))
        .bind(id.as_str())
        .bind(expected)
        .bind(InstanceState::Failed.as_str())
        .bind(InstanceState::Released.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            events::record(&mut tx, event, now).await?;
            tx.commit().await?;
        }
        Ok(done)
    }

    /// Updates the stored access data of an instance (a later `queryInstance` answer).
    pub async fn set_access(
        &self,
        id: &InstanceId,
        access_enc: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE instances SET access_enc = $1, updated_at = $2 WHERE id = $3")
            .bind(access_enc)
            .bind(ms(now))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The shape PostgreSQL writes in one statement: the seller created the instance, the job that
/// asked it is done, at most one follow-up job, and one event; no refund.
fn one_statement_fits(c: &Change<'_>) -> bool {
    c.refund.is_none()
        && c.failure_reason.is_none()
        && c.seller_instance_id.is_some()
        && c.jobs.len() <= 1
        && c.event.is_some()
        && c.job
            .is_some_and(|j| j.state == JobState::Done && j.error.is_none())
}

/// [`Store::apply_change`] for a completed provisioning as one statement instead of a
/// five-round-trip transaction: the instance only changes while this claim of the job is live,
/// and the job, follow-up and event only follow it.
async fn provisioned_in_one_statement(
    store: &Store,
    i: &Instance,
    c: &Change<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (Some(job), Some(event)) = (c.job, c.event.as_ref()) else {
        return Err(Error::Corrupt(
            "one-statement provisioning without its job".into(),
        ));
    };
    let follow_up = c.jobs.first();
    let n: i64 = sqlx::query_scalar(
        "WITH i AS (UPDATE instances SET state = $15, expires_at = $16, seller_instance_id = $1, access_enc = COALESCE($2, access_enc), \
                    next_transition_at = $3, version = version + 1, updated_at = $4 \
                    WHERE id = $5 AND version = $6 AND state = $17 \
                    AND EXISTS (SELECT 1 FROM jobs WHERE id = $7 AND attempts = $8 AND state = $18) RETURNING id), \
              j AS (UPDATE jobs SET state = $19, locked_until = NULL, updated_at = $4 \
                    WHERE id = $7 AND attempts = $8 AND state = $18 AND EXISTS (SELECT 1 FROM i)), \
              f AS (INSERT INTO jobs (id, kind, instance_id, ordering_key, payload, state, attempts, run_at, last_error, created_at, updated_at, locked_until, lane) \
                    SELECT $9, $10, $5, $5, $11, $20, 0, $4, NULL::text, $4, $4, NULL::bigint, \
                    (SELECT merchant_id FROM instances WHERE id = $5) FROM i WHERE $10::text IS NOT NULL), \
              e AS (INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) \
                    SELECT $12, $13, $5, $4, $21, $14, NULL::text FROM i), \
              q AS (INSERT INTO unnoticed_events (id) SELECT $12 FROM i) \
         SELECT COUNT(*) FROM i",
    )
    .bind(c.seller_instance_id)
    .bind(c.access_enc)
    .bind(c.transition.next_at.map(ms))
    .bind(ms(now))
    .bind(i.id.as_str())
    .bind(i.version)
    .bind(job.id.as_str())
    .bind(job.attempts)
    .bind(fresh::<souk_core::ids::JobId>(now).as_str())
    .bind(follow_up.map(|j| j.kind))
    .bind(follow_up.map(|j| j.payload.as_str()))
    .bind(fresh::<souk_core::ids::EventId>(now).as_str())
    .bind(event.order_id.map(OrderId::as_str))
    .bind(&event.detail)
    .bind(c.transition.state.as_str())
    .bind(ms(c.transition.expiry))
    .bind(i.state.as_str())
    .bind(JobState::Running.as_str())
    .bind(JobState::Done.as_str())
    .bind(JobState::Pending.as_str())
    .bind(event.kind)
    .fetch_one(&store.queue)
    .await?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Stale)
    }
}
