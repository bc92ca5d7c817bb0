//! Separation of duties: an operator never decides their own verification or merchant
//! application, never reviews their own product, and finance never tops up its own balance. Each
//! refusal is a 403 of its own kind and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

async fn refused(res: reqwest::Response) {
    let problem = assert_problem(res, StatusCode::FORBIDDEN, None).await;
    assert_eq!(problem["type"], "urn:souk:problem:own-case", "{problem}");
}

on_both_databases! {
    async fn operators_cannot_decide_their_own_cases(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        // Their own verification.
        let res = op
            .post("/v1/me/verification", json!({"legal_name": "Olivia", "phone": "+86 138 0000 0000", "id_number": "110101199001010000"}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        refused(
            op.post(
                &format!("/v1/operator/verifications/{}/decision", op.id),
                json!({"approve": true}),
            )
            .await,
        )
        .await;
        assert_eq!(op.json("/v1/me").await["verification"]["state"], "pending");
        // Their own balance.
        refused(
            op.post(
                "/v1/operator/top-ups",
                json!({"account_id": op.id, "amount": "100.00", "currency": "CNY"}),
            )
            .await,
        )
        .await;
        assert_eq!(op.json("/v1/balance").await["balances"], json!([]));
        // Another operator may decide it.
        let other = app
            .operator_with_roles("reviewer@souk.test", "reviewer")
            .await;
        let res = other
            .post(
                &format!("/v1/operator/verifications/{}/decision", op.id),
                json!({"approve": true}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        app.cleanup().await;
    }

    async fn a_reviewer_who_sells_cannot_review_their_own_product(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        // A merchant whose account also reviews (a small marketplace's staff selling too).
        let seller = app.merchant(&op, "seller@acme.test").await;
        app.grant_roles(&seller, "reviewer,operations").await;
        let res = seller
            .post("/v1/seller/products", product_body("Acme Notes", "https://acme.example/souk", "10.00"))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let p: Value = res.json().await.unwrap();
        let id = p["id"].as_str().unwrap();
        let rev = p["current"]["id"].as_str().unwrap();
        assert_eq!(
            seller.post(&format!("/v1/seller/products/{id}/submit"), json!({})).await.status(),
            StatusCode::OK
        );
        refused(
            seller
                .post(&format!("/v1/operator/reviews/{rev}/decision"), json!({"approve": true}))
                .await,
        )
        .await;
        let product = seller.json(&format!("/v1/seller/products/{id}")).await;
        assert_eq!(product["current"]["state"], "in_review");
        // Its merchant application, decided again, is its own case too.
        let merchant = seller.json("/v1/merchant").await;
        refused(
            seller
                .post(
                    &format!("/v1/operator/merchants/{}/decision", merchant["id"].as_str().unwrap()),
                    json!({"approve": false, "reason": "self"}),
                )
                .await,
        )
        .await;
        op.approve_review(rev).await;
        app.cleanup().await;
    }
}
