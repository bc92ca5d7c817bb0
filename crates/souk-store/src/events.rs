//! The timeline: what happened to an order or an instance, when, and who did it.

use crate::{ms, new_id, Result, Store};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// One event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub at: i64,
    pub kind: String,
    pub detail: String,
    pub actor: Option<String>,
}

/// What to record.
pub struct NewEvent<'a> {
    pub order_id: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    pub kind: &'a str,
    pub detail: String,
    pub actor: Option<&'a str>,
}

/// Records an event inside the caller's transaction.
pub async fn record(
    conn: &mut AnyConnection,
    e: NewEvent<'_>,
    now: DateTime<Utc>,
) -> Result<EventRow> {
    let row = EventRow {
        id: new_id("evt", now),
        order_id: e.order_id.map(str::to_owned),
        instance_id: e.instance_id.map(str::to_owned),
        at: ms(now),
        kind: e.kind.to_owned(),
        detail: e.detail,
        actor: e.actor.map(str::to_owned),
    };
    sqlx::query("INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&row.id)
        .bind(&row.order_id)
        .bind(&row.instance_id)
        .bind(row.at)
        .bind(&row.kind)
        .bind(&row.detail)
        .bind(&row.actor)
        .execute(conn)
        .await?;
    Ok(row)
}

impl Store {
    /// An order's timeline, oldest first: its own events and those of the instance it bought.
    pub async fn order_timeline(
        &self,
        order_id: &str,
        instance_id: &str,
        order_created_at: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, order_id, instance_id, at, kind, detail, actor FROM events \
             WHERE order_id = $1 OR (instance_id = $2 AND order_id IS NULL AND at >= $3) ORDER BY id",
        )
        .bind(order_id)
        .bind(instance_id)
        .bind(order_created_at)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Everything that happened to an instance, oldest first.
    pub async fn instance_timeline(&self, instance_id: &str) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as("SELECT id, order_id, instance_id, at, kind, detail, actor FROM events WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
