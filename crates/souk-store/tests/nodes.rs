//! The nodes serving one PostgreSQL database: each is counted while its own connection is open,
//! and while one keeps accepted signatures alone, no statement remembers one in the database.

use chrono::{Duration, Utc};
use souk_store::accounts::SignedLookup;
use souk_store::testing::{postgres_enabled, TestDb};
use souk_store::{Backend, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_node_keeps_signatures_alone_none_is_remembered_in_the_database() {
    if !postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let store = &db.store;
    let until = Utc::now() + Duration::minutes(15);
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM signature_digests")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };

    let mut first = store.join_nodes(true).await.unwrap();
    assert_eq!(first.look().await.unwrap().present, 1);
    assert!(
        first.keep_alone().await.unwrap(),
        "the only node may keep them"
    );
    assert!(first.keeping());

    // Neither one signature nor a batch's statement is remembered meanwhile.
    assert!(matches!(
        store.remember_signature_digest(&[7u8; 16], until).await,
        Err(Error::KeptElsewhere)
    ));
    let lookup = SignedLookup {
        access_key: "AKNOSUCHKEY000000000",
        digest: &[8u8; 16],
        expires: until,
        known_at: None,
    };
    assert!(matches!(
        store.key_holders_remembering(&[lookup]).await,
        Err(Error::KeptElsewhere)
    ));
    assert_eq!(rows().await, 0);
    // What the node kept is written for the others before it gives the lock back.
    store
        .remember_signature_batch(&[(hex::encode([7u8; 16]), until)], Utc::now())
        .await
        .unwrap();
    assert_eq!(rows().await, 1);

    // A second node is counted; while the first keeps signatures, it cannot, and once the first
    // gives the lock back, the database remembers again, and refuses what the first kept.
    let elsewhere = souk_store::Store::connect_with(&db.url, 2).await.unwrap();
    let mut second = elsewhere.join_nodes(false).await.unwrap();
    assert_eq!(first.look().await.unwrap().present, 2);
    assert!(!second.keep_alone().await.unwrap());
    first.stop_keeping().await.unwrap();
    assert!(!first.keeping());
    assert!(
        !first.keep_alone().await.unwrap(),
        "not while another is present"
    );
    assert!(!first.keeping());
    assert!(!store
        .remember_signature_digest(&[7u8; 16], until)
        .await
        .unwrap());
    assert!(store
        .remember_signature_digest(&[9u8; 16], until)
        .await
        .unwrap());

    // A node whose connection ends is no longer counted, and the other may keep them alone.
    second.leave().await.unwrap();
    let mut alone = false;
    for _ in 0..100 {
        if first.look().await.unwrap().present == 1 {
            alone = first.keep_alone().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(alone, "the node left, so the first is alone");
    first.leave().await.unwrap();
    elsewhere.close().await;
    db.cleanup().await;
}
