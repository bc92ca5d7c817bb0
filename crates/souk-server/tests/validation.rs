//! Bad input: every kind of endpoint names the field at fault and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;
use souk_store::on_both_databases;

on_both_databases! {
    async fn bad_input_names_the_field_and_changes_nothing(backend) {
        let app = TestApp::spawn(backend).await;
        let c = TestApp::client();
        let url = |p: &str| format!("{}{p}", app.base);
        let post = |p: &str, body: Value| c.post(url(p)).json(&body).send();
        assert_problem(post("/v1/accounts", json!({"kind": "individual", "name": "A", "email": "nope", "password": "correct horse battery"})).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, Some("email")).await;
        assert_problem(
            post(
                "/v1/accounts",
                json!({"kind": "individual", "name": "A", "email": "a@b.co"}),
            )
            .await
            .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        )
        .await;
        assert_problem(post("/v1/accounts", json!({"kind": "robot", "name": "A", "email": "a@b.co", "password": "correct horse battery"})).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, Some("kind")).await;
        assert_problem(
            post(
                "/v1/accounts",
                json!({"kind": "individual", "name": "A", "email": "a@b.co", "password": "short"}),
            )
            .await
            .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("password"),
        )
        .await;
        assert_problem(
            c.post(url("/v1/accounts"))
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            None,
        )
        .await;
        assert_problem(
            c.post(url("/v1/accounts"))
                .body("kind=individual")
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            None,
        )
        .await;
        assert_problem(
            c.get(url("/v1/nowhere")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            c.delete(url("/v1/products")).send().await.unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        )
        .await;
        assert_problem(
            c.get(url("/v1/products?limit=0")).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        )
        .await;
        assert_problem(
            c.get(url("/v1/products?limit=abc")).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        )
        .await;
        assert_problem(
            c.get(url("/v1/products?category=toys"))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("category"),
        )
        .await;
        assert_problem(
            c.get(url("/v1/products?min_price=cheap"))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("min_price"),
        )
        .await;
        assert_problem(
            c.get(url("/v1/me")).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
        assert_problem(
            post(
                "/v1/sessions",
                json!({"email": "a@b.co", "password": "whatever-password"}),
            )
            .await
            .unwrap(),
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
        assert!(
            !app.state.store.has_accounts_besides(souk_server::app::accounts::SYSTEM_EMAIL).await.unwrap(),
            "nothing was created"
        );

        let op = app.operator().await;
        // A cursor is the last id of a page this API gave out: anything else is refused rather
        // than read as some place in the list.
        let order_id = souk_core::ids::make_id("ord", 1_700_000_000_000, [1; 10]);
        for path in ["/v1/orders?cursor=zzz", "/v1/ledger?cursor=zzz", "/v1/instances?cursor=ins_x", "/v1/operator/audit?cursor=%00",
                     &format!("/v1/ledger?cursor={order_id}"), "/v1/operator/promotions?cursor=", "/v1/operator/jobs?state=dead&cursor=job_1"] {
            assert_problem(op.get(path).await, StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")).await;
        }
        assert_eq!(op.get(&format!("/v1/orders?cursor={order_id}")).await.status(), StatusCode::OK);
        assert_problem(op.get("/v1/notifications?before=zzz").await, StatusCode::UNPROCESSABLE_ENTITY, Some("before")).await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Notes", "https://acme.test/souk", "x");
        assert_problem(
            seller.post("/v1/seller/products", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plans[0].monthly_price"),
        )
        .await;
        // A price that charges nothing for one month is refused; 0 exactly is a free plan.
        body["plans"][0]["monthly_price"] = json!("0.004");
        let tiny = assert_problem(
            seller.post("/v1/seller/products", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plans[0].monthly_price"),
        )
        .await;
        assert!(tiny["detail"].as_str().unwrap().contains("free plan"), "{tiny}");
        body["plans"][0]["monthly_price"] = json!("10");
        body["endpoint_url"] = json!("http://acme.test/souk");
        assert_problem(
            seller.post("/v1/seller/products", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("endpoint_url"),
        )
        .await;
        body["endpoint_url"] = json!("https://acme.test/souk");
        body["plans"][0]["currency"] = json!("XYZ");
        assert_problem(
            seller.post("/v1/seller/products", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plans[0].currency"),
        )
        .await;
        body["plans"][0]["currency"] = json!("CNY");
        body["plans"][0].as_object_mut().unwrap().remove("name");
        assert_problem(
            seller.post("/v1/seller/products", body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plans[0].name"),
        )
        .await;
        assert_eq!(
            seller
                .json("/v1/seller/products")
                .await
                .as_array()
                .unwrap()
                .len(),
            0
        );

        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        assert_problem(
            buyer.order("pln_nothing", 1, None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plan_id"),
        )
        .await;
        assert_problem(
            buyer
                .post(
                    "/v1/orders",
                    json!({"plan_id": "p", "period": "week", "periods": 1}),
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("period"),
        )
        .await;
        assert_problem(
            buyer
                .post(
                    "/v1/orders",
                    json!({"plan_id": "p", "period": "month", "periods": -1}),
                )
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("periods"),
        )
        .await;
        assert_problem(
            op.post(
                "/v1/operator/top-ups",
                json!({"account_id": buyer.id, "amount": "-5", "currency": "CNY"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("amount"),
        )
        .await;
        assert_problem(
            op.post(
                "/v1/operator/top-ups",
                json!({"account_id": buyer.id, "amount": "1.001", "currency": "CNY"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("amount"),
        )
        .await;
        assert_problem(
            op.post(
                "/v1/operator/top-ups",
                json!({"account_id": buyer.id, "amount": "1", "currency": "BTC"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("currency"),
        )
        .await;
        assert_eq!(
            buyer.json("/v1/balance").await["balances"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_nul_character_is_bad_input_not_a_fault(backend) {
        // PostgreSQL cannot store or even compare text with U+0000: anywhere it arrives it is
        // the caller's mistake (400, 404 or 422), never a 500, and nothing changes.
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let c = TestApp::client();
        let client_error = |status: StatusCode, what: &str| {
            assert!(status.is_client_error(), "{what}: {status}");
        };
        for path in ["/v1/orders/ord_%00", "/v1/instances/ins_%00x", "/v1/notifications?before=ntf_%00", "/v1/orders?cursor=ord_%00"] {
            client_error(buyer.get(path).await.status(), path);
        }
        for page in ["/orders/x%00", "/instances/x%00"] {
            client_error(buyer.get(page).await.status(), page);
        }
        let res = c.post(format!("{}/v1/sessions", app.base)).json(&json!({"email": "a\u{0}@b.co", "password": "whatever it is"})).send().await.unwrap();
        client_error(res.status(), "log-in");
        client_error(buyer.post("/v1/orders", json!({"plan_id": "pln_\u{0}", "period": "month", "periods": 1})).await.status(), "order");
        client_error(op.post("/v1/operator/top-ups", json!({"email": "buyer\u{0}@souk.test", "amount": "5.00", "currency": "CNY", "reference": "nul"})).await.status(), "top-up");
        assert!(buyer.json("/v1/orders").await["items"].as_array().unwrap().is_empty());
        app.cleanup().await;
    }
}
