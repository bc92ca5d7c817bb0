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
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod merchants;
pub mod orders;
pub mod products;
pub mod secrets;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor};
use std::str::FromStr;
use std::time::Duration;

/// A write transaction.
pub type Tx = sqlx::Transaction<'static, Any>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What storage can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist (or is not visible to the asker).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique rule was broken, e.g. an e-mail already registered.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A debit would take the balance below zero.
    #[error("insufficient balance: {available_minor} available")]
    InsufficientBalance { available_minor: i64 },
    /// The row changed since it was read; the caller re-reads and decides again.
    #[error("changed concurrently")]
    Stale,
    /// A stored value cannot be read back (a bug or a hand-edited database).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Error::Conflict(db.message().to_owned());
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
    pool: AnyPool,
    backend: Backend,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "spine", include_str!("../migrations/0001_spine.sql")),
    (
        2,
        "sessions",
        include_str!("../migrations/0002_sessions.sql"),
    ),
];

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
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(max_connections.min(8))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; NORMAL sync is durable
                            // across application crashes, which is what an embedded store needs.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Store { pool, backend })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations not yet applied; safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_lock(7403117)").await?;
        }
        let result = migrate_on(&mut conn, self.backend).await;
        if self.backend == Backend::Postgres {
            conn.execute("SELECT pg_advisory_unlock(7403117)").await?;
        }
        result
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so a transaction that reads before it writes waits its turn instead of failing.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn migrate_on(conn: &mut AnyConnection, backend: Backend) -> Result<()> {
    conn.execute("CREATE TABLE IF NOT EXISTS souk_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .await?;
    for (version, name, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM souk_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?;
        if done.is_some() {
            continue;
        }
        let begin = if backend == Backend::Sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.execute(begin).await?;
        let applied = async {
            sqlx::raw_sql(sql).execute(&mut *conn).await?;
            sqlx::query(
                "INSERT INTO souk_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(*name)
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *conn)
            .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match applied {
            Ok(()) => {
                conn.execute("COMMIT").await?;
            }
            Err(e) => {
                conn.execute("ROLLBACK").await?;
                return Err(e.into());
            }
        }
    }
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
pub fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
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

/// Milliseconds since the UNIX epoch, as stored.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An instant from stored milliseconds.
pub fn at(ms: i64) -> DateTime<Utc> {
    souk_core::clock::from_millis(ms)
}

/// Parses a stored enum value, reporting unreadable data rather than panicking.
pub fn parse<T: FromStr<Err = souk_core::Error>>(value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|e: souk_core::Error| Error::Corrupt(e.to_string()))
}
