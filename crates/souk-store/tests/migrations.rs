//! Migrations: applied with checksums, an edited one refused, and databases made before souk
//! used sqlx's migrator adopted as they are.

use souk_core::accounts::Role;
use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Error};
use sqlx::Executor;

const LEGACY_SPINE: &str = include_str!("../migrations/sqlite/0001_spine.sql");
const SIGNATURE_DIGESTS: &str = include_str!("../migrations/postgres/0021_signature_digests.sql");

on_both_databases! {
    async fn a_database_of_the_first_release_is_adopted_and_upgraded(backend) {
        let db = TestDb::empty(backend).await;
        let pool = db.store.pool();
        pool.execute(LEGACY_SPINE).await.unwrap();
        pool.execute("CREATE TABLE souk_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL); \
                      INSERT INTO souk_migrations VALUES (1, 'spine', 0); \
                      INSERT INTO accounts (id, kind, name, email, password_hash, roles, created_at) \
                      VALUES ('acc_1', 'individual', 'Op', 'op@example.com', 'x', 'reviewer,finance', 0)")
            .await
            .unwrap();
        db.store.migrate().await.unwrap();
        let op = db.store.account_by_email("op@example.com").await.unwrap().unwrap();
        assert_eq!(op.roles, vec![Role::Reviewer, Role::Finance]);
        // Starting again changes nothing.
        db.store.migrate().await.unwrap();
        db.cleanup().await;
    }

    async fn signatures_remembered_before_digests_are_carried_over(backend) {
        // PostgreSQL kept whole signatures before migration 0021; a replay of one accepted just
        // before the upgrade must still be refused after it, so each becomes the digest nodes
        // compute: the first 16 bytes of SHA-256 over the access key, a zero byte and the
        // signature (the expected value below is that, computed apart). SQLite keeps them in the
        // node's memory and its batches, and no longer has the table at all.
        if backend == souk_store::Backend::Sqlite {
            let db = TestDb::new(backend).await;
            let left: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE name = 'signed_requests'")
                .fetch_optional(db.store.pool())
                .await
                .unwrap();
            assert_eq!(left, None);
            db.cleanup().await;
            return;
        }
        let db = TestDb::empty(backend).await;
        let pool = db.store.pool();
        pool.execute("CREATE TABLE signed_requests (access_key TEXT NOT NULL, signature TEXT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (access_key, signature)); \
                      INSERT INTO signed_requests VALUES ('AK', 'sig', 5), ('AK', 'sig2', 7)")
            .await
            .unwrap();
        pool.execute(SIGNATURE_DIGESTS).await.unwrap();
        let kept: Vec<(Vec<u8>, i64)> = sqlx::query_as("SELECT digest, expires_at FROM signature_digests ORDER BY expires_at")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!((hex(&kept[0].0), kept[0].1), ("c9cdd0f23f14c921adebdd54e687543a".to_owned(), 5));
        let gone: Option<i64> = sqlx::query_scalar("SELECT 1 FROM pg_tables WHERE tablename = 'signed_requests'")
            .fetch_optional(pool)
            .await
            .unwrap();
        assert_eq!(gone, None);
        db.cleanup().await;
    }

    async fn an_edited_migration_is_refused_at_start(backend) {
        let db = TestDb::new(backend).await;
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
            .bind(vec![0u8; 48])
            .execute(db.store.pool())
            .await
            .unwrap();
        match db.store.migrate().await {
            Err(Error::Migration(message)) => assert!(message.contains('1'), "{message}"),
            other => panic!("an edited migration was accepted: {other:?}"),
        }
        db.cleanup().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
