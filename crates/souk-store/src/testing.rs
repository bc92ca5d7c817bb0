//! Fresh databases for tests: a SQLite file in a temporary directory, or a PostgreSQL database
//! created on the server named by `SOUK_TEST_POSTGRES_URL` and dropped afterwards.

use crate::{Backend, Store};
use rand::Rng;
use sqlx::{Connection, Executor};

/// The variable naming the PostgreSQL server tests also run on.
pub const POSTGRES_ENV: &str = "SOUK_TEST_POSTGRES_URL";

/// The backends to run a storage test on: SQLite always, PostgreSQL when configured. Without the
/// variable it says PostgreSQL is skipped; with `SOUK_REQUIRE_POSTGRES=1` (CI) that is an error.
pub fn backends() -> Vec<Backend> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => vec![Backend::Sqlite, Backend::Postgres],
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
            vec![Backend::Sqlite]
        }
    }
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
        store.migrate().await.expect("migrate the test database");
        TestDb {
            url,
            store,
            backend,
            name,
            dir,
        }
    }

    /// Drops the database.
    pub async fn cleanup(self) {
        self.store.close().await;
        match self.backend {
            Backend::Sqlite => {
                if let Some(dir) = self.dir {
                    std::fs::remove_dir_all(dir).ok();
                }
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).expect("SOUK_TEST_POSTGRES_URL");
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    conn.execute(
                        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str(),
                    )
                    .await
                    .ok();
                }
            }
        }
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
