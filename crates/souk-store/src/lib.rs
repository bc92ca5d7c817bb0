//! souk's persistence on SQLite (embedded default) and PostgreSQL, with one set of portable SQL.
//!
//! Repositories live one module per aggregate. Functions that must share a transaction take a
//! `&mut AnyConnection` (a [`Tx`] dereferences to one); the rest take the [`Store`]. The store
//! keeps what core decided: it holds no business rules, only the atomic conditions (a debit that
//! cannot overdraw, a transition that only applies to the version it was decided on) that make
//! concurrent requests safe.

pub mod accounts;
pub mod catalog;
pub mod events;
pub mod iam;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod merchants;
pub mod nodes;
pub mod notifications;
pub mod orders;
pub mod pool;
pub mod products;
pub mod promotions;
pub mod secrets;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod usage;

use chrono::{DateTime, Utc};
use pool::Pool;
use rand::RngCore;
use souk_core::ids::Id;
use sqlx::any::AnyConnectOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyConnection, ConnectOptions, Connection};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use pool::Tx;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A unique rule of the schema, named so that a violation is reported as what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// An account with this e-mail exists.
    AccountEmail,
    /// The buyer already used this `Idempotency-Key` for an order.
    OrderIdempotencyKey,
    /// The author already used this `Idempotency-Key` for a ledger movement.
    EntryIdempotencyKey,
    /// The account already has a merchant record.
    MerchantAccount,
    /// A revision with this number exists for the product.
    RevisionNumber,
    /// The buyer already took the product's free trial.
    Trial,
    /// Any other unique rule, by the name the database gave.
    Other(String),
}

impl Constraint {
    /// Which rule a unique violation broke: PostgreSQL names the constraint, SQLite names the
    /// columns (`UNIQUE constraint failed: accounts.email`); both are mapped here, once.
    fn of(db: &dyn sqlx::error::DatabaseError) -> Constraint {
        const KNOWN: &[(&str, &str, Constraint)] = &[
            (
                "accounts_email_key",
                "accounts.email",
                Constraint::AccountEmail,
            ),
            (
                "orders_buyer_id_idempotency_key_key",
                "orders.buyer_id, orders.idempotency_key",
                Constraint::OrderIdempotencyKey,
            ),
            (
                "ledger_entries_created_by_idempotency_key_key",
                "ledger_entries.created_by, ledger_entries.idempotency_key",
                Constraint::EntryIdempotencyKey,
            ),
            (
                "merchants_account_id_key",
                "merchants.account_id",
                Constraint::MerchantAccount,
            ),
            (
                "product_revisions_product_id_number_key",
                "product_revisions.product_id, product_revisions.number",
                Constraint::RevisionNumber,
            ),
            (
                "trials_pkey",
                "trials.buyer_id, trials.product_id",
                Constraint::Trial,
            ),
        ];
        let message = db.message();
        for (pg, sqlite, c) in KNOWN {
            if db.constraint() == Some(*pg) || message.ends_with(sqlite) {
                return c.clone();
            }
        }
        Constraint::Other(db.constraint().unwrap_or(message).to_owned())
    }
}

/// What storage can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (or is not visible to the asker).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique rule was broken.
    #[error("duplicate: {0:?}")]
    Duplicate(Constraint),
    /// A debit would take the balance below its floor.
    #[error("insufficient balance: {available_minor} available")]
    InsufficientBalance { available_minor: i64 },
    /// The row changed since it was read; the caller re-reads and decides again.
    #[error("changed concurrently")]
    Stale,
    /// A stored value cannot be read back (a bug or a hand-edited database).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The schema on disk does not match the migrations this build carries.
    #[error("migrations: {0}")]
    Migration(String),
    /// Text the database cannot store (PostgreSQL refuses the NUL character); nothing was
    /// written.
    #[error("text with a NUL character cannot be stored")]
    Unstorable,
    /// Another node keeps the signatures it accepts in its memory for now (PostgreSQL), so
    /// none can be remembered in the database: nothing was written, and trying again shortly
    /// succeeds once it has handed them over (nodes.rs).
    #[error("another node keeps the accepted signatures for now")]
    KeptElsewhere,
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl Error {
    /// A failure of the database described in words, for one that several callers share (a
    /// statement run for a batch of them).
    pub fn database(why: impl Into<String>) -> Error {
        Error::Database(sqlx::Error::Protocol(why.into()))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::Duplicate(Constraint::of(db.as_ref()));
            }
            // PostgreSQL's deadlock and serialization failures: the transaction was rolled back
            // whole, and deciding again on fresh reads is the answer, as for a stale write.
            if matches!(db.code().as_deref(), Some("40P01" | "40001")) {
                return Error::Stale;
            }
            // A NUL character (or one the encoding lacks) in a parameter: the caller's input.
            if matches!(db.code().as_deref(), Some("22021" | "22P05")) {
                return Error::Unstorable;
            }
        }
        Error::Database(e)
    }
}

impl From<souk_core::Error> for Error {
    fn from(e: souk_core::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// Shorthand for store results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The database behind souk.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Connections for the work queue's own bookkeeping (claiming jobs, ending a provisioning
    /// call, the notifier's pass), whose commits on PostgreSQL do not wait for the disk: what a
    /// database crash loses of them is done again from what was made durable (a claimed job
    /// runs again, and every job is idempotent). Money, and what was told to people, never goes
    /// through them. On SQLite the same connections as the rest (whose commits already do not
    /// wait for the disk, `synchronous = NORMAL`).
    queue: Pool,
    backend: Backend,
    /// Use PostgreSQL's one-statement forms of the hot writes (off only to test them against the
    /// portable forms).
    fast_paths: bool,
    /// Moves with every change this process makes to what an access key may do (its state, its
    /// user's policy, its account and roles), so what a node read of them can be known current
    /// without a round trip; the database's access generation counts every process's.
    access_changes: Arc<AtomicU64>,
}

/// A change to what an access key may do, under way: moves [`Store::access_changes`] again when
/// dropped.
struct AccessChange<'a>(&'a Store);

impl Drop for AccessChange<'_> {
    fn drop(&mut self) {
        self.0.access_changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// The migration files of one backend's folder, embedded: `version "name" "file"`.
macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal $file:literal,)+) => {
        &[$(($version, $name, include_str!(concat!("../migrations/", $dir, "/", $file))),)+]
    };
}

/// The migrations of each backend, numbered; an applied one is never edited (its checksum is
/// checked at every start).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!("sqlite":
    1 "spine" "0001_spine.sql",
    2 "account roles" "0002_account_roles.sql",
    3 "job handlers" "0003_job_handlers.sql",
    4 "sessions" "0004_sessions.sql",
    5 "access keys" "0005_access_keys.sql",
    6 "unsubscribe" "0006_unsubscribe.sql",
    7 "trials" "0007_trials.sql",
    8 "promotions" "0008_promotions.sql",
    9 "credit limits" "0009_credit_limits.sql",
    10 "expiry reminders" "0010_expiry_reminders.sql",
    11 "one-time plans" "0011_one_time_plans.sql",
    12 "metering" "0012_metering.sql",
    13 "signed answers" "0013_signed_answers.sql",
    14 "notifications" "0014_notifications.sql",
    15 "seller protocol" "0015_seller_protocol.sql",
    16 "console users" "0016_console_users.sql",
    17 "job claim indexes" "0017_job_claim_indexes.sql",
    18 "job lanes" "0018_job_lanes.sql",
    19 "signature batches" "0019_signature_batches.sql",
    20 "job queue indexes" "0020_job_queue_indexes.sql",
    21 "signature digests" "0021_signature_digests.sql",
    22 "notifier queue" "0022_notifier_queue.sql",
    23 "endpoint checks" "0023_endpoint_checks.sql",
    24 "audit addresses" "0024_audit_addresses.sql",
    25 "access generation" "0025_access_generation.sql",
);
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!("postgres":
    1 "spine" "0001_spine.sql",
    2 "account roles" "0002_account_roles.sql",
    3 "job handlers" "0003_job_handlers.sql",
    4 "sessions" "0004_sessions.sql",
    5 "access keys" "0005_access_keys.sql",
    6 "unsubscribe" "0006_unsubscribe.sql",
    7 "trials" "0007_trials.sql",
    8 "promotions" "0008_promotions.sql",
    9 "credit limits" "0009_credit_limits.sql",
    10 "expiry reminders" "0010_expiry_reminders.sql",
    11 "one-time plans" "0011_one_time_plans.sql",
    12 "metering" "0012_metering.sql",
    13 "signed answers" "0013_signed_answers.sql",
    14 "notifications" "0014_notifications.sql",
    15 "seller protocol" "0015_seller_protocol.sql",
    16 "console users" "0016_console_users.sql",
    17 "job claim indexes" "0017_job_claim_indexes.sql",
    18 "job lanes" "0018_job_lanes.sql",
    19 "unlogged signatures" "0019_unlogged_signatures.sql",
    20 "job queue indexes" "0020_job_queue_indexes.sql",
    21 "signature digests" "0021_signature_digests.sql",
    22 "notifier queue" "0022_notifier_queue.sql",
    23 "endpoint checks" "0023_endpoint_checks.sql",
    24 "audit addresses" "0024_audit_addresses.sql",
    25 "access generation" "0025_access_generation.sql",
);

/// The migrations compiled into this build, as sqlx's migrator reads them.
#[derive(Debug)]
struct Embedded(Backend);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>,
    > {
        let files = match self.0 {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = files
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

impl Store {
    /// Connects to `url`: `sqlite://path` (the file is created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, 16).await
    }

    /// Connects with at most `max_connections` pooled connections (SQLite uses at most 8: it
    /// has one writer at a time anyway).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::Database(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            )));
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = match backend {
            // WAL lets readers run beside the one writer; NORMAL sync is durable across
            // application crashes, which is what an embedded store needs.
            Backend::Sqlite => Pool::new(
                options.clone(),
                max_connections.min(8),
                Duration::from_secs(10),
                Some("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;"),
            ),
            Backend::Postgres => Pool::new(
                options.clone(),
                max_connections,
                Duration::from_secs(10),
                None,
            ),
        };
        let queue = match backend {
            Backend::Sqlite => pool.clone(),
            Backend::Postgres => Pool::new(
                options,
                (max_connections / 4).max(2),
                Duration::from_secs(10),
                Some("SET synchronous_commit = off"),
            ),
        };
        // A database that cannot be reached is reported now, not at the first request.
        drop(pool.acquire().await?);
        Ok(Store {
            pool,
            queue,
            backend,
            fast_paths: true,
            access_changes: Arc::default(),
        })
    }

    /// The same store writing only through the portable statements, so tests can hold
    /// PostgreSQL's one-statement forms to the same cases.
    pub fn portable(&self) -> Store {
        Store {
            fast_paths: false,
            ..self.clone()
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A count that moves with every change to what an access key may do that this process
    /// makes: when the change begins and again once it is committed (or abandoned). A key read
    /// after the count stood at some value is current unless the count has moved since.
    pub fn access_changes(&self) -> u64 {
        self.access_changes.load(Ordering::Acquire)
    }

    /// Marks a change to what an access key may do, from now until the guard is dropped: at the
    /// end of the change's method, after its commit, or when its caller gives up midway (a
    /// request cancelled after the database committed still moves the count).
    fn access_changing(&self) -> AccessChange<'_> {
        self.access_changes.fetch_add(1, Ordering::AcqRel);
        AccessChange(self)
    }

    /// The database's access generation: every process's changes to what an access key may do,
    /// counted by triggers in the transactions that make them.
    pub async fn access_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT n FROM access_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The connection pool, for reads.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Answers when the database does (a statement's round trip), for the health check.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Applies the migrations not yet applied, after checking that those applied are the ones
    /// this build carries (an edited migration is refused); safe from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = Migrator::new(Embedded(self.backend))
            .await
            .map_err(|e| Error::Migration(e.to_string()))?;
        let mut conn = self.pool.acquire().await?;
        adopt_legacy_schema(&mut conn, &migrator).await?;
        migrator
            .run_direct(&mut *conn)
            .await
            .map_err(|e| Error::Migration(e.to_string()))
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so a transaction that reads before it writes waits its turn instead of failing.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The connections of the work queue's bookkeeping (see [`Store`]).
    pub fn queue_pool(&self) -> &Pool {
        &self.queue
    }

    /// A transaction of the work queue's bookkeeping: on PostgreSQL its commit does not wait
    /// for the disk (see [`Store`]).
    pub async fn begin_queue(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.queue.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.queue.begin().await?,
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.queue.close().await;
    }
}

/// Databases created before souk used sqlx's migrator recorded their first migration in
/// `souk_migrations`; record it as applied in sqlx's table too, so they upgrade from there.
async fn adopt_legacy_schema(conn: &mut AnyConnection, migrator: &Migrator) -> Result<()> {
    let legacy: Option<i64> = match sqlx::query_scalar("SELECT MAX(version) FROM souk_migrations")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(v) => v,
        // No legacy table: a new database, or one already adopted and dropped.
        Err(_) => return Ok(()),
    };
    if legacy != Some(1) {
        return Err(Error::Migration(format!(
            "souk_migrations records version {legacy:?}; this build can adopt version 1 only"
        )));
    }
    conn.ensure_migrations_table()
        .await
        .map_err(|e| Error::Migration(e.to_string()))?;
    let first = migrator
        .iter()
        .find(|m| m.version == 1)
        .ok_or_else(|| Error::Migration("the first migration is missing".into()))?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, 0)",
    )
    .bind(first.version)
    .bind(first.description.as_ref())
    .bind(first.checksum.to_vec())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DROP TABLE souk_migrations")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Turns "the conditional write matched no row" into [`Error::Stale`]: the row moved on since it
/// was read, and the caller decides again.
pub(crate) fn changed(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(Error::Stale)
    } else {
        Ok(())
    }
}

/// A new id with `prefix`, sortable by `now` and unguessable. Within one process ids are
/// monotonic: a second id in the same millisecond (or after the clock stepped back) takes the
/// previous one's time and random part plus one, so timelines ordered by id keep their order.
pub(crate) fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
    static LAST: std::sync::Mutex<(i64, u128)> = std::sync::Mutex::new((i64::MIN, 0));
    let mut fresh = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut fresh[6..]);
    let fresh = u128::from_be_bytes(fresh);
    let (ms, random) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let ms = now.timestamp_millis();
        let next = if ms > last.0 {
            (ms, fresh)
        } else {
            (last.0, (last.1 + 1) & ((1u128 << 80) - 1))
        };
        *last = next;
        next
    };
    let bytes = random.to_be_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&bytes[6..]);
    souk_core::ids::make_id(prefix, ms, tail)
}

/// `$first, $first+1, …` for `n` values: the placeholders of an `IN (…)` list or of a row.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A new id of kind `I` (see [`new_id`]).
pub fn fresh<I: Id>(now: DateTime<Utc>) -> I {
    I::from(new_id(I::PREFIX, now))
}

/// Milliseconds since the UNIX epoch, as stored.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An instant from stored milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    souk_core::clock::from_millis(ms)
}

/// Reading typed values out of rows: each stored type is decoded here, once, so a bad value is
/// reported as [`Error::Corrupt`] with its column instead of a panic or a wrong answer.
pub(crate) mod decode {
    use super::{Error, Result};
    use chrono::{DateTime, Utc};
    use serde::de::DeserializeOwned;
    use sqlx::any::AnyRow;
    use sqlx::Row;
    use std::str::FromStr;

    pub fn text(row: &AnyRow, col: &str) -> Result<String> {
        Ok(row.try_get(col)?)
    }

    pub fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
        Ok(row.try_get(col)?)
    }

    pub fn int(row: &AnyRow, col: &str) -> Result<i64> {
        Ok(row.try_get(col)?)
    }

    pub fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>> {
        Ok(row.try_get(col)?)
    }

    pub fn id<I: From<String>>(row: &AnyRow, col: &str) -> Result<I> {
        Ok(I::from(text(row, col)?))
    }

    pub fn opt_id<I: From<String>>(row: &AnyRow, col: &str) -> Result<Option<I>> {
        Ok(opt_text(row, col)?.map(I::from))
    }

    pub fn parsed<T: FromStr>(row: &AnyRow, col: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = text(row, col)?;
        v.parse()
            .map_err(|e: T::Err| Error::Corrupt(format!("{col} = {v:?}: {e}")))
    }

    pub fn time(row: &AnyRow, col: &str) -> Result<DateTime<Utc>> {
        Ok(super::at(int(row, col)?))
    }

    pub fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(row.try_get::<Option<i64>, _>(col)?.map(super::at))
    }

    pub fn json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
        serde_json::from_str(&text(row, col)?).map_err(|e| Error::Corrupt(format!("{col}: {e}")))
    }

    pub fn opt_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
        opt_text(row, col)?
            .map(|t| serde_json::from_str(&t).map_err(|e| Error::Corrupt(format!("{col}: {e}"))))
            .transpose()
    }
}
