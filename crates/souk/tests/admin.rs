//! The command line's operator tasks on both databases: operators, top-ups with the API's limit
//! and idempotency, the dead-job list and replay, and the ledger check.

mod common;

use chrono::Utc;
use common::souk;
use souk_core::accounts::AccountKind;
use souk_core::money::{Currency, Money};
use souk_server::jobs::SellerJob;
use souk_store::accounts::NewAccount;
use souk_store::events::NewEvent;
use souk_store::jobs::{enqueue, JobEnd, JobState};
use souk_store::on_both_databases;
use souk_store::testing::TestDb;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn ok(args: &[&str], db: &TestDb) -> String {
    let out = souk(args, &db.url, KEY);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "souk {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn refused(args: &[&str], db: &TestDb) -> String {
    let out = souk(args, &db.url, KEY);
    assert!(!out.status.success(), "souk {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

on_both_databases! {
    async fn operators_top_ups_and_dead_jobs_from_the_command_line(backend) {
        let db = TestDb::new(backend).await;
        let out = ok(&["admin", "create-operator", "--email", "fin@souk.test", "--name", "Fin", "--password", "operator password", "--role", "finance"], &db);
        assert!(out.contains("with roles finance"), "{out}");
        assert!(refused(&["admin", "create-operator", "--email", "fin@souk.test", "--name", "Fin", "--password", "operator password"], &db)
            .contains("already exists"));

        let buyer = db
            .store
            .create_account(
                NewAccount { kind: AccountKind::Individual, name: "Bao", email: "bao@souk.test", password_hash: "x", roles: &[] },
                Utc::now(),
            )
            .await
            .unwrap();
        let top_up = ["admin", "top-up", "--email", "bao@souk.test", "--amount", "500.00", "--idempotency-key", "bank-0001"];
        assert!(ok(&top_up, &db).contains("credited with 500.00 CNY"));
        assert!(ok(&top_up, &db).contains("already recorded"));
        assert_eq!(db.store.balances(&buyer.id).await.unwrap(), vec![Money::from_minor(50_000, Currency::Cny)]);
        // The API's limit holds here too, and absurd amounts are an answer, not a crash.
        assert!(refused(&["admin", "top-up", "--email", "bao@souk.test", "--amount", "79228162514264337593543950335"], &db).contains("amount"));
        assert!(refused(&["admin", "top-up", "--email", "bao@souk.test", "--amount", "-5"], &db).contains("amount"));
        assert!(refused(&["admin", "top-up", "--email", "nobody@souk.test", "--amount", "5"], &db).contains("not found"));

        // A job that gave up.
        let now = Utc::now();
        let mut tx = db.store.begin().await.unwrap();
        let id = enqueue(&mut tx, &SellerJob::Freeze.spec(&"ord_x".into()), None, now, now).await.unwrap();
        tx.commit().await.unwrap();
        let claimed = db.store.claim_jobs(now, now, chrono::Duration::seconds(60), 10, &[]).await.unwrap();
        assert_eq!(claimed.len(), 1);
        db.store
            .end_job(
                JobEnd { id: &id, attempts: 1, state: JobState::Dead, error: Some("the seller was down") },
                NewEvent { order_id: None, instance_id: None, kind: "job.failed", detail: "gave up".into(), actor: None },
                now,
            )
            .await
            .unwrap();
        let listed = ok(&["admin", "jobs", "list"], &db);
        assert!(listed.contains(id.as_str()) && listed.contains("seller.freeze") && listed.contains("the seller was down"), "{listed}");
        assert!(ok(&["admin", "jobs", "replay", id.as_str()], &db).contains("pending"));
        assert!(ok(&["admin", "jobs", "list"], &db).contains("no dead jobs"));
        assert!(refused(&["admin", "jobs", "replay", id.as_str()], &db).contains("only dead jobs"));
        assert!(refused(&["admin", "jobs", "list", "--state", "lost"], &db).contains("state"));

        assert!(ok(&["admin", "verify-ledger"], &db).contains("ledger balances"));
        db.cleanup().await;
    }

    async fn demo_data_fills_a_marketplace_nobody_has_joined(backend) {
        let db = TestDb::new(backend).await;
        // An admin command (as `souk serve` does) makes the account the command line acts as;
        // the marketplace is still empty, and the demo fills it.
        assert!(ok(&["admin", "jobs", "list"], &db).contains("no dead jobs"));
        assert!(ok(&["demo"], &db).contains("Demo marketplace created"));
        assert!(db.store.account_by_email("it@northwind.demo").await.unwrap().is_some());
        // Once people have joined it is never filled again.
        assert!(ok(&["demo"], &db).contains("already has accounts"));
        db.cleanup().await;
    }
}
