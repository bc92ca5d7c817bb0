//! Purchases on both databases, and on PostgreSQL through both of its paths (the one-statement
//! forms and the portable transaction), held to the same cases.

use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use souk_core::accounts::AccountKind;
use souk_core::ids::{AccountId, InstanceId, OrderId};
use souk_core::ledger::EntryKind;
use souk_core::lifecycle::{self, Event, InstanceState, Policy, Subject};
use souk_core::merchants::{MerchantApplication, MerchantState};
use souk_core::money::{Currency, Money};
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans::{Period, PlanPrices};
use souk_core::review::{PlanDraft, ProductContent, ProductType, RevisionState};
use souk_store::accounts::NewAccount;
use souk_store::instances::{Change, Instance};
use souk_store::jobs::{JobEnd, JobSpec, JobState};
use souk_store::ledger::Movement;
use souk_store::orders::{Order, Purchase};
use souk_store::products::{Plan, PlanWrite, Product};
use souk_store::testing::TestDb;
use souk_store::{fresh, on_both_databases, Backend, Constraint, Error, Store};

struct Shop {
    buyer: AccountId,
    plan: Plan,
    product: Product,
}

async fn shop(store: &Store) -> Shop {
    let now = Utc::now();
    let new = |email: &'static str| NewAccount {
        kind: AccountKind::Enterprise,
        name: "X",
        email,
        password_hash: "x",
        roles: &[],
    };
    let seller = store
        .create_account(new("seller@example.com"), now)
        .await
        .unwrap();
    let buyer = store
        .create_account(new("buyer@example.com"), now)
        .await
        .unwrap();
    let app = MerchantApplication {
        company_name: "Acme".into(),
        support_email: "s@acme.example".into(),
        support_phone: "1".into(),
        business_licence_number: "1".into(),
        description: String::new(),
    };
    let m = store
        .apply_merchant(&seller.id, None, MerchantState::Pending, &app, now)
        .await
        .unwrap();
    let content = ProductContent {
        name: "Notes".into(),
        summary: "Notes".into(),
        description: String::new(),
        category: "collaboration".into(),
        tags: vec![],
        logo_url: None,
        support_contact: "s".into(),
        licence: String::new(),
        endpoint_url: "https://seller.example/souk".into(),
        signed_answers: false,
        protocol: Default::default(),
        plans: vec![PlanDraft {
            id: None,
            name: "Team".into(),
            description: String::new(),
            currency: "CNY".into(),
            monthly_price: Some("10".into()),
            yearly_price: None,
            one_time_price: None,
            trial_days: None,
            dimensions: vec![],
        }],
    };
    let (product, rev) = store
        .create_product(
            &m.id,
            ProductType::Saas,
            |_| "sealed".to_owned(),
            &content,
            now,
        )
        .await
        .unwrap();
    let prices = PlanPrices::parse("p", "CNY", Some("10"), None, None).unwrap();
    store
        .approve_revision(
            &rev,
            RevisionState::Draft,
            RevisionState::Approved,
            &content,
            &[PlanWrite {
                id: None,
                name: "Team".into(),
                description: String::new(),
                prices,
                trial_days: None,
            }],
            &seller.id,
            now,
        )
        .await
        .unwrap();
    let product = store.product(&product.id).await.unwrap();
    let plan_id = product.listed.as_ref().unwrap().plans[0]
        .id
        .clone()
        .unwrap();
    let plan = store.plan(&plan_id.as_str().into()).await.unwrap();
    Shop {
        buyer: buyer.id,
        plan,
        product,
    }
}

fn order_and_instance(shop: &Shop, key: &str) -> (Order, Instance) {
    let now = Utc::now();
    let id: OrderId = fresh(now);
    let instance_id: InstanceId = fresh(now);
    let order = Order {
        id: id.clone(),
        buyer_id: shop.buyer.clone(),
        kind: OrderKind::New,
        state: OrderState::Paid,
        product_id: shop.product.id.clone(),
        plan_id: shop.plan.id.clone(),
        merchant_id: shop.product.merchant_id.clone(),
        instance_id: instance_id.clone(),
        period: Period::Month,
        periods: 1,
        unit_price: Decimal::new(10, 0),
        list: Money::from_minor(1000, Currency::Cny),
        discount: Money::from_minor(0, Currency::Cny),
        amount: Money::from_minor(1000, Currency::Cny),
        refunded: Money::from_minor(0, Currency::Cny),
        idempotency_key: Some(key.to_owned()),
        request_fingerprint: Some("f".into()),
        created_at: now,
    };
    let instance = Instance {
        id: instance_id.clone(),
        buyer_id: shop.buyer.clone(),
        product_id: shop.product.id.clone(),
        plan_id: shop.plan.id.clone(),
        merchant_id: shop.product.merchant_id.clone(),
        order_id: id,
        state: InstanceState::Provisioning,
        period: Period::Month,
        expires_at: now + Duration::days(30),
        next_transition_at: None,
        version: 0,
        business_id: instance_id.to_string(),
        seller_instance_id: None,
        access_enc: None,
        failure_reason: None,
        trial: false,
        arrears_expiry: None,
        created_at: now,
        updated_at: now,
    };
    (order, instance)
}

/// The cases every purchase path must answer alike: paid while the balance lasts, nothing
/// written when it is short, a used key reported before any debit, provisioning stored once.
async fn purchases_behave(store: &Store, shop: &Shop) {
    let job = JobSpec {
        kind: "seller.new_instance",
        payload: "{}".into(),
    };
    let buy = |order, instance| Purchase {
        order,
        instance,
        job: &job,
        memo: "1 month",
    };
    let (o1, i1) = order_and_instance(shop, "k1");
    store.purchase(buy(&o1, &i1), Utc::now()).await.unwrap();
    let (o2, i2) = order_and_instance(shop, "k2");
    assert!(matches!(
        store.purchase(buy(&o2, &i2), Utc::now()).await,
        Err(Error::InsufficientBalance {
            available_minor: 500
        })
    ));
    assert!(matches!(store.order(&o2.id).await, Err(Error::NotFound(_))));
    let (o3, i3) = order_and_instance(shop, "k1");
    assert!(matches!(
        store.purchase(buy(&o3, &i3), Utc::now()).await,
        Err(Error::Duplicate(Constraint::OrderIdempotencyKey))
    ));
    assert_eq!(store.balances(&shop.buyer).await.unwrap()[0].minor, 500);
    assert_eq!(store.order_mismatches().await.unwrap(), vec![]);
    let stored = store.order(&o1.id).await.unwrap();
    assert_eq!(
        (stored.state, stored.amount, stored.unit_price),
        (OrderState::Paid, o1.amount, o1.unit_price)
    );

    // The dispatcher's claim, then core's decision stored with the job's end; a second store of
    // the same decision is stale.
    let claimed = store
        .claim_jobs(Utc::now(), Utc::now(), Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    let job = claimed
        .iter()
        .find(|j| j.instance_id.as_ref() == Some(&i1.id))
        .unwrap();
    let instance = store.instance(&i1.id).await.unwrap();
    let t = lifecycle::transition(
        Subject {
            state: instance.state,
            expiry: instance.expires_at,
        },
        Event::Provisioned,
        Utc::now(),
        Policy::default(),
    )
    .unwrap();
    let change = || Change {
        transition: &t,
        jobs: vec![],
        refund: None,
        seller_instance_id: Some("seller-1"),
        access_enc: Some("sealed"),
        failure_reason: None,
        event: Some(souk_store::events::NewEvent {
            order_id: Some(&o1.id),
            instance_id: Some(&i1.id),
            kind: "instance.active",
            detail: "created".into(),
            actor: None,
        }),
        job: Some(JobEnd {
            id: &job.id,
            attempts: job.attempts,
            state: JobState::Done,
            error: None,
        }),
    };
    store
        .apply_change(&instance, change(), Utc::now())
        .await
        .unwrap();
    assert!(matches!(
        store.apply_change(&instance, change(), Utc::now()).await,
        Err(Error::Stale)
    ));
    let active = store.instance(&i1.id).await.unwrap();
    assert_eq!(active.state, InstanceState::Active);
    assert_eq!(active.seller_instance_id.as_deref(), Some("seller-1"));
    assert_eq!(active.next_transition_at, Some(active.expires_at));
    let timeline = store
        .order_timeline(&o1.id, &i1.id, o1.created_at)
        .await
        .unwrap();
    assert_eq!(
        timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["order.paid", "instance.active"]
    );
    assert!(store.ledger_mismatches().await.unwrap().is_empty());
}

/// Puts `minor` CNY cents on `buyer`'s balance.
async fn top_up(store: &Store, buyer: &AccountId, minor: i64) {
    let top_up = Movement {
        account_id: buyer,
        amount: Money::from_minor(minor, Currency::Cny),
        kind: EntryKind::TopUp,
        order_id: None,
        reference: None,
        memo: "top-up",
        created_by: None,
        idempotency_key: None,
        floor_minor: 0,
        overdraw: false,
    };
    store.record_movement(&top_up, Utc::now()).await.unwrap();
}

async fn run_cases(store: &Store) {
    let shop = shop(store).await;
    top_up(store, &shop.buyer, 1500).await;
    purchases_behave(store, &shop).await;
    // An order whose refund the ledger never saw is reported by the ledger check.
    sqlx::query("UPDATE orders SET refunded_minor = 100")
        .execute(store.pool())
        .await
        .unwrap();
    let wrong = store.order_mismatches().await.unwrap();
    assert_eq!(
        (
            wrong.len(),
            wrong[0].amount_minor,
            wrong[0].refunded_minor,
            wrong[0].entries_minor
        ),
        (1, 1000, 100, -1000)
    );
}

/// A job whose worker stops answering is claimed again once its lease runs out, with a new
/// attempt; the first worker can no longer end it.
async fn leases_run_out(store: &Store) {
    let shop = shop(store).await;
    let job = JobSpec {
        kind: "seller.new_instance",
        payload: "{}".into(),
    };
    let (order, instance) = order_and_instance(&shop, "lease");
    top_up(store, &shop.buyer, 1000).await;
    let purchase = Purchase {
        order: &order,
        instance: &instance,
        job: &job,
        memo: "1 month",
    };
    store.purchase(purchase, Utc::now()).await.unwrap();
    let now = Utc::now();
    let lease = Duration::seconds(60);
    let first = store.claim_jobs(now, now, lease, 10, &[]).await.unwrap();
    assert_eq!((first.len(), first[0].attempts), (1, 1));
    // Within the lease nothing is released and nothing is claimed twice.
    assert_eq!(
        store
            .release_expired_leases(now, now + Duration::seconds(59))
            .await
            .unwrap(),
        0
    );
    assert!(store
        .claim_jobs(now, now, lease, 10, &[])
        .await
        .unwrap()
        .is_empty());
    // After it, the job goes back to the queue and is claimed with its second attempt.
    let later = now + Duration::seconds(61);
    assert_eq!(store.release_expired_leases(now, later).await.unwrap(), 1);
    let second = store.claim_jobs(now, later, lease, 10, &[]).await.unwrap();
    assert_eq!(
        (second.len(), &second[0].id, second[0].attempts),
        (1, &first[0].id, 2)
    );
    let end = |attempts| JobEnd {
        id: &first[0].id,
        attempts,
        state: JobState::Done,
        error: None,
    };
    let event = || souk_store::events::NewEvent {
        order_id: Some(&order.id),
        instance_id: Some(&instance.id),
        kind: "job.done",
        detail: String::new(),
        actor: None,
    };
    assert!(matches!(
        store.end_job(end(1), event(), now).await,
        Err(Error::Stale)
    ));
    store.end_job(end(2), event(), now).await.unwrap();
    assert_eq!(store.job(&first[0].id).await.unwrap().state, JobState::Done);
}

on_both_databases! {
    async fn a_job_whose_lease_ran_out_is_claimed_again_once(backend) {
        let db = TestDb::new(backend).await;
        leases_run_out(&db.store).await;
        db.cleanup().await;
    }

    async fn purchases_debit_once_and_write_nothing_when_short(backend) {
        let db = TestDb::new(backend).await;
        run_cases(&db.store).await;
        db.cleanup().await;
    }

    async fn the_portable_path_answers_the_same_cases(backend) {
        // On SQLite this is the only path; on PostgreSQL it is the one the fast path must match.
        let db = TestDb::new(backend).await;
        run_cases(&db.store.portable()).await;
        assert!(backend == Backend::Sqlite || backend == Backend::Postgres);
        db.cleanup().await;
    }
}
