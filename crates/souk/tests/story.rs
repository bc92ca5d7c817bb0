//! The whole story, as separate processes: `souk serve --test-clock` and the example seller app
//! (Acme Notes). A seller signs up, is verified, becomes a merchant and lists a product; a buyer is
//! verified, topped up, buys twice; both instances are provisioned at the seller, expire, run in
//! grace, are frozen at the seller, sit in retention; one is renewed (and unfrozen at the seller),
//! the other is released. The ledger balances throughout. Runs on SQLite and on PostgreSQL.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use souk_server::testing::User;
use souk_store::on_both_databases;
use souk_store::testing::TestDb;
use std::process::{Command, Stdio};
use std::time::Duration;

const SIGNING_KEY: &str = "acme-notes-signing-key-2026";
const DAY: i64 = 86_400;

async fn tenant(seller_app: &str, instance_id: &str) -> Value {
    let tenants: Vec<Value> = Client::new()
        .get(format!("{seller_app}/admin/tenants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tenants
        .into_iter()
        .find(|t| t["instance_id"] == instance_id)
        .unwrap_or(Value::Null)
}

async fn wait_tenant(seller_app: &str, instance_id: &str, status: &str) -> Value {
    wait_tenant_until(seller_app, instance_id, status, |t| t["status"] == status).await
}

async fn wait_tenant_until(
    seller_app: &str,
    instance_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..400 {
        let t = tenant(seller_app, instance_id).await;
        if done(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "tenant {instance_id} never became {what}: {}",
        tenant(seller_app, instance_id).await
    );
}

on_both_databases! {
    async fn a_subscription_lives_its_whole_life_across_processes(backend) {
        let seller_app_bin = seller_app_bin();
        let db = TestDb::new(backend).await;
        let secret = "7d9f0c3a5b1e4f2a8c6d0e9b7a5c3e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d";
        let dir = std::env::temp_dir().join(format!("souk-story-{}-{backend:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let seller_port = free_port();
        let seller_app = format!("http://127.0.0.1:{seller_port}");
        let tenants_db = dir.join(format!("tenants-{backend:?}.db"));
        // The seller's app; given an access key, it calls souk back.
        let start_seller = |souk: Option<(&str, &str, &str)>| {
            let mut cmd = Command::new(&seller_app_bin);
            cmd.args(["--listen", &format!("127.0.0.1:{seller_port}"), "--signing-key", SIGNING_KEY, "--database"])
                .arg(&tenants_db)
                .stdout(Stdio::null());
            if let Some((url, ak, sk)) = souk {
                cmd.env("SELLER_APP_SOUK_URL", url).env("SOUK_ACCESS_KEY", ak).env("SOUK_SECRET_ACCESS_KEY", sk);
            }
            Process(cmd.spawn().unwrap())
        };
        let mut _seller = start_seller(None);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let _souk = Process(
            Command::new(souk_bin())
                .args([
                    "serve",
                    "--test-clock",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--allow-loopback-http",
                    "true",
                    "--allowed-seller-networks",
                    "127.0.0.0/8",
                    "--job-backoff-secs",
                    "1",
                ])
                .env("SOUK_DATABASE_URL", &db.url)
                .env("SOUK_SECRET_KEY", secret)
                .env("SOUK_CONFIG", "/dev/null")
                .env("SOUK_OUTBOX_DIR", outbox_dir())
                .env("SOUK_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until_up(&format!("{seller_app}/healthz")).await;
        wait_until_up(&format!("{base}/healthz")).await;

        // The first operator comes from the command line.
        let out = souk(
            &[
                "admin",
                "create-operator",
                "--email",
                "ops@souk.test",
                "--name",
                "Olga",
                "--password",
                "operator password",
            ],
            &db.url,
            secret,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let op = User::new(&base);
        op.expect_post(
            "/v1/sessions",
            json!({"email": "ops@souk.test", "password": "operator password"}),
            StatusCode::OK,
        )
        .await;

        // A seller: sign-up, enterprise verification, merchant application.
        let seller = User::new(&base);
        let s = seller.expect_post("/v1/accounts", json!({"kind": "enterprise", "name": "Acme", "email": "seller@acme.test", "password": "seller password"}), StatusCode::CREATED).await;
        seller
            .expect_post("/v1/me/verification", json!({"legal_name": "Li Wei", "phone": "+86 21 5555 0000", "company_name": "Acme Ltd", "registration_number": "91310000MA1FL0000X"}), StatusCode::ACCEPTED)
            .await;
        let queue = op.json("/v1/operator/verifications").await;
        assert_eq!(queue[0]["id"], s["id"]);
        op.expect_post(
            &format!(
                "/v1/operator/verifications/{}/decision",
                s["id"].as_str().unwrap()
            ),
            json!({"approve": true}),
            StatusCode::OK,
        )
        .await;
        let m = seller
            .expect_post("/v1/merchant", json!({"company_name": "Acme Ltd", "support_email": "support@acme.test", "support_phone": "400-800-0000", "business_licence_number": "BL-2026-001"}), StatusCode::CREATED)
            .await;
        assert_eq!(m["state"], "pending");
        op.expect_post(
            &format!(
                "/v1/operator/merchants/{}/decision",
                m["id"].as_str().unwrap()
            ),
            json!({"approve": true}),
            StatusCode::OK,
        )
        .await;

        // The seller makes an access key for its app and restarts the app with it.
        let user = seller.expect_post("/v1/iam/users", json!({"name": "notes-app", "programmatic_access": true, "policy": "seller_operations"}), StatusCode::CREATED).await;
        let key = seller.expect_post(&format!("/v1/iam/users/{}/access-keys", user["id"].as_str().unwrap()), json!({}), StatusCode::CREATED).await;
        let (ak, sk) = (key["access_key"].as_str().unwrap().to_owned(), key["secret_key"].as_str().unwrap().to_owned());
        drop(_seller);
        _seller = start_seller(Some((&base, &ak, &sk)));
        wait_until_up(&format!("{seller_app}/healthz")).await;

        // The product: draft, endpoint check, submit, review.
        let product = seller
            .expect_post(
                "/v1/seller/products",
                json!({
                    "name": "Acme Notes", "summary": "Shared notebooks for teams", "category": "collaboration", "tags": ["notes"],
                    "support_contact": "support@acme.test", "licence": "Standard terms", "endpoint_url": format!("{seller_app}/souk"),
                    "signing_key": SIGNING_KEY,
                    "plans": [{"name": "Team", "currency": "CNY", "monthly_price": "99.00", "yearly_price": "990.00",
                               "dimensions": [{"key": "page_views", "unit": "view", "price": "0.10"}]}]
                }),
                StatusCode::CREATED,
            )
            .await;
        let product_id = product["id"].as_str().unwrap();
        // Submitting needs the endpoint to pass the check first (souk's default).
        seller
            .expect_post(
                &format!("/v1/seller/products/{product_id}/submit"),
                json!({}),
                StatusCode::CONFLICT,
            )
            .await;
        let check = seller
            .expect_post(
                &format!("/v1/seller/products/{product_id}/check-endpoint"),
                json!({}),
                StatusCode::OK,
            )
            .await;
        assert_eq!(check["passed"], true, "{check}");
        seller
            .expect_post(
                &format!("/v1/seller/products/{product_id}/submit"),
                json!({}),
                StatusCode::OK,
            )
            .await;
        let reviews = op.json("/v1/operator/reviews").await;
        op.expect_post(
            &format!(
                "/v1/operator/reviews/{}/decision",
                reviews[0]["revision_id"].as_str().unwrap()
            ),
            json!({"approve": true}),
            StatusCode::OK,
        )
        .await;

        // A buyer: verification, top-up, search, two purchases.
        let buyer = User::new(&base);
        let b = buyer.expect_post("/v1/accounts", json!({"kind": "individual", "name": "Bao", "email": "bao@buyer.test", "password": "buyer password"}), StatusCode::CREATED).await;
        buyer.expect_post("/v1/me/verification", json!({"legal_name": "Bao Lin", "phone": "13800000000", "id_number": "110101199001010000"}), StatusCode::ACCEPTED).await;
        op.expect_post(
            &format!(
                "/v1/operator/verifications/{}/decision",
                b["id"].as_str().unwrap()
            ),
            json!({"approve": true}),
            StatusCode::OK,
        )
        .await;
        op.expect_post("/v1/operator/top-ups", json!({"email": "bao@buyer.test", "amount": "500.00", "currency": "CNY", "reference": "bank-0001"}), StatusCode::CREATED).await;
        let found = buyer
            .json("/v1/products?q=notebooks&category=collaboration")
            .await;
        assert_eq!(found["items"][0]["id"], product_id);
        let plan = found["items"][0]["plans"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let order = |key: &'static str| {
            let plan = plan.clone();
            let client = buyer.client.clone();
            let url = format!("{base}/v1/orders");
            async move {
                let res = client
                    .post(url)
                    .header("Idempotency-Key", key)
                    .json(&json!({"plan_id": plan, "period": "month", "periods": 1}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::CREATED);
                res.json::<Value>().await.unwrap()
            }
        };
        let first = order("first").await;
        let second = order("second").await;
        let a = format!("/v1/instances/{}", first["instance_id"].as_str().unwrap());
        let r = format!("/v1/instances/{}", second["instance_id"].as_str().unwrap());

        // Provisioned at the seller; the access data souk shows is what the seller holds.
        let ia = buyer.wait_for(&a, |v| v["state"] == "active").await;
        let ir = buyer.wait_for(&r, |v| v["state"] == "active").await;
        let (ta, tr) = (
            ia["seller_instance_id"].as_str().unwrap().to_owned(),
            ir["seller_instance_id"].as_str().unwrap().to_owned(),
        );
        let tenant_a = tenant(&seller_app, &ta).await;
        assert_eq!(tenant_a["status"], "active");
        // The app asked souk who bought it, with its access key.
        let learned = wait_tenant_until(&seller_app, &ta, "customer", |t| t["customer"] == "Bao").await;
        assert_eq!(learned["plan"], "Team");
        // The seller resets the tenant's password; the app tells souk, and the buyer sees it.
        let reset: Value = reqwest::Client::new()
            .post(format!("{seller_app}/admin/tenants/{ta}/password"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reset["souk"], "souk has the new password", "{reset}");
        let now_a = buyer.wait_for(&a, |v| v["access"]["password"] == reset["password"]).await;
        assert!(now_a["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.access_updated"));
        assert_eq!(
            ia["access"]["password"], tenant_a["password"],
            "souk decrypted the seller's AES-encrypted password"
        );
        assert_eq!(
            ia["access"]["front_end_url"],
            format!("{seller_app}/t/{ta}")
        );
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "302.00"
        );
        // Each view of the workspace is metered; the app reports it with its access key.
        for _ in 0..2 {
            let page = reqwest::get(format!("{seller_app}/t/{ta}")).await.unwrap();
            assert_eq!(page.status(), StatusCode::OK);
        }
        let usage = buyer.json(&format!("{a}/usage")).await;
        assert_eq!(usage["dimensions"][0]["pending"], "2", "{usage}");

        // A month later both have expired: grace, still running at the seller.
        // The test clock answers an operator (role operations) or its token, never anyone.
        let clock = &op;
        clock
            .expect_post(
                "/v1/test/clock",
                json!({"advance_seconds": 31 * DAY + 60}),
                StatusCode::OK,
            )
            .await;
        buyer.wait_for(&a, |v| v["state"] == "grace").await;
        buyer.wait_for(&r, |v| v["state"] == "grace").await;
        assert_eq!(tenant(&seller_app, &ta).await["status"], "active");

        // The grace period ends: frozen at the seller, retention starts.
        clock
            .expect_post(
                "/v1/test/clock",
                json!({"advance_seconds": 15 * DAY}),
                StatusCode::OK,
            )
            .await;
        buyer.wait_for(&a, |v| v["state"] == "frozen").await;
        buyer.wait_for(&r, |v| v["state"] == "frozen").await;
        wait_tenant(&seller_app, &ta, "frozen").await;
        wait_tenant(&seller_app, &tr, "frozen").await;

        // A renewal during retention restores one: unfrozen at the seller, expiry from the old expiry.
        let old_expiry: chrono::DateTime<chrono::Utc> =
            ir["expires_at"].as_str().unwrap().parse().unwrap();
        let renewal = buyer
            .expect_post(
                &format!("{r}/renew"),
                json!({"periods": 2}),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(renewal["kind"], "renew");
        assert_eq!(renewal["amount"]["amount"], "198.00");
        let restored = buyer.wait_for(&r, |v| v["state"] == "active").await;
        let new_expiry: chrono::DateTime<chrono::Utc> =
            restored["expires_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            new_expiry,
            old_expiry
                .checked_add_months(chrono::Months::new(2))
                .unwrap()
        );
        let expire_time = new_expiry.format("%Y%m%d%H%M%S").to_string();
        // updateInstanceStatus UNFREEZE, then refreshInstance RENEWAL with the new expiry.
        wait_tenant_until(&seller_app, &tr, "active with the new expiry", |t| {
            t["status"] == "active" && t["expire_time"] == expire_time.as_str()
        })
        .await;

        // Retention ends for the other: released at the seller; the renewed one runs on.
        clock
            .expect_post(
                "/v1/test/clock",
                json!({"advance_seconds": 15 * DAY}),
                StatusCode::OK,
            )
            .await;
        wait_tenant(&seller_app, &ta, "released").await;
        let released = buyer
            .wait_for(&a, |v| {
                v["state"] == "released"
                    && v["timeline"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["kind"] == "seller.released")
            })
            .await;
        assert_eq!(buyer.json(&r).await["state"], "active");
        assert_eq!(tenant(&seller_app, &tr).await["status"], "active");
        let kinds: Vec<&str> = released["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "order.paid",
                "instance.active",
                "seller.access_updated",
                "instance.grace",
                "instance.frozen",
                "seller.frozen",
                "instance.released",
                "seller.released"
            ]
        );
        // A released instance cannot be renewed, and that changes nothing.
        let refused = buyer
            .send(
                reqwest::Method::POST,
                &format!("{a}/renew"),
                Some(json!({"periods": 1})),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(refused["type"], "urn:souk:problem:transition-refused");

        // Money: 500 - 99 - 99 - 198 - 0.20 for two views; every balance equals its entries.
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "103.80"
        );
        assert_eq!(
            buyer.json("/v1/ledger").await["items"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        let out = souk(&["admin", "verify-ledger"], &db.url, secret);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        drop(_souk);
        drop(_seller);
        db.cleanup().await;
        std::fs::remove_dir_all(&dir).ok();
    }
}
