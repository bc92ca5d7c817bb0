//! The timeline: what happened to an order or an instance, when, and who did it.

use crate::decode::{id, opt_id, text, time};
use crate::{fresh, ms, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, EventId, InstanceId, OrderId, ProductId};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// One event on a timeline.
#[derive(Debug, Clone)]
pub struct TimelineEvent {
    pub id: EventId,
    pub order_id: Option<OrderId>,
    pub instance_id: Option<InstanceId>,
    pub at: DateTime<Utc>,
    /// e.g. `order.paid`, `instance.active`, `instance.frozen`.
    pub kind: String,
    pub detail: String,
    pub actor: Option<AccountId>,
}

/// What to record.
pub struct NewEvent<'a> {
    pub order_id: Option<&'a OrderId>,
    pub instance_id: Option<&'a InstanceId>,
    pub kind: &'a str,
    pub detail: String,
    pub actor: Option<&'a AccountId>,
}

fn event(row: &AnyRow) -> Result<TimelineEvent> {
    Ok(TimelineEvent {
        id: id(row, "id")?,
        order_id: opt_id(row, "order_id")?,
        instance_id: opt_id(row, "instance_id")?,
        at: time(row, "at")?,
        kind: text(row, "kind")?,
        detail: text(row, "detail")?,
        actor: opt_id(row, "actor")?,
    })
}

/// Records an event inside the caller's transaction.
pub async fn record(
    conn: &mut AnyConnection,
    e: NewEvent<'_>,
    now: DateTime<Utc>,
) -> Result<TimelineEvent> {
    let row = TimelineEvent {
        id: fresh(now),
        order_id: e.order_id.cloned(),
        instance_id: e.instance_id.cloned(),
        at: now,
        kind: e.kind.to_owned(),
        detail: e.detail,
        actor: e.actor.cloned(),
    };
    sqlx::query("INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(row.id.as_str())
        .bind(row.order_id.as_ref().map(OrderId::as_str))
        .bind(row.instance_id.as_ref().map(InstanceId::as_str))
        .bind(ms(now))
        .bind(&row.kind)
        .bind(&row.detail)
        .bind(row.actor.as_ref().map(AccountId::as_str))
        .execute(&mut *conn)
        .await?;
    queue_for_notifier(conn, &row.id).await?;
    Ok(row)
}

/// Puts a new event in the notifier's queue (`Store::unnoticed_events`).
async fn queue_for_notifier(conn: &mut AnyConnection, id: &EventId) -> Result<()> {
    sqlx::query("INSERT INTO unnoticed_events (id) VALUES ($1)")
        .bind(id.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// An event about an account or a product rather than an order or an instance: a decision on a
/// verification, a merchant application or a product revision.
pub struct Decision<'a> {
    /// The account the decision concerns (verification, merchant application).
    pub account_id: Option<&'a AccountId>,
    /// The product the decision concerns (a revision's review).
    pub product_id: Option<&'a ProductId>,
    /// e.g. `product.rejected`.
    pub kind: &'a str,
    pub detail: String,
    /// Who decided.
    pub actor: &'a AccountId,
}

/// Records a decision inside the caller's transaction.
pub async fn record_decision(
    conn: &mut AnyConnection,
    d: Decision<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let id = fresh::<EventId>(now);
    sqlx::query("INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor, account_id, product_id) VALUES ($1, NULL, NULL, $2, $3, $4, $5, $6, $7)")
        .bind(id.as_str())
        .bind(ms(now))
        .bind(d.kind)
        .bind(&d.detail)
        .bind(d.actor.as_str())
        .bind(d.account_id.map(AccountId::as_str))
        .bind(d.product_id.map(ProductId::as_str))
        .execute(&mut *conn)
        .await?;
    queue_for_notifier(conn, &id).await
}

impl Store {
    /// An order's timeline, oldest first: its own events and those of the instance it bought
    /// that belong to no order, from the order's time on.
    pub async fn order_timeline(
        &self,
        order_id: &OrderId,
        instance_id: &InstanceId,
        order_created_at: DateTime<Utc>,
    ) -> Result<Vec<TimelineEvent>> {
        sqlx::query(
            "SELECT id, order_id, instance_id, at, kind, detail, actor FROM events \
             WHERE order_id = $1 OR (instance_id = $2 AND order_id IS NULL AND at >= $3) ORDER BY id",
        )
        .bind(order_id.as_str())
        .bind(instance_id.as_str())
        .bind(ms(order_created_at))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event)
        .collect()
    }

    /// Everything that happened to an instance, oldest first.
    pub async fn instance_timeline(&self, instance_id: &InstanceId) -> Result<Vec<TimelineEvent>> {
        sqlx::query("SELECT id, order_id, instance_id, at, kind, detail, actor FROM events WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event)
            .collect()
    }
}
