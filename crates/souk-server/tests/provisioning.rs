//! Provisioning through the seller: refusals refund, failures retry with backoff, a dead or slow seller holds up no one.

use souk_server::testing::*;

use serde_json::Value;
use souk_store::on_both_databases;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Moves the clock an hour at a time until the instance at `path` has failed (its provisioning
/// retried until the budget is spent); returns it.
async fn fail_after_retries(app: &TestApp, buyer: &User, path: &str) -> Value {
    let steps = app.state.settings.job_max_attempts as usize * 4;
    app.advance_until(buyer, path, (3600, steps), |v| v["state"] == "failed")
        .await
}

on_both_databases! {
    async fn a_seller_refusal_fails_the_instance_and_refunds_the_order(backend) {
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

on_both_databases! {
    async fn a_failing_seller_is_retried_with_backoff_until_it_answers(backend) {
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
        // Active; its newInstance answer had no access data, so queryInstance filled it in.
        let i = app.advance_until(&buyer, &path, (600, 40), ready).await;
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

on_both_databases! {
    async fn a_seller_that_never_answers_fails_after_the_retry_budget_and_refunds(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", usize::MAX, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "10.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let budget = app.state.settings.job_max_attempts as usize;
        let i = fail_after_retries(&app, &buyer, &path).await;
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

on_both_databases! {
    async fn a_seller_that_answers_too_late_is_retried(backend) {
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
            heard: Default::default(),
        };
        let (endpoint, stub) = serve_stub(stub, KEY).await;
        let (_, _, plan) = product_with(&app, &op, &endpoint, "10.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "10.00").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        // The first answer comes after souk stopped waiting: still provisioning, retry pending
        // (due on the test clock, which stands still until moved).
        let instance = order["instance_id"].clone();
        op.wait_for("/v1/operator/jobs?state=pending", |d| {
            d["items"].as_array().is_some_and(|items| {
                items.iter().any(|j| j["instance_id"] == instance && j["attempts"] == 1)
            })
        })
        .await;
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
        assert_eq!(buyer.json(&path).await["state"], "provisioning");
        app.advance_until(&buyer, &path, (600, 40), |v| v["state"] == "active").await;
        assert_eq!(
            buyer.json("/v1/balance").await["balances"][0]["amount"],
            "0.00"
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_slow_seller_does_not_hold_up_other_sellers(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let slow = StubSeller {
            code: "000000",
            fail_first: 0,
            stall_first: 1,
            calls: AtomicUsize::new(0),
            heard: Default::default(),
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
        // The slow seller is still answering its first call (it takes 4 s).
        let slow_path = format!(
            "/v1/instances/{}",
            slow_order["instance_id"].as_str().unwrap()
        );
        assert_eq!(buyer.json(&slow_path).await["state"], "provisioning");
        buyer.wait_for(&slow_path, |v| v["state"] == "active").await;
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_seller_checks_its_endpoint_against_every_call(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (seller, product, _) = product_with(&app, &op, &endpoint, "80.00").await;
        let report: Value = seller.post(&format!("/v1/seller/products/{product}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        assert_eq!(report["passed"], true, "{report}");
        let checks = report["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 12, "{report}");
        assert!(checks.iter().all(|c| c["passed"] == true), "{report}");
        assert_eq!(stub.calls.load(Ordering::SeqCst), 12);
        assert_eq!(stub.heard().len(), 6, "a refresh, a freeze, an unfreeze, an upgrade and two releases: {:?}", stub.heard());
        // Nothing was bought.
        assert_eq!(seller.json("/v1/seller/orders").await["items"], serde_json::json!([]));

        // From the seller centre's product page.
        let html = seller.get(&format!("/seller/products/{product}")).await.text().await.unwrap();
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &html[at..at + html[at..].find('"').unwrap()];
        let page = seller.client.post(format!("{}/seller/products/{product}/check-endpoint", app.base)).form(&[("csrf", csrf)]).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Endpoint check passed"), "{page}");

        // An endpoint that refuses to create, and one that is not there: failed, with reasons.
        let (refusing, _) = stub_seller("000001", 0, KEY).await;
        let other = app.merchant(&op, "other@seller.test").await;
        let (p2, _) = listed_by(&app, &op, &other, &refusing, "10.00").await;
        let report: Value = other.post(&format!("/v1/seller/products/{p2}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        assert_eq!(report["passed"], false);
        let created = &report["checks"][2];
        assert_eq!(created["passed"], false);
        assert!(created["detail"].as_str().unwrap().starts_with("000001"), "{report}");
        assert!(report["checks"][4]["detail"].as_str().unwrap().starts_with("skipped"), "{report}");
        let third = app.merchant(&op, "third@seller.test").await;
        let (p3, _) = listed_by(&app, &op, &third, "http://127.0.0.1:9/souk", "10.00").await;
        let report: Value = third.post(&format!("/v1/seller/products/{p3}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        assert_eq!(report["passed"], false);
        assert_eq!(report["checks"][0]["passed"], false, "an endpoint that is not there refused nothing: {report}");
        // A server without the endpoint (404 to everything) refused nothing either, and one that
        // answers something other than a seller's answer has its answer described, not shown.
        let nowhere = axum::Router::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nowhere_url = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, nowhere).await });
        let (p404, _) = listed_by(&app, &op, &third, &nowhere_url, "10.00").await;
        let report: Value = third.post(&format!("/v1/seller/products/{p404}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        for n in [0, 1] {
            let c = &report["checks"][n];
            assert_eq!(c["passed"], false, "{report}");
            assert!(c["detail"].as_str().unwrap().contains("is the endpoint's URL right?"), "{report}");
        }
        assert!(report["checks"][3]["detail"].as_str().unwrap().starts_with("skipped: the endpoint did not accept the first call"), "{report}");
        let chatty = axum::Router::new().fallback(|| async { axum::Json(serde_json::json!("INTERNAL-SECRET aws_secret_access_key=wJalr")) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let chatty_url = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, chatty).await });
        let (pchatty, _) = listed_by(&app, &op, &third, &chatty_url, "10.00").await;
        let report: Value = third.post(&format!("/v1/seller/products/{pchatty}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        assert!(!report.to_string().contains("INTERNAL-SECRET"), "{report}");
        assert!(report["checks"][2]["detail"].as_str().unwrap().contains("not a seller's answer"), "{report}");
        // An array is not an answer either (it would read as the fields in order), and a code
        // that is not six digits is not a refusal: neither is shown, neither passes.
        for body in [serde_json::json!(["db_password=hunter2", "AKIAINTERNAL/secret"]), serde_json::json!({"resultCode": "db_password=hunter2", "resultMsg": "x"})] {
            let odd = axum::Router::new().fallback(move || { let body = body.clone(); async move { axum::Json(body) } });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/souk", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, odd).await });
            let (p, _) = listed_by(&app, &op, &third, &url, "10.00").await;
            let report: Value = third.post(&format!("/v1/seller/products/{p}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
            assert!(!report.to_string().contains("hunter2"), "{report}");
            assert_eq!((report["checks"][0]["passed"].as_bool(), report["checks"][1]["passed"].as_bool()), (Some(false), Some(false)), "{report}");
        }

        // An endpoint that accepts anything, unsigned or stale, fails the refusal checks.
        let lax = axum::Router::new().fallback(|| async {
            axum::Json(serde_json::json!({"resultCode": "000000", "resultMsg": "ok", "instanceId": "lax-1"}))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lax_url = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, lax).await });
        let fourth = app.merchant(&op, "fourth@seller.test").await;
        let (p4, _) = listed_by(&app, &op, &fourth, &lax_url, "10.00").await;
        let report: Value = fourth.post(&format!("/v1/seller/products/{p4}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        assert_eq!((report["checks"][0]["passed"].as_bool(), report["checks"][1]["passed"].as_bool()), (Some(false), Some(false)), "{report}");
        let replay = &report["checks"][3];
        assert_eq!(replay["name"], "the same call sent again (a replay) is refused");
        assert_eq!(replay["passed"], false);
        assert!(replay["detail"].as_str().unwrap().contains("it was accepted"), "{report}");
        assert_eq!(report["passed"], false);
        // An endpoint that creates and answers, then answers every later call with a code of its
        // own: each such failure says what was expected.
        let odd = axum::Router::new().fallback(|body: String| async move {
            axum::Json(if body.contains("\"newInstance\"") {
                serde_json::json!({"resultCode": "000000", "resultMsg": "ok", "instanceId": "odd-1"})
            } else if body.contains("\"queryInstance\"") {
                serde_json::json!({"resultCode": "000000", "resultMsg": "ok", "info": [{"instanceId": "odd-1"}]})
            } else {
                serde_json::json!({"resultCode": "000012", "resultMsg": "ok"})
            })
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let odd_url = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, odd).await });
        let fifth = app.merchant(&op, "fifth@seller.test").await;
        let (p5, _) = listed_by(&app, &op, &fifth, &odd_url, "10.00").await;
        let report: Value = fifth.post(&format!("/v1/seller/products/{p5}/check-endpoint"), serde_json::json!({})).await.json().await.unwrap();
        let refresh = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "refreshInstance is accepted").unwrap();
        assert_eq!((refresh["passed"].as_bool(), refresh["detail"].as_str()), (Some(false), Some("000012 ok (expected 000000)")), "{report}");
        let upgrade = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "upgradeInstance is answered").unwrap();
        assert_eq!(upgrade["detail"], "000012 ok (expected 000000 or 000001)", "{report}");
        // Another merchant's product is not found.
        assert_problem(third.post(&format!("/v1/seller/products/{product}/check-endpoint"), serde_json::json!({})).await, reqwest::StatusCode::NOT_FOUND, None).await;
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_product_is_submitted_only_once_its_endpoint_passed_the_check(backend) {
        let mut settings = souk_server::settings::Settings::for_tests();
        settings.submit_needs_endpoint_check = true;
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let (upstream, _g) = stub_seller("000000", 0, KEY).await;
        let (refusing, _r) = stub_seller("000001", 0, KEY).await;
        // The seller's endpoint: a front for a conforming stub that can be taken down.
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let front = {
            let (down, origin) = (down.clone(), upstream.trim_end_matches("/souk").to_owned());
            axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (down, origin) = (down.clone(), origin.clone());
                async move {
                    use axum::response::IntoResponse;
                    if down.load(Ordering::SeqCst) {
                        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                    }
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                    let url = format!("{origin}{}", parts.uri.path_and_query().unwrap());
                    let res = reqwest::Client::new().post(url).header("content-type", "application/json").body(body).send().await.unwrap();
                    let (status, text) = (res.status().as_u16(), res.text().await.unwrap());
                    (axum::http::StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], text).into_response()
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, front).await });

        let seller = app.merchant(&op, "seller@acme.test").await;
        let content = |endpoint: &str| serde_json::json!({"name": "Stub", "summary": "s", "category": "security", "support_contact": "x",
            "endpoint_url": endpoint, "plans": [{"name": "P", "currency": "CNY", "monthly_price": "10.00"}]});
        let mut body = content(&good);
        body["signing_key"] = serde_json::json!(KEY);
        let created = seller.expect_post("/v1/seller/products", body, reqwest::StatusCode::CREATED).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let (path, submit, check) = (format!("/v1/seller/products/{id}"), format!("/v1/seller/products/{id}/submit"), format!("/v1/seller/products/{id}/check-endpoint"));
        let edit = |endpoint: String| {
            let (client, url, body) = (seller.client.clone(), format!("{}{path}/draft", app.base), content(&endpoint));
            async move { assert_eq!(client.put(url).json(&body).send().await.unwrap().status(), reqwest::StatusCode::OK) }
        };
        let checked = || async { seller.json(&path).await["endpoint_checked_at"].is_string() };
        let passes = || async { seller.post(&check, serde_json::json!({})).await.json::<Value>().await.unwrap()["passed"].as_bool().unwrap() };

        // Not checked yet: not submitted, and told why.
        assert!(!checked().await);
        let refused = assert_problem(seller.post(&submit, serde_json::json!({})).await, reqwest::StatusCode::CONFLICT, None).await;
        assert!(refused["detail"].as_str().unwrap().contains("endpoint check"), "{refused}");
        // The page offers the check first, and no submit form yet.
        let page = seller.get(&format!("/seller/products/{id}")).await.text().await.unwrap();
        assert!(page.contains(r#"<button type="button" disabled aria-describedby="endpoint-checked">Submit for review</button>"#), "{page}");
        assert!(!page.contains(&format!("action=\"/seller/products/{id}/submit\"")), "{page}");
        // Passed: remembered, and shown on the seller centre's page, which now submits.
        assert!(passes().await);
        assert!(checked().await);
        let page = seller.get(&format!("/seller/products/{id}")).await.text().await.unwrap();
        assert!(page.contains("id=\"endpoint-checked\">passed"), "{page}");
        assert!(page.contains(&format!("action=\"/seller/products/{id}/submit\"")), "{page}");
        // The same endpoint failing its next check loses its pass.
        down.store(true, Ordering::SeqCst);
        assert!(!passes().await);
        assert!(!checked().await);
        assert_problem(seller.post(&submit, serde_json::json!({})).await, reqwest::StatusCode::CONFLICT, None).await;
        down.store(false, Ordering::SeqCst);
        assert!(passes().await);
        // The draft moves to another endpoint: that one has not passed, and failing there does
        // not undo the pass of the first, which holds again once the draft is back.
        edit(refusing.clone()).await;
        assert!(!checked().await);
        assert_problem(seller.post(&submit, serde_json::json!({})).await, reqwest::StatusCode::CONFLICT, None).await;
        assert!(!passes().await);
        edit(good.clone()).await;
        assert!(checked().await);
        // A new signing key needs a new check.
        let rotated = seller.expect_post(&format!("{path}/signing-key"), serde_json::json!({}), reqwest::StatusCode::OK).await;
        assert_eq!(rotated["signing_key"].as_str().unwrap().len(), 64, "the new key is shown once: {rotated}");
        assert!(seller.json(&path).await.get("signing_key").is_none(), "and never read back");
        assert!(!checked().await);
        assert_eq!(app.state.store.latest_revision(&id.as_str().into()).await.unwrap().unwrap().state.as_str(), "draft", "nothing was submitted");

        // Back on the key the endpoint knows (through the database: the stub knows only that
        // one), checked as it stands, then submitted.
        let sealed = app.state.secrets.seal(&souk_server::crypto::product_key_aad(&id), KEY);
        app.state.store.set_signing_key(&id.as_str().into(), &sealed, app.state.now()).await.unwrap();
        assert!(checked().await, "the pass of this endpoint with this key still holds");
        // A revision is submitted only as it was last edited when read (and checked): an edit in
        // between makes the submission stale, and nothing moves.
        let rev = app.state.store.latest_revision(&id.as_str().into()).await.unwrap().unwrap();
        let earlier = rev.updated_at - chrono::Duration::milliseconds(1);
        let stale = app.state.store.submit_revision(&rev.id, rev.state, souk_core::review::RevisionState::InReview, earlier, app.state.now(), app.state.now()).await;
        assert!(matches!(stale, Err(souk_store::Error::Stale)), "{stale:?}");
        let submitted = seller.expect_post(&submit, serde_json::json!({}), reqwest::StatusCode::OK).await;
        assert_eq!(submitted["current"]["state"], "in_review", "{submitted}");
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_merchant_past_its_endpoint_checks_is_told_to_wait(backend) {
        let mut settings = souk_server::settings::Settings::for_tests();
        settings.throttle.endpoint_checks_per_merchant = 2;
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
        let (seller, product, _) = product_with(&app, &op, &endpoint, "80.00").await;
        let path = format!("/v1/seller/products/{product}/check-endpoint");
        for _ in 0..2 {
            assert_eq!(seller.post(&path, serde_json::json!({})).await.status(), reqwest::StatusCode::OK);
        }
        let calls = stub.calls.load(Ordering::SeqCst);
        assert_problem(seller.post(&path, serde_json::json!({})).await, reqwest::StatusCode::TOO_MANY_REQUESTS, None).await;
        assert_eq!(stub.calls.load(Ordering::SeqCst), calls, "nothing was sent");
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_product_with_signed_answers_takes_only_signed_answers(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "20.00").await;
        let listed = |endpoint: String, name: &'static str| {
            let mut body = product_body(name, &endpoint, "10.00");
            body["signing_key"] = serde_json::json!(KEY);
            body["signed_answers"] = serde_json::json!(true);
            app.listed_product_with(&op, &seller, body)
        };

        // An endpoint that signs its answers provisions as usual.
        let (signing, _) = signing_stub_seller(KEY).await;
        let (_, plan, _) = listed(signing, "Signed Notes").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        buyer.wait_for(&format!("/v1/instances/{}", order["instance_id"].as_str().unwrap()), |v| v["state"] == "active").await;

        // One that does not is refused every time, as a failed attempt, until the budget is spent.
        let (unsigned, stub) = stub_seller("000000", 0, KEY).await;
        let (_, plan, _) = listed(unsigned, "Unsigned Notes").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        let budget = app.state.settings.job_max_attempts as usize;
        let i = fail_after_retries(&app, &buyer, &path).await;
        assert_eq!(stub.calls.load(Ordering::SeqCst), budget, "{i}");
        let sales = seller.json("/v1/seller/instances").await;
        assert!(sales.to_string().contains("Body-Sign is missing"), "the seller sees why: {sales}");
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "10.00", "the failed order was refunded");
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn a_seller_that_hangs_holds_up_its_own_calls_only(backend) {
        // Long enough that nothing here waits for a hung call to time out.
        let settings = souk_server::Settings {
            seller_timeout: std::time::Duration::from_secs(30),
            ..souk_server::Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        // An endpoint that takes every connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung = format!("http://{}/souk", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let hanging = app.merchant(&op, "hang@seller.test").await;
        let (_, hung_plan) = listed_by(&app, &op, &hanging, &hung, "1.00").await;
        let (endpoint, _) = stub_seller("000000", 0, KEY).await;
        let answering = app.merchant(&op, "fast@seller.test").await;
        let (_, plan) = listed_by(&app, &op, &answering, &endpoint, "1.00").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;
        // More hung provisioning calls than a node runs jobs at once.
        for _ in 0..(souk_server::workers::IN_FLIGHT + 6) {
            buyer.order(&hung_plan, 1, None).await;
        }
        // The hung seller's calls run in its lane (its merchant); e-mail jobs run beside them.
        let lane = hanging.json("/v1/merchant").await["id"].as_str().unwrap().to_owned();
        let running = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lane = $1")
                .bind(&lane)
                .fetch_one(app.state.store.pool())
                .await
                .unwrap()
        };
        for _ in 0..200 {
            if running().await >= souk_server::workers::PER_LANE as i64 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        // The other seller's buyer is served while every hung call still waits.
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let path = format!("/v1/instances/{}", order["instance_id"].as_str().unwrap());
        buyer.wait_for(&path, |v| v["state"] == "active").await;
        let held = running().await;
        assert!(
            held < 2 * souk_server::workers::PER_LANE as i64,
            "the hung seller holds {held} of {} slots",
            souk_server::workers::IN_FLIGHT
        );
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn the_sellers_instance_list_shows_each_instance_with_its_product_and_newest_calls(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let seller = app.merchant(&op, "seller@acme.test").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;
        // The first call fails once: its retry leaves two attempts on record.
        let (endpoint, _stub) = stub_seller("000000", 1, KEY).await;
        let mut bought = Vec::new();
        for (name, count) in [("Alpha Notes", 2), ("Beta Notes", 1)] {
            let mut body = product_body(name, &endpoint, "10.00");
            body["signing_key"] = serde_json::json!(KEY);
            let (_, plan, _) = app.listed_product_with(&op, &seller, body).await;
            for _ in 0..count {
                let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
                let id = order["instance_id"].as_str().unwrap().to_owned();
                let path = format!("/v1/instances/{id}");
                app.advance_until(&buyer, &path, (600, 40), |v| v["state"] == "active").await;
                bought.push((id, name));
            }
        }
        // The second instance is renewed six times: more seller calls than the list shows of one.
        let (retried, renewed) = (bought[0].0.clone(), bought[1].0.clone());
        for _ in 0..6 {
            buyer
                .expect_post(&format!("/v1/instances/{renewed}/renew"), serde_json::json!({"periods": 1}), reqwest::StatusCode::CREATED)
                .await;
        }
        let sales = seller
            .wait_for("/v1/seller/instances", |v| {
                v["items"].as_array().unwrap().iter().all(|i| {
                    i["calls"].as_array().unwrap().iter().all(|c| c["state"] == "done")
                }) && v.to_string().matches("seller.refresh").count() == 5
            })
            .await;
        let items = sales["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{sales}");
        for item in items {
            let id = item["id"].as_str().unwrap();
            let (_, name) = bought.iter().find(|(b, _)| b == id).expect("a bought instance");
            assert_eq!(item["product_name"], *name, "{item}");
            let calls = item["calls"].as_array().unwrap();
            assert!(!calls.is_empty(), "{item}");
            for call in calls {
                assert_eq!(call["instance_id"], id, "each call is its own instance's: {item}");
                // A call done at its first attempt keeps no history; one retried keeps each.
                let numbers: Vec<i64> = call["history"].as_array().unwrap().iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
                if call["attempts"] != 1 {
                    assert_eq!(numbers, (1..=call["attempts"].as_i64().unwrap()).collect::<Vec<_>>(), "{call}");
                }
            }
            let retries = calls.iter().filter(|c| c["history"].as_array().unwrap().len() == 2).count();
            assert_eq!(retries, usize::from(id == retried), "only the first call was retried: {item}");
            let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
            assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
            if id == renewed {
                assert_eq!(calls.len(), 5, "at most five calls an instance: {item}");
                assert!(calls.iter().all(|c| c["kind"] == "seller.refresh"), "the newest five: {item}");
            } else {
                assert!(calls.iter().all(|c| c["kind"] != "seller.refresh"), "{item}");
            }
        }
        app.cleanup().await;
    }
}
