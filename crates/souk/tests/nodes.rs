//! Several nodes: two `souk serve` processes on one database share the job queue. Orders placed
//! through both make 2,000 provisioning jobs (and the access queries after them); the seller is
//! called exactly once for each job (none run twice, none lost), every instance ends active, and
//! the buyer is told of each order and each ready instance once, by one e-mail each.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::json;
use souk_server::testing::stub_seller;
use souk_store::on_both_databases;
use souk_store::testing::TestDb;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

const ORDERS: usize = 2000;

fn serve(db: &str, secret: &str, port: u16, outbox: &std::path::Path) -> Process {
    Process(
        Command::new(souk_bin())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--allow-loopback-http",
                "true",
                "--allowed-seller-networks",
                "127.0.0.0/8",
            ])
            .env("SOUK_DATABASE_URL", db)
            .env("SOUK_SECRET_KEY", secret)
            .env("SOUK_CONFIG", "/dev/null")
            .env("SOUK_OUTBOX_DIR", outbox)
            .env("SOUK_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

on_both_databases! {
    async fn two_nodes_drain_one_job_queue_exactly_once(backend) {
        let db = TestDb::new(backend).await;
        let secret = "0d9f0c3a5b1e4f2a8c6d0e9b7a5c3e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d";
        let (endpoint, stub) = stub_seller("000000", 0, souk_server::demo_seller::DEMO_SIGNING_KEY).await;
        // The demo marketplace, its products calling the stub seller.
        {
            // Sealed with the nodes' key, so they can open the products' signing keys.
            let mut secret_key = [0u8; 32];
            for (i, b) in secret_key.iter_mut().enumerate() {
                *b = u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap();
            }
            let settings = souk_server::Settings { secret_key, ..souk_server::Settings::for_tests() };
            let state = souk_server::AppState::new(db.store.clone(), settings);
            souk_server::demo::fill(&state, &endpoint).await.unwrap();
        }
        let top_up = souk(&["admin", "top-up", "--email", "buyer@souk.demo", "--amount", "1000000.00"], &db.url, secret);
        assert!(top_up.status.success(), "{}", String::from_utf8_lossy(&top_up.stderr));

        let (port_a, port_b) = (free_port(), free_port());
        // One outbox for both, as one shared mail server would be.
        let outbox = outbox_dir();
        let _a = serve(&db.url, secret, port_a, &outbox);
        let _b = serve(&db.url, secret, port_b, &outbox);
        let bases = [format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}")];
        for base in &bases {
            wait_until_up(&format!("{base}/healthz")).await;
        }
        let buyer = Client::builder().cookie_store(true).build().unwrap();
        let res = buyer
            .post(format!("{}/v1/sessions", bases[0]))
            .json(&json!({"email": "buyer@souk.demo", "password": "buyer-demo-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let plan: String = buyer.get(format!("{}/v1/products?q=acme%20notes", bases[0])).send().await.unwrap()
            .json::<serde_json::Value>().await.unwrap()["items"][0]["plans"][0]["id"].as_str().unwrap().to_owned();

        // Orders through both nodes, eight at a time; a session made on one is good on the other.
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let (buyer, plan, bases) = (buyer.clone(), plan.clone(), bases.clone());
                tokio::spawn(async move {
                    for i in (w..ORDERS).step_by(8) {
                        let res = buyer
                            .post(format!("{}/v1/orders", bases[i % 2]))
                            .header("Idempotency-Key", format!("node-order-{i}"))
                            .json(&json!({"plan_id": plan, "period": "month", "periods": 1}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }

        // Both nodes' dispatchers drain the queue. The waits below end as soon as the work is
        // done; their limits are for a busy machine running both databases' tests at once.
        let pool = db.store.pool();
        let mut active = 0;
        for _ in 0..4800 {
            active = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM instances WHERE state = 'active'")
                .fetch_one(pool)
                .await
                .unwrap();
            if active as usize == ORDERS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(active as usize, ORDERS, "{backend:?}: every instance provisioned");
        // The notifiers have told of every order and ready instance (their e-mails are jobs too).
        let mut told = 0;
        for _ in 0..2400 {
            told = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM notifications n JOIN accounts a ON a.id = n.account_id \
                 WHERE a.email = 'buyer@souk.demo' AND n.topic IN ('order', 'provisioning')",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            if told as usize >= 2 * ORDERS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Each purchase made its provisioning call and the access query after it; every job ran
        // at its first attempt, and the seller heard exactly one call per job.
        let mut jobs: Vec<(String, String, i64)> = Vec::new();
        for _ in 0..1200 {
            jobs = sqlx::query_as("SELECT kind, state, attempts FROM jobs")
                .fetch_all(pool)
                .await
                .unwrap();
            if jobs.iter().all(|(_, state, _)| state == "done") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(jobs.iter().filter(|(kind, _, _)| kind == "seller.new_instance").count(), ORDERS);
        assert!(jobs.iter().all(|(_, state, attempts)| state == "done" && *attempts == 1), "{backend:?}: each job run once");
        let seller_jobs = jobs.iter().filter(|(kind, _, _)| kind.starts_with("seller.")).count();
        assert_eq!(stub.calls.load(Ordering::SeqCst), seller_jobs, "{backend:?}: no seller call made twice, none lost");
        // Both nodes' schedulers told the buyer of each order and each ready instance once, and
        // each of those e-mails was written once.
        assert_eq!(told as usize, 2 * ORDERS, "{backend:?}: one notification per event");
        let email_jobs = jobs.iter().filter(|(kind, _, _)| kind == "email.send").count();
        let notifications: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications").fetch_one(pool).await.unwrap();
        let unsent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE emailed_at IS NULL").fetch_one(pool).await.unwrap();
        assert_eq!(unsent, 0, "{backend:?}: every notification e-mailed");
        assert!(email_jobs >= 1 && email_jobs as i64 <= notifications, "{backend:?}: a person's e-mails of one batch share a job");
        let files = std::fs::read_dir(&outbox).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".eml")).count();
        assert_eq!(files as i64, notifications, "{backend:?}: each e-mail written once");
        let _ = std::fs::remove_dir_all(&outbox);
        let out = souk(&["admin", "verify-ledger"], &db.url, secret);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        db.cleanup().await;
    }
}

/// Signs a request with `souk sign`, as a script would: its date and authorization headers.
fn signed_headers(
    url: &str,
    key: &(String, String),
    db: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let out = souk(
        &["sign", "GET", url, "--ak", &key.0, "--sk", &key.1],
        db,
        secret,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let command = String::from_utf8(out.stdout).unwrap();
    command
        .split("-H '")
        .skip(1)
        .map(|h| {
            let header = &h[..h.find('\'').unwrap()];
            let (name, value) = header.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Sends a signed `GET` to `to`, as signed for `base` (a load balancer passing it on).
async fn send_signed(to: &str, base: &str, path: &str, headers: &[(String, String)]) -> StatusCode {
    let mut req = Client::new()
        .get(format!("{to}{path}"))
        .header("Host", base.trim_start_matches("http://"));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await.unwrap().status()
}

/// The demo marketplace, made by `souk demo`, and an access key of its buyer made by `souk admin
/// create-access-key`: (access key, secret key).
fn demo_with_key(db: &str, secret: &str) -> (String, String) {
    let demo = souk(&["demo"], db, secret);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let made = souk(
        &[
            "admin",
            "create-access-key",
            "--email",
            "buyer@souk.demo",
            "--json",
        ],
        db,
        secret,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    (
        made["access_key"].as_str().unwrap().to_owned(),
        made["secret_key"].as_str().unwrap().to_owned(),
    )
}

/// Stops a node with SIGTERM, as a service manager does, and checks that it exits cleanly.
fn stop(node: &mut Process) {
    let term = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = node.0.wait().unwrap();
    assert!(
        status.success(),
        "a node stopped with SIGTERM exits cleanly: {status:?}"
    );
}

on_both_databases! {
    async fn a_node_stopped_with_sigterm_refuses_after_its_restart_what_it_accepted(backend) {
        let db = TestDb::new(backend).await;
        let secret = "5e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d0d9f0c3a5b1e4f2a8c6d0e9b7a5c";
        let key = demo_with_key(&db.url, secret);
        let outbox = outbox_dir();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut node = serve(&db.url, secret, port, &outbox);
        wait_until_up(&format!("{base}/healthz")).await;
        let headers = signed_headers(&format!("{base}/v1/balance"), &key, &db.url, secret);
        assert_eq!(send_signed(&base, &base, "/v1/balance", &headers).await, StatusCode::OK);
        // Stopped at once (before its every-second write), it writes what it kept as it stops.
        stop(&mut node);
        let _again = serve(&db.url, secret, port, &outbox);
        wait_until_up(&format!("{base}/healthz")).await;
        assert_eq!(send_signed(&base, &base, "/v1/balance", &headers).await, StatusCode::UNAUTHORIZED, "{backend:?}");
        db.cleanup().await;
    }
}

/// Two `souk serve` processes on one PostgreSQL: the first, alone, keeps accepted signatures in
/// memory and hands them over when the second starts; each refuses what the other accepted; the
/// second stopped with SIGTERM, the first keeps them alone again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_refuse_each_others_signed_requests_as_they_come_and_go() {
    if !souk_store::testing::postgres_enabled() {
        eprintln!("skipped: SOUK_TEST_POSTGRES_URL is not set");
        return;
    }
    let db = TestDb::new(souk_store::Backend::Postgres).await;
    let secret = "5e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d0d9f0c3a5b1e4f2a8c6d0e9b7a5c";
    let key = demo_with_key(&db.url, secret);
    let outbox = outbox_dir();
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let sign =
        |base: &str, path: &str| signed_headers(&format!("{base}{path}"), &key, &db.url, secret);

    let _first = serve(&db.url, secret, port_a, &outbox);
    wait_until_up(&format!("{a}/healthz")).await;
    let early = sign(&a, "/v1/balance");
    assert_eq!(
        send_signed(&a, &a, "/v1/balance", &early).await,
        StatusCode::OK
    );
    assert_eq!(
        send_signed(&a, &a, "/v1/balance", &early).await,
        StatusCode::UNAUTHORIZED
    );

    // The second starts once the first has handed over what it kept.
    let mut second = serve(&db.url, secret, port_b, &outbox);
    wait_until_up(&format!("{b}/healthz")).await;
    assert_eq!(
        send_signed(&b, &a, "/v1/balance", &early).await,
        StatusCode::UNAUTHORIZED,
        "the first's, at the second"
    );
    let later = sign(&b, "/v1/balance?n=2");
    assert_eq!(
        send_signed(&b, &b, "/v1/balance?n=2", &later).await,
        StatusCode::OK
    );
    assert_eq!(
        send_signed(&a, &b, "/v1/balance?n=2", &later).await,
        StatusCode::UNAUTHORIZED,
        "the second's, at the first"
    );

    stop(&mut second);
    // Alone again, the first keeps them after a moment; what the second accepted stays refused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        send_signed(&a, &b, "/v1/balance?n=2", &later).await,
        StatusCode::UNAUTHORIZED
    );
    let last = sign(&a, "/v1/balance?n=3");
    assert_eq!(
        send_signed(&a, &a, "/v1/balance?n=3", &last).await,
        StatusCode::OK
    );
    db.cleanup().await;
}
