//! Roles and ownership: each endpoint checks who may call it and whose data it shows.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn roles_and_ownership_are_enforced(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let finance_only = app
            .operator_with_roles("finance@souk.test", "finance")
            .await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        for path in [
            "/v1/operator/verifications",
            "/v1/operator/merchants",
            "/v1/operator/reviews",
        ] {
            assert_problem(buyer.get(path).await, StatusCode::FORBIDDEN, None).await;
        }
        assert_problem(
            finance_only.get("/v1/operator/reviews").await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;
        assert_problem(
            buyer
                .post(
                    "/v1/operator/top-ups",
                    json!({"account_id": buyer.id, "amount": "5", "currency": "CNY"}),
                )
                .await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;
        assert_eq!(
            finance_only
                .post(
                    "/v1/operator/top-ups",
                    json!({"email": "buyer@souk.test", "amount": "5", "currency": "CNY"})
                )
                .await
                .status(),
            StatusCode::CREATED
        );
        // Individuals cannot become merchants; non-merchants cannot sell.
        assert_problem(buyer.post("/v1/merchant", json!({"company_name": "X", "support_email": "x@x.co", "support_phone": "1", "business_licence_number": "1"})).await, StatusCode::CONFLICT, None).await;
        assert_problem(
            buyer
                .post(
                    "/v1/seller/products",
                    product_body("X", "https://x.co", "1"),
                )
                .await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;

        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let other_seller = app.merchant(&op, "seller@other.test").await;
        let (product, plan, _) = app
            .listed_product(&op, &seller, "Notes", &endpoint, "10")
            .await;
        assert_problem(
            other_seller
                .get(&format!("/v1/seller/products/{product}"))
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            other_seller
                .post(&format!("/v1/seller/products/{product}/delist"), json!({}))
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            other_seller
                .put(
                    &format!("/v1/seller/products/{product}/draft"),
                    product_body("Mine now", "https://x.co", "1"),
                )
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;

        app.top_up(&op, &buyer, "100").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let other_buyer = app.verified_buyer(&op, "other@souk.test").await;
        assert_problem(
            other_buyer
                .get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            other_buyer
                .get(&format!(
                    "/v1/instances/{}",
                    order["instance_id"].as_str().unwrap()
                ))
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            other_buyer
                .post(
                    &format!(
                        "/v1/instances/{}/renew",
                        order["instance_id"].as_str().unwrap()
                    ),
                    json!({"periods": 1}),
                )
                .await,
            StatusCode::NOT_FOUND,
            None,
        )
        .await;

        // An unverified buyer cannot buy.
        let unverified = app.sign_up("individual", "new@souk.test").await;
        assert_problem(
            unverified.order(&plan, 1, None).await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;
        app.cleanup().await;
    }
}
