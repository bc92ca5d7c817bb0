//! Credit limits through the API: finance lets an account's balance go below zero up to a limit,
//! and the conditional debit holds that floor under concurrent orders.

use reqwest::StatusCode;
use serde_json::json;
use souk_server::testing::*;
use souk_store::on_both_databases;
use std::sync::Arc;

on_both_databases! {
    async fn orders_spend_into_the_credit_limit_and_never_past_it(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_, _, thirty) = product_with(&app, &op, &endpoint, "30.00").await;
        let other = app.merchant(&op, "other@acme.test").await;
        let (_, ten) = listed_by(&app, &op, &other, &endpoint, "10.00").await;
        let buyer = Arc::new(app.verified_buyer(&op, "buyer@souk.test").await);
        let path = format!("/v1/operator/accounts/{}/credit-limit", buyer.id);

        // Only finance, never for oneself, and within bounds.
        let support = app.operator_with_roles("support@souk.test", "support").await;
        assert_problem(support.put(&path, json!({"limit": "50.00", "currency": "CNY"})).await, StatusCode::FORBIDDEN, None).await;
        assert_problem(op.put(&format!("/v1/operator/accounts/{}/credit-limit", op.id), json!({"limit": "50.00", "currency": "CNY"})).await, StatusCode::FORBIDDEN, None).await;
        assert_problem(op.put(&path, json!({"limit": "-1", "currency": "CNY"})).await, StatusCode::UNPROCESSABLE_ENTITY, Some("limit")).await;
        assert_problem(op.put(&path, json!({"limit": "1.001", "currency": "CNY"})).await, StatusCode::UNPROCESSABLE_ENTITY, Some("limit")).await;
        assert_problem(buyer.order(&thirty, 1, None).await, StatusCode::PAYMENT_REQUIRED, None).await;

        let set = op.put(&path, json!({"limit": "50.00", "currency": "CNY"})).await;
        assert_eq!(set.status(), StatusCode::OK);
        assert_eq!(buyer.order(&thirty, 1, None).await.status(), StatusCode::CREATED);
        let balance = buyer.json("/v1/balance").await;
        assert_eq!(balance["balances"][0]["amount"], "-30.00");
        assert_eq!(balance["credit_limits"][0]["amount"], "50.00");
        // 20.00 of credit is left: another 30.00 is refused and changes nothing.
        assert_problem(buyer.order(&thirty, 1, None).await, StatusCode::PAYMENT_REQUIRED, None).await;
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "-30.00");

        // Ten concurrent 10.00 orders against 70.00 of room: exactly seven.
        assert_eq!(op.put(&path, json!({"limit": "100", "currency": "CNY"})).await.status(), StatusCode::OK);
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (buyer, ten) = (buyer.clone(), ten.clone());
                tokio::spawn(async move { buyer.order(&ten, 1, Some(&format!("c-{i}"))).await.status() })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::CREATED => created += 1,
                StatusCode::PAYMENT_REQUIRED => {}
                other => panic!("{backend:?}: unexpected {other}"),
            }
        }
        assert_eq!(created, 7, "{backend:?}");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "-100.00");
        // Removing the credit stops spending; a top-up pays back what is owed.
        assert_eq!(op.put(&path, json!({"limit": "0", "currency": "CNY"})).await.status(), StatusCode::OK);
        assert!(buyer.json("/v1/balance").await["credit_limits"].as_array().unwrap().is_empty());
        app.top_up(&op, &buyer, "110.00").await;
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "10.00");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
