//! The scheduler's read of due instances uses the partial index on `next_transition_at`, so a
//! tick costs in proportion to the due rows, not to every instance.

use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Backend};
use sqlx::{Executor, Row};

on_both_databases! {
    async fn due_instances_are_read_through_the_partial_index(backend) {
        let db = TestDb::new(backend).await;
        let mut conn = db.store.pool().acquire().await.unwrap();
        let sql = "SELECT id FROM instances WHERE next_transition_at IS NOT NULL AND next_transition_at <= 1 ORDER BY next_transition_at LIMIT 200";
        let plan: String = match backend {
            Backend::Sqlite => {
                let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.get::<String, _>(3))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Backend::Postgres => {
                // On an empty table the planner may prefer a scan; forbid it to show the index applies.
                conn.execute("SET enable_seqscan = off").await.unwrap();
                let rows = sqlx::query(&format!("EXPLAIN {sql}"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        assert!(
            plan.contains("instances_due"),
            "{backend:?} plan does not use the index:\n{plan}"
        );
        drop(conn);
        db.cleanup().await;
    }
}
