//! The ledger on both databases: conditional debits under concurrency, and the balance invariant.

use chrono::Utc;
use souk_store::accounts::NewAccount;
use souk_store::ledger::Movement;
use souk_store::testing::{backends, TestDb};
use souk_store::Error;

fn movement<'a>(account: &'a str, minor: i64, kind: &'a str) -> Movement<'a> {
    Movement {
        account_id: account,
        currency: "CNY",
        amount_minor: minor,
        kind,
        order_id: None,
        reference: None,
        memo: "test",
        created_by: None,
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_debits_never_overdraw() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let store = db.store.clone();
        // Migrating again is harmless.
        store.migrate().await.unwrap();
        let now = Utc::now();
        let acc = store
            .create_account(
                NewAccount {
                    kind: "individual",
                    name: "Ada",
                    email: "ada@example.com",
                    password_hash: "x",
                    roles: "",
                },
                now,
            )
            .await
            .unwrap();
        store
            .record_movement(&movement(&acc.id, 500, "top_up"), now)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let id = acc.id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_movement(&movement(&id, -100, "charge"), Utc::now())
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::InsufficientBalance { available_minor }) => {
                    assert_eq!(available_minor, 0)
                }
                Err(e) => panic!("{backend:?}: unexpected {e}"),
            }
        }
        assert_eq!(ok, 5, "{backend:?}");
        let balances = store.balances(&acc.id).await.unwrap();
        assert_eq!(balances[0].amount_minor, 0);
        assert!(store.ledger_mismatches().await.unwrap().is_empty());
        assert_eq!(
            store
                .ledger_entries(&acc.id, None, 100)
                .await
                .unwrap()
                .len(),
            6
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn duplicate_emails_conflict() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let a = NewAccount {
            kind: "individual",
            name: "Ada",
            email: "ada@example.com",
            password_hash: "x",
            roles: "",
        };
        db.store.create_account(a, Utc::now()).await.unwrap();
        let again = NewAccount {
            kind: "individual",
            name: "Ada",
            email: "ada@example.com",
            password_hash: "x",
            roles: "",
        };
        assert!(matches!(
            db.store.create_account(again, Utc::now()).await,
            Err(Error::Conflict(_))
        ));
        db.cleanup().await;
    }
}
