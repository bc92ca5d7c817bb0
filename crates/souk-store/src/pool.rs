//! The store's connections.
//!
//! sqlx's own pool tests a connection with a round trip to the database when it is taken and
//! again when it is given back, so every statement cost three round trips; on PostgreSQL, with
//! the database on the same two cores, those two extra wake-ups of a server process took about a
//! fifth of the order rate (docs/benchmarks.md). This pool hands a connection out as it was left
//! and keeps it safe to hand out in other ways:
//!
//! - one idle for longer than [`TEST_AFTER_IDLE`] is tested first (the server may have restarted
//!   meanwhile), and so is every idle one once any connection has failed at the transport level;
//! - one whose statement failed at the transport level is closed instead of given back (for
//!   statements on a lease itself, when the caller passes the outcome through [`Lease::check`]);
//! - a transaction dropped before its end (an error returned early, a request cancelled) is
//!   rolled back at once, before its connection is given back, so it holds no locks while idle;
//!   one whose end failed is closed, its state being unknown.
//!
//! - one older than its lifetime, or idle past its timeout, is closed (30 and 10 minutes by
//!   default, as sqlx's pool did).
//!
//! A statement cancelled midway leaves its answer on the connection; the driver reads it off
//! before the connection's next statement.

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::any::{AnyConnectOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyConnection, ConnectOptions, Connection, Describe, Either, Execute, Executor};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle for longer than this is tested before it is handed out.
pub const TEST_AFTER_IDLE: Duration = Duration::from_secs(5);

/// How long connections are kept.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A connection this old is closed when given back (the server process behind it lets its
    /// caches grow with what it was asked).
    pub max_lifetime: Duration,
    /// A connection idle this long is closed (the next connection given back looks).
    pub idle_timeout: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            max_lifetime: Duration::from_secs(30 * 60),
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// At most `max_connections` connections to one database, shared by clones.
#[derive(Clone)]
pub struct Pool(Arc<Shared>);

struct Shared {
    options: AnyConnectOptions,
    /// Run on every new connection before its first use.
    setup: Option<&'static str>,
    acquire_timeout: Duration,
    lifetimes: Lifetimes,
    max_connections: usize,
    /// One permit per connection in use.
    permits: Arc<Semaphore>,
    /// Connections not in use, the most recently used last (taken first: the others may idle
    /// long enough to be tested, but a busy pool keeps using connections known alive).
    idle: Mutex<Vec<Idle>>,
    /// Connections idle since before this moment are tested before use: a connection failed at
    /// the transport level then, and the others may have been cut off with it.
    distrust_before: Mutex<Option<Instant>>,
    closed: AtomicBool,
}

struct Idle {
    conn: AnyConnection,
    born: Instant,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("in_use", &self.in_use())
            .field("idle", &self.idle_count())
            .field("closed", &self.0.closed.load(Ordering::Acquire))
            .finish()
    }
}

impl Pool {
    /// A pool opening its connections with `options` as they are needed, running `setup` on each
    /// new one; taking a connection waits at most `acquire_timeout`.
    pub fn new(
        options: AnyConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
        setup: Option<&'static str>,
    ) -> Pool {
        Pool::with_lifetimes(
            options,
            max_connections,
            acquire_timeout,
            setup,
            Lifetimes::default(),
        )
    }

    /// [`Pool::new`] keeping connections for `lifetimes`.
    pub fn with_lifetimes(
        options: AnyConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
        setup: Option<&'static str>,
        lifetimes: Lifetimes,
    ) -> Pool {
        let max_connections = max_connections.max(1) as usize;
        Pool(Arc::new(Shared {
            options,
            setup,
            acquire_timeout,
            lifetimes,
            max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            idle: Mutex::new(Vec::new()),
            distrust_before: Mutex::new(None),
            closed: AtomicBool::new(false),
        }))
    }

    /// A new connection outside the pool, for a caller that keeps it for as long as it runs
    /// (one holding session locks, which must not pass to another user of the pool).
    pub async fn connect_alone(&self) -> Result<AnyConnection, sqlx::Error> {
        self.0.options.connect().await
    }

    /// A connection for this caller alone until the lease is dropped.
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        if self.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        tokio::time::timeout(self.0.acquire_timeout, self.lease())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn lease(&self) -> Result<Lease, sqlx::Error> {
        let permit = self
            .0
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let next = lock(&self.0.idle).pop();
            let Some(Idle {
                mut conn,
                born,
                since,
            }) = next
            else {
                let conn = self.connect().await?;
                return Ok(self.lend(conn, Instant::now(), permit));
            };
            let distrusted = lock(&self.0.distrust_before).is_some_and(|before| since <= before);
            if (since.elapsed() < TEST_AFTER_IDLE && !distrusted) || conn.ping().await.is_ok() {
                return Ok(self.lend(conn, born, permit));
            }
            // Dead: dropped, and the next idle one is looked at.
        }
    }

    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.0.options.connect().await?;
        if let Some(setup) = self.0.setup {
            conn.execute(setup).await?;
        }
        Ok(conn)
    }

    fn lend(&self, conn: AnyConnection, born: Instant, permit: OwnedSemaphorePermit) -> Lease {
        Lease {
            conn: Some(conn),
            born,
            reusable: true,
            pool: self.clone(),
            _permit: permit,
        }
    }

    /// Starts a transaction with `statement` (`BEGIN`, or SQLite's `BEGIN IMMEDIATE`).
    pub async fn begin_with(&self, statement: &'static str) -> Result<Tx, sqlx::Error> {
        // A transaction from before its `BEGIN` is sent: cancelled while `BEGIN` runs, it is
        // dropped as a transaction, and rolled back.
        let mut tx = Tx {
            lease: Some(self.acquire().await?),
        };
        if let Err(e) = tx.execute(statement).await {
            // No transaction began: the connection is given back as it is (or closed).
            let mut lease = tx
                .lease
                .take()
                .expect("an open transaction holds its lease");
            lease.forget_if_broken(&e);
            return Err(e);
        }
        Ok(tx)
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    /// Refuses new leases and closes the idle connections; those in use close when given back.
    pub async fn close(&self) {
        let idle = {
            // Set under the idle list's lock, so a connection given back meanwhile is either
            // taken here or sees the pool closed.
            let mut idle = lock(&self.0.idle);
            self.0.closed.store(true, Ordering::Release);
            std::mem::take(&mut *idle)
        };
        self.0.permits.close();
        for Idle { conn, .. } in idle {
            let _ = conn.close().await;
        }
    }

    /// Whether [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Connections leased now.
    pub fn in_use(&self) -> usize {
        self.0
            .max_connections
            .saturating_sub(self.0.permits.available_permits())
    }

    /// Connections open and not in use.
    pub fn idle_count(&self) -> usize {
        lock(&self.0.idle).len()
    }

    fn give_back(&self, conn: AnyConnection, born: Instant) {
        let mut idle = lock(&self.0.idle);
        if self.is_closed() || born.elapsed() >= self.0.lifetimes.max_lifetime {
            drop(idle);
            close_later(conn);
            return;
        }
        idle.push(Idle {
            conn,
            born,
            since: Instant::now(),
        });
        // The list runs from the longest idle to the latest given back.
        let stale = idle
            .iter()
            .take_while(|i| i.since.elapsed() >= self.0.lifetimes.idle_timeout)
            .count();
        let stale: Vec<Idle> = idle.drain(..stale).collect();
        drop(idle);
        for Idle { conn, .. } in stale {
            close_later(conn);
        }
    }

    /// Records a transport failure: every connection idle now is tested before its next use.
    fn distrust_idle(&self) {
        *lock(&self.0.distrust_before) = Some(Instant::now());
    }
}

/// A mutex's guard, whether or not a holder panicked (the data are plain lists).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `e` leaves its connection unusable (the transport failed), rather than the statement
/// alone.
fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's last word before it closes a connection: the connection failed (class
        // 08) or an operator or a crash ended the server process (57P01..57P03).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Closes `conn` politely when a runtime is there to do it, else drops it (which closes its
/// socket).
fn close_later(conn: AnyConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = conn.close().await;
        });
    }
}

/// A connection of the pool, given back when dropped (closed instead when it may be unusable).
pub struct Lease {
    conn: Option<AnyConnection>,
    /// When the connection was opened.
    born: Instant,
    /// Cleared while the connection's state is being restored (a rollback running): dropped
    /// then, it is closed, not given back.
    reusable: bool,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Closes the connection instead of giving it back when `e` broke it.
    fn forget_if_broken(&mut self, e: &sqlx::Error) {
        if breaks_connection(e) {
            self.forget_after(e);
        }
    }

    /// Closes the connection instead of giving it back, after `e` left it in an unknown state;
    /// when `e` was the transport's, the idle connections are tested before their next use.
    fn forget_after(&mut self, e: &sqlx::Error) {
        self.conn = None;
        if breaks_connection(e) {
            self.pool.distrust_idle();
        }
    }

    /// Marks the connection's state restored: given back when dropped.
    fn restored(&mut self) {
        self.reusable = true;
    }

    /// Passes `outcome` on, closing the connection instead of giving it back when the outcome
    /// is a transport failure: for statements run on the lease itself, which the pool does not
    /// see.
    pub(crate) fn check<T>(&mut self, outcome: crate::Result<T>) -> crate::Result<T> {
        if let Err(crate::Error::Database(e)) = &outcome {
            self.forget_if_broken(e);
        }
        outcome
    }
}

impl Deref for Lease {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(conn) if self.reusable => self.pool.give_back(conn, self.born),
            Some(conn) => close_later(conn),
            None => {}
        }
    }
}

/// A transaction on a leased connection; dropped before [`Tx::commit`] or [`Tx::rollback`], it
/// is rolled back before the connection is given back.
pub struct Tx {
    lease: Option<Lease>,
}

impl Tx {
    /// Commits; a connection whose commit failed is closed.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    /// Rolls back; a connection whose rollback failed is closed.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(&mut self, statement: &str) -> Result<(), sqlx::Error> {
        // The lease stays in the transaction until the statement is done: cancelled meanwhile,
        // the transaction is dropped and rolled back.
        let ended = self.execute(statement).await.map(|_| ());
        let mut lease = self
            .lease
            .take()
            .expect("an open transaction holds its lease");
        if let Err(e) = &ended {
            lease.forget_after(e);
        }
        ended
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.lease
            .as_ref()
            .expect("an open transaction holds its lease")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.lease
            .as_mut()
            .expect("an open transaction holds its lease")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        // Not reusable until the rollback is done: a rollback that fails, or never runs (the
        // runtime shutting down), closes the connection.
        lease.reusable = false;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // The lease (and its place in the pool) is held until the rollback is done.
            runtime.spawn(async move {
                match lease.execute("ROLLBACK").await {
                    Ok(_) => lease.restored(),
                    Err(e) => lease.forget_after(&e),
                }
            });
        }
    }
}

/// Statements on the pool take a connection each, as on sqlx's pool.
impl<'p> Executor<'p> for &'_ Pool {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        // The results are read whole before they are passed on: the stream cannot borrow the
        // lease it owns, and every statement of the store reads its rows whole anyway.
        stream::once(async move {
            let mut lease = match pool.acquire().await {
                Ok(lease) => lease,
                Err(e) => return vec![Err(e)],
            };
            let results: Vec<_> = lease.fetch_many(query).collect().await;
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                lease.forget_if_broken(e);
            }
            results
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut lease = pool.acquire().await?;
            let row = lease.fetch_optional(query).await;
            if let Err(e) = &row {
                lease.forget_if_broken(e);
            }
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}
