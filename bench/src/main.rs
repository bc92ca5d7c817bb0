//! `cargo run --release -p souk-bench`: measures souk against the raw limit of the same machine
//! in the same run, and prints the ratios.
//!
//! - catalog: `GET /v1/products?limit=20` with 16 connections, against a bare HTTP server
//!   answering the same bytes from memory;
//! - orders: `POST /v1/orders` paid from the balance with 8 clients on PostgreSQL, against pgbench's
//!   built-in tpcb-like script with 8 clients on the same server (needs `SOUK_TEST_POSTGRES_URL`
//!   and `pgbench`), driven both by this process's HTTP client and, when installed, by `wrk`;
//!   and one order at a time with no load, for latency;
//! - usage ingestion: `POST /v1/metering/usage` in batches of 1,000 records with 4 clients, against
//!   inserting the same rows straight into a table with the same key in the same database (one
//!   multi-row `INSERT … ON CONFLICT DO NOTHING` per batch), on SQLite and, when set, PostgreSQL;
//! - dispatcher: the signed seller calls of 2,000 orders placed while the workers were stopped,
//!   made to a local seller stub, in calls per second; then again with 200 more orders of a
//!   seller that never answers, to see how much that seller slows the others;
//! - access keys: `GET /v1/orders?limit=5` signed with an access key (SDK-HMAC-SHA256, a fresh
//!   nonce each, signed before the measurement) against the same request with a session cookie,
//!   8 clients, on SQLite and, when set, PostgreSQL.

use anyhow::{bail, Context, Result};
use reqwest::Client;
use serde_json::{json, Value};
use souk_server::app::{accounts, ledger, Caller, Via};
use souk_server::{AppState, Settings};
use souk_store::testing::TestDb;
use souk_store::Backend;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(5);

/// The allocator the `souk` binary serves with, so the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Load {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl Load {
    /// Prints one measured line: `label`, requests a second, p50 and p99.
    fn print(&self, label: &str) {
        println!(
            "  {label:<17} {:>9.0} req/s  p50 {:>7.2?}  p99 {:>7.2?}",
            self.per_sec, self.p50, self.p99
        );
    }
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Load {
    lat.sort();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Load {
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs `clients` loops of `step` for [`RUN`] and collects each step's latency.
async fn drive<F, Fut>(clients: usize, step: F) -> Result<Load>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    drive_for(RUN, clients, step).await
}

/// Runs `clients` loops of `step` for `run` and collects each step's latency.
async fn drive_for<F, Fut>(run: Duration, clients: usize, step: F) -> Result<Load>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let step = Arc::new(step);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while start.elapsed() < run {
                let t = Instant::now();
                step(c, i).await?;
                lat.push(t.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(summarize(all, start.elapsed()))
}

async fn souk(backend: Backend) -> Result<(TestDb, String, Arc<AppState>)> {
    let db = TestDb::new(backend).await;
    let settings = Settings {
        demo_seller: true,
        test_clock: false,
        ..Settings::for_tests()
    };
    let state = AppState::new(db.store.clone(), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    souk_server::demo::fill(&state, &format!("http://{addr}/demo-seller"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // As `souk serve` does: a node alone keeps accepted signatures in its memory.
    state
        .replays
        .join(&state.store)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    souk_server::start(state.clone(), listener)?;
    Ok((db, format!("http://{addr}"), state))
}

/// A load step: GET `url` with `client`, read the whole answer, fail on anything but success.
fn get_step(
    client: Client,
    url: String,
) -> impl Fn(usize, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
       + Send
       + Sync
       + 'static {
    move |_, _| {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let res = client.get(&url).send().await?;
            if !res.status().is_success() {
                bail!("{}", res.status());
            }
            res.bytes().await?;
            Ok(())
        })
    }
}

/// One page of souk against a bare server answering the same bytes from memory, 16 connections.
async fn versus_bare(
    client: &Client,
    url: &str,
    content_type: &'static str,
    what: &str,
) -> Result<()> {
    let body = client.get(url).send().await?.bytes().await?;
    let bare = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let b = body.clone();
            async move { ([("content-type", content_type)], b) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_url = format!("http://{}/", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, bare).await });
    let raw = drive(16, get_step(client.clone(), bare_url)).await?;
    let ours = drive(16, get_step(client.clone(), url.to_owned())).await?;
    server.abort();
    println!("{what}, 16 connections (SQLite)");
    raw.print("bare HTTP answer");
    ours.print("souk");
    println!(
        "  ratio             {:>8.1}%  (target >= 25%)",
        100.0 * ours.per_sec / raw.per_sec
    );
    Ok(())
}

/// The catalog as JSON, and the storefront's home and a product page as HTML.
async fn catalog() -> Result<()> {
    let (db, base, _state) = souk(Backend::Sqlite).await?;
    let client = Client::new();
    let product = client
        .get(format!("{base}/v1/products?q=notes"))
        .send()
        .await?
        .json::<Value>()
        .await?["items"][0]["id"]
        .as_str()
        .context("a demo product")?
        .to_owned();
    versus_bare(
        &client,
        &format!("{base}/v1/products?limit=20"),
        "application/json",
        "catalog listing (JSON), 20 products with plans",
    )
    .await?;
    versus_bare(
        &client,
        &format!("{base}/"),
        "text/html; charset=utf-8",
        "storefront home (HTML)",
    )
    .await?;
    versus_bare(
        &client,
        &format!("{base}/products/{product}"),
        "text/html; charset=utf-8",
        "product page (HTML)",
    )
    .await?;
    db.cleanup().await;
    Ok(())
}

fn app(e: souk_server::error::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// `n` verified buyers with a large balance, each with a logged-in client, and the `Cookie`
/// header of its session (for a load generator outside this process), and the demo plan to buy.
async fn buyers(
    base: &str,
    state: &AppState,
    n: usize,
) -> Result<(Vec<Client>, Vec<String>, String)> {
    let plan = Client::new()
        .get(format!("{base}/v1/products?q=notes"))
        .send()
        .await?
        .json::<Value>()
        .await?["items"][0]["plans"][0]["id"]
        .as_str()
        .context("a demo plan")?
        .to_owned();
    let mut clients = Vec::new();
    let mut cookies = Vec::new();
    let url = reqwest::Url::parse(base)?;
    for i in 0..n {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let c = Client::builder().cookie_provider(jar.clone()).build()?;
        let email = format!("bench{i}@souk.bench");
        c.post(format!("{base}/v1/accounts")).json(&json!({"kind": "individual", "name": "Bench", "email": email, "password": "bench password 1"})).send().await?;
        let acc = state
            .store
            .account_by_email(&email)
            .await?
            .context("bench account")?;
        let buyer = Caller {
            account: acc,
            via: Via::CommandLine,
        };
        let details = accounts::VerificationInput {
            legal_name: "Bench".into(),
            phone: "+86 138 0000 0000".into(),
            id_number: Some("110101199001010000".into()),
            company_name: None,
            registration_number: None,
        };
        let system = accounts::command_line_caller(state).await.map_err(app)?;
        accounts::submit_verification(state, &buyer, details)
            .await
            .map_err(app)?;
        let approve = accounts::Decision {
            approve: true,
            reason: None,
        };
        accounts::decide_verification(state, &system, buyer.id(), approve)
            .await
            .map_err(app)?;
        let top_up = ledger::TopUp {
            account_id: Some(buyer.id().to_string()),
            email: None,
            amount: "10000000000.00".into(),
            currency: "CNY".into(),
            reference: None,
            memo: "bench".into(),
        };
        ledger::top_up(state, &system, top_up, None)
            .await
            .map_err(app)?;
        use reqwest::cookie::CookieStore;
        let cookie = jar.cookies(&url).context("a session cookie")?;
        cookies.push(cookie.to_str()?.to_owned());
        clients.push(c);
    }
    Ok((clients, cookies, plan))
}

/// Waits until every order placed so far is provisioned and its people told: the seller calls,
/// notifications and e-mails queued under load are done before the next measurement, so neither
/// side runs in the other's wake.
async fn settle_all(state: &AppState, what: &str) -> Result<()> {
    let drained = Instant::now();
    while sqlx::query_scalar::<_, i64>(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')) \
              + (SELECT COUNT(*) FROM unnoticed_events)",
    )
    .fetch_one(state.store.pool())
    .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  (the seller calls, notifications and e-mails queued by {what} were done within {:.1?})",
        drained.elapsed()
    );
    Ok(())
}

/// Orders placed by `wrk` (a load generator in C, as light as pgbench's client) with 8
/// connections for [`RUN`], rotating among the buyers' sessions, each order with a fresh
/// idempotency key: orders a second, or `None` when wrk is not installed.
fn wrk_orders(base: &str, cookies: &[String], plan: &str, round: &str) -> Result<Option<f64>> {
    let script = std::env::temp_dir().join(format!("souk-bench-orders-{round}.lua"));
    let quoted: Vec<String> = cookies.iter().map(|c| format!("{c:?}")).collect();
    std::fs::write(
        &script,
        format!(
            r#"local cookies = {{ {cookies} }}
local body = '{{"plan_id": "{plan}", "period": "month", "periods": 1}}'
local made = 0
local counter = 0
function setup(thread)
  made = made + 1
  thread:set("tid", made)
end
function request()
  counter = counter + 1
  local headers = {{}}
  headers["Cookie"] = cookies[(counter % #cookies) + 1]
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = "{round}-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/orders", headers, body)
end
function done(summary, latency, requests)
  io.write(string.format("refused %d\n", summary.errors.status))
end
"#,
            cookies = quoted.join(", "),
        ),
    )?;
    let run = match std::process::Command::new("wrk")
        .args(["-t", "2", "-c", "8", "-d"])
        .arg(format!("{}s", RUN.as_secs()))
        .arg("-s")
        .arg(&script)
        .arg(base)
        .output()
    {
        Ok(run) => run,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let _ = std::fs::remove_file(&script);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let refused = out
        .lines()
        .find_map(|l| l.strip_prefix("refused "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .with_context(|| format!("reading wrk's refusals from:\n{out}"))?;
    if refused > 0 {
        bail!("{refused} orders were refused under wrk:\n{out}");
    }
    out.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .with_context(|| format!("reading wrk's rate from:\n{out}"))
}

fn order_step(
    base: String,
    clients: Vec<Client>,
    plan: String,
    tag: &'static str,
) -> impl Fn(usize, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
       + Send
       + Sync
       + 'static {
    move |c, i| {
        let (client, url, plan) = (
            clients[c].clone(),
            format!("{base}/v1/orders"),
            plan.clone(),
        );
        Box::pin(async move {
            let res = client
                .post(url)
                .header("Idempotency-Key", format!("{tag}-{c}-{i}"))
                .json(&json!({"plan_id": plan, "period": "month", "periods": 1}))
                .send()
                .await?;
            if res.status() != reqwest::StatusCode::CREATED {
                bail!("order failed: {} {}", res.status(), res.text().await?);
            }
            Ok(())
        })
    }
}

/// Runs pgbench with `args` against the database at `url`.
fn pgbench(url: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new("pgbench")
        .args(args)
        .arg(url)
        .output()
}

async fn orders() -> Result<()> {
    let Ok(pg) = std::env::var("SOUK_TEST_POSTGRES_URL") else {
        println!("order placement: skipped (set SOUK_TEST_POSTGRES_URL to a PostgreSQL server)");
        return Ok(());
    };
    // pgbench on scratch databases of the same server, at two scales: its default (1: one
    // branch row, which every transaction updates, the yardstick as the target was set), and 8
    // (a branch for each client, so its clients do not wait on one another's row lock).
    let scales = [(1u32, "its default scale, 1"), (8, "scale 8")];
    let mut scratches = Vec::new();
    for (scale, _) in scales {
        let scratch = TestDb::new(Backend::Postgres).await;
        // souk's driver speaks plain TCP to a local server; pgbench would negotiate TLS if
        // offered, which would slow the yardstick, so it is told not to.
        let sep = if scratch.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}sslmode=disable", scratch.url);
        let init = pgbench(&url, &["-i", "-q", "-s", &scale.to_string()])
            .context("running pgbench (install postgresql-client)")?;
        if !init.status.success() {
            bail!("pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
        }
        scratches.push((scratch, url));
    }
    let tpcb = |url: &str| -> Result<f64> {
        let run = pgbench(
            url,
            &[
                "-c",
                "8",
                "-j",
                "2",
                "-T",
                &RUN.as_secs().to_string(),
                "-b",
                "tpcb-like",
            ],
        )?;
        let out = String::from_utf8_lossy(&run.stdout);
        out.lines()
            .find(|l| l.starts_with("tps ="))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("reading pgbench's tps from:\n{out}"))
    };
    let (db, base, state) = souk(Backend::Postgres).await?;
    let (clients, cookies, plan) = buyers(&base, &state, 8).await?;
    let one = drive(
        1,
        order_step(base.clone(), clients.clone(), plan.clone(), "solo"),
    )
    .await?;
    // The machine's speed drifts; pgbench and souk take turns twice, and each turn gives ratios.
    // souk is driven twice a turn: by this process's HTTP client, and by wrk, a client in C as
    // light as pgbench's own.
    let mut turns = Vec::new();
    for round in ["load-a", "load-b"] {
        let tps = tokio::task::block_in_place(|| {
            scratches
                .iter()
                .map(|(_, url)| tpcb(url))
                .collect::<Result<Vec<f64>>>()
        })?;
        let eight = drive(
            8,
            order_step(base.clone(), clients.clone(), plan.clone(), round),
        )
        .await?;
        settle_all(&state, "that round").await?;
        let by_wrk = tokio::task::block_in_place(|| {
            wrk_orders(&base, &cookies, &plan, &format!("wrk-{round}"))
        })?;
        if by_wrk.is_some() {
            settle_all(&state, "wrk").await?;
        }
        turns.push((tps, eight, by_wrk));
    }
    for (scratch, _) in scratches {
        scratch.cleanup().await;
    }
    println!(
        "order placement paid from the balance (PostgreSQL, {})",
        pg.split('@').next_back().unwrap_or("")
    );
    // ratios[scale] and wrk_ratios[scale]: one per turn.
    let (mut ratios, mut wrk_ratios) = (vec![Vec::new(); 2], vec![Vec::new(); 2]);
    for (tps, eight, by_wrk) in &turns {
        for (i, (_, name)) in scales.iter().enumerate() {
            println!(
                "  {:<50} {:>7.0} tx/s",
                format!("pgbench tpcb-like, 8 clients, {name}"),
                tps[i]
            );
            ratios[i].push(100.0 * eight.per_sec / tps[i]);
            if let Some(rate) = by_wrk {
                wrk_ratios[i].push(100.0 * rate / tps[i]);
            }
        }
        println!(
            "  {:<50} {:>7.0} orders/s  p50 {:>7.2?}  p99 {:>7.2?}",
            "souk, 8 clients", eight.per_sec, eight.p50, eight.p99
        );
        match by_wrk {
            Some(rate) => println!(
                "  {:<50} {:>7.0} orders/s",
                "souk, wrk with 8 connections", rate
            ),
            None => println!("  souk, wrk: skipped (install wrk)"),
        }
    }
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let pairs = |r: &[f64]| {
        r.iter()
            .map(|r| format!("{r:.1}%"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, (_, name)) in scales.iter().enumerate() {
        println!(
            "  {:<50} {:>6.1}%  (pairs: {}; target >= 40%)",
            format!("ratio to pgbench at {name}"),
            mean(&ratios[i]),
            pairs(&ratios[i])
        );
        if !wrk_ratios[i].is_empty() {
            println!(
                "  {:<50} {:>6.1}%  (pairs: {})",
                "  the same, driven by wrk",
                mean(&wrk_ratios[i]),
                pairs(&wrk_ratios[i])
            );
        }
    }
    println!(
        "  {:<50} {:>7.0} orders/s  p50 {:>7.2?}  (target p50 <= 3 ms)",
        "souk, one order at a time", one.per_sec, one.p50
    );
    let mismatches = state.store.ledger_mismatches().await?;
    println!(
        "  {:<50} {}",
        "ledger after the run",
        if mismatches.is_empty() {
            "balanced"
        } else {
            "MISMATCH"
        }
    );
    db.cleanup().await;
    Ok(())
}

/// A logged-in client of `email` (a demo account).
async fn logged_in(base: &str, email: &str, password: &str) -> Result<Client> {
    let c = Client::builder().cookie_store(true).build()?;
    let res = c
        .post(format!("{base}/v1/sessions"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("log-in of {email}: {}", res.status());
    }
    Ok(c)
}

/// Usage records through souk's API against the same rows inserted straight into the database.
async fn usage(backend: Backend) -> Result<()> {
    const BATCH: usize = 1000;
    const CLIENTS: usize = 4;
    let (db, base, state) = souk(backend).await?;
    // A buyer subscribes to Lotus OCR on demand; Lotus's meter reports its pages.
    let buyer = logged_in(&base, "buyer@souk.demo", "buyer-demo-password").await?;
    let product = Client::new()
        .get(format!("{base}/v1/products?q=lotus%20ocr"))
        .send()
        .await?
        .json::<Value>()
        .await?["items"][0]["id"]
        .as_str()
        .context("Lotus OCR")?
        .to_owned();
    let plans = Client::new()
        .get(format!("{base}/v1/products/{product}"))
        .send()
        .await?
        .json::<Value>()
        .await?["plans"]
        .clone();
    let plan = plans
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "Pay as you go"))
        .and_then(|p| p["id"].as_str())
        .context("the on-demand plan")?
        .to_owned();
    let order: Value = buyer
        .post(format!("{base}/v1/orders"))
        .json(&json!({"plan_id": plan, "period": "on_demand", "periods": 1}))
        .send()
        .await?
        .json()
        .await?;
    let instance = order["instance_id"]
        .as_str()
        .context("an on-demand order")?
        .to_owned();
    let seller = logged_in(&base, "seller@lotus.demo", "seller-demo-password").await?;

    // The same rows, the same key, straight in.
    let pool = state.store.pool().clone();
    sqlx::raw_sql(
        "CREATE TABLE raw_usage (merchant_id TEXT NOT NULL, record_id TEXT NOT NULL, instance_id TEXT NOT NULL, \
         dimension TEXT NOT NULL, quantity_micros BIGINT NOT NULL, started_at BIGINT NOT NULL, ended_at BIGINT NOT NULL, \
         window_start BIGINT NOT NULL, hour_at BIGINT NOT NULL, received_at BIGINT NOT NULL, charge_id TEXT, \
         PRIMARY KEY (merchant_id, record_id))",
    )
    .execute(&pool)
    .await?;
    // The raw limit is the best of several ways to insert a batch: one writer or several, the
    // batch as one statement or as statements of 100 rows in one transaction (sqlx's SQLite
    // driver binds large statements slowly).
    let insert_sql = |rows: usize| {
        let values = (0..rows)
            .map(|k| {
                let cols: Vec<String> = (1..=10).map(|c| format!("${}", k * 10 + c)).collect();
                format!("({})", cols.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO raw_usage (merchant_id, record_id, instance_id, dimension, quantity_micros, started_at, ended_at, window_start, hour_at, received_at) \
             VALUES {values} ON CONFLICT (merchant_id, record_id) DO NOTHING"
        )
    };
    let insert = |run: &'static str, clients: usize, rows: usize| {
        let (pool, sql, instance) = (pool.clone(), Arc::new(insert_sql(rows)), instance.clone());
        drive(clients, move |c, i| {
            let (pool, sql, instance) = (pool.clone(), sql.clone(), instance.clone());
            async move {
                let at = chrono::Utc::now().timestamp_millis();
                let mut tx = pool.begin().await?;
                for part in 0..BATCH / rows {
                    let mut q = sqlx::query(&sql);
                    for k in part * rows..(part + 1) * rows {
                        q = q
                            .bind("mer_bench")
                            .bind(format!("raw-{run}-{c}-{i}-{k}"))
                            .bind(instance.clone())
                            .bind("pages")
                            .bind(1_000_000i64)
                            .bind(at)
                            .bind(at)
                            .bind(at)
                            .bind(at)
                            .bind(at);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        })
    };
    let mut raw = insert("one-1000", 1, BATCH).await?;
    for (run, clients, rows) in [
        ("many-1000", CLIENTS, BATCH),
        ("one-100", 1, 100),
        ("many-100", CLIENTS, 100),
    ] {
        let l = insert(run, clients, rows).await?;
        if l.per_sec > raw.per_sec {
            raw = l;
        }
    }
    // The batches are written before the measurement, as the signed requests are (below): the
    // load generator shares the 2 cores, and building and encoding 1,000 records a batch is its
    // cost, not souk's. A client that uses up its batches builds more as it goes.
    let batch = |c: usize, i: usize, instance: &str| -> Vec<u8> {
        let now = chrono::Utc::now();
        let (start, end) = (
            (now - chrono::Duration::minutes(2)).to_rfc3339(),
            (now - chrono::Duration::minutes(1)).to_rfc3339(),
        );
        let records: Vec<Value> = (0..BATCH)
            .map(|k| json!({"record_id": format!("api-{c}-{i}-{k}"), "instance_id": instance, "dimension": "pages",
                            "quantity": "1", "usage_start": start, "usage_end": end}))
            .collect();
        serde_json::to_vec(&json!({"records": records})).expect("JSON of JSON values")
    };
    let prebuilt: Arc<Vec<Vec<Vec<u8>>>> = Arc::new(
        (0..CLIENTS)
            .map(|c| {
                (0..PREBUILT_BATCHES)
                    .map(|i| batch(c, i, &instance))
                    .collect()
            })
            .collect(),
    );
    let ours = {
        let (seller, base, instance) = (seller.clone(), base.clone(), instance.clone());
        drive(CLIENTS, move |c, i| {
            let body = match prebuilt[c].get(i) {
                Some(body) => body.clone(),
                None => batch(c, i, &instance),
            };
            let (seller, url) = (seller.clone(), format!("{base}/v1/metering/usage"));
            async move {
                let res = seller
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !res.status().is_success() {
                    bail!("usage report failed: {}", res.status());
                }
                // Only the count is read; the records' own answers are skipped over.
                #[derive(serde::Deserialize)]
                struct Answer {
                    accepted: u64,
                }
                let answer: Answer = serde_json::from_slice(&res.bytes().await?)?;
                if answer.accepted != BATCH as u64 {
                    bail!("not all accepted: {} of {BATCH}", answer.accepted);
                }
                Ok(())
            }
        })
        .await?
    };
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    let rows = |l: &Load| l.per_sec * BATCH as f64;
    println!("usage ingestion, batches of {BATCH}, {CLIENTS} clients ({name})");
    println!(
        "  straight INSERT, same key   {:>9.0} rows/s  p50 {:>7.2?} per batch",
        rows(&raw),
        raw.p50
    );
    println!(
        "  souk POST /v1/metering/usage {:>8.0} rows/s  p50 {:>7.2?} per batch",
        rows(&ours),
        ours.p50
    );
    println!(
        "  ratio                       {:>8.1}%  (target >= 50%)",
        100.0 * ours.per_sec / raw.per_sec
    );
    db.cleanup().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    println!(
        "souk-bench: {} s per measurement ({} s per turn of the access-key pairs) on {} cores",
        RUN.as_secs(),
        TURN.as_secs(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // `SOUK_BENCH=usage,orders` runs only those; all by default.
    let only = std::env::var("SOUK_BENCH").unwrap_or_default();
    let runs = |what: &str| only.is_empty() || only.split(',').any(|w| w.trim() == what);
    if runs("catalog") {
        catalog().await?;
    }
    if runs("usage") {
        usage(Backend::Sqlite).await?;
        if std::env::var("SOUK_TEST_POSTGRES_URL").is_ok() {
            usage(Backend::Postgres).await?;
        }
    }
    if runs("orders") {
        orders().await?;
    }
    if runs("dispatcher") {
        dispatcher(Backend::Sqlite).await?;
        if std::env::var("SOUK_TEST_POSTGRES_URL").is_ok() {
            dispatcher(Backend::Postgres).await?;
        }
    }
    if runs("access-keys") {
        access_keys(Backend::Sqlite, 1).await?;
        if std::env::var("SOUK_TEST_POSTGRES_URL").is_ok() {
            access_keys(Backend::Postgres, 1).await?;
            access_keys(Backend::Postgres, 2).await?;
        }
    }
    Ok(())
}

/// A listener that takes connections and never answers: a seller that hangs.
async fn silent_seller() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/souk", listener.local_addr()?);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(url)
}

/// Places `n` orders of `plan` for the demo buyer through the application layer.
async fn place(state: &AppState, plan: &str, n: usize, tag: &str) -> Result<()> {
    let account = state
        .store
        .account_by_email("buyer@souk.demo")
        .await?
        .context("the demo buyer")?;
    let buyer = Caller {
        account,
        via: Via::CommandLine,
    };
    for i in 0..n {
        let input = souk_server::app::orders::OrderInput {
            plan_id: plan.to_owned(),
            period: "month".into(),
            periods: 1,
        };
        souk_server::app::orders::place(state, &buyer, input, Some(format!("{tag}-{i}")))
            .await
            .map_err(app)?;
    }
    Ok(())
}

/// Runs the workers until `done` holds; returns how long it took.
async fn drain(
    state: &Arc<AppState>,
    done: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send>>,
) -> Result<Duration> {
    let start = Instant::now();
    souk_server::workers::spawn(state.clone());
    while !done().await? {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("the dispatcher did not finish in 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(start.elapsed())
}

/// One dispatcher run: `fast` orders of a product whose seller answers at once and `slow` orders
/// of one whose seller never answers; returns the fast seller's calls per second.
async fn dispatch_run(backend: Backend, fast: usize, slow: usize) -> Result<(f64, usize)> {
    use souk_server::demo_seller::DEMO_SIGNING_KEY;
    let db = TestDb::new(backend).await;
    let (endpoint, stub) = souk_server::testing::stub_seller("000000", 0, DEMO_SIGNING_KEY).await;
    let settings = Settings {
        test_clock: false,
        ..Settings::for_tests()
    };
    let state = AppState::new(db.store.clone(), settings.clone());
    souk_server::demo::fill(&state, &endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let top_up = ledger::TopUp {
        account_id: None,
        email: Some("buyer@souk.demo".into()),
        amount: "100000000.00".into(),
        currency: "CNY".into(),
        reference: None,
        memo: "bench".into(),
    };
    let system = accounts::command_line_caller(&state).await.map_err(app)?;
    ledger::top_up(&state, &system, top_up, None)
        .await
        .map_err(app)?;
    let search = souk_server::app::catalog::SearchInput {
        limit: Some(100),
        ..Default::default()
    };
    let products = souk_server::app::catalog::search(&state, search)
        .await
        .map_err(app)?;
    let find = |name: &str| -> Result<(String, String)> {
        let p = products
            .items
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("the demo product {name}"))?;
        Ok((p.id.clone(), p.plans.first().context("a plan")?.id.clone()))
    };
    // Acme Notes' seller answers; Harbor WAF's seller (another merchant) hangs.
    let hanging = silent_seller().await?;
    let (waf, waf_plan) = find("Harbor WAF")?;
    sqlx::query("UPDATE products SET endpoint_url = $1 WHERE id = $2")
        .bind(&hanging)
        .bind(&waf)
        .execute(db.store.pool())
        .await?;
    place(&state, &find("Acme Notes")?.1, fast, "fast").await?;
    place(&state, &waf_plan, slow, "slow").await?;
    // Every fast order makes its newInstance and, as the stub returns no access data with it,
    // a queryInstance.
    let expected = 2 * fast;
    let (counter, stub2) = (stub.clone(), stub);
    let elapsed = drain(&state, move || {
        let c = counter.calls.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok(c >= expected) })
    })
    .await?;
    let calls = stub2.calls.load(std::sync::atomic::Ordering::SeqCst);
    db.cleanup().await;
    Ok((calls as f64 / elapsed.as_secs_f64(), calls))
}

/// The dispatcher's signed calls per second, alone and beside a seller that never answers.
async fn dispatcher(backend: Backend) -> Result<()> {
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    let (alone, calls) = dispatch_run(backend, 2000, 0).await?;
    let (beside, _) = dispatch_run(backend, 2000, 200).await?;
    println!("dispatcher: signed seller calls to a local stub ({name})");
    println!("  2,000 orders, {calls} calls       {alone:>8.0} calls/s  (target >= 1,000)");
    println!("  the same beside 200 orders of a seller that never answers");
    println!("                              {beside:>8.0} calls/s");
    println!(
        "  slowed by                    {:>8.1}%  (target < 10%)",
        100.0 * (1.0 - beside / alone)
    );
    Ok(())
}

/// A GET signed the way Huawei Cloud's SDK core signs it (the headers it signs, a fresh nonce):
/// the headers to send, `Authorization` last.
fn signed_get(url: &str, ak: &str, sk: &str) -> Result<Vec<(String, String)>> {
    use souk_protocol::aksk;
    let parsed = reqwest::Url::parse(url)?;
    let host = format!(
        "{}:{}",
        parsed.host_str().context("host")?,
        parsed.port().context("port")?
    );
    let mut headers = vec![
        ("Host".to_owned(), host),
        (
            "X-Sdk-Date".to_owned(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        ),
        (
            "X-Sdk-Nonce".to_owned(),
            souk_protocol::signature::new_nonce()[..32].to_owned(),
        ),
    ];
    let request = aksk::Request {
        method: "GET",
        path: parsed.path(),
        query: parsed.query_pairs().collect(),
        headers: headers.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        body: b"",
    };
    let auth = aksk::sign(ak, sk, &request).map_err(|e| anyhow::anyhow!("{e}"))?;
    headers.retain(|(k, _)| k != "Host");
    headers.push(("Authorization".to_owned(), auth.header()));
    Ok(headers)
}

/// How many pairs of turns (a session's, a key's) the access-key benchmark measures, and how
/// long a turn lasts.
const PAIRS: usize = 10;
const TURN: Duration = Duration::from_secs(2);

/// One turn of 8 clients sending `GET url` signed with the key `ak`/`sk`. The requests are
/// signed and parsed into header maps before the measurement (a header map is what a client
/// holds anyway; parsing the names and values again each request was the load generator's cost,
/// on souk's two cores).
async fn signed_turn(url: &str, ak: &str, sk: &str) -> Result<Load> {
    let header_map = |pairs: Vec<(String, String)>| -> Result<reqwest::header::HeaderMap> {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes())?,
                reqwest::header::HeaderValue::from_str(&v)?,
            );
        }
        Ok(map)
    };
    let mut presigned = Vec::new();
    for _ in 0..8 {
        let mut mine = Vec::with_capacity(PRESIGNED_PER_CLIENT);
        for _ in 0..PRESIGNED_PER_CLIENT {
            mine.push(header_map(signed_get(url, ak, sk)?)?);
        }
        presigned.push(mine);
    }
    let plain = Client::new();
    let (url, ak, sk) = (url.to_owned(), ak.to_owned(), sk.to_owned());
    drive_for(TURN, 8, move |c, i| {
        let headers = match presigned[c].get(i) {
            Some(h) => Ok(h.clone()),
            None => signed_get(&url, &ak, &sk).and_then(header_map),
        };
        let req = plain.get(&url);
        async move {
            let res = req.headers(headers?).send().await?;
            if !res.status().is_success() {
                bail!("{} {}", res.status(), res.text().await?);
            }
            res.bytes().await?;
            Ok(())
        }
    })
    .await
}

/// Signed requests made before a measurement, per client, so the load generator's own signing
/// (on the same 2 cores) is not counted as souk's cost.
const PRESIGNED_PER_CLIENT: usize = 10_000;

/// Usage batches written before the measurement, per client (about 200 KB each).
const PREBUILT_BATCHES: usize = 400;

/// What an access key's signature costs over a session, on the same read, with `nodes` nodes
/// present (on PostgreSQL a node alone keeps accepted signatures in its memory; with more, each
/// is remembered in the database, and only the measured node serves).
async fn access_keys(backend: Backend, nodes: usize) -> Result<()> {
    let (db, base, state) = souk(backend).await?;
    let mut others = Vec::new();
    for _ in 1..nodes {
        others.push(
            db.store
                .join_nodes(false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    // The measured node sees them at its next look.
    while nodes > 1 && state.replays.keeps_alone().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let session = logged_in(&base, "buyer@souk.demo", "buyer-demo-password").await?;
    let key = souk_server::app::iam::create_key_for(&state, "buyer@souk.demo")
        .await
        .map_err(app)?;
    let (ak, sk) = (key.key.access_key.clone(), key.secret.clone());
    let url = format!("{base}/v1/orders?limit=5");
    println!(
        "access keys: GET /v1/orders?limit=5, 8 clients ({}, {})",
        match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        },
        match nodes {
            1 => "one node".to_owned(),
            n => format!("{n} nodes present"),
        }
    );
    // The machine's speed swings by a fifth from one 5-second stretch to the next: sessions and
    // keys take short turns in many pairs, the pairs in alternating order (session first, then
    // key first) so a steady drift weighs on both alike, and the median pair is the figure (a
    // slow turn moves it little).
    let mut extra = Vec::new();
    for pair in 0..PAIRS {
        let (with_session, with_key) = if pair % 2 == 0 {
            let s = drive_for(TURN, 8, get_step(session.clone(), url.clone())).await?;
            (s, signed_turn(&url, &ak, &sk).await?)
        } else {
            let k = signed_turn(&url, &ak, &sk).await?;
            (
                drive_for(TURN, 8, get_step(session.clone(), url.clone())).await?,
                k,
            )
        };
        let pair_extra = 100.0 * (with_session.per_sec / with_key.per_sec - 1.0);
        println!(
            "  pair {:>2} ({} first)  session {:>6.0} req/s  signed {:>6.0} req/s (p50 {:.2?}, p99 {:.2?})  {pair_extra:>+6.1}%",
            pair + 1,
            if pair % 2 == 0 { "session" } else { "signed " },
            with_session.per_sec,
            with_key.per_sec,
            with_key.p50,
            with_key.p99,
        );
        extra.push(pair_extra);
    }
    extra.sort_by(f64::total_cmp);
    let median = (extra[(PAIRS - 1) / 2] + extra[PAIRS / 2]) / 2.0;
    println!(
        "  extra cost        {median:>8.1}%  (median of {PAIRS} pairs, middle half {:.1}% to {:.1}%; target <= 10%)",
        extra[PAIRS / 4],
        extra[PAIRS - 1 - PAIRS / 4]
    );
    for other in others {
        other.leave().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    db.cleanup().await;
    Ok(())
}
