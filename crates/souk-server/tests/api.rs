//! The API end to end over HTTP, on SQLite and (with SOUK_TEST_POSTGRES_URL) PostgreSQL.

mod common;

use common::{assert_problem, product_body, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_seller::{
    AppInfo, InstanceInfo, Keys, NewInstance, Refresh, ResultCode, Seller, SellerAnswer,
    StatusChange,
};
use souk_store::testing::backends;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A seller endpoint for tests: answers `newInstance` with `code` after failing `fail_first`
/// calls with HTTP 500, and counts the calls it saw.
struct StubSeller {
    code: &'static str,
    fail_first: usize,
    /// The first calls answer only after 2 s: longer than souk waits in the timeout test.
    stall_first: usize,
    calls: AtomicUsize,
}

impl Seller for StubSeller {
    async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
        SellerAnswer {
            instance_id: Some(format!("stub-{}", &req.business_id[4..12])),
            ..SellerAnswer {
                result_code: self.code.into(),
                ..Default::default()
            }
        }
    }
    async fn query_instance(&self, ids: Vec<String>) -> SellerAnswer {
        SellerAnswer {
            info: Some(
                ids.into_iter()
                    .map(|i| InstanceInfo {
                        app_info: Some(AppInfo {
                            front_end_url: Some(format!("https://stub.test/{i}")),
                            ..Default::default()
                        }),
                        instance_id: i,
                    })
                    .collect(),
            ),
            ..SellerAnswer::code(ResultCode::Success, "ok")
        }
    }
    async fn refresh_instance(&self, _: Refresh) -> SellerAnswer {
        SellerAnswer::code(ResultCode::Success, "ok")
    }
    async fn update_instance_status(&self, _: String, _: StatusChange) -> SellerAnswer {
        SellerAnswer::code(ResultCode::Success, "ok")
    }
    async fn release_instance(&self, _: String, _: String) -> SellerAnswer {
        SellerAnswer::code(ResultCode::Success, "ok")
    }
}

/// Serves a stub seller; returns its endpoint URL. The first `fail_first` calls get HTTP 500.
async fn stub_seller(
    code: &'static str,
    fail_first: usize,
    key: &str,
) -> (String, Arc<StubSeller>) {
    serve_stub(
        StubSeller {
            code,
            fail_first,
            stall_first: 0,
            calls: AtomicUsize::new(0),
        },
        key,
    )
    .await
}

async fn serve_stub(stub: StubSeller, key: &str) -> (String, Arc<StubSeller>) {
    let stub = Arc::new(stub);
    let counter = stub.clone();
    let endpoint = souk_seller::router(stub.clone(), Keys::new([key.to_owned()]));
    let app = axum::Router::new()
        .nest_service("/souk", endpoint)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    let n = counter.calls.fetch_add(1, Ordering::SeqCst);
                    if n < counter.stall_first {
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                    if n < counter.fail_first {
                        return axum::response::IntoResponse::into_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                        );
                    }
                    next.run(req).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/souk"), stub)
}

const KEY: &str = "stub-signing-key-0123456789";

/// A new merchant `seller@acme.test` with a listed product calling `endpoint`.
async fn product_with(
    app: &TestApp,
    op: &common::User,
    endpoint: &str,
    monthly: &str,
) -> (common::User, String, String) {
    let seller = app.merchant(op, "seller@acme.test").await;
    let (id, plan) = listed_by(app, op, &seller, endpoint, monthly).await;
    (seller, id, plan)
}

/// A listed product of `seller` calling `endpoint` with [`KEY`]; returns (product, plan).
async fn listed_by(
    app: &TestApp,
    op: &common::User,
    seller: &common::User,
    endpoint: &str,
    monthly: &str,
) -> (String, String) {
    let res = seller.post("/v1/seller/products", json!({"signing_key": KEY, "name": "Stub", "summary": "s", "category": "security", "support_contact": "x", "endpoint_url": endpoint, "plans": [{"name": "P", "currency": "CNY", "monthly_price": monthly}]})).await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
    let p: Value = res.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    seller
        .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
        .await;
    let rev = p["current"]["id"].as_str().unwrap().to_owned();
    op.approve_review(&rev).await;
    let plan = app.state.store.active_plans(&id).await.unwrap()[0]
        .id
        .clone();
    (id, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_purchases_against_a_balance_for_five_sell_exactly_five() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "100.00").await;
        let buyer = Arc::new(app.verified_buyer(&op, "buyer@souk.test").await);
        app.top_up(&op, &buyer, "500.00").await;
        let mut tasks = Vec::new();
        for i in 0..20 {
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
        assert_eq!((created, refused), (5, 15), "{backend:?}");
        let balance = buyer.json("/v1/balance").await;
        assert_eq!(balance["balances"][0]["amount"], "0.00");
        assert_eq!(
            buyer.json("/v1/orders?limit=100").await["items"]
                .as_array()
                .unwrap()
                .len(),
            5
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

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_order_and_charges_once() {
    for backend in backends() {
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

#[tokio::test]
async fn too_little_balance_is_a_402_that_changes_nothing() {
    for backend in backends() {
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

#[tokio::test]
async fn a_seller_refusal_fails_the_instance_and_refunds_the_order() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000106", 0, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "80.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let ins = order["instance_id"].as_str().unwrap();
        let i = buyer
            .wait_for(&format!("/v1/instances/{ins}"), |v| v["state"] == "failed")
            .await;
        assert!(
            i["failure_reason"].as_str().unwrap().contains("sold out"),
            "{i}"
        );
        let order = buyer
            .json(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
            .await;
        assert_eq!(order["state"], "refunded");
        assert!(order["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "instance.failed"));
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "100.00"
        );
        assert_eq!(
            stub.calls.load(Ordering::SeqCst),
            1,
            "a final refusal is not retried"
        );
        // /metrics answers operators (and the metrics token), not anonymous callers.
        let metrics = op.get("/metrics").await.text().await.unwrap();
        for line in [
            "souk_seller_calls_total{activity=\"newInstance\",outcome=\"final\"} 1",
            "souk_instances{state=\"failed\"} 1",
            "souk_jobs{state=\"dead\"} 1",
            "souk_http_requests_total{method=\"POST\",status=\"201\"}",
        ] {
            assert!(
                metrics.contains(line),
                "{line} missing from /metrics:\n{metrics}"
            );
        }
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

#[tokio::test]
async fn a_failing_seller_is_retried_with_backoff_until_it_answers() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 2, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "10.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        // The first attempt fails; the retry waits for the backoff, which only the clock moves.
        for _ in 0..200 {
            if stub.calls.load(Ordering::SeqCst) >= 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(buyer.json(&path).await["state"], "provisioning");
        // Each step of the clock makes the next retry due; a retry only happens when due.
        let ready = |v: &Value| v["state"] == "active" && v["access"]["front_end_url"].is_string();
        for _ in 0..40 {
            if ready(&buyer.json(&path).await) {
                break;
            }
            app.advance(600).await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Active; its newInstance answer had no access data, so queryInstance filled it in.
        let i = buyer.wait_for(&path, ready).await;
        let sid = i["seller_instance_id"].as_str().unwrap();
        assert!(sid.starts_with("stub-"));
        assert_eq!(
            i["access"]["front_end_url"],
            format!("https://stub.test/{sid}")
        );
        // Two failed attempts, the successful newInstance, then queryInstance for the access data.
        assert_eq!(stub.calls.load(Ordering::SeqCst), 4);
        app.cleanup().await;
    }
}

#[tokio::test]
async fn a_seller_that_never_answers_fails_after_the_retry_budget_and_refunds() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", usize::MAX, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "10.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let budget = app.state.settings.job_max_attempts as usize;
        for _ in 0..budget * 4 {
            if buyer.json(&path).await["state"] == "failed" {
                break;
            }
            app.advance(3600).await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let i = buyer.wait_for(&path, |v| v["state"] == "failed").await;
        assert!(
            i["failure_reason"].as_str().unwrap().contains("attempts"),
            "{i}"
        );
        assert_eq!(stub.calls.load(Ordering::SeqCst), budget);
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "10.00"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    for backend in backends() {
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
            !app.state.store.has_accounts().await.unwrap(),
            "nothing was created"
        );

        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut body = product_body("Notes", "https://acme.test/souk", "x");
        assert_problem(
            seller.post("/v1/seller/products", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("plans[0].monthly_price"),
        )
        .await;
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

#[tokio::test]
async fn roles_and_ownership_are_enforced() {
    for backend in backends() {
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

#[tokio::test]
async fn review_is_due_in_three_working_days_and_change_requests_keep_the_listed_version() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let created: Value = seller
            .post(
                "/v1/seller/products",
                product_body("Notes", "https://acme.test/souk", "10"),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["state"], "draft");
        assert_eq!(created["current"]["state"], "draft");
        assert_eq!(created["signing_key"].as_str().unwrap().len(), 64);
        let submitted: Value = seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await
            .json()
            .await
            .unwrap();
        let rev = &submitted["current"];
        let submitted_at: chrono::DateTime<chrono::Utc> =
            rev["submitted_at"].as_str().unwrap().parse().unwrap();
        let due: chrono::DateTime<chrono::Utc> = rev["due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            due,
            souk_core::calendar::WorkCalendar::default().add_working_days(submitted_at, 3)
        );
        assert!(due - submitted_at >= chrono::Duration::days(3));
        // Editing while in review is refused.
        assert_problem(
            seller
                .put(
                    &format!("/v1/seller/products/{id}/draft"),
                    product_body("Notes 2", "https://acme.test/souk", "10"),
                )
                .await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["overdue"], false);
        assert_eq!(queue[0]["kind"], "new");
        app.advance(6 * 86_400).await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["overdue"], true);
        let rev_id = queue[0]["revision_id"].as_str().unwrap().to_owned();
        assert_problem(
            op.post(
                &format!("/v1/operator/reviews/{rev_id}/decision"),
                json!({"approve": false}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reasons"),
        )
        .await;
        let rejected: Value = op
            .post(
                &format!("/v1/operator/reviews/{rev_id}/decision"),
                json!({"approve": false, "reasons": ["the logo is missing"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rejected["state"], "rejected");
        let mine = seller.json(&format!("/v1/seller/products/{id}")).await;
        assert_eq!(mine["current"]["reasons"], json!(["the logo is missing"]));
        // Rejected: editable again, resubmitted, approved, listed.
        assert_eq!(
            seller
                .put(
                    &format!("/v1/seller/products/{id}/draft"),
                    product_body("Notes", "https://acme.test/souk", "12")
                )
                .await
                .status(),
            StatusCode::OK
        );
        seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await;
        let rev_id = op.json("/v1/operator/reviews").await[0]["revision_id"]
            .as_str()
            .unwrap()
            .to_owned();
        op.approve_review(&rev_id).await;
        let public = TestApp::client();
        let listed: Value = public
            .get(format!("{}/v1/products/{id}", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["plans"][0]["monthly_price"], "12");
        let plan_id = listed["plans"][0]["id"].as_str().unwrap().to_owned();

        // A change request: the listed version stays until the change is approved.
        let mut change = product_body("Notes Pro", "https://acme.test/souk", "15");
        change["plans"][0]["id"] = json!(plan_id);
        let res = seller
            .put(&format!("/v1/seller/products/{id}/draft"), change)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let mine: Value = res.json().await.unwrap();
        assert_eq!(
            (
                mine["current"]["kind"].as_str(),
                mine["current"]["state"].as_str(),
                mine["state"].as_str()
            ),
            (Some("change"), Some("draft"), Some("listed"))
        );
        seller
            .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
            .await;
        let queue = op.json("/v1/operator/reviews").await;
        assert_eq!(queue[0]["kind"], "change");
        app.state.catalog.invalidate().await;
        let still: Value = public
            .get(format!("{}/v1/products/{id}", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(still["name"], "Notes");
        op.post(
            &format!(
                "/v1/operator/reviews/{}/decision",
                queue[0]["revision_id"].as_str().unwrap()
            ),
            json!({"approve": true}),
        )
        .await;
        let changed: Value = public
            .get(format!("{}/v1/products/{id}", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (
                changed["name"].as_str(),
                changed["plans"][0]["monthly_price"].as_str()
            ),
            (Some("Notes Pro"), Some("15"))
        );
        assert_eq!(
            changed["plans"][0]["id"],
            json!(plan_id),
            "the plan keeps its id"
        );

        // Delisting stops new purchases.
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "100").await;
        assert_eq!(
            seller
                .post(&format!("/v1/seller/products/{id}/delist"), json!({}))
                .await
                .status(),
            StatusCode::OK
        );
        assert_problem(
            public
                .get(format!("{}/v1/products/{id}", app.base))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_problem(
            buyer.order(&plan_id, 1, None).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        assert_problem(
            seller
                .post(&format!("/v1/seller/products/{id}/delist"), json!({}))
                .await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        app.cleanup().await;
    }
}

#[tokio::test]
async fn catalog_searches_filters_and_pages() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        for (name, price) in [
            ("Alpha Notes", "10"),
            ("Beta Vault", "50"),
            ("Gamma Notes", "200"),
        ] {
            app.listed_product(&op, &seller, name, "https://acme.test/souk", price)
                .await;
            // Newest listings come first; a second apart keeps that order certain.
            app.advance(1).await;
        }
        let c = TestApp::client();
        let get = |q: &str| {
            let c = c.clone();
            let url = format!("{}/v1/products{q}", app.base);
            async move {
                c.get(url)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let names = |v: &Value| {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("").await["total"], 3);
        assert_eq!(
            names(&get("?q=notes").await),
            vec!["Gamma Notes", "Alpha Notes"]
        );
        assert_eq!(names(&get("?q=vault%20beta").await), vec!["Beta Vault"]);
        assert_eq!(
            names(&get("?min_price=20&max_price=60").await),
            vec!["Beta Vault"]
        );
        assert_eq!(
            names(&get("?category=collaboration&currency=CNY&max_price=10").await),
            vec!["Alpha Notes"]
        );
        assert_eq!(get("?category=security").await["total"], 0);
        let page1 = get("?limit=2").await;
        assert_eq!(page1["items"].as_array().unwrap().len(), 2);
        let page2 = get(&format!(
            "?limit=2&cursor={}",
            page1["next_cursor"].as_str().unwrap()
        ))
        .await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert!(page2["next_cursor"].is_null());
        app.cleanup().await;
    }
}

#[tokio::test]
async fn openapi_document_is_served_and_the_test_clock_needs_its_flag() {
    let app = TestApp::spawn_with(
        souk_store::Backend::Sqlite,
        souk_server::Settings {
            test_clock: false,
            ..souk_server::Settings::for_tests()
        },
    )
    .await;
    let c = TestApp::client();
    let doc: Value = c
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/orders",
        "/v1/instances/{instance_id}/renew",
        "/v1/operator/reviews/{revision_id}/decision",
        "/v1/products",
        "/healthz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "operationIds must be unique: {ids:?}");
    assert_problem(
        c.post(format!("{}/v1/test/clock", app.base))
            .json(&json!({"advance_seconds": 1}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let health: Value = c
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    app.cleanup().await;
}

#[tokio::test]
async fn rejections_need_a_reason_and_can_be_answered_by_resubmitting() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let u = app.sign_up("enterprise", "ent@acme.test").await;
        let details = json!({"legal_name": "Li", "phone": "+86 21 0000 0000", "company_name": "Acme Ltd", "registration_number": "9131"});
        assert_eq!(
            u.post("/v1/me/verification", details.clone())
                .await
                .status(),
            StatusCode::ACCEPTED
        );
        // Submitting twice while pending is refused.
        assert_problem(
            u.post("/v1/me/verification", details.clone()).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        let decide = format!("/v1/operator/verifications/{}/decision", u.id);
        assert_problem(
            op.post(&decide, json!({"approve": false})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("reason"),
        )
        .await;
        let rejected: Value = op
            .post(
                &decide,
                json!({"approve": false, "reason": "the licence scan is unreadable"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rejected["verification"]["state"], "rejected");
        let me = u.json("/v1/me").await;
        assert_eq!(
            me["verification"]["reason"],
            "the licence scan is unreadable"
        );
        // Not verified: no merchant application yet.
        let application = json!({"company_name": "Acme Ltd", "support_email": "s@acme.test", "support_phone": "400", "business_licence_number": "BL"});
        assert_problem(
            u.post("/v1/merchant", application.clone()).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;
        assert_eq!(
            u.post("/v1/me/verification", details).await.status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            op.post(&decide, json!({"approve": true})).await.status(),
            StatusCode::OK
        );
        assert_problem(
            op.post(&decide, json!({"approve": true})).await,
            StatusCode::CONFLICT,
            None,
        )
        .await;

        let m: Value = u
            .post("/v1/merchant", application.clone())
            .await
            .json()
            .await
            .unwrap();
        let decide = format!(
            "/v1/operator/merchants/{}/decision",
            m["id"].as_str().unwrap()
        );
        assert_eq!(op.json("/v1/operator/merchants").await[0]["id"], m["id"]);
        let rejected: Value = op
            .post(
                &decide,
                json!({"approve": false, "reason": "no support phone answers"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (rejected["state"].as_str(), rejected["reason"].as_str()),
            (Some("rejected"), Some("no support phone answers"))
        );
        assert_problem(
            u.post(
                "/v1/seller/products",
                product_body("X", "https://x.co", "1"),
            )
            .await,
            StatusCode::FORBIDDEN,
            None,
        )
        .await;
        let again: Value = u
            .post("/v1/merchant", application)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (again["state"].as_str(), again["id"].as_str()),
            (Some("pending"), m["id"].as_str())
        );
        assert_eq!(
            op.post(&decide, json!({"approve": true})).await.status(),
            StatusCode::OK
        );
        assert_eq!(u.json("/v1/merchant").await["state"], "approved");

        // Logging out ends the session.
        assert_eq!(
            u.client
                .delete(format!("{}/v1/sessions/current", app.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
        assert_problem(u.get("/v1/me").await, StatusCode::UNAUTHORIZED, None).await;
        app.cleanup().await;
    }
}

#[tokio::test]
async fn renewal_in_grace_reactivates_and_delisting_leaves_running_instances_alone() {
    for backend in backends() {
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

#[tokio::test]
async fn a_seller_that_answers_too_late_is_retried() {
    for backend in backends() {
        let settings = souk_server::Settings {
            seller_timeout: std::time::Duration::from_millis(300),
            ..souk_server::Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let stub = StubSeller {
            code: "000000",
            fail_first: 0,
            stall_first: 1,
            calls: AtomicUsize::new(0),
        };
        let (endpoint, stub) = serve_stub(stub, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "10.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        // The first answer comes after souk stopped waiting: still provisioning, retry pending.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
        assert_eq!(buyer.json(&path).await["state"], "provisioning");
        for _ in 0..40 {
            if buyer.json(&path).await["state"] == "active" {
                break;
            }
            app.advance(600).await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        buyer.wait_for(&path, |v| v["state"] == "active").await;
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "0.00"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn a_slow_seller_does_not_hold_up_other_sellers() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let slow = StubSeller {
            code: "000000",
            fail_first: 0,
            stall_first: 1,
            calls: AtomicUsize::new(0),
        };
        let (slow_endpoint, slow) = serve_stub(slow, KEY).await;
        let (fast_endpoint, _fast) = stub_seller("000000", 0, KEY).await;
        let (_, _, slow_plan) = product_with(&app, &op, &slow_endpoint, "10.00").await;
        let other = app.merchant(&op, "other@seller.test").await;
        let (_, fast_plan) = listed_by(&app, &op, &other, &fast_endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "20.00").await;

        let slow_order: Value = buyer.order(&slow_plan, 1, None).await.json().await.unwrap();
        for _ in 0..200 {
            if slow.calls.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let fast_order: Value = buyer.order(&fast_plan, 1, None).await.json().await.unwrap();
        let fast_path = format!(
            "/v1/instances/{}",
            fast_order["instance_id"].as_str().unwrap()
        );
        buyer.wait_for(&fast_path, |v| v["state"] == "active").await;
        // The slow seller is still answering its first call (it takes 2 s).
        let slow_path = format!(
            "/v1/instances/{}",
            slow_order["instance_id"].as_str().unwrap()
        );
        assert_eq!(buyer.json(&slow_path).await["state"], "provisioning");
        buyer.wait_for(&slow_path, |v| v["state"] == "active").await;
        app.cleanup().await;
    }
}

#[tokio::test]
async fn a_retried_top_up_credits_once() {
    for backend in backends() {
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
