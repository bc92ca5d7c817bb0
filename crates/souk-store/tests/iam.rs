//! Deleting an IAM user leaves nothing it held working, also when it races the user's own
//! sign-in or a new key.

use chrono::{Duration, Utc};
use souk_core::accounts::AccountKind;
use souk_core::iam::{NewUser, Policy};
use souk_store::accounts::NewAccount;
use souk_store::on_both_databases;
use souk_store::testing::TestDb;

on_both_databases! {
    async fn a_deleted_iam_user_keeps_no_session_and_gets_no_key(backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let now = Utc::now();
        let account = store
            .create_account(NewAccount { kind: AccountKind::Enterprise, name: "Acme", email: "a@acme.example", password_hash: "x", roles: &[] }, now)
            .await
            .unwrap();
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
}
