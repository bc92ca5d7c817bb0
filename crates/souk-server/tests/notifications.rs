//! Notifications: what buyers and sellers are told in the app and by e-mail, in words naming
//! products, plans and orders; read and unread; per-topic e-mail choices; e-mail sent once
//! through a real SMTP server that makes souk retry.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::mail::MailTransport;
use souk_server::testing::*;
use souk_server::Settings;
use souk_store::on_both_databases;

/// Acme Notes, listed, calling `endpoint` with [`KEY`]; returns (product, plan).
async fn acme_notes(app: &TestApp, op: &User, seller: &User, endpoint: &str) -> (String, String) {
    let mut body = product_body("Acme Notes", endpoint, "99.00");
    body["signing_key"] = json!(KEY);
    body["plans"][0]["trial_days"] = json!(14);
    let (product, plan, _) = app.listed_product_with(op, seller, body).await;
    (product, plan)
}

/// A marketplace with Acme Notes listed by `seller@acme.test`, calling a stub seller answering
/// `code`, and a verified buyer with 300.00; returns (app, operator, seller, plan, buyer).
async fn marketplace(
    backend: souk_store::Backend,
    code: &'static str,
) -> (TestApp, User, User, String, User) {
    let app = TestApp::spawn(backend).await;
    let op = app.operator().await;
    let (endpoint, _) = stub_seller(code, 0, KEY).await;
    let seller = app.merchant(&op, "seller@acme.test").await;
    let (_, plan) = acme_notes(&app, &op, &seller, &endpoint).await;
    let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
    app.top_up(&op, &buyer, "300.00").await;
    (app, op, seller, plan, buyer)
}

/// Text with its line breaks and runs of spaces as single spaces (mail is wrapped).
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The caller's notifications once at least `n` are there.
async fn at_least(user: &User, n: usize) -> Value {
    user.wait_for("/v1/notifications", |v| {
        v["notifications"].as_array().unwrap().len() >= n
    })
    .await
}

fn titles(list: &Value) -> Vec<String> {
    list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(list: &'a Value, title: &str) -> &'a Value {
    list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["title"] == title)
        .unwrap_or_else(|| panic!("no {title:?} in {list}"))
}

/// The outbox's e-mails to `address`, waiting until there are at least `n`.
async fn mails_to(app: &TestApp, address: &str, n: usize) -> Vec<(String, String)> {
    for _ in 0..400 {
        let mails: Vec<_> = app
            .outbox()
            .into_iter()
            .filter(|(_, text)| text.contains(&format!("<{address}>")))
            .collect();
        if mails.len() >= n {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} e-mails to {address}: {:?}", app.outbox());
}

on_both_databases! {
    async fn a_buyer_hears_of_an_order_in_the_app_and_by_email_and_marks_it_read(backend) {
        let (app, _, seller, plan, buyer) = marketplace(backend, "000000").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let order_id = order["id"].as_str().unwrap();
        let instance = order["instance_id"].as_str().unwrap();
        buyer.wait_for(&format!("/v1/instances/{instance}"), |v| v["state"] == "active").await;

        let list = at_least(&buyer, 3).await;
        assert_eq!(list["unread"], 3, "{list}");
        assert_eq!(
            titles(&list),
            ["Acme Notes is ready", "Order paid: Acme Notes", "Your verification was approved"],
            "newest first"
        );
        let paid = find(&list, "Order paid: Acme Notes");
        assert_eq!(paid["topic"], "order");
        assert_eq!(paid["link"], format!("/orders/{order_id}"));
        let body = paid["body"].as_str().unwrap();
        assert!(body.contains("Team plan, 1 month, 99.00 CNY"), "{body}");
        assert!(!body.contains("ord_") && !body.contains("ins_"), "words, not ids: {body}");
        let ready = find(&list, "Acme Notes is ready");
        assert_eq!(ready["link"], format!("/instances/{instance}"));

        // Each is e-mailed once, in words, with where to act.
        let mails = mails_to(&app, "buyer@souk.test", 3).await;
        assert_eq!(mails.len(), 3, "{mails:?}");
        let paid_mail = &mails.iter().find(|(_, m)| m.contains("Subject: Order paid: Acme Notes")).unwrap().1;
        let text = flat(paid_mail);
        assert!(text.contains("Hello buyer,"), "{text}");
        assert!(text.contains("Team plan, 1 month, 99.00 CNY"), "{text}");
        assert!(text.contains(&format!("/orders/{order_id}")), "{text}");
        assert!(text.contains(&format!("Message-ID: <{}@localhost>", paid["id"].as_str().unwrap())), "{text}");
        let list = buyer.wait_for("/v1/notifications", |v| {
            v["notifications"].as_array().unwrap().iter().all(|n| n["emailed_at"].is_string())
        }).await;
        assert_eq!(list["notifications"].as_array().unwrap().len(), 3);

        // Read one; someone else cannot touch it; then read the rest.
        let id = paid["id"].as_str().unwrap();
        assert_problem(seller.post(&format!("/v1/notifications/{id}/read"), json!({})).await, StatusCode::NOT_FOUND, None).await;
        assert_problem(buyer.post("/v1/notifications/ntf_nope/read", json!({})).await, StatusCode::NOT_FOUND, None).await;
        let read = buyer.expect_post(&format!("/v1/notifications/{id}/read"), json!({}), StatusCode::OK).await;
        assert!(read["read_at"].is_string(), "{read}");
        let again = buyer.expect_post(&format!("/v1/notifications/{id}/read"), json!({}), StatusCode::OK).await;
        assert_eq!(again["read_at"], read["read_at"], "reading again changes nothing");
        let unread = buyer.json("/v1/notifications?unread=true").await;
        assert_eq!(unread["unread"], 2);
        assert_eq!(titles(&unread), ["Acme Notes is ready", "Your verification was approved"]);
        let paged = buyer.json(&format!("/v1/notifications?limit=1&before={}", ready["id"].as_str().unwrap())).await;
        assert_eq!(titles(&paged), ["Order paid: Acme Notes"]);
        assert_problem(buyer.get("/v1/notifications?limit=0").await, StatusCode::UNPROCESSABLE_ENTITY, Some("limit")).await;
        let all = buyer.expect_post("/v1/notifications/read-all", json!({}), StatusCode::OK).await;
        assert_eq!(all["marked"], 2);
        assert_eq!(buyer.json("/v1/notifications").await["unread"], 0);
        // The seller heard of its own account and listing, not of the buyer's order.
        let seller_list = at_least(&seller, 3).await;
        assert_eq!(
            titles(&seller_list),
            ["Acme Notes is listed", "You can sell on souk", "Your verification was approved"]
        );
        assert_problem(TestApp::client().get(format!("{}/v1/notifications", app.base)).send().await.unwrap(), StatusCode::UNAUTHORIZED, None).await;
        app.cleanup().await;
    }

    async fn e_mail_choices_are_per_topic_and_the_list_keeps_everything(backend) {
        let (app, _, _, plan, buyer) = marketplace(backend, "000000").await;

        let prefs: Value = buyer.json("/v1/notifications/preferences").await;
        assert!(prefs.as_array().unwrap().iter().all(|p| p["email"] == true), "e-mail is on by default: {prefs}");
        // An unknown topic refuses the whole change.
        let res = buyer.put("/v1/notifications/preferences", json!([{"topic": "order", "email": false}, {"topic": "gossip", "email": false}])).await;
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, Some("[1].topic")).await;
        let unchanged: Value = buyer.json("/v1/notifications/preferences").await;
        assert_eq!(unchanged, prefs);
        let res = buyer.put("/v1/notifications/preferences", json!([{"topic": "order", "email": false}])).await;
        assert_eq!(res.status(), StatusCode::OK);
        let now: Value = res.json().await.unwrap();
        let order_pref = now.as_array().unwrap().iter().find(|p| p["topic"] == "order").unwrap();
        assert_eq!(order_pref["email"], false);
        assert_eq!(now.as_array().unwrap().iter().filter(|p| p["email"] == false).count(), 1, "{now}");

        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let instance = order["instance_id"].as_str().unwrap();
        buyer.wait_for(&format!("/v1/instances/{instance}"), |v| v["state"] == "active").await;
        let list = at_least(&buyer, 3).await;
        // Ready is e-mailed; paid is in the list but not e-mailed.
        let mails = mails_to(&app, "buyer@souk.test", 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let mails_after = app.outbox().into_iter().filter(|(_, t)| t.contains("<buyer@souk.test>")).count();
        assert_eq!(mails_after, 2, "{mails:?}");
        let paid = find(&list, "Order paid: Acme Notes");
        assert!(paid["emailed_at"].is_null(), "{paid}");
        // Each kind of order is told in its own words: a trial is no purchase.
        let trial = buyer.expect_post("/v1/trials", json!({"plan_id": plan}), StatusCode::CREATED).await;
        let told = at_least(&buyer, 4).await;
        let started = find(&told, "Free trial started: Acme Notes");
        assert!(started["body"].as_str().unwrap().contains("Team plan, free trial"), "{started}");
        assert_eq!(started["link"], format!("/orders/{}", trial["id"].as_str().unwrap()));
        assert!(!app.outbox().iter().any(|(name, _)| name.starts_with(paid["id"].as_str().unwrap())));
        app.cleanup().await;
    }

    async fn sellers_hear_of_review_decisions_and_calls_souk_gave_up_on(backend) {
        // A seller that refuses for good: provisioning fails, the order is refunded, the call dies.
        let (app, op, seller, plan, buyer) = marketplace(backend, "000106").await;
        let order: Value = buyer.order(&plan, 1, None).await.json().await.unwrap();
        let instance = order["instance_id"].as_str().unwrap();
        buyer.wait_for(&format!("/v1/instances/{instance}"), |v| v["state"] == "failed").await;

        let list = at_least(&buyer, 3).await;
        let failed = find(&list, "Acme Notes could not be set up");
        assert!(failed["body"].as_str().unwrap().contains("refunded"), "{failed}");
        let seller_list = at_least(&seller, 4).await;
        let refused = find(&seller_list, "A subscription to Acme Notes could not be set up");
        assert_eq!(refused["topic"], "seller_calls");
        assert!(refused["body"].as_str().unwrap().contains("sold out") && refused["body"].as_str().unwrap().matches("refunded").count() == 1, "{refused}");

        // A rejection names what to change, in the app and by e-mail.
        let (endpoint, _) = stub_seller("000000", 0, KEY).await;
        let res = seller.post("/v1/seller/products", product_body("Acme Sheets", &endpoint, "10.00")).await;
        let product: Value = res.json().await.unwrap();
        let id = product["id"].as_str().unwrap();
        seller.expect_post(&format!("/v1/seller/products/{id}/submit"), json!({}), StatusCode::OK).await;
        let rev = product["current"]["id"].as_str().unwrap();
        op.expect_post(&format!("/v1/operator/reviews/{rev}/decision"), json!({"approve": false, "reasons": ["the logo is missing"]}), StatusCode::OK).await;
        let seller_list = at_least(&seller, 5).await;
        let rejected = find(&seller_list, "Acme Sheets needs changes");
        assert!(rejected["body"].as_str().unwrap().contains("the logo is missing"), "{rejected}");
        assert_eq!(rejected["link"], format!("/seller/products/{id}"));
        let mails = mails_to(&app, "seller@acme.test", 5).await;
        let mail = flat(&mails.iter().find(|(_, m)| m.contains("Subject: Acme Sheets needs changes")).unwrap().1);
        assert!(mail.contains("the logo is missing"), "{mail}");
        app.cleanup().await;
    }

    async fn e_mail_waits_with_the_reason_while_the_smtp_setting_is_unusable(backend) {
        // Configuration refuses such a URL at start; should one get through, nothing is lost.
        let settings = Settings {
            mail_transport: MailTransport::Smtp("ftp://mail.example".into()),
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        at_least(&buyer, 1).await;
        let store = &app.state.store;
        let mut waiting = None;
        for _ in 0..400 {
            let jobs = store.jobs_in_state(souk_store::jobs::JobState::Pending, None, 100).await.unwrap();
            waiting = jobs.into_iter().find(|j| j.kind == "email.send" && j.attempts >= 1);
            if waiting.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let waiting = waiting.expect("the e-mail waits for a retry");
        assert!(waiting.last_error.as_deref().unwrap_or("").contains("smtp_url"), "{waiting:?}");
        assert!(buyer.json("/v1/notifications").await["notifications"][0]["emailed_at"].is_null());
        app.cleanup().await;
    }

    async fn one_persons_e_mails_share_a_job_and_its_retry_sends_only_what_is_left(backend) {
        let Some(python) = smtp_python() else { return };
        let (sink, port, received) = smtp_sink(&python).await;
        // The job is run by hand, attempt by attempt: no workers run here.
        let db = souk_store::testing::TestDb::new(backend).await;
        let settings = Settings {
            mail_transport: MailTransport::Smtp(format!("smtp://127.0.0.1:{port}")),
            ..Settings::for_tests()
        };
        let state = souk_server::AppState::new(db.store.clone(), settings);
        let store = &state.store;
        let now = chrono::Utc::now();
        let person = store
            .create_account(souk_store::accounts::NewAccount { kind: souk_core::accounts::AccountKind::Individual, name: "Ana", email: "ana@souk.test", password_hash: "x", roles: &[] }, now)
            .await
            .unwrap();
        // Two events of one batch, each telling the person something.
        let mut events = Vec::new();
        for _ in 0..2 {
            let event: souk_core::ids::EventId = souk_store::fresh(now);
            sqlx::query("INSERT INTO events (id, order_id, instance_id, at, kind, detail, actor, account_id, product_id) VALUES ($1, NULL, NULL, $2, 'order.paid', '', NULL, $3, NULL)")
                .bind(event.as_str())
                .bind(now.timestamp_millis())
                .bind(person.id.as_str())
                .execute(store.pool())
                .await
                .unwrap();
            sqlx::query("INSERT INTO unnoticed_events (id) VALUES ($1)").bind(event.as_str()).execute(store.pool()).await.unwrap();
            events.push(event);
        }
        let told = |title: &str| souk_store::notifications::NewNotification {
            account_id: person.id.clone(),
            topic: souk_core::notices::Topic::Order,
            title: title.to_owned(),
            body: "Body.".into(),
            link: None,
        };
        let batch = [(events[0].clone(), vec![told("First")]), (events[1].clone(), vec![told("Second")])];
        assert_eq!(store.notice(&batch, now).await.unwrap(), 2);
        let queued = store.jobs_in_state(souk_store::jobs::JobState::Pending, None, 10).await.unwrap();
        assert_eq!(queued.iter().filter(|j| j.kind == "email.send").count(), 1, "one job for the person's two e-mails");
        // The sink answers 451 the first time it sees a message. Attempt 1: "First" is refused.
        // Attempt 2: "First" goes out and is recorded, "Second" is refused. Attempt 3: only
        // "Second" is sent.
        let handlers = souk_server::workers::Handlers::standard();
        let mut at = now;
        for _ in 0..3 {
            at += chrono::Duration::days(1);
            for job in store.claim_jobs(at, chrono::Utc::now(), chrono::Duration::seconds(60), 10, &[]).await.unwrap() {
                souk_server::workers::run_one(&state, &handlers, &job).await;
            }
        }
        let job = store.job(&queued[0].id).await.unwrap();
        assert_eq!((job.state, job.attempts), (souk_store::jobs::JobState::Done, 3), "{job:?}");
        let subjects: Vec<String> = (1..=count_files(&received))
            .map(|n| std::fs::read_to_string(std::path::Path::new(&received).join(format!("{n}.eml"))).unwrap())
            .map(|mail| mail.lines().find(|l| l.starts_with("Subject: ")).unwrap().to_owned())
            .collect();
        assert_eq!(subjects, ["Subject: First", "Subject: Second"], "each sent once, in order");
        let unsent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE emailed_at IS NULL").fetch_one(store.pool()).await.unwrap();
        assert_eq!(unsent, 0);
        stop_sink(sink, &received).await;
        db.cleanup().await;
    }

    async fn e_mail_through_smtp_is_retried_and_sent_once(backend) {
        let Some(python) = smtp_python() else { return };
        let (sink, port, received) = smtp_sink(&python).await;
        let settings = Settings {
            mail_transport: MailTransport::Smtp(format!("smtp://127.0.0.1:{port}")),
            ..Settings::for_tests()
        };
        let app = TestApp::spawn_with(backend, settings).await;
        let op = app.operator().await;
        let buyer = app.verified_buyer(&op, "buyer@souk.test").await;
        let list = at_least(&buyer, 1).await;
        let id = list["notifications"][0]["id"].as_str().unwrap().to_owned();
        // The server's 451 sends the job back to the queue with the reason.
        let store = &app.state.store;
        let job_of = || async {
            let jobs = store.jobs_in_state(souk_store::jobs::JobState::Pending, None, 100).await.unwrap();
            jobs.into_iter().find(|j| j.kind == "email.send" && j.payload.contains(&id))
        };
        let mut retried = None;
        for _ in 0..400 {
            if let Some(j) = job_of().await.filter(|j| j.attempts == 1) {
                retried = Some(j);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let retried = retried.expect("the refused e-mail waits for its retry");
        assert!(retried.last_error.as_deref().unwrap_or("").contains("451"), "{retried:?}");
        assert!(count_files(&received) == 0);
        // Past the back-off it goes out, once.
        app.advance(3600).await;
        buyer.wait_for("/v1/notifications", |v| v["notifications"][0]["emailed_at"].is_string()).await;
        assert_eq!(count_files(&received), 1);
        let sent = std::fs::read_to_string(std::path::Path::new(&received).join("1.eml")).unwrap();
        assert!(sent.contains("Subject: Your verification was approved"), "{sent}");
        assert!(sent.contains("To: ") && sent.contains("<buyer@souk.test>"), "{sent}");

        // The same job run again (a worker that died after sending, say) sends nothing more.
        let done = store.job(&retried.id).await.unwrap();
        sqlx::query("UPDATE jobs SET state = 'pending', run_at = 0, locked_until = NULL WHERE id = $1")
            .bind(done.id.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        app.state.wake_dispatcher.notify_waiters();
        for _ in 0..400 {
            if store.job(&done.id).await.unwrap().state == souk_store::jobs::JobState::Done {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(store.job(&done.id).await.unwrap().state, souk_store::jobs::JobState::Done);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(count_files(&received), 1, "sent once");

        // A mailbox the server refuses for good: the e-mail job dies at once with the reason,
        // for operations to see, and nothing is sent.
        let bounced = app.verified_buyer(&op, "bounce@souk.test").await;
        at_least(&bounced, 1).await;
        let mut dead = None;
        for _ in 0..400 {
            let jobs = store.jobs_in_state(souk_store::jobs::JobState::Dead, None, 100).await.unwrap();
            dead = jobs.into_iter().find(|j| j.kind == "email.send");
            if dead.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let dead = dead.expect("the refused e-mail's job is dead");
        let why = dead.last_error.unwrap_or_default();
        assert!(why.contains("for good") && why.contains("550"), "{why}");
        assert_eq!(dead.attempts, 1, "a permanent refusal is not retried");
        assert_eq!(count_files(&received), 1);
        stop_sink(sink, &received).await;
        app.cleanup().await;
    }
}

/// Starts `smtp_sink.py` with `python` on a free port writing to a fresh directory; returns the
/// process (it stops when its stdin closes), the port and the directory.
async fn smtp_sink(python: &str) -> (tokio::process::Child, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let received = tempdir();
    let mut sink = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg(port.to_string())
        .arg(&received)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(sink.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    (sink, port, received)
}

/// Stops the sink started by [`smtp_sink`] and removes what it received.
async fn stop_sink(mut sink: tokio::process::Child, received: &str) {
    drop(sink.stdin.take());
    let _ = sink.wait().await;
    let _ = std::fs::remove_dir_all(received);
}

/// The Python with aiosmtpd: `SOUK_TEST_SMTP_PYTHON`, else `python3`; `None` (the test says it
/// is skipped) when neither has it, unless `SOUK_REQUIRE_SMTP` is set, as in CI.
fn smtp_python() -> Option<String> {
    let python = std::env::var("SOUK_TEST_SMTP_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    if std::env::var_os("SOUK_REQUIRE_SMTP").is_some() {
        panic!("SOUK_REQUIRE_SMTP is set but {python} cannot import aiosmtpd");
    }
    eprintln!("skipped: no Python with aiosmtpd (set SOUK_TEST_SMTP_PYTHON)");
    None
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("souk-smtp-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

fn rand_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn count_files(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .count()
}
