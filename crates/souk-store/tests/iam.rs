//! Deleting an IAM user leaves nothing it held working, also when it races the user's own
//! sign-in or a new key; every change to what a key may do is counted, by this process and in
//! the database, and a key's use is not.

use chrono::{Duration, Utc};
use souk_core::accounts::AccountKind;
use souk_core::accounts::{Role, VerificationDetails, VerificationState};
use souk_core::iam::{KeyState, NewUser, Policy};
use souk_store::accounts::NewAccount;
use souk_store::on_both_databases;
use souk_store::testing::TestDb;

/// The enterprise account both tests act for.
async fn acme(store: &souk_store::Store) -> souk_store::accounts::Account {
    store
        .create_account(
            NewAccount {
                kind: AccountKind::Enterprise,
                name: "Acme",
                email: "a@acme.example",
                password_hash: "x",
                roles: &[],
            },
            Utc::now(),
        )
        .await
        .unwrap()
}

on_both_databases! {
    async fn a_deleted_iam_user_keeps_no_session_and_gets_no_key(backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let now = Utc::now();
        let account = acme(store).await;
        let user = store
            .create_iam_user(&account.id, &NewUser { name: "carol".into(), console_access: true, programmatic_access: true, policy: Policy::ReadOnly }, Some("hash"), now)
            .await
            .unwrap();
        let later = now + Duration::hours(1);
        let idle = now - Duration::hours(1);
        store.create_session("owner", &account.id, None, now, later).await.unwrap();
        store.create_session("carol", &account.id, Some(&user.id), now, later).await.unwrap();
        assert!(store.live_session("carol", now, idle).await.unwrap().unwrap().iam_user.is_some());

        // Another account cannot delete it; its own can, and the session goes with it.
        let other = store
            .create_account(NewAccount { kind: AccountKind::Enterprise, name: "Other", email: "o@other.example", password_hash: "x", roles: &[] }, now)
            .await
            .unwrap();
        assert!(matches!(store.delete_iam_user(&other.id, &user.id).await, Err(souk_store::Error::NotFound(_))));
        store.delete_iam_user(&account.id, &user.id).await.unwrap();
        assert!(store.live_session("carol", now, idle).await.unwrap().is_none());

        // A sign-in that read the user just before it went writes its session after: that
        // session is no one's, and above all not the account's own.
        store.create_session("carol-late", &account.id, Some(&user.id), now, later).await.unwrap();
        assert!(store.live_session("carol-late", now, idle).await.unwrap().is_none());
        assert!(store.live_session("owner", now, idle).await.unwrap().is_some());
        // Nor does a key made for it after it went.
        let made = store.create_access_key(&user, "AKLATE", "sealed", now).await;
        assert!(matches!(made, Err(souk_store::Error::NotFound(_))), "{made:?}");
        db.cleanup().await;
    }

    async fn every_change_to_what_a_key_may_do_moves_the_access_generation(backend) {
        let db = TestDb::new(backend).await;
        // Another process on the same database, whose changes this one does not count itself.
        let store = &db.store;
        let elsewhere = souk_store::Store::connect_with(&db.url, 2).await.unwrap();
        let now = Utc::now();
        let account = acme(store).await;
        let user = store
            .create_iam_user(&account.id, &NewUser { name: "bot".into(), console_access: false, programmatic_access: true, policy: Policy::FullAccess }, None, now)
            .await
            .unwrap();
        store.create_access_key(&user, "AKONE", "sealed", now).await.unwrap();
        store.create_access_key(&user, "AKTWO", "sealed", now).await.unwrap();
        let counts = || async { (store.access_changes(), store.access_generation().await.unwrap()) };

        // A key's use changes nothing it may do.
        let before = counts().await;
        store.touch_access_key("AKONE", now).await.unwrap();
        assert_eq!(counts().await, before);
        let read = store.key_holder("AKONE").await.unwrap().unwrap();
        assert_eq!(read.generation, before.1, "a holder says which generation it was read at");

        // Each change moves both counts when made here, and the database's when made elsewhere.
        let moved = |before: (u64, i64), after: (u64, i64), what: &str| {
            assert!(after.0 > before.0, "{what}: this process's count stood");
            assert!(after.1 > before.1, "{what}: the database's generation stood");
            after
        };
        store.set_access_key_state(&account.id, "AKONE", KeyState::Disabled).await.unwrap();
        let before = moved(before, counts().await, "disabling a key");
        store.set_iam_user_policy(&account.id, &user.id, Policy::ReadOnly).await.unwrap();
        let before = moved(before, counts().await, "another policy");
        store.add_roles(&account.id, &[Role::Support]).await.unwrap();
        let before = moved(before, counts().await, "a role");
        let details = VerificationDetails { legal_name: "Ann Acme".into(), company_name: Some("Acme Ltd".into()), registration_number: Some("91310000MA1K00000X".into()), phone: "+8613800000000".into(), ..Default::default() };
        store.submit_verification(&account.id, VerificationState::Unverified, VerificationState::Pending, &details, now).await.unwrap();
        let before = moved(before, counts().await, "a verification submitted");
        store.decide_verification(&account.id, VerificationState::Pending, VerificationState::Verified, None, &account.id, now).await.unwrap();
        let before = moved(before, counts().await, "a verification decided");
        store.delete_access_key(&account.id, "AKTWO").await.unwrap();
        let before = moved(before, counts().await, "deleting a key");
        store.delete_iam_user(&account.id, &user.id).await.unwrap();
        moved(before, counts().await, "deleting the user");
        // A change whose caller gives up midway (polled once, then dropped) still moves this
        // process's count twice: as it begins, and as it is dropped, committed or not.
        let (changes, _) = counts().await;
        let _ = tokio::time::timeout(std::time::Duration::ZERO, store.add_roles(&account.id, &[Role::Reviewer])).await;
        assert_eq!(store.access_changes(), changes + 2, "a change given up midway");
        let before = counts().await;
        elsewhere.add_roles(&account.id, &[Role::Finance]).await.unwrap();
        let after = counts().await;
        assert_eq!(after.0, before.0, "another process's change is not counted here");
        assert!(after.1 > before.1, "but the database counts it");
        elsewhere.close().await;
        db.cleanup().await;
    }
}
