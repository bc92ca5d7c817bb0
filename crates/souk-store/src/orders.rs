//! Orders, and the transactions that take money for them: a purchase creates the order, its
//! instance and the provisioning job in the same transaction as the debit; a renewal extends the
//! instance in the same transaction as its debit.

use crate::events::{self, EventRow, NewEvent};
use crate::instances::InstanceRow;
use crate::jobs::enqueue;
use crate::ledger::{self, Movement};
use crate::{ms, new_id, Backend, Error, Result, Store};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// An order as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: String,
    pub buyer_id: String,
    pub kind: String,
    pub state: String,
    pub product_id: String,
    pub plan_id: String,
    pub merchant_id: String,
    pub instance_id: String,
    pub period: String,
    pub periods: i64,
    pub currency: String,
    pub unit_price: String,
    pub amount_minor: i64,
    pub idempotency_key: Option<String>,
    pub request_fingerprint: Option<String>,
    pub created_at: i64,
}

const ORDER: &str = "id, buyer_id, kind, state, product_id, plan_id, merchant_id, instance_id, period, periods, currency, \
    unit_price, amount_minor, idempotency_key, request_fingerprint, created_at";

/// A seller call to enqueue with a change.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// e.g. `seller.new_instance`.
    pub kind: &'static str,
    /// JSON payload.
    pub payload: String,
}

/// A renewal decided by core: the new expiry and state and the calls it needs.
pub struct Renewal<'a> {
    pub order: OrderRow,
    pub instance: &'a InstanceRow,
    pub new_expiry: DateTime<Utc>,
    pub new_state: &'a str,
    pub next_transition_at: Option<DateTime<Utc>>,
    pub jobs: Vec<JobSpec>,
}

async fn insert_order(conn: &mut AnyConnection, o: &OrderRow) -> Result<()> {
    sqlx::query(&format!("INSERT INTO orders ({ORDER}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"))
        .bind(&o.id)
        .bind(&o.buyer_id)
        .bind(&o.kind)
        .bind(&o.state)
        .bind(&o.product_id)
        .bind(&o.plan_id)
        .bind(&o.merchant_id)
        .bind(&o.instance_id)
        .bind(&o.period)
        .bind(o.periods)
        .bind(&o.currency)
        .bind(&o.unit_price)
        .bind(o.amount_minor)
        .bind(&o.idempotency_key)
        .bind(&o.request_fingerprint)
        .bind(o.created_at)
        .execute(conn)
        .await
        .map_err(|e| match Error::from(e) {
            // The only unique rule an order can break is (buyer, idempotency key): a retry that
            // raced its original. The caller answers with the original.
            Error::Conflict(_) => Error::Conflict("idempotency key already used".into()),
            other => other,
        })?;
    Ok(())
}

async fn charge(
    conn: &mut AnyConnection,
    o: &OrderRow,
    memo: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if o.amount_minor > 0 {
        ledger::apply(
            conn,
            &Movement {
                account_id: &o.buyer_id,
                currency: &o.currency,
                amount_minor: -o.amount_minor,
                kind: "charge",
                order_id: Some(&o.id),
                reference: None,
                memo,
                created_by: Some(&o.buyer_id),
                idempotency_key: None,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// The same purchase as [`Store::purchase`] writes on SQLite, as one PostgreSQL statement: the
/// conditional debit feeds every insert, so when the balance is short nothing is written, and a
/// used idempotency key aborts the whole statement. One round trip instead of eight is most of
/// what an order costs on a server over the network.
async fn purchase_in_one_statement(
    store: &Store,
    o: &OrderRow,
    i: &InstanceRow,
    job: &JobSpec,
    memo: &str,
    now: DateTime<Utc>,
) -> Result<EventRow> {
    let event = EventRow {
        id: new_id("evt", now),
        order_id: Some(o.id.clone()),
        instance_id: Some(i.id.clone()),
        at: ms(now),
        kind: "order.paid".to_owned(),
        detail: memo.to_owned(),
        actor: Some(o.buyer_id.clone()),
    };
    let sql = format!(
        "WITH d AS (UPDATE balances SET amount_minor = amount_minor - $13 \
                    WHERE account_id = $2 AND currency = $11 AND amount_minor - $13 >= 0 RETURNING amount_minor), \
              o AS (INSERT INTO orders ({ORDER}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM d), \
              l AS (INSERT INTO ledger_entries (id, account_id, currency, kind, amount_minor, balance_after_minor, order_id, reference, memo, created_at, created_by) \
                    SELECT $17, $2, $11, 'charge', 0 - $13, d.amount_minor, $1, NULL::text, $18, $16, $2 FROM d), \
              i AS (INSERT INTO instances (id, buyer_id, product_id, plan_id, merchant_id, order_id, state, period, expires_at, next_transition_at, \
                    version, business_id, seller_instance_id, access_enc, failure_reason, created_at, updated_at) \
                    SELECT $8, $2, $5, $6, $7, $1, $19, $9, $20, NULL::bigint, 0, $21, NULL::text, NULL::text, NULL::text, $16, $16 FROM d), \
              j AS (INSERT INTO jobs (id, kind, instance_id, payload, state, attempts, run_at, last_error, created_at, updated_at, locked_until) \
                    SELECT $22, $23, $8, $24, 'pending', 0, $16, NULL::text, $16, $16, NULL::bigint FROM d), \
              e AS (INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) SELECT $25, $1, $8, $16, 'order.paid', $18, $2 FROM d) \
         SELECT amount_minor FROM d"
    );
    let after: Option<i64> = sqlx::query_scalar(&sql)
        .bind(&o.id)
        .bind(&o.buyer_id)
        .bind(&o.kind)
        .bind(&o.state)
        .bind(&o.product_id)
        .bind(&o.plan_id)
        .bind(&o.merchant_id)
        .bind(&o.instance_id)
        .bind(&o.period)
        .bind(o.periods)
        .bind(&o.currency)
        .bind(&o.unit_price)
        .bind(o.amount_minor)
        .bind(&o.idempotency_key)
        .bind(&o.request_fingerprint)
        .bind(o.created_at)
        .bind(new_id("led", now))
        .bind(memo)
        .bind(&i.state)
        .bind(i.expires_at)
        .bind(&i.business_id)
        .bind(new_id("job", now))
        .bind(job.kind)
        .bind(&job.payload)
        .bind(&event.id)
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict("idempotency key already used".into()),
            other => other,
        })?;
    if after.is_none() {
        let available: Option<i64> = sqlx::query_scalar(
            "SELECT amount_minor FROM balances WHERE account_id = $1 AND currency = $2",
        )
        .bind(&o.buyer_id)
        .bind(&o.currency)
        .fetch_optional(&store.pool)
        .await?;
        return Err(Error::InsufficientBalance {
            available_minor: available.unwrap_or(0),
        });
    }
    Ok(event)
}

impl Store {
    /// Takes the price from the balance and creates the order, the instance and its provisioning
    /// job, all in one transaction; nothing is written when the balance is short. The order goes
    /// in first, so a retry with a used idempotency key stops at once, before any debit.
    /// Returns the timeline's first event.
    pub async fn purchase(
        &self,
        order: &OrderRow,
        instance: &InstanceRow,
        job: &JobSpec,
        memo: &str,
        now: DateTime<Utc>,
    ) -> Result<EventRow> {
        if self.backend == Backend::Postgres && order.amount_minor > 0 {
            return purchase_in_one_statement(self, order, instance, job, memo, now).await;
        }
        let mut tx = self.begin().await?;
        insert_order(&mut tx, order).await?;
        charge(&mut tx, order, memo, now).await?;
        crate::instances::insert(&mut tx, instance).await?;
        enqueue(
            &mut tx,
            job.kind,
            Some(&instance.id),
            &job.payload,
            now,
            now,
        )
        .await?;
        let event = events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&order.id),
                instance_id: Some(&instance.id),
                kind: "order.paid",
                detail: memo.to_owned(),
                actor: Some(&order.buyer_id),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Takes the renewal's price and extends the instance, if the instance is still at the
    /// version the renewal was decided on ([`Error::Stale`] otherwise: decide again).
    pub async fn renew(&self, r: Renewal<'_>, memo: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_order(&mut tx, &r.order).await?;
        charge(&mut tx, &r.order, memo, now).await?;
        crate::changed(sqlx::query(
            "UPDATE instances SET expires_at = $1, state = $2, next_transition_at = $3, version = version + 1, updated_at = $4 \
             WHERE id = $5 AND version = $6",
        )
        .bind(ms(r.new_expiry))
        .bind(r.new_state)
        .bind(r.next_transition_at.map(ms))
        .bind(ms(now))
        .bind(&r.instance.id)
        .bind(r.instance.version)
        .execute(&mut *tx)
        .await?
        .rows_affected())?;
        for job in &r.jobs {
            enqueue(
                &mut tx,
                job.kind,
                Some(&r.instance.id),
                &job.payload,
                now,
                now,
            )
            .await?;
        }
        events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&r.order.id),
                instance_id: Some(&r.instance.id),
                kind: "order.paid",
                detail: memo.to_owned(),
                actor: Some(&r.order.buyer_id),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One order by id.
    pub async fn order(&self, id: &str) -> Result<OrderRow> {
        sqlx::query_as(&format!("SELECT {ORDER} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("order"))
    }

    /// The order a buyer placed with an idempotency key, if any.
    pub async fn order_by_key(&self, buyer_id: &str, key: &str) -> Result<Option<OrderRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORDER} FROM orders WHERE buyer_id = $1 AND idempotency_key = $2"
        ))
        .bind(buyer_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A buyer's orders, newest first, after the order id `before` when given.
    pub async fn orders_of_buyer(
        &self,
        buyer_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrderRow>> {
        Ok(sqlx::query_as(&format!("SELECT {ORDER} FROM orders WHERE buyer_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"))
            .bind(buyer_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
