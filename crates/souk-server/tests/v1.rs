//! A product whose endpoint speaks the older V1 protocol: the same lifecycle reaches it as GET
//! calls signed by `authToken`, `newInstance` carries the subscription's terms, every answer must
//! be signed, and the seller centre's endpoint check speaks V1 to it.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn a_v1_product_is_provisioned_renewed_and_released_in_v1(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Legacy", &endpoint, "30.00");
        body["signing_key"] = json!(KEY);
        body["protocol"] = json!("v3");
        assert_problem(seller.post("/v1/seller/products", body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, Some("protocol")).await;
        body["protocol"] = json!("v1");
        let (product, plan, _) = app.listed_product_with(&op, &seller, body).await;
        let own: Value = seller.json(&format!("/v1/seller/products/{product}")).await;
        assert!(own.to_string().contains(r#""protocol":"v1""#), "{own}");

        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "200.00").await;
        let order: Value = buyer.order(&plan, 3, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert!(i["seller_instance_id"].as_str().unwrap().starts_with("stub-"), "{i}");
        assert_eq!(stub.heard(), ["v1 new for buyer: month x3 trial 0"]);

        buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        buyer.expect_post(&format!("{path}/unsubscribe"), json!({"scope": "everything"}), StatusCode::OK).await;
        for _ in 0..400 {
            if stub.heard().len() >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let heard = stub.heard();
        assert_eq!(heard.len(), 3, "{heard:?}");
        assert!(heard[1].starts_with("refresh Renewal "), "{heard:?}");
        assert!(heard[2].starts_with("release stub-"), "{heard:?}");

        // The seller centre's check speaks V1 to it and passes.
        let report: Value = seller.post(&format!("/v1/seller/products/{product}/check-endpoint"), json!({})).await.json().await.unwrap();
        assert_eq!(report["passed"], true, "{report}");
        assert_eq!(report["checks"].as_array().unwrap().len(), 12);
        app.assert_ledger_balances().await;
        app.cleanup().await;
    }

    async fn a_v1_answer_signed_with_another_key_is_a_failed_attempt(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        // The endpoint knows another key: it refuses souk's calls, and its signatures do not match.
        let (endpoint, _stub) = stub_seller("000000", 0, "another-key-0123456789").await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Acme Legacy", &endpoint, "30.00");
        body["signing_key"] = json!(KEY);
        body["protocol"] = json!("v1");
        let (product, plan, _) = app.listed_product_with(&op, &seller, body).await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "200.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let instance = order["instance_id"].as_str().unwrap();
        let jobs = op.wait_for("/v1/operator/jobs?state=pending", |j| {
            j["items"].as_array().unwrap().iter().any(|job| job["instance_id"] == instance && job["attempts"] == 1)
        }).await;
        let job = jobs["items"].as_array().unwrap().iter().find(|job| job["instance_id"] == instance).unwrap().clone();
        assert!(job["last_error"].as_str().unwrap().contains("Body-Sign"), "{job}");
        assert_eq!(buyer.json(&format!("/v1/instances/{instance}")).await["state"], "provisioning");
        let report: Value = seller.post(&format!("/v1/seller/products/{product}/check-endpoint"), json!({})).await.json().await.unwrap();
        assert_eq!(report["passed"], false, "{report}");
        app.cleanup().await;
    }
}
