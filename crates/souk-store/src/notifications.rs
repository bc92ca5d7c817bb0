//! Notifications: what each person is told, read or unread, and which topics they also want by
//! e-mail. The notifier reads the timeline events it has not looked at yet and writes, in one
//! transaction per batch, the notifications they cause and an e-mail job for each one wanted by
//! e-mail; an event is looked at once however many nodes run the notifier.

use crate::decode::{id, opt_id, opt_text, opt_time, parsed, text, time};
use crate::jobs::{self, JobEnd, JobSpec};
use crate::{fresh, ms, placeholders, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, EventId, InstanceId, NotificationId, OrderId, ProductId};
use souk_core::notices::Topic;
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Rows written or read by one statement: well inside both databases' limits on bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// The job kind that e-mails notifications of one person.
pub const EMAIL_JOB: &str = "email.send";

/// The most notifications one e-mail job sends.
const EMAILS_PER_JOB: usize = 20;

/// A timeline event the notifier has not looked at, with who it concerns.
#[derive(Debug, Clone)]
pub struct Unnoticed {
    pub id: EventId,
    pub kind: String,
    pub detail: String,
    pub at: DateTime<Utc>,
    pub order_id: Option<OrderId>,
    pub instance_id: Option<InstanceId>,
    /// The account the event names (verification and merchant decisions).
    pub account_id: Option<AccountId>,
    /// The product the event is about, directly or through its instance.
    pub product_id: Option<ProductId>,
    /// The buyer of the event's instance.
    pub buyer_id: Option<AccountId>,
    /// The account of the merchant selling the product.
    pub merchant_account_id: Option<AccountId>,
}

/// Who a notification's e-mail goes to.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub name: String,
    pub address: String,
}

/// A notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub account_id: AccountId,
    pub topic: Topic,
    pub title: String,
    pub body: String,
    /// A path in the web UI where the person can act on it.
    pub link: Option<String>,
}

/// A notification as stored.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: NotificationId,
    pub account_id: AccountId,
    pub event_id: EventId,
    pub topic: Topic,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    pub emailed_at: Option<DateTime<Utc>>,
}

const NOTIFICATION: &str =
    "id, account_id, event_id, topic, title, body, link, created_at, read_at, emailed_at";

fn notification(row: &AnyRow) -> Result<Notification> {
    Ok(Notification {
        id: id(row, "id")?,
        account_id: id(row, "account_id")?,
        event_id: id(row, "event_id")?,
        topic: parsed(row, "topic")?,
        title: text(row, "title")?,
        body: text(row, "body")?,
        link: opt_text(row, "link")?,
        created_at: time(row, "created_at")?,
        read_at: opt_time(row, "read_at")?,
        emailed_at: opt_time(row, "emailed_at")?,
    })
}

/// One page of a person's notifications, newest first.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub unread_only: bool,
    /// Only notifications older than this one.
    pub before: Option<&'a NotificationId>,
    pub limit: i64,
}

impl Store {
    /// Up to `limit` events the notifier has not looked at, oldest first.
    pub async fn unnoticed_events(&self, limit: i64) -> Result<Vec<Unnoticed>> {
        // The queue's ids are picked first, on their own: joined whole, the queue looked large to
        // PostgreSQL (its deleted rows count until vacuumed), which then merged it with every
        // event ever recorded, reading them all from the first (30 ms a batch after 30,000).
        // On PostgreSQL each event is then looked up by its id (`LATERAL … LIMIT 1` keeps the
        // lookup per id): joined plainly, its costs made hashing the whole event table look
        // cheaper than a batch of index lookups while the table was young (6 ms a batch at 7,700
        // events, under the orders benchmark). SQLite has no LATERAL and looks ids up anyway.
        let (event, instance) = match self.backend {
            crate::Backend::Postgres => (
                "CROSS JOIN LATERAL (SELECT * FROM events WHERE events.id = q.id LIMIT 1) e",
                "LEFT JOIN LATERAL (SELECT product_id, buyer_id FROM instances \
                 WHERE instances.id = e.instance_id LIMIT 1) i ON true",
            ),
            crate::Backend::Sqlite => (
                "JOIN events e ON e.id = q.id",
                "LEFT JOIN instances i ON i.id = e.instance_id",
            ),
        };
        sqlx::query(&format!(
            "SELECT e.id, e.kind, e.detail, e.at, e.order_id, e.instance_id, e.account_id, \
                    COALESCE(e.product_id, i.product_id) AS product_id, i.buyer_id, m.account_id AS merchant_account_id \
             FROM (SELECT id FROM unnoticed_events ORDER BY id LIMIT $1) q {event} {instance} \
             LEFT JOIN products p ON p.id = COALESCE(e.product_id, i.product_id) \
             LEFT JOIN merchants m ON m.id = p.merchant_id \
             ORDER BY q.id",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Unnoticed {
                id: id(row, "id")?,
                kind: text(row, "kind")?,
                detail: text(row, "detail")?,
                at: time(row, "at")?,
                order_id: opt_id(row, "order_id")?,
                instance_id: opt_id(row, "instance_id")?,
                account_id: opt_id(row, "account_id")?,
                product_id: opt_id(row, "product_id")?,
                buyer_id: opt_id(row, "buyer_id")?,
                merchant_account_id: opt_id(row, "merchant_account_id")?,
            })
        })
        .collect()
    }

    /// Marks the events looked at and writes the notifications they cause, with an e-mail job
    /// for each one its person wants by e-mail, in one transaction of four statements whatever
    /// the batch's size. An event another node has already looked at is skipped with its
    /// notifications. Returns how many were written.
    pub async fn notice(
        &self,
        events: &[(EventId, Vec<NewNotification>)],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_queue().await?;
        // Statements whose text depends on the batch's size are not kept prepared.
        let sql = format!(
            "DELETE FROM unnoticed_events WHERE id IN ({}) RETURNING id",
            placeholders(1, events.len())
        );
        let mut claim = sqlx::query_scalar::<_, String>(&sql).persistent(false);
        for (id, _) in events {
            claim = claim.bind(id.as_str());
        }
        let claimed: HashSet<String> = claim.fetch_all(&mut *tx).await?.into_iter().collect();
        let rows: Vec<(NotificationId, &EventId, &NewNotification)> = events
            .iter()
            .filter(|(id, _)| claimed.contains(id.as_str()))
            .flat_map(|(event, ns)| ns.iter().map(move |n| (fresh(now), event, n)))
            .collect();
        let mut written = HashSet::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|k| format!("({}, NULL, NULL)", placeholders(k * 8 + 1, 8)))
                .collect();
            let sql = format!(
                "INSERT INTO notifications ({NOTIFICATION}) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
                values.join(", ")
            );
            let mut insert = sqlx::query_scalar::<_, String>(&sql).persistent(false);
            for (id, event, n) in chunk {
                insert = insert
                    .bind(id.as_str())
                    .bind(n.account_id.as_str())
                    .bind(event.as_str())
                    .bind(n.topic.as_str())
                    .bind(&n.title)
                    .bind(&n.body)
                    .bind(&n.link)
                    .bind(ms(now));
            }
            written.extend(insert.fetch_all(&mut *tx).await?);
        }
        let people: BTreeSet<&str> = rows.iter().map(|(_, _, n)| n.account_id.as_str()).collect();
        let mut unwanted = HashSet::new();
        if !written.is_empty() {
            let people: Vec<&str> = people.into_iter().collect();
            for chunk in people.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT account_id, topic FROM notification_prefs WHERE email = 0 AND account_id IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut read = sqlx::query_as::<_, (String, String)>(&sql).persistent(false);
                for account in chunk {
                    read = read.bind(*account);
                }
                unwanted.extend(read.fetch_all(&mut *tx).await?);
            }
        }
        // One e-mail job per person and batch: their e-mails (an order's "paid" and "ready",
        // say) go out together, one message each, and a mailbox that refuses one refuses them
        // all.
        let mut wanted: BTreeMap<&str, Vec<&NotificationId>> = BTreeMap::new();
        for (id, _, n) in &rows {
            if written.contains(id.as_str())
                && !unwanted.contains(&(n.account_id.to_string(), n.topic.as_str().to_owned()))
            {
                wanted.entry(n.account_id.as_str()).or_default().push(id);
            }
        }
        let emails: Vec<JobSpec> = wanted
            .values()
            .flat_map(|ids| ids.chunks(EMAILS_PER_JOB))
            .map(|ids| JobSpec {
                kind: EMAIL_JOB,
                payload: serde_json::json!({ "notification_ids": ids }).to_string(),
            })
            .collect();
        jobs::enqueue_unordered(&mut tx, &emails, now).await?;
        tx.commit().await?;
        Ok(written.len())
    }

    /// A person's notifications, newest first.
    pub async fn notifications_of(
        &self,
        account_id: &AccountId,
        page: Page<'_>,
    ) -> Result<Vec<Notification>> {
        sqlx::query(&format!(
            "SELECT {NOTIFICATION} FROM notifications WHERE account_id = $1 \
             AND ($2 = 0 OR read_at IS NULL) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
        .bind(account_id.as_str())
        .bind(i64::from(page.unread_only))
        .bind(page.before.map(NotificationId::as_str))
        .bind(page.limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(notification)
        .collect()
    }

    /// How many of a person's notifications are unread.
    pub async fn unread_notifications(&self, account_id: &AccountId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE account_id = $1 AND read_at IS NULL",
        )
        .bind(account_id.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    /// One notification, whoever it is for.
    pub async fn notification(&self, id: &NotificationId) -> Result<Notification> {
        sqlx::query(&format!(
            "SELECT {NOTIFICATION} FROM notifications WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| notification(&r))
        .transpose()?
        .ok_or(crate::Error::NotFound("notification"))
    }

    /// The notifications of `ids` that exist, oldest first, each with the name and address of
    /// its person, for their e-mails, in one read.
    pub async fn notifications_to_email(
        &self,
        ids: &[NotificationId],
    ) -> Result<Vec<(Notification, Recipient)>> {
        let columns: Vec<String> = NOTIFICATION.split(", ").map(|c| format!("n.{c}")).collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {}, a.name AS to_name, a.email AS to_address FROM notifications n \
                 JOIN accounts a ON a.id = n.account_id WHERE n.id IN ({}) ORDER BY n.id",
                columns.join(", "),
                placeholders(1, chunk.len())
            );
            let mut read = sqlx::query(&sql);
            for id in chunk {
                read = read.bind(id.as_str());
            }
            for row in read.fetch_all(&self.pool).await? {
                let to = Recipient {
                    name: text(&row, "to_name")?,
                    address: text(&row, "to_address")?,
                };
                out.push((notification(&row)?, to));
            }
        }
        Ok(out)
    }

    /// Marks one of a person's notifications read (reading it again changes nothing).
    pub async fn mark_notification_read(
        &self,
        account_id: &AccountId,
        id: &NotificationId,
        now: DateTime<Utc>,
    ) -> Result<Notification> {
        sqlx::query(
            "UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND account_id = $3",
        )
        .bind(ms(now))
        .bind(id.as_str())
        .bind(account_id.as_str())
        .execute(&self.pool)
        .await?;
        match self.notification(id).await {
            Ok(n) if &n.account_id == account_id => Ok(n),
            // Someone else's notification is as unknown as a missing one.
            Ok(_) | Err(crate::Error::NotFound(_)) => Err(crate::Error::NotFound("notification")),
            Err(e) => Err(e),
        }
    }

    /// Marks all of a person's notifications read; returns how many were unread.
    pub async fn mark_all_notifications_read(
        &self,
        account_id: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE notifications SET read_at = $1 WHERE account_id = $2 AND read_at IS NULL",
        )
        .bind(ms(now))
        .bind(account_id.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Records that the notifications' e-mails went out (keeping the first time of each) and
    /// ends their job, together: one statement on PostgreSQL, a transaction on SQLite. The
    /// e-mails stay recorded even when another claim of the job ended it first (that is then
    /// [`crate::Error::Stale`]): they did go out.
    pub async fn end_emailed(
        &self,
        end: JobEnd<'_>,
        ids: &[NotificationId],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if !matches!(end.state, jobs::JobState::Done | jobs::JobState::Dead) {
            return Err(crate::Error::Corrupt(format!(
                "a job cannot end {}",
                end.state
            )));
        }
        match self.backend {
            crate::Backend::Postgres if ids.len() <= ROWS_PER_STATEMENT => {
                let sql = format!(
                    "WITH emailed AS (UPDATE notifications SET emailed_at = COALESCE(emailed_at, $1) WHERE id IN ({})) \
                     UPDATE jobs SET state = $2, last_error = COALESCE($3, last_error), locked_until = NULL, updated_at = $1 \
                     WHERE id = $4 AND attempts = $5 AND state = $6",
                    if ids.is_empty() { "NULL".to_owned() } else { placeholders(7, ids.len()) }
                );
                let mut query = sqlx::query(&sql)
                    .bind(ms(now))
                    .bind(end.state.as_str())
                    .bind(end.error)
                    .bind(end.id.as_str())
                    .bind(end.attempts)
                    .bind(jobs::JobState::Running.as_str());
                for id in ids {
                    query = query.bind(id.as_str());
                }
                crate::changed(query.execute(&self.pool).await?.rows_affected())
            }
            _ => {
                let mut tx = self.begin().await?;
                mark_emailed(&mut tx, ids, now).await?;
                let ended = jobs::end_in(&mut tx, end, now).await;
                tx.commit().await?;
                ended
            }
        }
    }

    /// Records that the notifications' e-mails went out, keeping the first time of each (the
    /// ones a job sent before a failure, so its retry does not send them again).
    pub async fn record_emailed(&self, ids: &[NotificationId], now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let marked = mark_emailed(&mut conn, ids, now).await;
        conn.check(marked)
    }

    /// Which topics a person wants by e-mail: every topic, with its default where unset.
    pub async fn email_prefs(&self, account_id: &AccountId) -> Result<Vec<(Topic, bool)>> {
        let set: Vec<(String, i64)> =
            sqlx::query_as("SELECT topic, email FROM notification_prefs WHERE account_id = $1")
                .bind(account_id.as_str())
                .fetch_all(&self.pool)
                .await?;
        Ok(Topic::ALL
            .into_iter()
            .map(|t| {
                let email = set
                    .iter()
                    .find(|(topic, _)| topic == t.as_str())
                    .is_none_or(|(_, email)| *email != 0);
                (t, email)
            })
            .collect())
    }

    /// Sets whether a person wants the topics given by e-mail; topics left out keep theirs.
    pub async fn set_email_prefs(
        &self,
        account_id: &AccountId,
        prefs: &[(Topic, bool)],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for (topic, email) in prefs {
            sqlx::query(
                "INSERT INTO notification_prefs (account_id, topic, email) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, topic) DO UPDATE SET email = excluded.email",
            )
            .bind(account_id.as_str())
            .bind(topic.as_str())
            .bind(i64::from(*email))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Sets `emailed_at` of the notifications of `ids` that have none.
async fn mark_emailed(
    conn: &mut sqlx::AnyConnection,
    ids: &[NotificationId],
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE notifications SET emailed_at = COALESCE(emailed_at, $1) WHERE id IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(ms(now));
        for id in chunk {
            query = query.bind(id.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
