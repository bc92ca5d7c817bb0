//! Fresh databases for tests: a SQLite file in a temporary directory, or a PostgreSQL database
//! created on the server named by `SOUK_TEST_POSTGRES_URL` and dropped afterwards.

use crate::{Backend, Store};
use rand::Rng;
use sqlx::{Connection, Executor};

/// The variable naming the PostgreSQL server tests also run on.
pub const POSTGRES_ENV: &str = "SOUK_TEST_POSTGRES_URL";

/// The backends to run a storage test on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    if postgres_enabled() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        vec![Backend::Sqlite]
    }
}

/// Whether PostgreSQL tests run: with `SOUK_TEST_POSTGRES_URL` set. Without it they say they are
/// skipped; with `SOUK_REQUIRE_POSTGRES=1` (CI) a missing server is an error, not a skip.
pub fn postgres_enabled() -> bool {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => true,
        _ => {
            assert!(
                std::env::var("SOUK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "SOUK_REQUIRE_POSTGRES=1 but {POSTGRES_ENV} is not set"
            );
            // Written to the process's stderr directly, past the test harness's output capture,
            // once per test binary, so a plain `cargo test` shows what it did not run.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests: skipped ({POSTGRES_ENV} is not set); running on SQLite only"
                );
            });
            false
        }
    }
}

/// Defines one test body as two named tests, `<name>::sqlite` and `<name>::postgres`, so a
/// failure names its database and one database's failure does not hide the other's:
///
/// ```text
/// on_both_databases! {
///     async fn debits_never_overdraw(backend) { let db = TestDb::new(backend).await; ... }
/// }
/// ```
#[macro_export]
macro_rules! on_both_databases {
    ($(async fn $name:ident($backend:ident) $body:block)+) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let $backend = $crate::Backend::Sqlite;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if !$crate::testing::postgres_enabled() {
                    return;
                }
                let $backend = $crate::Backend::Postgres;
                $body
            }
        }
    )+};
}

/// A database that exists for one test.
pub struct TestDb {
    /// The URL souk connects to.
    pub url: String,
    /// A migrated store on it.
    pub store: Store,
    backend: Backend,
    name: String,
    dir: Option<std::path::PathBuf>,
    dropped: bool,
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDb {
    /// Creates and migrates a fresh database on `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        let db = TestDb::empty(backend).await;
        db.store.migrate().await.expect("migrate the test database");
        db
    }

    /// Creates a fresh database on `backend` with no schema at all.
    pub async fn empty(backend: Backend) -> TestDb {
        let name = format!("souk_t_{:016x}", rand::thread_rng().gen::<u64>());
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("temp dir");
                (
                    format!("sqlite://{}", dir.join("souk.db").display()),
                    Some(dir),
                )
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).expect("SOUK_TEST_POSTGRES_URL");
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .expect("connect to the PostgreSQL test server");
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                (replace_database(&admin, &name), None)
            }
        };
        // Tests run side by side; a small pool each keeps them under the server's connection limit.
        let store = Store::connect_with(&url, 6)
            .await
            .expect("connect to the test database");
        TestDb {
            url,
            store,
            backend,
            name,
            dir,
            dropped: false,
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Drops the database (also done, synchronously, when a failed test drops it).
    pub async fn cleanup(mut self) {
        self.store.close().await;
        self.drop_now();
    }

    fn drop_now(&mut self) {
        if std::mem::replace(&mut self.dropped, true) {
            return;
        }
        match self.backend {
            Backend::Sqlite => {
                if let Some(dir) = &self.dir {
                    std::fs::remove_dir_all(dir).ok();
                }
            }
            Backend::Postgres => {
                // A runtime of its own on a thread of its own: this also runs while a failing
                // test unwinds, inside or outside the test's runtime.
                let name = self.name.clone();
                std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
                            return;
                        };
                        if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                            conn.execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await
                            .ok();
                        }
                    });
                })
                .join()
                .ok();
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_now();
    }
}

impl Store {
    /// Every job's `last_error`, for tests that check what errors reveal.
    pub async fn job_errors(&self) -> crate::Result<Vec<String>> {
        let rows: Vec<(Option<String>,)> = sqlx::query_as("SELECT last_error FROM jobs")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().filter_map(|r| r.0).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            super::replace_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
