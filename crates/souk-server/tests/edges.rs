//! The edges a security review probes: throttling, seller egress, cookies and sessions,
//! cross-site writes, operational endpoints, inputs that used to panic, and sealed secrets. On
//! SQLite and (with SOUK_TEST_POSTGRES_URL) PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::{assert_problem, product_body, TestApp, User};
use souk_server::Settings;
use souk_store::on_both_databases;
use std::time::Duration;

const KEY: &str = "edges-signing-key-0123456789";

/// A listed product (signing key [`KEY`]) by a new merchant whose endpoint is `endpoint`, and a
/// verified buyer with 500.00 CNY; returns (buyer, plan id).
async fn buyer_of(app: &TestApp, op: &User, endpoint: &str) -> (User, String) {
    let seller = app.merchant(op, "seller@acme.test").await;
    let mut body = product_body("Acme Notes", endpoint, "100.00");
    body["signing_key"] = json!(KEY);
    let res = seller.post("/v1/seller/products", body).await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
    let p: Value = res.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    let res = seller
        .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    op.approve_review(p["current"]["id"].as_str().unwrap())
        .await;
    let product: Value = app.public_json(&format!("/v1/products/{id}")).await;
    let plan = product["plans"][0]["id"].as_str().unwrap().to_owned();
    let buyer = app.verified_buyer(op, "bao@buyer.test").await;
    app.top_up(op, &buyer, "500.00").await;
    (buyer, plan)
}

/// Buys one month of `plan` and waits until the instance has settled (not provisioning).
async fn bought(buyer: &User, plan: &str) -> Value {
    let res = buyer.order(plan, 1, None).await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
    let list = buyer.json("/v1/instances").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    buyer
        .wait_for(&format!("/v1/instances/{id}"), |v| {
            v["state"] != "provisioning"
        })
        .await
}

/// Serves `app` on a random loopback port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    TestApp::client()
        .post(format!("{}/v1/sessions", app.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn assert_rate_limited(res: reqwest::Response) {
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body = assert_problem(res, StatusCode::TOO_MANY_REQUESTS, None).await;
    assert_eq!(body["type"], "urn:souk:problem:rate-limited");
}

on_both_databases! {
    async fn log_in_and_sign_up_are_throttled_per_account_and_per_address(backend) {
        let mut settings = Settings::for_tests();
        settings.throttle.login_failures_per_account = 3;
        settings.throttle.login_attempts_per_address = 7;
        settings.throttle.signups_per_address = 2;
        let app = TestApp::spawn_with(backend, settings).await;
        app.sign_up("individual", "ada@example.com").await;
        for _ in 0..3 {
            let res = log_in(&app, "ada@example.com", "wrong password!").await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // The account has had its failures: even the right password waits now.
        assert_rate_limited(log_in(&app, "ada@example.com", "wrong password!").await).await;
        assert_rate_limited(log_in(&app, "ada@example.com", "correct horse battery").await).await;
        // Other accounts are not locked, until the address has used its 7 attempts (the refused
        // ones count too).
        for i in 0..2 {
            let res = log_in(&app, &format!("nobody{i}@example.com"), "whatever123").await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        assert_rate_limited(log_in(&app, "nobody9@example.com", "whatever123").await).await;
        // Sign-ups: two per address per hour here; the first used one.
        app.sign_up("individual", "bea@example.com").await;
        let res = TestApp::client()
            .post(format!("{}/v1/accounts", app.base))
            .json(&json!({"kind": "individual", "name": "Cy", "email": "cy@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_rate_limited(res).await;
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn password_hashing_runs_in_a_bounded_line(backend) {
        let mut settings = Settings::for_tests();
        settings.throttle.hashes_at_once = 1;
        settings.throttle.hash_queue = 1;
        let app = TestApp::spawn_with(backend, settings).await;
        let attempts = (0..12).map(|i| {
            let base = app.base.clone();
            tokio::spawn(async move {
                TestApp::client()
                    .post(format!("{base}/v1/sessions"))
                    .json(&json!({"email": format!("x{i}@example.com"), "password": "whatever123"}))
                    .send()
                    .await
                    .unwrap()
            })
        });
        let mut busy = 0;
        for a in attempts.collect::<Vec<_>>() {
            let res = a.await.unwrap();
            match res.status() {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert!(res.headers().contains_key("retry-after"));
                    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE, None).await;
                    busy += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert!(
            busy > 0,
            "with one slot and one place in line, some wait their turn elsewhere"
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn seller_answers_are_read_up_to_a_limit_and_urls_are_never_shown(backend) {
        // A seller that answers 1 MiB.
        let big = serve(axum::Router::new().route(
            "/souk",
            axum::routing::post(|| async { " ".repeat(1 << 20) }),
        ))
        .await;
        let mut settings = Settings::for_tests();
        settings.job_max_attempts = 1;
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let (buyer, plan) = buyer_of(&app, &op, &format!("{big}/souk")).await;
        let i = bought(&buyer, &plan).await;
        assert_eq!(i["state"], "failed");
        // The buyer reads where it failed; the seller's calls keep how.
        let reason = i["failure_reason"].as_str().unwrap();
        assert!(reason.contains("an answer souk could not read") && !reason.contains("65536"), "{reason}");
        let errors = app.state.store.job_errors().await.unwrap();
        assert!(errors.iter().any(|e| e.contains("longer than 65536 bytes")), "{errors:?}");
        app.cleanup().await;

        // A seller that is not there: the error names no URL (it carries the call's signature).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut settings = Settings::for_tests();
        settings.job_max_attempts = 1;
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let endpoint = format!("http://127.0.0.1:{port}/secret-path");
        let (buyer, plan) = buyer_of(&app, &op, &endpoint).await;
        let i = bought(&buyer, &plan).await;
        assert_eq!(i["state"], "failed");
        let shown = i.to_string();
        assert!(shown.contains("its service could not be reached"), "{shown}");
        let errors = app.state.store.job_errors().await.unwrap();
        assert!(errors.iter().any(|e| e.contains("connection failed")), "{errors:?}");
        for leaked in ["secret-path", "signature", "timestamp="] {
            assert!(!shown.contains(leaked), "{leaked} in {shown}");
            for e in app.state.store.job_errors().await.unwrap() {
                assert!(!e.contains(leaked), "{leaked} in job error {e}");
            }
        }
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn private_seller_addresses_are_refused_at_save_and_at_call_time(backend) {
        let settings = Settings {
            allowed_seller_networks: vec![],
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "refuser@acme.test").await;
        for refused in [
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00:ec2::254]/",
            "https://10.0.0.7/souk",
            "http://127.0.0.1:9000/souk",
            "http://127.attacker.example/souk",
        ] {
            let res = seller
                .post(
                    "/v1/seller/products",
                    product_body("Acme", refused, "10.00"),
                )
                .await;
            assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, Some("endpoint_url")).await;
        }
        // A name is checked when souk calls it: `localhost` resolves to loopback, refused.
        drop(seller);
        let (buyer, plan) = buyer_of(&app, &op, "https://localhost:9/souk").await;
        let i = bought(&buyer, &plan).await;
        assert_eq!(i["state"], "failed", "{i}");
        let reason = i["failure_reason"].as_str().unwrap();
        assert!(!reason.contains("loopback"), "the buyer is not told how: {reason}");
        let errors = app.state.store.job_errors().await.unwrap();
        assert!(errors.iter().any(|e| e.contains("refused to call the seller") && e.contains("loopback")), "{errors:?}");
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "500.00",
            "refunded"
        );
        app.cleanup().await;
    }
}

fn set_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

on_both_databases! {
    async fn the_session_cookie_is_secure_under_https_and_sessions_end(backend) {
        let settings = Settings {
            public_url: Some("https://market.example.com".into()),
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let res = TestApp::client()
            .post(format!("{}/v1/accounts", app.base))
            .json(&json!({"kind": "individual", "name": "Ada", "email": "ada@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(&res);
        assert!(cookie.starts_with("__Host-souk_session="), "{cookie}");
        assert!(
            cookie.contains("; Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
        app.cleanup().await;

        // Behind a trusted proxy, X-Forwarded-Proto says whether the client used https.
        let settings = Settings {
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            session_idle: chrono::Duration::seconds(1),
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let ada = app.sign_up("individual", "ada@example.com").await;
        let res = TestApp::client()
            .post(format!("{}/v1/sessions", app.base))
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert!(set_cookie(&res).starts_with("__Host-souk_session="));
        let res = log_in(&app, "ada@example.com", "correct horse battery").await;
        assert!(set_cookie(&res).starts_with("souk_session="));
        // Idle longer than the idle timeout: logged out.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(ada.get("/v1/me").await.status(), StatusCode::UNAUTHORIZED);
        app.cleanup().await;

        // Log out everywhere ends every session of the account.
        let app = TestApp::spawn(backend).await;
        let one = app.sign_up("individual", "ada@example.com").await;
        let two = TestApp::client();
        let res = two
            .post(format!("{}/v1/sessions", app.base))
            .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let me = |c: &reqwest::Client| c.get(format!("{}/v1/me", app.base)).send();
        assert_eq!(me(&two).await.unwrap().status(), StatusCode::OK);
        let res = one
            .client
            .delete(format!("{}/v1/sessions", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(me(&two).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(one.get("/v1/me").await.status(), StatusCode::UNAUTHORIZED);
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn cross_site_writes_with_the_session_cookie_are_refused(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let res = seller
            .post(
                "/v1/seller/products",
                product_body("Acme", "https://acme.example/souk", "10.00"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let submit = |header: &'static str, value: String| {
            seller
                .client
                .post(format!("{}/v1/seller/products/{id}/submit", app.base))
                .header(header, value)
                .send()
        };
        for (header, value) in [
            ("origin", "https://evil.example".to_owned()),
            ("origin", "null".to_owned()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ] {
            let res = submit(header, value).await.unwrap();
            let body = assert_problem(res, StatusCode::FORBIDDEN, None).await;
            assert_eq!(body["type"], "urn:souk:problem:cross-site");
        }
        // Its own pages may.
        let res = submit("origin", app.base.clone()).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
        // Without the cookie, an Origin changes nothing (log-in from anywhere is a log-in).
        let res = TestApp::client()
            .post(format!("{}/v1/sessions", app.base))
            .header("origin", "https://elsewhere.example")
            .json(&json!({"email": "seller@acme.test", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn metrics_and_the_test_clock_are_not_anonymous(backend) {
        let settings = Settings {
            metrics_token: Some("metrics-token-0123456789".into()),
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let anon = TestApp::client();
        let metrics = format!("{}/metrics", app.base);
        assert_problem(
            anon.get(&metrics).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
        assert_problem(
            anon.get(&metrics)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
        let buyer = app.sign_up("individual", "ada@example.com").await;
        assert_problem(buyer.get("/metrics").await, StatusCode::FORBIDDEN, None).await;
        let op = app.operator().await;
        assert_eq!(op.get("/metrics").await.status(), StatusCode::OK);
        // A made-up method is counted as `other`, not as a new series.
        let odd = reqwest::Method::from_bytes(b"FOOBAR").unwrap();
        anon.request(odd, format!("{}/v1/me", app.base))
            .send()
            .await
            .unwrap();
        let text = anon
            .get(&metrics)
            .bearer_auth("metrics-token-0123456789")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("souk_http_requests_total"), "{text}");
        assert!(
            !text.contains("FOOBAR") && text.contains("method=\"other\""),
            "{text}"
        );

        let clock = format!("{}/v1/test/clock", app.base);
        let res = anon
            .post(&clock)
            .json(&json!({"advance_seconds": 60}))
            .send()
            .await
            .unwrap();
        assert_problem(res, StatusCode::UNAUTHORIZED, None).await;
        assert_problem(
            anon.get(&clock).send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            None,
        )
        .await;
        app.advance(60).await;
        assert_eq!(op.get("/v1/test/clock").await.status(), StatusCode::OK);
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn huge_amounts_and_the_end_of_time_are_answers_not_panics(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let buyer = app.sign_up("individual", "ada@example.com").await;
        let res = op
            .post(
                "/v1/operator/top-ups",
                json!({"account_id": buyer.id, "amount": "79228162514264337593543950335", "currency": "CNY"}),
            )
            .await;
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, Some("amount")).await;

        // Near the end of chrono's calendar, an expiry plus grace and retention would overflow.
        let stub = seller_stub().await;
        let (buyer, plan) = buyer_of(&app, &op, &stub).await;
        let end = chrono::DateTime::<chrono::Utc>::MAX_UTC - chrono::Duration::days(20);
        app.state.test_clock.as_ref().unwrap().set(end);
        let i = bought(&buyer, &plan).await;
        assert_eq!(i["state"], "active", "{i}");
        let id = i["id"].as_str().unwrap();
        let res = buyer.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        app.advance(86_400).await;
        assert_eq!(buyer.get("/v1/instances").await.status(), StatusCode::OK);
        app.cleanup().await;
    }
}

/// A seller that creates every instance.
async fn seller_stub() -> String {
    use souk_seller::{Keys, NewInstance, Refresh, Seller, SellerAnswer, StatusChange};
    struct Ok;
    impl Seller for Ok {
        async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
            SellerAnswer {
                instance_id: Some(format!("s-{}", &req.business_id[4..12])),
                app_info: Some(souk_seller::AppInfo {
                    front_end_url: Some("https://app.example".into()),
                    ..Default::default()
                }),
                ..SellerAnswer::code(souk_seller::ResultCode::Success, "ok")
            }
        }
        async fn query_instance(&self, _: Vec<String>) -> SellerAnswer {
            SellerAnswer::code(souk_seller::ResultCode::Success, "ok")
        }
        async fn refresh_instance(&self, _: Refresh) -> SellerAnswer {
            SellerAnswer::code(souk_seller::ResultCode::Success, "ok")
        }
        async fn update_instance_status(&self, _: String, _: StatusChange) -> SellerAnswer {
            SellerAnswer::code(souk_seller::ResultCode::Success, "ok")
        }
        async fn release_instance(&self, _: String, _: String) -> SellerAnswer {
            SellerAnswer::code(souk_seller::ResultCode::Success, "ok")
        }
    }
    let router = souk_seller::router(std::sync::Arc::new(Ok), Keys::new([KEY.to_owned()]));
    let base = serve(axum::Router::new().nest_service("/souk", router)).await;
    format!("{base}/souk")
}

#[tokio::test]
async fn a_panicking_handler_answers_a_problem_not_a_dropped_connection() {
    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                let empty: Vec<u8> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                let _ = empty[1];
                "unreachable"
            }),
        )
        .layer(souk_server::panics::layer());
    let base = serve(app).await;
    let res = reqwest::get(format!("{base}/boom")).await.unwrap();
    let body = assert_problem(res, StatusCode::INTERNAL_SERVER_ERROR, None).await;
    assert_eq!(body["type"], "urn:souk:problem:internal");
    assert!(
        !body.to_string().contains("index out of bounds"),
        "details are logged, not shown"
    );
}

on_both_databases! {
    async fn secrets_are_bound_to_their_rows_and_old_ones_are_resealed(backend) {
        use aes_gcm::aead::{Aead, KeyInit};
        use base64::Engine;
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let mut products = Vec::new();
        for name in ["Acme One", "Acme Two"] {
            let res = seller
                .post(
                    "/v1/seller/products",
                    product_body(name, "https://acme.example/souk", "10.00"),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
            let p: Value = res.json().await.unwrap();
            products.push((
                p["id"].as_str().unwrap().to_owned(),
                p["signing_key"].as_str().unwrap().to_owned(),
            ));
        }
        let store = &app.state.store;
        let sealed = store.sealed_values("v2:").await.unwrap();
        assert_eq!(sealed.len(), 2, "new secrets are sealed as v2");
        // Copy product one's sealed key into product two's row: it must not open there.
        let one = sealed.iter().find(|s| s.id == products[0].0).unwrap();
        let two = sealed.iter().find(|s| s.id == products[1].0).unwrap();
        assert!(store.replace_sealed(two, &one.value).await.unwrap());
        let aad_two = souk_server::crypto::product_key_aad(&products[1].0);
        assert!(app.state.secrets.open(&aad_two, &one.value).is_err(), "a key opens only in its own row");
        let aad_one = souk_server::crypto::product_key_aad(&products[0].0);
        assert_eq!(app.state.secrets.open(&aad_one, &one.value).unwrap(), products[0].1);

        // A v1 value (no associated data) from before still opens, and start re-seals it.
        let cipher = aes_gcm::Aes256Gcm::new((&app.state.settings.secret_key).into());
        let nonce = [7u8; 12];
        let ct = cipher
            .encrypt((&nonce).into(), products[1].1.as_bytes())
            .unwrap();
        let v1 = format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode([&nonce[..], &ct[..]].concat())
        );
        // Product two's key as sealed now (v2).
        let two_sealed = || async {
            store
                .sealed_values("v2:")
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.id == products[1].0)
                .unwrap()
        };
        assert!(store.replace_sealed(&two_sealed().await, &v1).await.unwrap());
        assert_eq!(
            souk_server::crypto::reseal_v1(store, &app.state.secrets)
                .await
                .unwrap(),
            1
        );
        assert!(store.sealed_values("v1:").await.unwrap().is_empty());
        let resealed = two_sealed().await;
        let aad = souk_server::crypto::product_key_aad(&products[1].0);
        assert_eq!(app.state.secrets.open(&aad, &resealed.value).unwrap(), products[1].1);
        // The key is never shown again once the answer that made it is gone.
        let p = seller
            .json(&format!("/v1/seller/products/{}", products[1].0))
            .await;
        assert!(p.get("signing_key").is_none(), "{p}");
        app.cleanup().await;
    }
}
