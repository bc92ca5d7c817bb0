//! The ledger on both databases: conditional debits under concurrency, and the balance invariant.

use chrono::Utc;
use souk_core::accounts::AccountKind;
use souk_core::ids::AccountId;
use souk_core::ledger::EntryKind;
use souk_core::money::{Currency, Money};
use souk_store::accounts::NewAccount;
use souk_store::ledger::Movement;
use souk_store::testing::TestDb;
use souk_store::{on_both_databases, Constraint, Error, Store};

fn movement(account: &AccountId, minor: i64, kind: EntryKind) -> Movement<'_> {
    Movement {
        account_id: account,
        amount: Money::from_minor(minor, Currency::Cny),
        kind,
        order_id: None,
        reference: None,
        memo: "test",
        created_by: None,
        idempotency_key: None,
        floor_minor: 0,
        overdraw: false,
    }
}

async fn account(store: &Store, email: &str) -> AccountId {
    store
        .create_account(
            NewAccount {
                kind: AccountKind::Individual,
                name: "Ada",
                email,
                password_hash: "x",
                roles: &[],
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .id
}

on_both_databases! {
    async fn concurrent_debits_never_overdraw(backend) {
        let db = TestDb::new(backend).await;
        let store = db.store.clone();
        // Migrating again is harmless.
        store.migrate().await.unwrap();
        let acc = account(&store, "ada@example.com").await;
        store
            .record_movement(&movement(&acc, 500, EntryKind::TopUp), Utc::now())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let id = acc.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_movement(&movement(&id, -100, EntryKind::Charge), Utc::now())
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::InsufficientBalance { available_minor }) => assert_eq!(available_minor, 0),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 5);
        let balances = store.balances(&acc).await.unwrap();
        assert_eq!(balances, vec![Money::from_minor(0, Currency::Cny)]);
        assert!(store.ledger_mismatches().await.unwrap().is_empty());
        assert_eq!(store.ledger_entries(&acc, None, 100).await.unwrap().len(), 6);
        db.cleanup().await;
    }

    async fn a_credit_limit_lowers_the_floor_of_a_debit(backend) {
        let db = TestDb::new(backend).await;
        let acc = account(&db.store, "ada@example.com").await;
        let finance = account(&db.store, "fin@example.com").await;
        let floor = souk_core::ledger::debit_floor(300);
        let debit = |minor| Movement { floor_minor: floor, ..movement(&acc, minor, EntryKind::Charge) };
        // A floor below zero alone is not credit: the account's limit must allow it too.
        assert!(matches!(
            db.store.record_movement(&debit(-200), Utc::now()).await,
            Err(Error::InsufficientBalance { available_minor: 0 })
        ));
        db.store.set_credit_limit(&acc, Money::from_minor(300, Currency::Cny), &finance, Utc::now()).await.unwrap();
        let entry = db.store.record_movement(&debit(-200), Utc::now()).await.unwrap();
        assert_eq!(entry.balance_after.minor, -200);
        assert!(matches!(
            db.store.record_movement(&debit(-101), Utc::now()).await,
            Err(Error::InsufficientBalance { available_minor: -200 })
        ));
        // Finance lowers the limit after the floor was read: the debit still stops at the new one.
        db.store.set_credit_limit(&acc, Money::from_minor(250, Currency::Cny), &finance, Utc::now()).await.unwrap();
        assert!(matches!(
            db.store.record_movement(&debit(-100), Utc::now()).await,
            Err(Error::InsufficientBalance { .. })
        ));
        db.store.record_movement(&debit(-50), Utc::now()).await.unwrap();
        assert!(db.store.ledger_mismatches().await.unwrap().is_empty());
        db.cleanup().await;
    }

    async fn duplicate_emails_are_reported_as_such(backend) {
        let db = TestDb::new(backend).await;
        account(&db.store, "ada@example.com").await;
        let again = NewAccount {
            kind: AccountKind::Individual,
            name: "Ada",
            email: "ada@example.com",
            password_hash: "x",
            roles: &[],
        };
        assert!(matches!(
            db.store.create_account(again, Utc::now()).await,
            Err(Error::Duplicate(Constraint::AccountEmail))
        ));
        db.cleanup().await;
    }

    async fn a_reused_top_up_key_is_reported_as_such(backend) {
        let db = TestDb::new(backend).await;
        let acc = account(&db.store, "ada@example.com").await;
        let op = account(&db.store, "op@example.com").await;
        let top_up = Movement {
            created_by: Some(&op),
            idempotency_key: Some("k1"),
            ..movement(&acc, 100, EntryKind::TopUp)
        };
        db.store.record_movement(&top_up, Utc::now()).await.unwrap();
        assert!(matches!(
            db.store.record_movement(&top_up, Utc::now()).await,
            Err(Error::Duplicate(Constraint::EntryIdempotencyKey))
        ));
        assert_eq!(db.store.balances(&acc).await.unwrap()[0].minor, 100);
        db.cleanup().await;
    }
}
