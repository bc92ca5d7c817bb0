//! The lifecycle through the API: renewals in grace, delisting with running instances.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn renewal_in_grace_reactivates_and_delisting_leaves_running_instances_alone(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (seller, product, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        let expiry: chrono::DateTime<chrono::Utc> =
            i["expires_at"].as_str().unwrap().parse().unwrap();

        // Delisted: no new purchases, but the running instance goes on and can be renewed.
        assert_eq!(
            seller
                .post(&format!("/v1/seller/products/{product}/delist"), json!({}))
                .await
                .status(),
            StatusCode::OK
        );
        app.advance(32 * 86_400).await;
        buyer.wait_for(&path, |v| v["state"] == "grace").await;
        let renew = |key: &'static str| {
            buyer
                .client
                .post(format!("{}{path}/renew", app.base))
                .header("Idempotency-Key", key)
                .json(&json!({"periods": 2}))
                .send()
        };
        let first = renew("renew-1").await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["amount"]["amount"], "60.00");
        // A retry answers the same renewal and charges once.
        let again: Value = renew("renew-1").await.unwrap().json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        let new_expiry: chrono::DateTime<chrono::Utc> =
            i["expires_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            new_expiry,
            expiry.checked_add_months(chrono::Months::new(2)).unwrap()
        );
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "10.00"
        );
        // Renewing beyond the balance is a 402 that changes nothing.
        assert_problem(
            buyer
                .post(&format!("{path}/renew"), json!({"periods": 1}))
                .await,
            StatusCode::PAYMENT_REQUIRED,
            None,
        )
        .await;
        assert_eq!(buyer.json(&path).await["expires_at"], i["expires_at"]);
        // The grace period was left without freezing: only the renewal reached the seller.
        let timeline = buyer
            .wait_for(&path, |v| {
                v["timeline"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "seller.refreshed")
            })
            .await;
        let kinds: Vec<&str> = timeline["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            !kinds.contains(&"seller.frozen") && !kinds.contains(&"seller.unfrozen"),
            "{kinds:?}"
        );
        assert!(app
            .state
            .store
            .ledger_mismatches()
            .await
            .unwrap()
            .is_empty());
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn the_buyer_is_reminded_a_week_and_a_day_before_each_expiry(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_seller, _product, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let i = buyer.wait_for(&path, |v| v["state"] == "active").await;
        let expiry: chrono::DateTime<chrono::Utc> = i["expires_at"].as_str().unwrap().parse().unwrap();
        let reminders = |v: &Value| -> Vec<String> {
            v["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "instance.expiring")
                .map(|e| e["detail"].as_str().unwrap().to_owned())
                .collect()
        };
        let to = |left: chrono::Duration| (expiry - left - app.state.now()).num_seconds();
        assert!(reminders(&i).is_empty());

        app.advance(to(chrono::Duration::days(7) - chrono::Duration::hours(1))).await;
        let v = buyer.wait_for(&path, |v| reminders(v).len() == 1).await;
        assert!(reminders(&v)[0].starts_with("expires in 7 days"), "{:?}", reminders(&v));
        // Another pass within the week sends nothing more.
        app.advance(3600).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(reminders(&buyer.json(&path).await).len(), 1);
        app.advance(to(chrono::Duration::hours(12))).await;
        let v = buyer.wait_for(&path, |v| reminders(v).len() == 2).await;
        assert!(reminders(&v)[1].starts_with("expires in a day"), "{:?}", reminders(&v));

        // A renewal's new expiry gets its own reminders.
        buyer.expect_post(&format!("{path}/renew"), json!({"periods": 1}), StatusCode::CREATED).await;
        let new_expiry = expiry.checked_add_months(chrono::Months::new(1)).unwrap();
        app.advance((new_expiry - chrono::Duration::days(6) - app.state.now()).num_seconds()).await;
        let v = buyer.wait_for(&path, |v| reminders(v).len() == 3).await;
        assert!(reminders(&v)[2].contains(&new_expiry.format("%Y-%m-%d").to_string()), "{:?}", reminders(&v));
        app.cleanup().await;
    }
}
