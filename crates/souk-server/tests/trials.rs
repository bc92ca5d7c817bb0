//! Free trials through the API: verified buyers only, once per buyer and product even under
//! concurrent requests, provisioned like a purchase, converted to paid on the same instance.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;
use std::sync::Arc;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A listed product whose plan (30.00 a month) has a 14-day trial; returns (product, plan).
async fn trial_product(app: &TestApp, op: &User, endpoint: &str) -> (String, String) {
    let seller = app.merchant(op, "seller@acme.test").await;
    let mut body = product_body("Acme Notes", endpoint, "30.00");
    body["plans"][0]["trial_days"] = json!(14);
    body["signing_key"] = json!(KEY);
    let (product, plan, _) = app.listed_product_with(op, &seller, body).await;
    (product, plan)
}

on_both_databases! {
    async fn a_hundred_concurrent_trial_claims_start_exactly_one(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (product, plan) = trial_product(&app, &op, &endpoint).await;
        assert_eq!(app.public_json(&format!("/v1/products/{product}")).await["plans"][0]["trial_days"], 14);
        let buyer = Arc::new(app.verified_buyer(&op, "buyer@souk.test").await);
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (buyer, plan) = (buyer.clone(), plan.clone());
                tokio::spawn(async move {
                    buyer
                        .client
                        .post(format!("{}/v1/trials", buyer.base))
                        .header("Idempotency-Key", format!("try-{i}"))
                        .json(&json!({"plan_id": plan}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        let (mut started, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::CREATED => started += 1,
                StatusCode::CONFLICT => refused += 1,
                other => panic!("{backend:?}: unexpected {other}"),
            }
        }
        assert_eq!((started, refused), (1, 99), "{backend:?}");
        let orders = buyer.json("/v1/orders?kind=trial").await;
        assert_eq!(orders["items"].as_array().unwrap().len(), 1);
        assert_eq!(orders["items"][0]["amount"]["amount"], "0.00");
        // The refusal says why.
        let again = assert_problem(
            buyer.post("/v1/trials", json!({"plan_id": plan})).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        assert_eq!(again["type"], "urn:souk:problem:trial-used");
        // The product page no longer offers it to this buyer; it still does to another.
        let page = buyer.get(&format!("/products/{product}")).await.text().await.unwrap();
        assert!(page.contains("You have had this product's free trial") && !page.contains("Try free for"), "{page}");
        let other = app.verified_buyer(&op, "other@souk.test").await;
        let page = other.get(&format!("/products/{product}")).await.text().await.unwrap();
        assert!(page.contains("Try free for 14 days"), "{page}");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn a_trial_the_seller_could_not_set_up_can_be_taken_again(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000001", 0, KEY).await;
        let (_product, plan) = trial_product(&app, &op, &endpoint).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let first = buyer.expect_post("/v1/trials", json!({"plan_id": plan}), StatusCode::CREATED).await;
        assert_eq!(first["valid"], false, "a free trial does not count in sales");
        buyer.wait_for(&format!("/v1/instances/{}", first["instance_id"].as_str().unwrap()), |v| v["state"] == "failed").await;
        let again = buyer.expect_post("/v1/trials", json!({"plan_id": plan}), StatusCode::CREATED).await;
        assert_ne!(again["instance_id"], first["instance_id"]);
        app.cleanup().await;
    }

    async fn a_trial_is_provisioned_converted_on_its_instance_and_never_renewed(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (_product, plan) = trial_product(&app, &op, &endpoint).await;

        // Unverified buyers cannot try; a plan without a trial cannot be tried.
        let stranger = app.sign_up("individual", "stranger@souk.test").await;
        assert_problem(stranger.post("/v1/trials", json!({"plan_id": plan})).await, StatusCode::FORBIDDEN, None).await;
        let (endpoint2, _stub2) = stub_seller("000000", 0, KEY).await;
        let other_seller = app.merchant(&op, "other@acme.test").await;
        let (_, no_trial, _) = app.listed_product(&op, &other_seller, "Plain", &endpoint2, "5.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        assert_problem(buyer.post("/v1/trials", json!({"plan_id": no_trial})).await, StatusCode::UNPROCESSABLE_ENTITY, Some("plan_id")).await;

        let trial = buyer.expect_post("/v1/trials", json!({"plan_id": plan}), StatusCode::CREATED).await;
        assert_eq!(trial["kind"], "trial");
        let path = format!("/v1/instances/{}", trial["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert_eq!(i["trial"], true);
        assert_eq!(at(&i["expires_at"]), at(&trial["created_at"]) + Duration::days(14));
        // The seller sees a trial when it asks about the order.
        let sold = app.state.store.order(&trial["id"].as_str().unwrap().into()).await.unwrap();
        assert_eq!(sold.amount.minor, 0);

        // A trial is converted, not renewed.
        assert_problem(buyer.post(&format!("{path}/renew"), json!({"periods": 1})).await, StatusCode::CONFLICT, None).await;
        // Past the trial and its grace, frozen: converting pays from now and unfreezes it.
        app.advance(30 * 86_400).await;
        buyer.wait_for(&path, |v| v["state"] == "frozen").await;
        assert_problem(
            buyer.post(&format!("{path}/convert"), json!({"period": "month", "periods": 1})).await,
            StatusCode::PAYMENT_REQUIRED,
            None,
        )
        .await;
        app.top_up(&op, &buyer, "30.00").await;
        let paid = buyer.expect_post(&format!("{path}/convert"), json!({"period": "month", "periods": 1}), StatusCode::CREATED).await;
        assert_eq!((paid["kind"].as_str(), paid["amount"]["amount"].as_str()), (Some("convert"), Some("30.00")));
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert_eq!(i["trial"], false);
        let from = at(&paid["created_at"]);
        assert_eq!(at(&i["expires_at"]), from.checked_add_months(chrono::Months::new(1)).unwrap());
        assert_problem(
            buyer.post(&format!("{path}/convert"), json!({"period": "month", "periods": 1})).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        buyer
            .wait_for(&path, |v| v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.refreshed"))
            .await;
        assert_eq!(
            stub.heard(),
            [
                "status Freeze".to_owned(),
                "status Unfreeze".to_owned(),
                format!("refresh TrialToFormal {}", at(&i["expires_at"]).format("%Y%m%d%H%M%S"))
            ]
        );
        // Once paid, it renews like any subscription; the trial is still used up.
        buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::PAYMENT_REQUIRED).await;
        assert_problem(buyer.post("/v1/trials", json!({"plan_id": plan})).await, StatusCode::CONFLICT, None).await;
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
