//! Signed calls with access keys (`SDK-HMAC-SHA256`): an IAM user's key signs a GET with a query
//! and a POST with a JSON body as the SDKs do, and souk answers them as the account; a stale
//! time, a wrong secret, a disabled or unknown key, a policy that does not allow the call and a
//! replay are refused with problem+json and written to the audit operators read.

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_protocol::aksk;
use souk_server::testing::*;
use souk_server::Settings;
use souk_store::on_both_databases;

/// Sends a request signed with (`ak`, `sk`) at `date` (`YYYYMMDDTHHMMSSZ`).
async fn signed(
    base: &str,
    method: &str,
    path_and_query: &str,
    body: Option<Value>,
    ak: &str,
    sk: &str,
    date: &str,
) -> reqwest::Response {
    signed_via(base, base, method, path_and_query, body, (ak, sk), date).await
}

/// Sends to `to` a request signed for `base` (its `Host`), as a load balancer in front of several
/// nodes would pass it on.
async fn signed_via(
    to: &str,
    base: &str,
    method: &str,
    path_and_query: &str,
    body: Option<Value>,
    (ak, sk): (&str, &str),
    date: &str,
) -> reqwest::Response {
    let url = reqwest::Url::parse(&format!("{base}{path_and_query}")).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let target = reqwest::Url::parse(&format!("{to}{path_and_query}")).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![
        ("Host".to_owned(), host),
        ("X-Sdk-Date".to_owned(), date.to_owned()),
    ];
    if !body.is_empty() {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    let request = aksk::Request {
        method,
        path: url.path(),
        query: url.query_pairs().collect(),
        headers: headers.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        body: body.as_bytes(),
    };
    let auth = aksk::sign(ak, sk, &request).unwrap();
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), target);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.header("Authorization", auth.header())
        .body(body)
        .send()
        .await
        .unwrap()
}

fn now() -> String {
    Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

on_both_databases! {
    async fn keys_sign_calls_and_every_refusal_is_audited(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (_, _, plan) = app.listed_product_of_new_merchant(&op, "https://acme.example/souk").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;

        // An IAM user with programmatic access, and a key: the secret shown once.
        let user = buyer.expect_post("/v1/iam/users", json!({"name": "billing-bot", "programmatic_access": true, "policy": "billing"}), StatusCode::CREATED).await;
        let uid = user["id"].as_str().unwrap();
        let key = buyer.expect_post(&format!("/v1/iam/users/{uid}/access-keys"), json!({}), StatusCode::CREATED).await;
        let (ak, sk) = (key["access_key"].as_str().unwrap().to_owned(), key["secret_key"].as_str().unwrap().to_owned());
        assert_eq!(ak.len(), 20);
        let listed = buyer.json("/v1/iam/users").await;
        assert!(!listed.to_string().contains(&sk), "the secret is never shown again");

        // A GET with a query and a POST with a JSON body, answered as the account.
        let res = signed(&app.base, "GET", "/v1/orders?limit=5", None, &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = signed(&app.base, "POST", "/v1/orders", Some(json!({"plan_id": plan, "period": "month", "periods": 1})), &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        assert_eq!(buyer.json("/v1/balance").await["balances"][0]["amount"], "401.00");
        assert!(buyer.json("/v1/iam/users").await[0]["access_keys"][0]["last_used_at"].is_string());

        // Refusals.
        let refused = |res: reqwest::Response, status: StatusCode| async move {
            assert_eq!(res.status(), status);
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            res.json::<Value>().await.unwrap()
        };
        let stale = (Utc::now() - chrono::Duration::minutes(16)).format("%Y%m%dT%H%M%SZ").to_string();
        refused(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &stale).await, StatusCode::UNAUTHORIZED).await;
        refused(signed(&app.base, "GET", "/v1/orders", None, &ak, "wrong-secret", &now()).await, StatusCode::UNAUTHORIZED).await;
        refused(signed(&app.base, "GET", "/v1/orders", None, "AKUNKNOWN00000000000", &sk, &now()).await, StatusCode::UNAUTHORIZED).await;
        let p = refused(signed(&app.base, "POST", "/v1/seller/products", Some(json!({})), &ak, &sk, &now()).await, StatusCode::FORBIDDEN).await;
        assert!(p["detail"].as_str().unwrap().contains("billing"), "{p}");
        // The same signed request twice: the second is a replay.
        let date = now();
        assert_eq!(signed(&app.base, "GET", "/v1/balance", None, &ak, &sk, &date).await.status(), StatusCode::OK);
        refused(signed(&app.base, "GET", "/v1/balance", None, &ak, &sk, &date).await, StatusCode::UNAUTHORIZED).await;
        // A key cannot manage IAM; a disabled key signs nothing.
        refused(signed(&app.base, "GET", "/v1/iam/users", None, &ak, &sk, &now()).await, StatusCode::FORBIDDEN).await;
        assert_eq!(buyer.post(&format!("/v1/iam/access-keys/{ak}/disable"), json!({})).await.status(), StatusCode::NO_CONTENT);
        refused(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await, StatusCode::UNAUTHORIZED).await;

        // Every refusal is in the audit, for operations.
        let audit = op.json("/v1/operator/audit?limit=100").await;
        let reasons: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
        assert!(reasons.len() >= 6, "{reasons:?}");
        for needle in ["too long ago", "does not match", "unknown access key", "does not allow", "already accepted", "disabled"] {
            assert!(reasons.iter().any(|r| r.contains(needle)), "{needle} missing from {reasons:?}");
        }
        assert_problem(buyer.get("/v1/operator/audit").await, StatusCode::FORBIDDEN, None).await;
        // Two keys a user at most.
        buyer.expect_post(&format!("/v1/iam/users/{uid}/access-keys"), json!({}), StatusCode::CREATED).await;
        let third = buyer.expect_post(&format!("/v1/iam/users/{uid}/access-keys"), json!({}), StatusCode::CONFLICT).await;
        assert!(third["detail"].as_str().unwrap().contains("at most 2 access keys: delete one"), "{third}");
        assert_eq!(buyer.client.delete(format!("{}/v1/iam/access-keys/{ak}", app.base)).send().await.unwrap().status(), StatusCode::NO_CONTENT);
        buyer.expect_post(&format!("/v1/iam/users/{uid}/access-keys"), json!({}), StatusCode::CREATED).await;
        app.cleanup().await;
    }

    async fn a_flood_of_bad_signatures_is_answered_429_and_not_audited_one_by_one(backend) {
        let mut settings = Settings::for_tests();
        settings.throttle.signature_refusals_per_address = 3;
        settings.throttle.signature_refusal_window = std::time::Duration::from_secs(3600);
        let app = TestApp::spawn_with(backend, settings).await;
        let (op, _, ak, sk) = buyer_with_key(&app, "full_access").await;

        // A 5,000-character access key is refused, and the audit keeps only its start.
        let long = "A".repeat(5_000);
        let res = signed(&app.base, "GET", "/v1/orders", None, &long, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        for _ in 0..2 {
            let res = signed(&app.base, "GET", "/v1/orders", None, &ak, "wrong-secret", &now()).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // Past three refusals from this address: 429, with when to come back, and no audit line.
        for _ in 0..3 {
            let res = signed(&app.base, "GET", "/v1/orders", None, &ak, "wrong-secret", &now()).await;
            assert!(res.headers().contains_key("retry-after"));
            let p = assert_problem(res, StatusCode::TOO_MANY_REQUESTS, None).await;
            assert_eq!(p["type"], "urn:souk:problem:rate-limited");
        }
        let audit = op.json("/v1/operator/audit?limit=100").await;
        let items = audit["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{audit}");
        let keys: Vec<&str> = items.iter().map(|r| r["access_key"].as_str().unwrap()).collect();
        assert!(keys.contains(&"A".repeat(64).as_str()), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() <= 64), "{keys:?}");
        let metrics = op.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("souk_signed_refusals_total{outcome=\"audited\"} 3"), "{metrics}");
        assert!(metrics.contains("souk_signed_refusals_total{outcome=\"shed\"} 3"), "{metrics}");
        // Past the limit, a forged signature is checked before it is remembered: more of them
        // write nothing.
        let remembered = || async {
            match backend {
                souk_store::Backend::Postgres => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM signature_digests").fetch_one(app.state.store.pool()).await.unwrap(),
                souk_store::Backend::Sqlite => 0,
            }
        };
        let before = remembered().await;
        for _ in 0..5 {
            let res = signed(&app.base, "GET", "/v1/orders", None, &ak, "wrong-secret", &now()).await;
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(remembered().await, before, "forged signatures were remembered");
        // A correct signature from the same address still goes through, once.
        let date = now();
        let res = signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &date).await;
        assert_eq!(res.status(), StatusCode::OK);
        if backend == souk_store::Backend::Postgres {
            assert_eq!(remembered().await, before + 1);
        }
        let again = signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &date).await;
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS, "its replay is refused (past the limit, as 429)");

        // The audit is forgotten by age: the sweep keeps a year of it, and all of it was made
        // before a second from now.
        assert_eq!(souk_server::workers::housekeeping::forget_old_refusals(&app.state).await.unwrap(), 0);
        assert_eq!(op.json("/v1/operator/audit?limit=100").await["items"].as_array().unwrap().len(), 3);
        let soon = Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(app.state.store.forget_refusals(soon, 1_000).await.unwrap(), 3);
        assert!(op.json("/v1/operator/audit?limit=100").await["items"].as_array().unwrap().is_empty());
        app.cleanup().await;
    }

    async fn a_key_refused_by_what_it_asked_for_is_audited_too(backend) {
        let app = TestApp::spawn(backend).await;
        let (op, buyer, ak, sk) = buyer_with_key(&app, "full_access").await;
        // Full access lets the key past its policy; IAM itself refuses it: only people manage
        // keys. That refusal is audited like the policy's.
        let res = signed(&app.base, "POST", "/v1/iam/users", Some(json!({"name": "bot", "programmatic_access": true, "policy": "full_access"})), &ak, &sk, &now()).await;
        let p = assert_problem(res, StatusCode::FORBIDDEN, None).await;
        assert!(p["detail"].as_str().unwrap().contains("managed with a session"), "{p}");
        assert_eq!(buyer.json("/v1/iam/users").await.as_array().unwrap().len(), 1, "nothing was made");
        // What is merely not there, or answered, is not a refusal. What the account itself may
        // not do (it has no operator role) is refused to the key too, and audited; a session
        // told the same is not (the audit is of signed requests).
        assert_eq!(signed(&app.base, "GET", "/v1/orders/ord_missing", None, &ak, &sk, &now()).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(signed(&app.base, "GET", "/v1/operator/audit", None, &ak, &sk, &now()).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(buyer.get("/v1/operator/audit").await.status(), StatusCode::FORBIDDEN);
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::OK);
        let audit = op.json("/v1/operator/audit?limit=100").await;
        let items = audit["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{audit}");
        // Newest first: the role, then IAM.
        assert_eq!((items[1]["access_key"].as_str(), items[1]["method"].as_str(), items[1]["path"].as_str()), (Some(ak.as_str()), Some("POST"), Some("/v1/iam/users")), "{audit}");
        assert_eq!(items[1]["account_id"], buyer.id.as_str(), "{audit}");
        assert_eq!(items[1]["client_address"], "127.0.0.1", "where it came from: {audit}");
        assert!(items[1]["reason"].as_str().unwrap().contains("managed with a session"), "{audit}");
        assert_eq!((items[0]["method"].as_str(), items[0]["path"].as_str()), (Some("GET"), Some("/v1/operator/audit")), "{audit}");
        // The console shows the same to operators, and to no one else.
        let page = op.get("/console/audit").await.text().await.unwrap();
        assert!(page.contains("POST /v1/iam/users") && page.contains("managed with a session") && page.contains(&ak), "{page}");
        assert_eq!(buyer.get("/console/audit").await.status(), StatusCode::FORBIDDEN);
        app.cleanup().await;
    }

    async fn a_database_fault_is_answered_as_one_not_counted_as_a_refusal(backend) {
        let mut settings = Settings::for_tests();
        settings.throttle.signature_refusals_per_address = 1;
        let app = TestApp::spawn_with(backend, settings).await;
        let (_, _, ak, sk) = buyer_with_key(&app, "billing").await;
        app.state.store.pool().close().await;
        // Three correct signatures while the database is gone: each an internal error, none a
        // 401 or (past the limit of one) a 429, and none counted or audited.
        for _ in 0..3 {
            let res = signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await;
            assert_problem(res, StatusCode::INTERNAL_SERVER_ERROR, None).await;
        }
        let metrics = app.state.metrics.render(&souk_server::metrics::Gauges {
            jobs: vec![],
            oldest_due_job_secs: 0.0,
            instances: vec![],
            scheduler_lag_secs: 0.0,
        });
        assert!(metrics.contains("souk_signed_refusals_total{outcome=\"audited\"} 0"), "{metrics}");
        assert!(metrics.contains("souk_signed_refusals_total{outcome=\"shed\"} 0"), "{metrics}");
        app.cleanup().await;
    }

    async fn a_replay_is_refused_after_a_restart_and_by_another_node(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, _, ak, sk) = buyer_with_key(&app, "billing").await;
        let keys = (ak.as_str(), sk.as_str());
        let date = now();
        let once = |to: String| {
            let date = date.clone();
            let base = app.base.clone();
            async move { signed_via(&to, &base, "GET", "/v1/balance", None, keys, &date).await.status() }
        };
        assert_eq!(once(app.base.clone()).await, StatusCode::OK);
        // What a node accepted reaches the database within a second (here: at once).
        app.state.replays.persist(&app.state.store, Utc::now()).await.unwrap();
        // A second node on the same database, or on SQLite the same node started again with a
        // fresh memory, refuses the same request.
        let other = souk_server::AppState::new(app.state.store.clone(), app.state.settings.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = souk_server::start(other, listener).unwrap();
        assert_eq!(once(format!("http://{}", running.addr)).await, StatusCode::UNAUTHORIZED);
        assert_eq!(once(app.base.clone()).await, StatusCode::UNAUTHORIZED);
        // A new signature is a new request on either.
        let fresh = signed_via(&format!("http://{}", running.addr), &app.base, "GET", "/v1/balance?x=1", None, keys, &now()).await;
        assert_eq!(fresh.status(), StatusCode::OK);
        running.server.abort();
        app.cleanup().await;
    }

    async fn a_key_changed_elsewhere_is_refused_by_a_node_that_knew_it(backend) {
        let app = TestApp::spawn(backend).await;
        let (_, buyer, ak, sk) = buyer_with_key(&app, "full_access").await;
        let prefs = json!([{"topic": "order", "email": false}]);
        let write = || async { signed(&app.base, "PUT", "/v1/notifications/preferences", Some(prefs.clone()), &ak, &sk, &now()).await.status() };
        // The node knows the key once it has signed a request with it.
        assert_eq!(write().await, StatusCode::OK);
        // Another process changes it: on PostgreSQL another node, on SQLite the command line. Its
        // store counts its own changes, which this node's does not see.
        let elsewhere = souk_store::Store::connect_with(&app.db.as_ref().unwrap().url, 2).await.unwrap();
        let holder = app.state.store.key_holder(&ak).await.unwrap().unwrap();
        let user = holder.key.user_id.clone();
        let after_change = || async {
            if backend == souk_store::Backend::Sqlite {
                // The SQLite node reads the access generation every second; here, at once.
                app.state.replays.refresh_known_keys(&app.state.store).await.unwrap();
            }
        };
        elsewhere.set_iam_user_policy(&holder.account.id, &user, souk_core::iam::Policy::ReadOnly).await.unwrap();
        after_change().await;
        assert_eq!(write().await, StatusCode::FORBIDDEN, "the narrower policy applies");
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::OK);
        // A read the node checks against the key as it knew it (and runs while the signature is
        // remembered, on PostgreSQL) is checked again when the key turns out to have changed.
        elsewhere.set_iam_user_policy(&holder.account.id, &user, souk_core::iam::Policy::SellerOperations).await.unwrap();
        after_change().await;
        assert_eq!(signed(&app.base, "GET", "/v1/orders?limit=2", None, &ak, &sk, &now()).await.status(), StatusCode::FORBIDDEN, "the policy that does not allow it applies");
        assert_eq!(signed(&app.base, "GET", "/v1/me", None, &ak, &sk, &now()).await.status(), StatusCode::OK);
        elsewhere.set_access_key_state(&holder.account.id, &ak, souk_core::iam::KeyState::Disabled).await.unwrap();
        after_change().await;
        assert_eq!(signed(&app.base, "GET", "/v1/notifications", None, &ak, &sk, &now()).await.status(), StatusCode::UNAUTHORIZED, "the disabled key is refused");
        // The user's second key, known to the node, then deleted elsewhere.
        let second = buyer.expect_post(&format!("/v1/iam/users/{user}/access-keys"), json!({}), StatusCode::CREATED).await;
        let (ak2, sk2) = (second["access_key"].as_str().unwrap(), second["secret_key"].as_str().unwrap());
        assert_eq!(signed(&app.base, "GET", "/v1/me", None, ak2, sk2, &now()).await.status(), StatusCode::OK);
        elsewhere.delete_access_key(&holder.account.id, ak2).await.unwrap();
        after_change().await;
        assert_eq!(signed(&app.base, "GET", "/v1/me?again=1", None, ak2, sk2, &now()).await.status(), StatusCode::UNAUTHORIZED, "the deleted key is refused");
        elsewhere.close().await;
        app.cleanup().await;
    }

    async fn one_signed_request_sent_ten_times_at_once_is_accepted_once(backend) {
        // On PostgreSQL requests that arrive together share one statement (their keys' reads and
        // their signatures' inserts): copies in one batch must still count once, and distinct
        // requests in it must each pass.
        let app = TestApp::spawn(backend).await;
        let (_, _, ak, sk) = buyer_with_key(&app, "billing").await;
        let keys = (ak.as_str(), sk.as_str());
        let date = now();
        let all_at_once = |paths: Vec<String>| {
            let tasks: Vec<_> = paths
                .into_iter()
                .map(|path| {
                    let (base, date, ak, sk) = (app.base.clone(), date.clone(), ak.clone(), sk.clone());
                    tokio::spawn(async move { signed(&base, "GET", &path, None, &ak, &sk, &date).await.status() })
                })
                .collect();
            async move {
                let mut statuses = Vec::new();
                for t in tasks {
                    statuses.push(t.await.unwrap());
                }
                statuses
            }
        };
        let statuses = all_at_once(vec!["/v1/balance".to_owned(); 10]).await;
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count(), 9, "{statuses:?}");
        let statuses = all_at_once((0..10).map(|i| format!("/v1/balance?n={i}")).collect()).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        // An unknown key among them is refused on its own.
        let unknown = signed(&app.base, "GET", "/v1/balance", None, "NOSUCHKEY0000000", keys.1, &date).await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        if backend == souk_store::Backend::Postgres {
            // One batch, as requests arriving together make it: a copy is new only the first
            // time, and an unknown key has no holder and leaves nothing behind.
            use souk_store::accounts::SignedLookup;
            use souk_store::accounts::KeyRead;
            let lookup = |access_key, digest| SignedLookup { access_key, digest, expires: Utc::now() + chrono::Duration::minutes(30), known_at: None };
            let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
            // A key of quotes and backslashes (any visible ASCII can arrive) is only unknown.
            let odd = [4u8; 16];
            let batch = [lookup(keys.0, &a[..]), lookup(keys.0, &a[..]), lookup("NOSUCHKEY0000000", &b[..]), lookup(keys.0, &c[..]), lookup(r#"A"K\'},{"k"#, &odd[..])];
            let (answers, generation) = app.state.store.key_holders_remembering(&batch).await.unwrap();
            let seen: Vec<(bool, bool)> = answers
                .into_iter()
                .map(|a| a.map(|(h, fresh)| (matches!(h, KeyRead::Read(Some(_))), fresh)).unwrap())
                .collect();
            assert_eq!(seen, [(true, true), (true, false), (false, false), (true, true), (false, false)]);
            let (again, _) = app.state.store.key_holders_remembering(&batch[..1]).await.unwrap();
            assert!(!again[0].as_ref().unwrap().1, "remembered across batches");
            // A key the node read at the current access generation is not read again, and its
            // signature is still remembered; once the key changes, it is read again.
            let (d, e) = ([5u8; 16], [6u8; 16]);
            let known = SignedLookup { known_at: Some(generation), ..lookup(keys.0, &d[..]) };
            let (answers, same) = app.state.store.key_holders_remembering(&[known]).await.unwrap();
            assert_eq!(same, generation);
            assert!(matches!(answers[0].as_ref().unwrap(), (KeyRead::Unchanged, true)));
            let (answers, _) = app.state.store.key_holders_remembering(&[known]).await.unwrap();
            assert!(matches!(answers[0].as_ref().unwrap(), (KeyRead::Unchanged, false)), "a replay");
            let holder = app.state.store.key_holder(keys.0).await.unwrap().unwrap();
            app.state.store.set_access_key_state(&holder.account.id, keys.0, souk_core::iam::KeyState::Disabled).await.unwrap();
            let known = SignedLookup { known_at: Some(generation), ..lookup(keys.0, &e[..]) };
            let (answers, moved) = app.state.store.key_holders_remembering(&[known]).await.unwrap();
            assert!(moved > generation, "disabling a key moves the access generation");
            match answers[0].as_ref().unwrap() {
                (KeyRead::Read(Some(h)), true) => {
                    assert_eq!(h.key.state, souk_core::iam::KeyState::Disabled);
                    assert_eq!(h.generation, moved);
                }
                other => panic!("the changed key was not read again: {other:?}"),
            }
            let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signature_digests WHERE digest = $1").bind(&b[..]).fetch_one(app.state.store.pool()).await.unwrap();
            assert_eq!(kept, 0, "an unknown key's signature is not kept");
        }
        app.cleanup().await;
    }
}

/// The CSRF token of the form on the page at `path` (the page also sets its cookie).
async fn csrf_of(user: &User, path: &str) -> String {
    let html = user.get(path).await.text().await.unwrap();
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

on_both_databases! {
    async fn the_access_keys_page_makes_users_and_keys(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let page = buyer.get("/access-keys").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("No users yet"));

        // A user without a policy is refused with a readable message, and nothing is added.
        let csrf = csrf_of(&buyer, "/access-keys").await;
        let form = |name: &str, policy: &str| vec![("csrf", csrf.clone()), ("name", name.to_owned()), ("policy", policy.to_owned())];
        let res = buyer.client.post(format!("{}/access-keys/users", app.base)).form(&form("report-bot", "")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("must be full_access, read_only, billing or seller_operations"));
        assert_eq!(buyer.json("/v1/iam/users").await, json!([]));

        let res = buyer.client.post(format!("{}/access-keys/users", app.base)).form(&form("report-bot", "read_only")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("The user was added") && html.contains("report-bot"), "{html}");
        let uid = buyer.json("/v1/iam/users").await[0]["id"].as_str().unwrap().to_owned();

        // Making a key shows its secret on that page only.
        let res = buyer.client.post(format!("{}/access-keys/users/{uid}/keys", app.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        let html = res.text().await.unwrap();
        let grab = |id: &str| {
            let at = html.find(&format!("id=\"{id}\">")).unwrap() + id.len() + 6;
            html[at..at + html[at..].find('<').unwrap()].to_owned()
        };
        let (ak, sk) = (grab("ak"), grab("sk"));
        assert_eq!((ak.len(), sk.len()), (20, 40));
        let again = buyer.get("/access-keys").await.text().await.unwrap();
        assert!(again.contains(&ak) && !again.contains(&sk));

        // The key works under its policy; disabled from the page, it signs nothing.
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::OK);
        assert_eq!(signed(&app.base, "POST", "/v1/orders", Some(json!({})), &ak, &sk, &now()).await.status(), StatusCode::FORBIDDEN);
        let res = buyer.client.post(format!("{}/access-keys/{ak}/disable", app.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert!(res.text().await.unwrap().contains("The key is disabled"));
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::UNAUTHORIZED);
        let res = buyer.client.post(format!("{}/access-keys/{ak}/delete", app.base)).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        let html = res.text().await.unwrap();
        assert!(html.contains("The key was deleted") && !html.contains(&ak));
        app.cleanup().await;
    }
}

/// A key for `user` (signed in) under an IAM user with `policy`: (access key, secret key).
/// An operator, and a verified buyer with an IAM user `bot` under `policy` and its key.
async fn buyer_with_key(app: &TestApp, policy: &str) -> (User, User, String, String) {
    let op = app.operator().await;
    let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
    let (ak, sk) = key_with(&buyer, "bot", policy).await;
    (op, buyer, ak, sk)
}

async fn key_with(user: &User, name: &str, policy: &str) -> (String, String) {
    let u = user
        .expect_post(
            "/v1/iam/users",
            json!({"name": name, "programmatic_access": true, "policy": policy}),
            StatusCode::CREATED,
        )
        .await;
    let k = user
        .expect_post(
            &format!("/v1/iam/users/{}/access-keys", u["id"].as_str().unwrap()),
            json!({}),
            StatusCode::CREATED,
        )
        .await;
    (
        k["access_key"].as_str().unwrap().to_owned(),
        k["secret_key"].as_str().unwrap().to_owned(),
    )
}

on_both_databases! {
    async fn a_seller_queries_its_order_and_updates_access_data_with_signed_calls(backend) {
        let app = TestApp::spawn(backend).await;
        let op = app.operator().await;
        let (seller, product, plan) = app.listed_product_of_new_merchant(&op, "https://acme.example/souk").await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        app.top_up(&op, &buyer, "500.00").await;
        let order: Value = buyer.order(&plan, 2, None).await.json().await.unwrap();
        let order_id = order["id"].as_str().unwrap();
        let (ak, sk) = key_with(&seller, "provisioner", "seller_operations").await;

        let path = format!("/api/mkp-openapi-public/global/v1/order/query?orderId={order_id}&orderLineId={order_id}-000001");
        let res = signed(&app.base, "GET", &path, None, &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["resultCode"], "MKT.0000");
        let info = &body["orderInfo"];
        assert_eq!(info["orderId"], order_id);
        assert_eq!(info["orderType"], "NEW");
        assert_eq!(info["customerId"], buyer.id.as_str());
        assert_eq!(info["orderAmount"], "198.00");
        let line = &info["orderLineList"][0];
        assert_eq!(line["orderLineId"], format!("{order_id}-000001"));
        assert_eq!((line["periodType"].as_str(), line["periodNumber"].as_u64()), (Some("month"), Some(2)));
        assert_eq!(line["productInfo"][0]["productId"], product.as_str());
        assert_eq!(line["productInfo"][0]["skuCode"], plan.as_str());
        assert_eq!(line["expireTime"].as_str().unwrap().len(), 14);

        // The same through souk's own API, with the merchant's session.
        let own = seller.json(&format!("/v1/seller/orders/{order_id}")).await;
        assert_eq!((own["id"].as_str(), own["buyer_name"].as_str(), own["plan_name"].as_str()), (Some(order_id), Some("buyer"), Some("Team")));

        // A missing order id, a line the order does not have, another merchant's order: refused.
        let p = signed(&app.base, "GET", "/api/mkp-openapi-public/global/v1/order/query", None, &ak, &sk, &now()).await;
        assert_problem(p, StatusCode::UNPROCESSABLE_ENTITY, Some("orderId")).await;
        let wrong_line = format!("/api/mkp-openapi-public/global/v1/order/query?orderId={order_id}&orderLineId=x");
        assert_problem(signed(&app.base, "GET", &wrong_line, None, &ak, &sk, &now()).await, StatusCode::NOT_FOUND, None).await;
        let other = app.merchant(&op, "other@seller.test").await;
        let (oak, osk) = key_with(&other, "nosy", "seller_operations").await;
        assert_problem(signed(&app.base, "GET", &path, None, &oak, &osk, &now()).await, StatusCode::NOT_FOUND, None).await;
        assert_problem(other.get(&format!("/v1/seller/orders/{order_id}")).await, StatusCode::NOT_FOUND, None).await;
        // A buyer's billing key is not a seller's.
        let (bak, bsk) = key_with(&buyer, "billing-bot", "billing").await;
        assert_problem(signed(&app.base, "GET", &path, None, &bak, &bsk, &now()).await, StatusCode::FORBIDDEN, None).await;

        // The seller updates the instance's access data; the buyer sees it, and the timeline says so.
        let instance = order["instance_id"].as_str().unwrap();
        let access = format!("/v1/seller/instances/{instance}/access");
        let res = signed(&app.base, "PUT", &access, Some(json!({"front_end_url": "https://notes.acme.example/t/1", "password": "n3w pass"})), &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
        let seen = buyer.json(&format!("/v1/instances/{instance}")).await;
        assert_eq!(seen["access"]["front_end_url"], "https://notes.acme.example/t/1");
        assert_eq!(seen["access"]["password"], "n3w pass");
        assert!(seen["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "seller.access_updated"), "{seen}");
        // Only a user name now: the rest stays.
        let res = signed(&app.base, "PUT", &access, Some(json!({"user_name": "admin"})), &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let seen = buyer.json(&format!("/v1/instances/{instance}")).await;
        assert_eq!((seen["access"]["user_name"].as_str(), seen["access"]["password"].as_str()), (Some("admin"), Some("n3w pass")));
        // The seller kit's client makes the same calls.
        let kit = souk_seller::client::Marketplace::new(&app.base, &ak, &sk);
        assert_eq!(kit.query_order(order_id, None).await.unwrap()["orderId"], order_id);
        // The same call again at once: its nonce makes it a new signature, not a replay.
        assert_eq!(kit.query_order(order_id, None).await.unwrap()["orderId"], order_id);
        let update = souk_seller::client::AccessUpdate { admin_url: Some("https://admin.acme.example/".into()), ..Default::default() };
        kit.update_access(instance, &update).await.unwrap();
        assert_eq!(buyer.json(&format!("/v1/instances/{instance}")).await["access"]["admin_url"], "https://admin.acme.example/");
        let wrong = souk_seller::client::Marketplace::new(&app.base, &ak, "not-the-secret");
        match wrong.query_order(order_id, None).await {
            Err(souk_seller::client::Error::Refused { status, .. }) => assert_eq!(status, 401),
            other => panic!("a wrong secret must be refused: {other:?}"),
        }
        // Two updates of different fields at once: neither is lost.
        for round in 0..10 {
            let admin = format!("https://admin.acme.example/{round}");
            let user = format!("user-{round}");
            let (a, b) = tokio::join!(seller.put(&access, json!({"admin_url": admin})), seller.put(&access, json!({"user_name": user})));
            assert_eq!((a.status(), b.status()), (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT));
            let seen = buyer.json(&format!("/v1/instances/{instance}")).await;
            assert_eq!((seen["access"]["admin_url"].as_str(), seen["access"]["user_name"].as_str()), (Some(admin.as_str()), Some(user.as_str())));
        }
        // Bad addresses, nothing at all, another merchant: refused, nothing changed.
        let bad = signed(&app.base, "PUT", &access, Some(json!({"front_end_url": "javascript:alert(1)"})), &ak, &sk, &now()).await;
        assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, Some("front_end_url")).await;
        assert_problem(signed(&app.base, "PUT", &access, Some(json!({})), &ak, &sk, &now()).await, StatusCode::UNPROCESSABLE_ENTITY, None).await;
        assert_problem(signed(&app.base, "PUT", &access, Some(json!({"password": "x"})), &oak, &osk, &now()).await, StatusCode::NOT_FOUND, None).await;
        assert_eq!(buyer.json(&format!("/v1/instances/{instance}")).await["access"]["password"], "n3w pass");
        app.cleanup().await;
    }
}

on_both_databases! {
    async fn an_iam_user_gets_another_policy_or_is_deleted_with_all_it_held(backend) {
        let app = TestApp::spawn(backend).await;
        let (op, buyer, ak, sk) = buyer_with_key(&app, "full_access").await;
        let uid = buyer.json("/v1/iam/users").await[0]["id"].as_str().unwrap().to_owned();
        let prefs = json!([{"topic": "order", "email": false}]);
        let write = || async { signed(&app.base, "PUT", "/v1/notifications/preferences", Some(prefs.clone()), &ak, &sk, &now()).await };
        assert_eq!(write().await.status(), StatusCode::OK);

        // Read-only from its next request on.
        let changed = buyer.send(reqwest::Method::PATCH, &format!("/v1/iam/users/{uid}"), Some(json!({"policy": "read_only"})), StatusCode::OK).await;
        assert_eq!((changed["policy"].as_str(), changed["access_keys"].as_array().map(Vec::len)), (Some("read_only"), Some(1)), "{changed}");
        assert_eq!(write().await.status(), StatusCode::FORBIDDEN);
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::OK);
        assert_problem(buyer.client.patch(format!("{}/v1/iam/users/{uid}", app.base)).json(&json!({"policy": "root"})).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, Some("policy")).await;

        // A console user signed in, and the key: deleting the user ends both.
        let carol = buyer.expect_post("/v1/iam/users", json!({"name": "carol", "console_access": true, "password": "a-long-enough-password", "policy": "read_only"}), StatusCode::CREATED).await;
        let session = User::new(&app.base);
        assert_eq!(session.post("/v1/sessions", json!({"email": "buyer@souk.test", "user": "carol", "password": "a-long-enough-password"})).await.status(), StatusCode::OK);
        assert_eq!(session.get("/v1/orders").await.status(), StatusCode::OK);
        // Only the account itself deletes: not its key, not another account.
        let res = signed(&app.base, "DELETE", &format!("/v1/iam/users/{uid}"), None, &ak, &sk, &now()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let other = app.verified_buyer(&op, "other@souk.test").await;
        assert_problem(other.client.delete(format!("{}/v1/iam/users/{uid}", app.base)).send().await.unwrap(), StatusCode::NOT_FOUND, None).await;
        buyer.send(reqwest::Method::DELETE, &format!("/v1/iam/users/{uid}"), None, StatusCode::NO_CONTENT).await;
        buyer.send(reqwest::Method::DELETE, &format!("/v1/iam/users/{}", carol["id"].as_str().unwrap()), None, StatusCode::NO_CONTENT).await;
        assert_eq!(signed(&app.base, "GET", "/v1/orders", None, &ak, &sk, &now()).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(session.get("/v1/orders").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(buyer.json("/v1/iam/users").await, json!([]));
        buyer.send(reqwest::Method::DELETE, &format!("/v1/iam/users/{uid}"), None, StatusCode::NOT_FOUND).await;
        app.cleanup().await;
    }
}

/// Nodes on one PostgreSQL: the only one keeps the signatures it accepts in its memory; when a
/// second joins, the first writes them to the database before the second serves, and when the
/// second leaves, the first keeps them alone again, knowing what the second accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_hand_accepted_signatures_over_as_they_join_and_leave() {
    if !souk_store::testing::postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let app = TestApp::spawn(souk_store::Backend::Postgres).await;
    let (_, _, ak, sk) = buyer_with_key(&app, "billing").await;
    let keys = (ak.as_str(), sk.as_str());
    let once = |to: &str, path: &str, date: &str| {
        let (to, base, path, date) = (
            to.to_owned(),
            app.base.clone(),
            path.to_owned(),
            date.to_owned(),
        );
        async move {
            signed_via(&to, &base, "GET", &path, None, keys, &date)
                .await
                .status()
        }
    };
    let first = &app.state;
    first.replays.join(&first.store).await.unwrap();
    first.replays.watch_nodes(&first.store).await.unwrap();
    assert!(
        first.replays.keeps_alone().await,
        "the only node keeps them itself"
    );
    let early = now();
    assert_eq!(once(&app.base, "/v1/balance", &early).await, StatusCode::OK);
    assert_eq!(
        once(&app.base, "/v1/balance", &early).await,
        StatusCode::UNAUTHORIZED,
        "its memory refuses a replay"
    );
    // Ten copies of one request at once: its memory accepts one.
    let at_once = now();
    let copies: Vec<_> = (0..10)
        .map(|_| {
            let (base, ak, sk, date) = (app.base.clone(), ak.clone(), sk.clone(), at_once.clone());
            tokio::spawn(async move {
                signed_via(
                    &base,
                    &base,
                    "GET",
                    "/v1/balance?copies=10",
                    None,
                    (&ak, &sk),
                    &date,
                )
                .await
                .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for copy in copies {
        statuses.push(copy.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );

    // A second node, with connections of its own. Joining waits until the first hands over (the
    // first looks four times a second).
    let url = app.db.as_ref().unwrap().url.clone();
    let store = souk_store::Store::connect_with(&url, 4).await.unwrap();
    let second = souk_server::AppState::new(store, app.state.settings.clone());
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        second.replays.join(&second.store),
    )
    .await
    .expect("the first node hands over within seconds")
    .unwrap();
    assert!(!first.replays.keeps_alone().await);
    let running = souk_server::start(
        second.clone(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .unwrap();
    let to_second = format!("http://{}", running.addr);
    second.replays.watch_nodes(&second.store).await.unwrap();
    assert!(!second.replays.keeps_alone().await, "two nodes share them");
    assert_eq!(
        once(&to_second, "/v1/balance", &early).await,
        StatusCode::UNAUTHORIZED,
        "what the first accepted alone"
    );
    let later = now();
    assert_eq!(
        once(&to_second, "/v1/balance?n=2", &later).await,
        StatusCode::OK
    );
    assert_eq!(
        once(&app.base, "/v1/balance?n=2", &later).await,
        StatusCode::UNAUTHORIZED,
        "what the second accepted"
    );
    assert_eq!(
        once(&app.base, "/v1/balance?n=3", &later).await,
        StatusCode::OK
    );
    assert_eq!(
        once(&to_second, "/v1/balance?n=3", &later).await,
        StatusCode::UNAUTHORIZED
    );

    // The second leaves; the first is alone again and keeps them, refusing what either accepted.
    second.replays.leave(&second.store).await.unwrap();
    running.server.abort();
    let mut alone = false;
    for _ in 0..100 {
        first.replays.watch_nodes(&first.store).await.unwrap();
        alone = first.replays.keeps_alone().await;
        if alone {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(alone, "the first node keeps them alone again");
    for path in ["/v1/balance", "/v1/balance?n=2", "/v1/balance?n=3"] {
        let date = if path == "/v1/balance" {
            &early
        } else {
            &later
        };
        assert_eq!(
            once(&app.base, path, date).await,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        once(&app.base, "/v1/balance?n=4", &later).await,
        StatusCode::OK
    );
    first.replays.leave(&first.store).await.unwrap();
    app.cleanup().await;
}

/// A node that has not joined the others (here, as a test harness starts one) meets a node
/// keeping signatures alone: its signed requests, reads and writes, wait for the handover and
/// then pass, and past 5 seconds are answered 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_requests_wait_for_a_node_keeping_signatures_alone() {
    if !souk_store::testing::postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let app = TestApp::spawn(souk_store::Backend::Postgres).await;
    let (_, _, ak, sk) = buyer_with_key(&app, "full_access").await;
    let send = |method: &'static str, path: &'static str, date: String| {
        let (base, ak, sk) = (app.base.clone(), ak.clone(), sk.clone());
        let body = (method == "PUT").then(|| json!([{"topic": "order", "email": false}]));
        tokio::spawn(async move { signed(&base, method, path, body, &ak, &sk, &date).await })
    };
    // The node knows the key from here on, so its reads run beside their check.
    assert_eq!(
        send("GET", "/v1/balance", now()).await.unwrap().status(),
        StatusCode::OK
    );

    let elsewhere = souk_store::Store::connect_with(&app.db.as_ref().unwrap().url, 2)
        .await
        .unwrap();
    let mut keeper = elsewhere.join_nodes(false).await.unwrap();
    assert!(
        keeper.keep_alone().await.unwrap(),
        "the test node is not counted: it never joined"
    );
    let date = now();
    let read = send("GET", "/v1/balance?n=1", date.clone());
    let write = send("PUT", "/v1/notifications/preferences", date.clone());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !read.is_finished() && !write.is_finished(),
        "both wait for the handover"
    );
    keeper.stop_keeping().await.unwrap();
    assert_eq!(read.await.unwrap().status(), StatusCode::OK);
    assert_eq!(write.await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        send("GET", "/v1/balance?n=1", date).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "remembered once handed over"
    );

    assert!(keeper.keep_alone().await.unwrap());
    let waited_out = send("GET", "/v1/balance?n=2", now()).await.unwrap();
    assert_eq!(waited_out.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(waited_out.headers().contains_key("retry-after"));
    assert_eq!(
        waited_out.headers()["content-type"],
        "application/problem+json"
    );
    keeper.leave().await.unwrap();
    elsewhere.close().await;
    app.cleanup().await;
}

/// A node keeping signatures alone whose own connection is cut (an operator's
/// `pg_terminate_backend`, a proxy restarting) joins again as a new node would, writing what it
/// kept first: it refuses what it accepted before, and serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keeper_whose_connection_is_cut_joins_again_and_refuses_what_it_accepted() {
    if !souk_store::testing::postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let app = TestApp::spawn(souk_store::Backend::Postgres).await;
    let (_, _, ak, sk) = buyer_with_key(&app, "billing").await;
    let node = &app.state;
    let get = |path: &'static str, date: String| {
        let (base, ak, sk) = (app.base.clone(), ak.clone(), sk.clone());
        async move {
            signed(&base, "GET", path, None, &ak, &sk, &date)
                .await
                .status()
        }
    };
    node.replays.join(&node.store).await.unwrap();
    node.replays.watch_nodes(&node.store).await.unwrap();
    assert!(node.replays.keeps_alone().await);
    let early = now();
    assert_eq!(get("/v1/balance", early.clone()).await, StatusCode::OK);

    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND objid = 2 AND objsubid = 2 AND mode = 'ExclusiveLock' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(node.store.pool())
    .await
    .unwrap();
    assert_eq!(cut, 1, "the keeper lock's connection");
    // The node finds out at its next look; a request meanwhile is accepted while its lease runs,
    // or waits until the node has joined again.
    let later = now();
    assert_eq!(get("/v1/balance?n=1", later.clone()).await, StatusCode::OK);
    let mut rejoined = false;
    for _ in 0..100 {
        if node.replays.watch_nodes(&node.store).await.is_ok() && node.replays.keeps_alone().await {
            rejoined = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        rejoined,
        "the node joined again and, alone, keeps signatures again"
    );
    assert_eq!(
        get("/v1/balance", early).await,
        StatusCode::UNAUTHORIZED,
        "accepted before the cut"
    );
    assert_eq!(
        get("/v1/balance?n=1", later).await,
        StatusCode::UNAUTHORIZED,
        "accepted around the cut"
    );
    assert_eq!(get("/v1/balance?n=2", now()).await, StatusCode::OK);
    node.replays.leave(&node.store).await.unwrap();
    app.cleanup().await;
}
