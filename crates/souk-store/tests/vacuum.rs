//! The queue tables are vacuumed by souk itself once they hold enough dead rows (PostgreSQL),
//! and never on SQLite, which has nothing to reclaim.

use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Backend};
use sqlx::Executor;
use std::time::Duration;

async fn vacuums_of_jobs(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'")
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

on_both_databases! {
    async fn a_queue_with_enough_dead_rows_is_vacuumed(backend) {
        let db = TestDb::new(backend).await;
        // 300 jobs made and deleted: 300 dead rows on PostgreSQL.
        let mut conn = db.store.pool().acquire().await.unwrap();
        if backend == Backend::Postgres {
            // The server's own autovacuum would otherwise race souk's for these dead rows.
            conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)").await.unwrap();
            conn.execute("SELECT pg_stat_force_next_flush()").await.unwrap();
        }
        conn.execute(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300) \
             INSERT INTO jobs (id, kind, payload, state, attempts, run_at, created_at, updated_at) \
             SELECT 'job_' || n, 'test', '{}', 'done', 1, 0, 0, 0 FROM g",
        )
        .await
        .unwrap();
        if backend == Backend::Postgres {
            conn.execute("SELECT pg_stat_force_next_flush()").await.unwrap();
        }
        conn.execute("DELETE FROM jobs WHERE kind = 'test'").await.unwrap();
        drop(conn);
        match backend {
            Backend::Sqlite => {
                assert!(db.store.vacuum_queues(1).await.unwrap().is_empty());
            }
            Backend::Postgres => {
                // The deleting connection's counts reach the statistics at its next flush.
                let mut counted = false;
                for _ in 0..100 {
                    let dead: i64 = sqlx::query_scalar(
                        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'",
                    )
                    .fetch_one(db.store.pool())
                    .await
                    .unwrap();
                    if dead >= 300 {
                        counted = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(counted, "the deleted jobs were never counted as dead rows");
                let before = vacuums_of_jobs(&db).await;
                // Fewer dead rows than asked for: left alone.
                assert!(db.store.vacuum_queues(10_000).await.unwrap().is_empty());
                assert_eq!(db.store.vacuum_queues(300).await.unwrap(), ["jobs"]);
                let mut vacuumed = false;
                for _ in 0..100 {
                    if vacuums_of_jobs(&db).await > before {
                        vacuumed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(vacuumed);
            }
        }
    }
}
