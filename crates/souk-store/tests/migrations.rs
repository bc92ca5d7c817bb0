//! Migrations: applied with checksums, an edited one refused, and databases made before souk
//! used sqlx's migrator adopted as they are.

use souk_core::accounts::Role;
use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Error};
use sqlx::Executor;

const LEGACY_SPINE: &str = include_str!("../migrations/sqlite/0001_spine.sql");

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
