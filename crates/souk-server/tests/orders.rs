//! Buying and top-ups: exactly-once money under concurrency, idempotent retries, short balances.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;
use std::sync::Arc;

on_both_databases! {
    async fn two_hundred_concurrent_purchases_against_a_balance_for_fifty_sell_exactly_fifty(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "100.00").await;
        let buyer = Arc::new(app.verified_buyer(&op, "buyer@souk.test").await);
        app.top_up(&op, &buyer, "5000.00").await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let buyer = buyer.clone();
            let plan = plan.clone();
            tasks.push(tokio::spawn(async move {
                buyer
                    .order(&plan, 1, Some(&format!("k-{i}")))
                    .await
                    .status()
            }));
        }
        let mut created = 0;
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::CREATED => created += 1,
                StatusCode::PAYMENT_REQUIRED => refused += 1,
                other => panic!("{backend:?}: unexpected {other}"),
            }
        }
        assert_eq!((created, refused), (50, 150), "{backend:?}");
        let balance = buyer.json("/v1/balance").await;
        assert_eq!(balance["balances"][0]["amount"], "0.00");
        assert_eq!(
            buyer.json("/v1/orders?limit=100").await["items"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn an_idempotent_retry_returns_the_same_order_and_charges_once(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "120.50").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "1000.00").await;
        let first = buyer.order(&plan, 2, Some("retry-1")).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = first.json().await.unwrap();
        assert_eq!(
            first["amount"],
            json!({"amount": "241.00", "currency": "CNY"})
        );
        let again = buyer.order(&plan, 2, Some("retry-1")).await;
        assert_eq!(again.status(), StatusCode::OK);
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "759.00"
        );
        // The same key for a different request is refused and changes nothing.
        assert_problem(
            buyer.order(&plan, 3, Some("retry-1")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Idempotency-Key"),
        )
        .await;
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "759.00"
        );
        let ledger = buyer.json("/v1/ledger").await;
        assert_eq!(
            ledger["items"].as_array().unwrap().len(),
            2,
            "one top-up and one charge"
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn too_little_balance_is_a_402_that_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "99.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "50.00").await;
        let body = assert_problem(
            buyer.order(&plan, 1, None).await,
            StatusCode::PAYMENT_REQUIRED,
            None,
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("99.00 CNY"),
            "{body}"
        );
        assert_eq!(
            buyer.json("/v1/orders").await["items"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            buyer.json("/v1/instances").await["items"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "50.00"
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_retried_top_up_credits_once(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let top_up = |amount: &'static str| {
            op.client
                .post(format!("{}/v1/operator/top-ups", app.base))
                .header("Idempotency-Key", "bank-transfer-7731")
                .json(&json!({"email": "buyer@souk.test", "amount": amount, "currency": "CNY"}))
                .send()
        };
        let first = top_up("250.00").await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = first.json().await.unwrap();
        let again = top_up("250.00").await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
        assert_problem(
            top_up("999.00").await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Idempotency-Key"),
        )
        .await;
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "250.00"
        );
        assert_eq!(
            buyer.json("/v1/ledger").await["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        app.cleanup().await;
    }
}
