//! The store's connection pool: a connection is handed out as it was left, so what it must never
//! carry over (an open transaction, its locks, a dead socket) is dealt with before it is reused.

use souk_store::pool::{Lifetimes, Pool};
use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Backend};
use sqlx::any::AnyConnectOptions;
use sqlx::Executor;
use std::str::FromStr;
use std::time::{Duration, Instant};

fn pool(db: &TestDb, max: u32, timeout: Duration) -> Pool {
    let options = AnyConnectOptions::from_str(&db.url).unwrap();
    let setup = match db.store.backend() {
        Backend::Sqlite => Some("PRAGMA busy_timeout = 10000;"),
        Backend::Postgres => None,
    };
    Pool::new(options, max, timeout, setup)
}

/// Writes row `id` of `pool_probe` in a transaction begun with `begin`.
async fn insert_in_transaction(pool: &Pool, begin: &'static str, id: i64) {
    let mut tx = pool.begin_with(begin).await.unwrap();
    sqlx::query("INSERT INTO pool_probe (id) VALUES ($1)")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn count(pool: &Pool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pool_probe")
        .fetch_one(pool)
        .await
        .unwrap()
}

on_both_databases! {
    async fn a_transaction_dropped_midway_is_rolled_back_before_its_connection_idles(backend) {
        let db = TestDb::new(backend).await;
        db.store
            .pool()
            .execute("CREATE TABLE pool_probe (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        let one = pool(&db, 1, Duration::from_secs(10));
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        {
            let mut tx = one.begin_with(begin).await.unwrap();
            sqlx::query("INSERT INTO pool_probe (id) VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            // Dropped here, as when a request is cancelled or an error returns early.
        }
        // Another connection can write the same row at once: the dropped transaction holds no
        // lock (SQLite's write lock, PostgreSQL's row lock) while its connection waits unused.
        let started = Instant::now();
        let mut other = db.store.begin().await.unwrap();
        if backend == Backend::Postgres {
            other.execute("SET LOCAL lock_timeout = '5s'").await.unwrap();
        }
        sqlx::query("INSERT INTO pool_probe (id) VALUES (1)")
            .execute(&mut *other)
            .await
            .unwrap();
        other.commit().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
        // The pool's one connection is reused, outside any transaction.
        assert_eq!(count(&one).await, 1);
        insert_in_transaction(&one, begin, 2).await;
        assert_eq!(count(db.store.pool()).await, 2);
        assert_eq!(one.idle_count(), 1);
    }

    async fn a_caller_waits_for_a_free_connection_up_to_the_timeout(backend) {
        let db = TestDb::new(backend).await;
        let two = pool(&db, 2, Duration::from_millis(300));
        let a = two.acquire().await.unwrap();
        let b = two.acquire().await.unwrap();
        assert_eq!(two.in_use(), 2);
        let started = Instant::now();
        assert!(matches!(two.acquire().await, Err(sqlx::Error::PoolTimedOut)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(a);
        // The connection given back is the one handed out next: no third is opened.
        let c = two.acquire().await.unwrap();
        assert_eq!((two.in_use(), two.idle_count()), (2, 0));
        drop((b, c));
        assert_eq!((two.in_use(), two.idle_count()), (0, 2));
        two.close().await;
        assert!(matches!(two.acquire().await, Err(sqlx::Error::PoolClosed)));
        assert_eq!(two.idle_count(), 0);
    }
}

on_both_databases! {
    async fn connections_are_closed_past_their_lifetime_or_idle_timeout(backend) {
        let db = TestDb::new(backend).await;
        let options = AnyConnectOptions::from_str(&db.url).unwrap();
        let lifetimes = Lifetimes {
            max_lifetime: Duration::from_secs(3),
            idle_timeout: Duration::from_millis(500),
        };
        let two = Pool::with_lifetimes(options, 2, Duration::from_secs(10), None, lifetimes);
        let (a, b) = (two.acquire().await.unwrap(), two.acquire().await.unwrap());
        drop(a);
        assert_eq!(two.idle_count(), 1);
        // Past the idle timeout, well within the lifetime (a sleep on a busy machine overshoots).
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Given back, b finds a idle past its timeout and closes it.
        drop(b);
        assert_eq!(two.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        // b, now older than its lifetime, is closed when given back.
        let b = two.acquire().await.unwrap();
        drop(b);
        assert_eq!(two.idle_count(), 0);
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&two).await.unwrap();
        assert_eq!(two.idle_count(), 1);
    }
}

async fn synchronous_commit(pool: &Pool) -> String {
    sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The work queue's bookkeeping commits without waiting for the disk on PostgreSQL, through its
/// own connections, and nothing else does: claims and the notifier's pass go through them (they
/// stop when those connections are closed), money and everything else through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_queue_bookkeeping_commits_without_waiting_for_the_disk() {
    if !souk_store::testing::postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    assert_eq!(synchronous_commit(db.store.pool()).await, "on");
    assert_eq!(synchronous_commit(db.store.queue_pool()).await, "off");
    let mut in_transactions = Vec::new();
    for tx in [db.store.begin_queue().await, db.store.begin().await] {
        let mut tx = tx.unwrap();
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        in_transactions.push(setting);
    }
    assert_eq!(in_transactions, ["off", "on"]);

    db.store.queue_pool().close().await;
    let now = chrono::Utc::now();
    let claimed = db
        .store
        .claim_jobs(now, now, chrono::Duration::seconds(60), 10, &[])
        .await;
    assert!(
        claimed.is_err(),
        "claims go through the queue's connections"
    );
    let noticed = db
        .store
        .notice(
            &[(
                souk_store::fresh::<souk_core::ids::EventId>(chrono::Utc::now()),
                Vec::new(),
            )],
            now,
        )
        .await;
    assert!(noticed.is_err(), "the notifier's pass too");
    assert!(db.store.begin().await.is_ok(), "the rest is untouched");
    db.cleanup().await;
}

/// A connection the server cut is closed at its first failure, and the others idle then are
/// tested before their next use: only one statement fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_cut_fail_one_statement_in_all() {
    if !souk_store::testing::postgres_enabled() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let two = pool(&db, 2, Duration::from_secs(10));
    let (mut a, mut b) = (two.acquire().await.unwrap(), two.acquire().await.unwrap());
    let mut pids = Vec::new();
    for conn in [&mut a, &mut b] {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        pids.push(pid);
    }
    drop((a, b));
    for pid in &pids {
        let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(*pid)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert!(cut);
    }
    // The server closes them asynchronously; wait until they are gone.
    for pid in &pids {
        for _ in 0..100 {
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1")
                    .bind(*pid)
                    .fetch_one(db.store.pool())
                    .await
                    .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let first = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .fetch_one(&two)
        .await;
    assert!(first.is_err(), "a cut connection answered: {first:?}");
    for _ in 0..3 {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&two)
            .await
            .unwrap();
        assert!(!pids.contains(&pid));
    }
}

/// A transaction cancelled while its `BEGIN IMMEDIATE` waits for SQLite's write lock (a request
/// dropped by its client, say) is rolled back once it begins: its connection never keeps the
/// write lock for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cancelled_while_beginning_is_rolled_back() {
    let db = TestDb::new(Backend::Sqlite).await;
    let one = pool(&db, 1, Duration::from_secs(10));
    let holder = db.store.begin().await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        one.begin_with("BEGIN IMMEDIATE"),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "BEGIN IMMEDIATE did not wait for the lock"
    );
    holder.commit().await.unwrap();
    // Its BEGIN goes through now, and the rollback queued behind it ends it.
    let started = Instant::now();
    let mut writer = db.store.begin().await.unwrap();
    sqlx::query("CREATE TABLE pool_probe (id BIGINT PRIMARY KEY)")
        .execute(&mut *writer)
        .await
        .unwrap();
    writer.commit().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    insert_in_transaction(&one, "BEGIN IMMEDIATE", 1).await;
    assert_eq!(count(db.store.pool()).await, 1);
}

/// A statement run on a lease the store holds itself (not through the pool's own statements)
/// that finds its connection cut closes it too: the next call gets a live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_lease_that_finds_its_connection_cut_closes_it() {
    if !souk_store::testing::postgres_enabled() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = souk_store::Store::connect_with(&db.url, 1).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert!(cut);
    let account = souk_core::ids::AccountId::from("acc_nobody");
    let currency = souk_core::money::Currency::Cny;
    // The credit limit is read on a lease the store takes itself.
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(store.credit_limit(&account, currency).await.is_ok());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outcomes, [false, true, true]);
}
