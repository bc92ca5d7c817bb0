//! Orders, and the transactions that take money for them: a purchase creates the order, its
//! instance and the provisioning job in the same transaction as the debit; a renewal extends the
//! instance in the same transaction as its debit.

use crate::decode::{id, int, opt_text, parsed, text, time};
use crate::events::{self, NewEvent, TimelineEvent};
use crate::instances::{self, Instance};
use crate::jobs::{enqueue, JobSpec};
use crate::ledger::{self, Movement};
use crate::{fresh, ms, Backend, Error, Result, Store};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use souk_core::ids::{AccountId, InstanceId, MerchantId, OrderId, PlanId, ProductId};
use souk_core::ledger::{debit_floor, EntryKind};
use souk_core::lifecycle::Transition;
use souk_core::money::{Currency, Money};
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans::Period;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// An order.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: OrderId,
    pub buyer_id: AccountId,
    pub kind: OrderKind,
    pub state: OrderState,
    pub product_id: ProductId,
    pub plan_id: PlanId,
    pub merchant_id: MerchantId,
    pub instance_id: InstanceId,
    pub period: Period,
    pub periods: u32,
    /// Price of one period when ordered.
    pub unit_price: Decimal,
    /// The price before any promotion.
    pub list: Money,
    /// What a promotion took off: amount = list - discount.
    pub discount: Money,
    /// What was paid.
    pub amount: Money,
    /// What went back to the buyer (provisioning failed, or unsubscribed).
    pub refunded: Money,
    pub idempotency_key: Option<String>,
    /// What the request asked for, so a reused key on a different request is told apart.
    pub request_fingerprint: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ORDER: &str = "id, buyer_id, kind, state, product_id, plan_id, merchant_id, instance_id, period, periods, currency, \
    unit_price, amount_minor, idempotency_key, request_fingerprint, created_at, refunded_minor, list_minor, discount_minor";

fn order(row: &AnyRow) -> Result<Order> {
    let currency: Currency = parsed(row, "currency")?;
    Ok(Order {
        id: id(row, "id")?,
        buyer_id: id(row, "buyer_id")?,
        kind: parsed(row, "kind")?,
        state: parsed(row, "state")?,
        product_id: id(row, "product_id")?,
        plan_id: id(row, "plan_id")?,
        merchant_id: id(row, "merchant_id")?,
        instance_id: id(row, "instance_id")?,
        period: parsed(row, "period")?,
        periods: u32::try_from(int(row, "periods")?)
            .map_err(|_| Error::Corrupt("periods out of range".into()))?,
        unit_price: parsed(row, "unit_price")?,
        amount: Money::from_minor(int(row, "amount_minor")?, currency),
        refunded: Money::from_minor(int(row, "refunded_minor")?, currency),
        list: Money::from_minor(int(row, "list_minor")?, currency),
        discount: Money::from_minor(int(row, "discount_minor")?, currency),
        idempotency_key: opt_text(row, "idempotency_key")?,
        request_fingerprint: opt_text(row, "request_fingerprint")?,
        created_at: time(row, "created_at")?,
    })
}

/// A renewal decided by core: the order paying for it, the instance as read, and the transition.
pub struct Renewal<'a> {
    pub order: &'a Order,
    pub instance: &'a Instance,
    pub transition: &'a Transition,
    /// The seller calls of the transition, as jobs.
    pub jobs: Vec<JobSpec>,
    /// The lowest balance the debit may leave, in minor units.
    pub floor_minor: i64,
    /// Set when the order converts a trial: the instance is a trial no more, and renews by this.
    pub converts_to: Option<Period>,
}

/// A purchase decided by the server: the order, its new instance and the provisioning job.
pub struct Purchase<'a> {
    pub order: &'a Order,
    pub instance: &'a Instance,
    pub job: &'a JobSpec,
    /// What the ledger entry and the timeline say.
    pub memo: &'a str,
}

/// Money going back for one order because the buyer unsubscribed.
pub struct OrderRefund<'a> {
    pub order: &'a Order,
    /// What goes back now (zero for a span already used up); never more than is left of it.
    pub amount: Money,
    /// What the ledger entry says.
    pub memo: String,
}

/// An unsubscription decided by the server: core's transition of the instance, the seller call,
/// and the orders it gives back.
pub struct Unsubscription<'a> {
    pub instance: &'a Instance,
    pub transition: &'a Transition,
    pub jobs: Vec<JobSpec>,
    /// Every order given back; each moves from paid to unsubscribed.
    pub refunds: Vec<OrderRefund<'a>>,
    /// The timeline event: its kind and what it says.
    pub event_kind: &'static str,
    pub memo: &'a str,
    pub actor: &'a AccountId,
}

/// A plan change decided by the server: the order carrying the difference (charged when
/// positive, given back when negative), the instance as read, and the `upgradeInstance` call.
pub struct PlanChange<'a> {
    pub order: &'a Order,
    pub instance: &'a Instance,
    pub job: &'a JobSpec,
    /// The lowest balance the charge may leave, in minor units.
    pub floor_minor: i64,
    /// What the ledger entry and the timeline say.
    pub memo: &'a str,
}

async fn insert_order(conn: &mut AnyConnection, o: &Order) -> Result<()> {
    sqlx::query(&format!("INSERT INTO orders ({ORDER}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"))
        .bind(o.id.as_str())
        .bind(o.buyer_id.as_str())
        .bind(o.kind.as_str())
        .bind(o.state.as_str())
        .bind(o.product_id.as_str())
        .bind(o.plan_id.as_str())
        .bind(o.merchant_id.as_str())
        .bind(o.instance_id.as_str())
        .bind(o.period.as_str())
        .bind(i64::from(o.periods))
        .bind(o.amount.currency.code())
        .bind(o.unit_price.to_string())
        .bind(o.amount.minor)
        .bind(&o.idempotency_key)
        .bind(&o.request_fingerprint)
        .bind(ms(o.created_at))
        .bind(o.refunded.minor)
        .bind(o.list.minor)
        .bind(o.discount.minor)
        .execute(conn)
        .await
        ?;
    Ok(())
}

async fn charge(
    conn: &mut AnyConnection,
    o: &Order,
    memo: &str,
    floor_minor: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    if o.amount.minor > 0 {
        ledger::apply(
            conn,
            &Movement {
                account_id: &o.buyer_id,
                amount: Money::from_minor(-o.amount.minor, o.amount.currency),
                kind: EntryKind::Charge,
                order_id: Some(&o.id),
                reference: None,
                memo,
                created_by: Some(&o.buyer_id),
                idempotency_key: None,
                floor_minor,
                overdraw: false,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// The same purchase as the portable path writes, as one PostgreSQL statement: the conditional
/// debit feeds every insert, so when the balance is short nothing is written, and a used
/// idempotency key aborts the whole statement. One round trip instead of eight is most of what an
/// order costs on a server over the network.
async fn purchase_in_one_statement(
    store: &Store,
    p: &Purchase<'_>,
    now: DateTime<Utc>,
) -> Result<TimelineEvent> {
    let (o, i) = (p.order, p.instance);
    let event = TimelineEvent {
        id: fresh(now),
        order_id: Some(o.id.clone()),
        instance_id: Some(i.id.clone()),
        at: now,
        kind: "order.paid".to_owned(),
        detail: p.memo.to_owned(),
        actor: Some(o.buyer_id.clone()),
    };
    let sql = format!(
        "WITH d AS (UPDATE balances SET amount_minor = amount_minor - $13 \
                    WHERE account_id = $2 AND currency = $11 \
                    AND amount_minor - $13 >= 0 - COALESCE((SELECT c.limit_minor FROM credit_limits c WHERE c.account_id = $2 AND c.currency = $11), 0) \
                    RETURNING amount_minor), \
              o AS (INSERT INTO orders ({ORDER}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $28, $29 FROM d), \
              l AS (INSERT INTO ledger_entries (id, account_id, currency, kind, amount_minor, balance_after_minor, order_id, reference, memo, created_at, created_by) \
                    SELECT $17, $2, $11, $26, 0 - $13, d.amount_minor, $1, NULL::text, $18, $16, $2 FROM d), \
              i AS (INSERT INTO instances (id, buyer_id, product_id, plan_id, merchant_id, order_id, state, period, expires_at, next_transition_at, \
                    version, business_id, seller_instance_id, access_enc, failure_reason, created_at, updated_at) \
                    SELECT $8, $2, $5, $6, $7, $1, $19, $9, $20, NULL::bigint, 0, $21, NULL::text, NULL::text, NULL::text, $16, $16 FROM d), \
              j AS (INSERT INTO jobs (id, kind, instance_id, ordering_key, payload, state, attempts, run_at, last_error, created_at, updated_at, locked_until, lane) \
                    SELECT $22, $23, $8, $8, $24, $27, 0, $16, NULL::text, $16, $16, NULL::bigint, $7 FROM d), \
              e AS (INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) SELECT $25, $1, $8, $16, 'order.paid', $18, $2 FROM d), \
              q AS (INSERT INTO unnoticed_events (id) SELECT $25 FROM d) \
         SELECT amount_minor FROM d"
    );
    let after: Option<i64> = sqlx::query_scalar(&sql)
        .bind(o.id.as_str())
        .bind(o.buyer_id.as_str())
        .bind(o.kind.as_str())
        .bind(o.state.as_str())
        .bind(o.product_id.as_str())
        .bind(o.plan_id.as_str())
        .bind(o.merchant_id.as_str())
        .bind(o.instance_id.as_str())
        .bind(o.period.as_str())
        .bind(i64::from(o.periods))
        .bind(o.amount.currency.code())
        .bind(o.unit_price.to_string())
        .bind(o.amount.minor)
        .bind(&o.idempotency_key)
        .bind(&o.request_fingerprint)
        .bind(ms(o.created_at))
        .bind(fresh::<souk_core::ids::EntryId>(now).as_str())
        .bind(p.memo)
        .bind(i.state.as_str())
        .bind(ms(i.expires_at))
        .bind(&i.business_id)
        .bind(fresh::<souk_core::ids::JobId>(now).as_str())
        .bind(p.job.kind)
        .bind(&p.job.payload)
        .bind(event.id.as_str())
        .bind(EntryKind::Charge.as_str())
        .bind(crate::jobs::JobState::Pending.as_str())
        .bind(o.list.minor)
        .bind(o.discount.minor)
        .fetch_optional(&store.pool)
        .await?;
    if after.is_none() {
        // Nothing was written. A used key wins over a short balance, as on the portable path,
        // where the order goes in before the debit.
        if let Some(key) = &o.idempotency_key {
            if store.order_by_key(&o.buyer_id, key).await?.is_some() {
                return Err(Error::Duplicate(crate::Constraint::OrderIdempotencyKey));
            }
        }
        let mut conn = store.pool.acquire().await?;
        let available = ledger::available(&mut conn, &o.buyer_id, o.amount.currency).await;
        return Err(Error::InsufficientBalance {
            available_minor: conn.check(available)?,
        });
    }
    Ok(event)
}

impl Store {
    /// Whether `buyer` has had the free trial of `product` (at most one a product).
    pub async fn trial_taken(&self, buyer: &AccountId, product: &ProductId) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM trials WHERE buyer_id = $1 AND product_id = $2")
                .bind(buyer.as_str())
                .bind(product.as_str())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Takes the price from the balance and creates the order, the instance and its provisioning
    /// job, all in one transaction; nothing is written when the balance is short. The order goes
    /// in first, so a retry with a used idempotency key stops at once, before any debit.
    /// Returns the timeline's first event.
    pub async fn purchase(&self, p: Purchase<'_>, now: DateTime<Utc>) -> Result<TimelineEvent> {
        // The one statement debits an existing balance row only; credit drawn on an account that never
        // held money takes the portable path, which creates the row.
        if self.backend == Backend::Postgres
            && self.fast_paths
            && p.order.amount.minor > 0
            && !p.instance.trial
        {
            match purchase_in_one_statement(self, &p, now).await {
                Err(Error::InsufficientBalance { .. })
                    if self
                        .credit_limit(&p.order.buyer_id, p.order.amount.currency)
                        .await?
                        > 0 =>
                {
                    // Credit drawn on an account that may never have held money: the portable
                    // path creates the balance row the debit applies to.
                }
                other => return other,
            }
        }
        let mut tx = self.begin().await?;
        if p.instance.trial {
            // A trial is taken at most once per buyer and product (`Constraint::Trial` otherwise).
            // First, so a second trial stops here whichever request commits first.
            sqlx::query("INSERT INTO trials (buyer_id, product_id, instance_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(p.order.buyer_id.as_str())
                .bind(p.order.product_id.as_str())
                .bind(p.instance.id.as_str())
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
        }
        insert_order(&mut tx, p.order).await?;
        let limit =
            ledger::credit_limit_in(&mut tx, &p.order.buyer_id, p.order.amount.currency).await?;
        charge(&mut tx, p.order, p.memo, debit_floor(limit), now).await?;
        instances::insert(&mut tx, p.instance).await?;
        enqueue(&mut tx, p.job, Some(&p.instance.id), now, now).await?;
        let event = events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&p.order.id),
                instance_id: Some(&p.instance.id),
                kind: "order.paid",
                detail: p.memo.to_owned(),
                actor: Some(&p.order.buyer_id),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Takes the renewal's price and applies core's transition to the instance, if the instance
    /// is still as read ([`Error::Stale`] otherwise: decide again).
    pub async fn renew(&self, r: Renewal<'_>, memo: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_order(&mut tx, r.order).await?;
        // The instance before the balance, as every other path that touches both locks them, so
        // a renewal and an unsubscribe of one instance cannot deadlock.
        instances::set_state(&mut tx, r.instance, r.transition, now).await?;
        charge(&mut tx, r.order, memo, r.floor_minor, now).await?;
        if let Some(period) = r.converts_to {
            sqlx::query("UPDATE instances SET trial = 0, period = $1 WHERE id = $2")
                .bind(period.as_str())
                .bind(r.instance.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for job in &r.jobs {
            enqueue(&mut tx, job, Some(&r.instance.id), now, now).await?;
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

    /// Moves an instance to the change order's plan, charging or giving back the difference, and
    /// tells the seller, in one transaction, if the instance is still as read and active
    /// ([`Error::Stale`] otherwise: decide again); nothing is written when the balance is short.
    pub async fn change_plan(&self, c: PlanChange<'_>, now: DateTime<Utc>) -> Result<()> {
        let (o, i) = (c.order, c.instance);
        let mut tx = self.begin().await?;
        insert_order(&mut tx, o).await?;
        crate::changed(
            sqlx::query(
                "UPDATE instances SET plan_id = $1, version = version + 1, updated_at = $2 \
                 WHERE id = $3 AND version = $4 AND state = $5",
            )
            .bind(o.plan_id.as_str())
            .bind(ms(now))
            .bind(i.id.as_str())
            .bind(i.version)
            .bind(i.state.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        )?;
        if o.amount.minor > 0 {
            charge(&mut tx, o, c.memo, c.floor_minor, now).await?;
        } else if o.amount.minor < 0 {
            ledger::apply(
                &mut tx,
                &Movement {
                    account_id: &o.buyer_id,
                    amount: Money::from_minor(-o.amount.minor, o.amount.currency),
                    kind: EntryKind::Refund,
                    order_id: Some(&o.id),
                    reference: None,
                    memo: c.memo,
                    created_by: Some(&o.buyer_id),
                    idempotency_key: None,
                    floor_minor: 0,
                    overdraw: false,
                },
                now,
            )
            .await?;
        }
        enqueue(&mut tx, c.job, Some(&i.id), now, now).await?;
        events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&o.id),
                instance_id: Some(&i.id),
                kind: "plan.changed",
                detail: c.memo.to_owned(),
                actor: Some(&o.buyer_id),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives orders back and applies core's transition to the instance in one transaction, if
    /// the instance is still as read and every order still paid ([`Error::Stale`] otherwise:
    /// decide again). Each refund is a ledger entry against its order.
    pub async fn unsubscribe(&self, u: Unsubscription<'_>, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        instances::set_state(&mut tx, u.instance, u.transition, now).await?;
        for r in &u.refunds {
            crate::changed(
                sqlx::query(
                    "UPDATE orders SET state = $1, refunded_minor = refunded_minor + $2 \
                     WHERE id = $3 AND state = $4 AND ($2 = 0 OR refunded_minor + $2 <= amount_minor)",
                )
                .bind(OrderState::Unsubscribed.as_str())
                .bind(r.amount.minor)
                .bind(r.order.id.as_str())
                .bind(OrderState::Paid.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            )?;
            if r.amount.minor > 0 {
                ledger::apply(
                    &mut tx,
                    &Movement {
                        account_id: &r.order.buyer_id,
                        amount: r.amount,
                        kind: EntryKind::Refund,
                        order_id: Some(&r.order.id),
                        reference: None,
                        memo: &r.memo,
                        created_by: Some(u.actor),
                        idempotency_key: None,
                        floor_minor: 0,
                        overdraw: false,
                    },
                    now,
                )
                .await?;
            }
        }
        for job in &u.jobs {
            enqueue(&mut tx, job, Some(&u.instance.id), now, now).await?;
        }
        events::record(
            &mut tx,
            NewEvent {
                order_id: Some(&u.instance.order_id),
                instance_id: Some(&u.instance.id),
                kind: u.event_kind,
                detail: u.memo.to_owned(),
                actor: Some(u.actor),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The orders of an instance, oldest first: the purchase, then its renewals.
    pub async fn orders_of_instance(&self, instance_id: &InstanceId) -> Result<Vec<Order>> {
        sqlx::query(&format!(
            "SELECT {ORDER} FROM orders WHERE instance_id = $1 ORDER BY created_at, id"
        ))
        .bind(instance_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(order)
        .collect()
    }

    /// One order by id.
    pub async fn order(&self, id: &OrderId) -> Result<Order> {
        sqlx::query(&format!("SELECT {ORDER} FROM orders WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| order(&r))
            .transpose()?
            .ok_or(Error::NotFound("order"))
    }

    /// The orders of `ids` that exist, each with the name of its plan, in one read.
    pub async fn orders_with_plan_names(&self, ids: &[&OrderId]) -> Result<Vec<(Order, String)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let columns: Vec<String> = ORDER.split(", ").map(|c| format!("o.{c}")).collect();
            let sql = format!(
                "SELECT {}, pl.name AS plan_name FROM orders o JOIN plans pl ON pl.id = o.plan_id \
                 WHERE o.id IN ({})",
                columns.join(", "),
                crate::placeholders(1, chunk.len())
            );
            let mut read = sqlx::query(&sql).persistent(false);
            for id in chunk {
                read = read.bind(id.as_str());
            }
            for row in read.fetch_all(&self.pool).await? {
                out.push((order(&row)?, text(&row, "plan_name")?));
            }
        }
        Ok(out)
    }

    /// The order a buyer placed with an idempotency key, if any.
    pub async fn order_by_key(&self, buyer_id: &AccountId, key: &str) -> Result<Option<Order>> {
        sqlx::query(&format!(
            "SELECT {ORDER} FROM orders WHERE buyer_id = $1 AND idempotency_key = $2"
        ))
        .bind(buyer_id.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| order(&r))
        .transpose()
    }

    /// A buyer's orders, newest first, after the order id `before` when given, only in `state`
    /// and of `kind` when given.
    pub async fn orders_of_buyer(
        &self,
        buyer_id: &AccountId,
        state: Option<OrderState>,
        kind: Option<OrderKind>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Order>> {
        sqlx::query(&format!("SELECT {ORDER} FROM orders WHERE buyer_id = $1 AND ($2 IS NULL OR id < $2) \
                              AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR kind = $4) ORDER BY id DESC LIMIT $5"))
            .bind(buyer_id.as_str())
            .bind(before)
            .bind(state.map(OrderState::as_str))
            .bind(kind.map(OrderKind::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(order)
            .collect()
    }

    /// The orders of a merchant's products, newest first, after the order id `before`.
    pub async fn orders_of_merchant(
        &self,
        merchant_id: &MerchantId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Order>> {
        sqlx::query(&format!("SELECT {ORDER} FROM orders WHERE merchant_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"))
            .bind(merchant_id.as_str())
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(order)
            .collect()
    }
}
