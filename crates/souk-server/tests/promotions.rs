//! Operator promotions through the API: a percentage off a product's orders while it runs, shown
//! on the order as list price, discount and amount paid.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

async fn now(app: &TestApp) -> DateTime<Utc> {
    app.state.now()
}

on_both_databases! {
    async fn a_running_promotion_discounts_orders_and_renewals_until_it_ends(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, product, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let start = now(&app).await;
        let body = |pct: u32, days: i64| json!({
            "product_id": product, "percent_off": pct, "period": "month",
            "starts_at": start, "ends_at": start + Duration::days(days),
        });

        // Only operations may; the terms are checked.
        let reviewer = app.operator_with_roles("reviewer@souk.test", "reviewer").await;
        assert_problem(reviewer.post("/v1/operator/promotions", body(20, 7)).await, StatusCode::FORBIDDEN, None).await;
        assert_problem(op.post("/v1/operator/promotions", body(95, 7)).await, StatusCode::UNPROCESSABLE_ENTITY, Some("percent_off")).await;
        assert_problem(op.post("/v1/operator/promotions", body(20, -1)).await, StatusCode::UNPROCESSABLE_ENTITY, Some("ends_at")).await;
        let mut unknown = body(20, 7);
        unknown["product_id"] = json!("prd_nope");
        assert_problem(op.post("/v1/operator/promotions", unknown).await, StatusCode::UNPROCESSABLE_ENTITY, Some("product_id")).await;
        let promo = op.expect_post("/v1/operator/promotions", body(20, 7), StatusCode::CREATED).await;
        op.expect_post("/v1/operator/promotions", body(10, 30), StatusCode::CREATED).await;
        let listed = op.json("/v1/operator/promotions").await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 2);
        assert_eq!(listed["items"][0]["product_name"], "Stub");
        assert_eq!(app.public_json(&format!("/v1/products/{product}")).await["promotion"]["percent_off"], 20);

        // The best running promotion applies; they do not stack.
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        assert_eq!(order["list_price"]["amount"], "30.00");
        assert_eq!(order["discount"]["amount"], "6.00");
        assert_eq!(order["amount"]["amount"], "24.00");
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        buyer.wait_for(&path, |v| v["state"] == "active").await;

        // The 20% one ends early; the 10% one still runs for renewals.
        op.expect_post(&format!("/v1/operator/promotions/{}/end", promo["id"].as_str().unwrap()), json!({}), StatusCode::NO_CONTENT).await;
        assert_problem(op.post(&format!("/v1/operator/promotions/{}/end", promo["id"].as_str().unwrap()), json!({})).await, StatusCode::NOT_FOUND, None).await;
        let renewal = buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        assert_eq!((renewal["discount"]["amount"].as_str(), renewal["amount"]["amount"].as_str()), (Some("3.00"), Some("27.00")));

        // After both have ended, the list price.
        app.advance(31 * 86_400).await;
        assert!(app.public_json(&format!("/v1/products/{product}")).await["promotion"].is_null());
        let full = buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        assert_eq!((full["discount"]["amount"].as_str(), full["amount"]["amount"].as_str()), (Some("0.00"), Some("30.00")));
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "19.00");
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }
}
