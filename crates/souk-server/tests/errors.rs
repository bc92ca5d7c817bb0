//! One catalogue of errors: each kind of refusal has its own stable problem `type`, so a client
//! can tell a reused key from a duplicate e-mail from a refused transition from "not on sale".

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

async fn kind(res: reqwest::Response, status: StatusCode, field: Option<&str>) -> String {
    assert_problem(res, status, field).await["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("urn:souk:problem:")
        .to_owned()
}

on_both_databases! {
    async fn each_kind_of_refusal_has_its_own_problem_type(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (seller, product, plan) = app
            .listed_product_of_new_merchant(&op, "https://acme.example/souk")
            .await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;

        let again = TestApp::client()
            .post(format!("{}/v1/accounts", app.base))
            .json(&json!({"kind": "individual", "name": "B", "email": "buyer@souk.test", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(kind(again, StatusCode::CONFLICT, None).await, "duplicate-email");

        let first = buyer.order(&plan, 1, Some("k-1")).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let reused = buyer.order(&plan, 2, Some("k-1")).await;
        assert_eq!(
            kind(reused, StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")).await,
            "idempotency-key-reused"
        );

        let poor = app.verified_buyer(&op, "poor@souk.test").await;
        let short = poor.order(&plan, 1, None).await;
        assert_eq!(kind(short, StatusCode::PAYMENT_REQUIRED, None).await, "insufficient-balance");

        let delisted = seller
            .post(&format!("/v1/seller/products/{product}/delist"), json!({}))
            .await;
        assert_eq!(delisted.status(), StatusCode::OK);
        let off_sale = buyer.order(&plan, 1, None).await;
        assert_eq!(kind(off_sale, StatusCode::CONFLICT, None).await, "not-on-sale");
        let twice = seller
            .post(&format!("/v1/seller/products/{product}/delist"), json!({}))
            .await;
        assert_eq!(kind(twice, StatusCode::CONFLICT, None).await, "transition-refused");

        let bad = buyer.order("pln_nope", 1, None).await;
        assert_eq!(kind(bad, StatusCode::UNPROCESSABLE_ENTITY, Some("plan_id")).await, "validation");
        let anonymous = TestApp::client().get(format!("{}/v1/me", app.base)).send().await.unwrap();
        assert_eq!(kind(anonymous, StatusCode::UNAUTHORIZED, None).await, "unauthenticated");
        let order: Value = buyer.json("/v1/orders").await["items"][0].clone();
        assert_eq!(
            kind(poor.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap())).await, StatusCode::NOT_FOUND, None).await,
            "not-found"
        );
        app.cleanup().await;
    }
}
