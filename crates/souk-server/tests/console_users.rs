//! IAM users with console access: the account gives one a password, the user signs in with the
//! account's e-mail, its own name and that password, and its session (API and pages alike) does
//! only what its policy allows.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

async fn sign_in(app: &TestApp, email: &str, user: &str, password: &str) -> (User, StatusCode) {
    let u = User::new(&app.base);
    let res = u
        .post(
            "/v1/sessions",
            json!({"email": email, "user": user, "password": password}),
        )
        .await;
    let status = res.status();
    (u, status)
}

on_both_databases! {
    async fn an_iam_user_signs_in_to_the_console_and_does_what_its_policy_allows(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _) = stub_seller("000000", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "30.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;

        // Console access needs a password, a good one, and only console access takes one.
        let bob = json!({"name": "billing-bob", "console_access": true, "policy": "billing"});
        assert_problem(buyer.post("/v1/iam/users", bob.clone()).await, StatusCode::UNPROCESSABLE_ENTITY, Some("password")).await;
        let mut short = bob.clone();
        short["password"] = json!("short");
        assert_problem(buyer.post("/v1/iam/users", short).await, StatusCode::UNPROCESSABLE_ENTITY, Some("password")).await;
        assert_problem(
            buyer.post("/v1/iam/users", json!({"name": "keys", "programmatic_access": true, "policy": "billing", "password": "a-long-enough-password"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        )
        .await;
        let mut good = bob.clone();
        good["password"] = json!("bob-console-password");
        buyer.expect_post("/v1/iam/users", good, StatusCode::CREATED).await;
        buyer.expect_post("/v1/iam/users", json!({"name": "reader", "console_access": true, "policy": "read_only", "password": "reader-console-password"}), StatusCode::CREATED).await;

        // Wrong password, unknown user, or the account's own password: all answered alike.
        for (user, password) in [("billing-bob", "not-the-password"), ("nobody", "bob-console-password"), ("billing-bob", "correct horse battery")] {
            let (_, status) = sign_in(&app, "buyer@souk.test", user, password).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
        }
        let (bob, status) = sign_in(&app, "BUYER@souk.test", "billing-bob", "bob-console-password").await;
        assert_eq!(status, StatusCode::OK);

        // Billing: the balance and orders, paid from the account.
        assert_eq!(bob.json("/v1/balance").await["balances"][0]["amount"], "100.00");
        let order: Value = bob.order(&plan, 1, None).await.json().await.unwrap();
        assert_eq!(order["amount"]["amount"], "30.00", "{order}");
        let mine = buyer.json("/v1/orders").await;
        assert_eq!(mine["items"][0]["id"], order["id"], "the order is the account's");
        // Not the seller's side, not IAM.
        let refused = assert_problem(bob.post("/v1/seller/products", json!({})).await, StatusCode::FORBIDDEN, None).await;
        assert!(refused["detail"].as_str().unwrap().contains("billing-bob"), "{refused}");
        assert_problem(bob.post("/v1/iam/users", json!({"name": "x", "programmatic_access": true, "policy": "full_access"})).await, StatusCode::FORBIDDEN, None).await;

        // The pages: its name in the bar, allowed pages open, others refused with a reason.
        let orders = bob.get("/orders").await;
        assert_eq!(orders.status(), StatusCode::OK);
        let html = orders.text().await.unwrap();
        assert!(html.contains("billing-bob (buyer)"), "{html}");
        // The menu offers what the policy opens, and not what it does not.
        assert!(html.contains(r#"<a href="/orders">Orders</a>"#) && html.contains(r#"<a href="/balance">Balance</a>"#), "{html}");
        assert!(!html.contains(r#"<a href="/access-keys">"#) && !html.contains(r#"<a href="/seller">"#), "{html}");
        for page in ["/seller", "/access-keys", "/console"] {
            let res = bob.get(page).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{page}");
            assert!(res.text().await.unwrap().contains("IAM user billing-bob"), "{page}");
        }

        // Read-only reads everything and changes nothing.
        let (reader, status) = sign_in(&app, "buyer@souk.test", "reader", "reader-console-password").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reader.json("/v1/orders").await["items"].as_array().unwrap().len(), 1);
        assert_problem(reader.order(&plan, 1, None).await, StatusCode::FORBIDDEN, None).await;
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "70.00");

        // Signing out everywhere ends only its own sessions, not the account's.
        let res = bob.client.delete(format!("{}/v1/sessions", app.base)).send().await.unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        assert_eq!(bob.get("/v1/balance").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(buyer.get("/v1/balance").await.status(), StatusCode::OK);
        app.cleanup().await;
    }

    async fn metrics_and_the_test_clock_answer_an_operators_full_access_users_only(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        op.expect_post("/v1/iam/users", json!({"name": "ops-reader", "console_access": true, "policy": "read_only", "password": "reader-console-password"}), StatusCode::CREATED).await;
        op.expect_post("/v1/iam/users", json!({"name": "ops-admin", "console_access": true, "policy": "full_access", "password": "admin-console-password"}), StatusCode::CREATED).await;
        let (reader, status) = sign_in(&app, "operator@souk.test", "ops-reader", "reader-console-password").await;
        assert_eq!(status, StatusCode::OK);
        let (admin, status) = sign_in(&app, "operator@souk.test", "ops-admin", "admin-console-password").await;
        assert_eq!(status, StatusCode::OK);
        for path in ["/metrics", "/v1/test/clock"] {
            assert_eq!(op.get(path).await.status(), StatusCode::OK, "{path}");
            assert_eq!(admin.get(path).await.status(), StatusCode::OK, "{path}");
            assert_problem(reader.get(path).await, StatusCode::FORBIDDEN, None).await;
        }
        // Moving the clock is the same: refused to the read-only user, and the clock stays.
        let before = op.json("/v1/test/clock").await;
        assert_problem(reader.post("/v1/test/clock", json!({"advance_seconds": 86400})).await, StatusCode::FORBIDDEN, None).await;
        assert_eq!(op.json("/v1/test/clock").await, before);
        app.cleanup().await;
    }
}
