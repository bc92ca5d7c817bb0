//! Test support shared by every crate's tests and the benchmarks (feature `testing`):
//! `TestApp::spawn(backend)` runs souk on a random port over a fresh database with a test clock,
//! [`User`] is one person at a browser, and a stub seller answers souk's calls.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::{AppState, Settings, SharedState};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use souk_core::accounts::{AccountKind, Role};
use souk_seller::{
    AppInfo, InstanceInfo, Keys, NewInstance, Refresh, ResultCode, Seller, SellerAnswer,
    StatusChange,
};
use souk_store::accounts::NewAccount;
use souk_store::testing::TestDb;
use souk_store::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct TestApp {
    pub base: String,
    pub state: SharedState,
    pub db: Option<TestDb>,
    pub backend: Backend,
}

/// One person at a browser: a client with its own cookie jar.
pub struct User {
    pub client: Client,
    pub base: String,
    pub id: String,
    pub email: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, Settings::for_tests()).await
    }

    pub async fn spawn_with(backend: Backend, settings: Settings) -> TestApp {
        let db = TestDb::new(backend).await;
        let state = AppState::new(db.store.clone(), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = crate::start(state.clone(), listener).unwrap();
        TestApp {
            base: format!("http://{}", running.addr),
            state,
            db: Some(db),
            backend,
        }
    }

    /// What `souk admin verify-ledger` checks: every balance equals its entries and every
    /// order's money (charged less refunded) is what its entries took.
    pub async fn assert_ledger_balances(&self) {
        let store = &self.state.store;
        assert_eq!(store.ledger_mismatches().await.unwrap(), vec![]);
        assert_eq!(store.order_mismatches().await.unwrap(), vec![]);
        assert_eq!(
            store.usage_mismatches().await.unwrap(),
            Vec::<String>::new()
        );
    }

    /// The e-mails in the outbox so far, as (file name, message text), oldest notification
    /// first; empty when e-mail goes to an SMTP server.
    pub fn outbox(&self) -> Vec<(String, String)> {
        let crate::mail::MailTransport::Outbox(dir) = &self.state.settings.mail_transport else {
            return Vec::new();
        };
        let mut mails: Vec<(String, String)> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".eml"))
                    .map(|name| {
                        let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
                        (name, text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        mails.sort();
        mails
    }

    pub async fn cleanup(mut self) {
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
        if let crate::mail::MailTransport::Outbox(dir) = &self.state.settings.mail_transport {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    pub fn client() -> Client {
        Client::builder().cookie_store(true).build().unwrap()
    }

    /// Signs up a new account through the API.
    pub async fn sign_up(&self, kind: &str, email: &str) -> User {
        let client = Self::client();
        let res = client
            .post(format!("{}/v1/accounts", self.base))
            .json(&json!({"kind": kind, "name": email.split('@').next().unwrap(), "email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "{}",
            res.text().await.unwrap()
        );
        let body: Value = res.json().await.unwrap();
        User {
            client,
            base: self.base.clone(),
            id: body["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
        }
    }

    /// An operator with all roles, created as `souk admin create-operator` does, then logged in.
    pub async fn operator(&self) -> User {
        self.operator_with_roles("operator@souk.test", "reviewer,operations,finance,support")
            .await
    }

    pub async fn operator_with_roles(&self, email: &str, roles: &str) -> User {
        let hash = crate::auth::hash_password("operator password".into())
            .await
            .unwrap();
        let roles: Vec<Role> = roles.split(',').map(|r| r.parse().unwrap()).collect();
        let a = self
            .state
            .store
            .create_account(
                NewAccount {
                    kind: AccountKind::Individual,
                    name: "Operator",
                    email,
                    password_hash: &hash,
                    roles: &roles,
                },
                self.state.now(),
            )
            .await
            .unwrap();
        let client = Self::client();
        let res = client
            .post(format!("{}/v1/sessions", self.base))
            .json(&json!({"email": email, "password": "operator password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        User {
            client,
            base: self.base.clone(),
            id: a.id.to_string(),
            email: email.to_owned(),
        }
    }

    /// Gives `user` operator roles (comma-separated), as an administrator would in the database.
    pub async fn grant_roles(&self, user: &User, roles: &str) {
        let roles: Vec<Role> = roles.split(',').map(|r| r.parse().unwrap()).collect();
        self.state
            .store
            .add_roles(&user.id.as_str().into(), &roles)
            .await
            .unwrap();
    }

    /// `path` read as an anonymous visitor, as JSON.
    pub async fn public_json(&self, path: &str) -> Value {
        Self::client()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A buyer whose verification an operator approved.
    pub async fn verified_buyer(&self, op: &User, email: &str) -> User {
        let u = self.sign_up("individual", email).await;
        let res = u.post("/v1/me/verification", json!({"legal_name": "Bao", "phone": "+86 138 0000 0000", "id_number": "110101199001010000"})).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let res = op
            .post(
                &format!("/v1/operator/verifications/{}/decision", u.id),
                json!({"approve": true}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        u
    }

    /// An approved merchant.
    pub async fn merchant(&self, op: &User, email: &str) -> User {
        let u = self.sign_up("enterprise", email).await;
        let res = u
            .post("/v1/me/verification", json!({"legal_name": "Li", "phone": "+86 21 0000 0000", "company_name": "Acme Ltd", "registration_number": "91310000MA1FL0000X"}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(
            op.post(
                &format!("/v1/operator/verifications/{}/decision", u.id),
                json!({"approve": true})
            )
            .await
            .status(),
            StatusCode::OK
        );
        let res = u
            .post("/v1/merchant", json!({"company_name": "Acme Ltd", "support_email": "support@acme.test", "support_phone": "400-000", "business_licence_number": "BL-1"}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let m: Value = res.json().await.unwrap();
        let res = op
            .post(
                &format!(
                    "/v1/operator/merchants/{}/decision",
                    m["id"].as_str().unwrap()
                ),
                json!({"approve": true}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        u
    }

    /// A listed product by `seller` whose endpoint is `endpoint`; returns (product id, plan id, signing key).
    pub async fn listed_product(
        &self,
        op: &User,
        seller: &User,
        name: &str,
        endpoint: &str,
        monthly: &str,
    ) -> (String, String, String) {
        self.listed_product_with(op, seller, product_body(name, endpoint, monthly))
            .await
    }

    /// A listed product by `seller` with the content `body`; returns (product id, first plan
    /// id, signing key).
    pub async fn listed_product_with(
        &self,
        op: &User,
        seller: &User,
        body: Value,
    ) -> (String, String, String) {
        let res = seller.post("/v1/seller/products", body).await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "{}",
            res.text().await.unwrap()
        );
        let p: Value = res.json().await.unwrap();
        let id = p["id"].as_str().unwrap().to_owned();
        let key = p["signing_key"].as_str().unwrap().to_owned();
        assert_eq!(
            seller
                .post(&format!("/v1/seller/products/{id}/submit"), json!({}))
                .await
                .status(),
            StatusCode::OK
        );
        let queue: Value = op.get("/v1/operator/reviews").await.json().await.unwrap();
        let rev = queue
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["product_id"] == id.as_str())
            .unwrap()["revision_id"]
            .as_str()
            .unwrap()
            .to_owned();
        op.approve_review(&rev).await;
        let product: Value = self.public_json(&format!("/v1/products/{id}")).await;
        let plan = product["plans"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not listed: {product}"))
            .to_owned();
        (id, plan, key)
    }

    /// A new merchant `seller@acme.test` with a listed product calling `endpoint`; returns
    /// (seller, product id, plan id).
    pub async fn listed_product_of_new_merchant(
        &self,
        op: &User,
        endpoint: &str,
    ) -> (User, String, String) {
        let seller = self.merchant(op, "seller@acme.test").await;
        let (product, plan, _) = self
            .listed_product(op, &seller, "Acme Notes", endpoint, "99.00")
            .await;
        (seller, product, plan)
    }

    pub async fn top_up(&self, op: &User, user: &User, amount: &str) {
        let res = op
            .post(
                "/v1/operator/top-ups",
                json!({"account_id": user.id, "amount": amount, "currency": "CNY"}),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "{}",
            res.text().await.unwrap()
        );
    }

    /// Moves the test clock forward.
    pub async fn advance(&self, seconds: i64) {
        let res = Self::client()
            .post(format!("{}/v1/test/clock", self.base))
            .bearer_auth(crate::settings::TEST_CLOCK_TOKEN_FOR_TESTS)
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// Moves the test clock to 09:00 UTC on the 3rd of next month, so a test that walks through
    /// the hours and days of a month stays in one month whatever the hour it runs.
    pub async fn to_early_in_next_month(&self) {
        use chrono::{Datelike, TimeZone};
        let now = self.state.now();
        let (year, month) = match now.month() {
            12 => (now.year() + 1, 1),
            m => (now.year(), m + 1),
        };
        let third = chrono::Utc
            .with_ymd_and_hms(year, month, 3, 9, 0, 0)
            .unwrap();
        self.advance((third - now).num_seconds()).await;
    }

    /// Moves the test clock `step` seconds at a time (at most `steps` times) until what `user`
    /// reads at `path` is `done` (a retry becoming due, say), then waits for it; returns it.
    pub async fn advance_until(
        &self,
        user: &User,
        path: &str,
        (step, steps): (i64, usize),
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..steps {
            if done(&user.json(path).await) {
                break;
            }
            self.advance(step).await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            // A step counts once the work it made due is done, however busy the machine.
            self.queue_at_rest().await;
        }
        user.wait_for(path, done).await
    }

    /// Waits until no job is running or due on the test clock (at most 5 s); says whether the
    /// queue came to rest. A clock jump makes jobs due that the workers then run in the
    /// background.
    pub async fn queue_at_rest(&self) -> bool {
        for _ in 0..200 {
            let (counts, oldest_due) = self.state.store.job_stats(self.state.now()).await.unwrap();
            let running = counts.iter().any(|(state, n)| state == "running" && *n > 0);
            if !running && oldest_due.is_none() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    }
}

pub fn product_body(name: &str, endpoint: &str, monthly: &str) -> Value {
    json!({
        "name": name,
        "summary": format!("{name} for teams"),
        "description": "A product.",
        "category": "collaboration",
        "tags": [name.split(' ').next().unwrap().to_lowercase()],
        "support_contact": "support@acme.test",
        "licence": "Use it well.",
        "endpoint_url": endpoint,
        "plans": [{"name": "Team", "currency": "CNY", "monthly_price": monthly, "yearly_price": "1000.00"}]
    })
}

impl User {
    /// Someone not logged in yet, at `base`.
    pub fn new(base: &str) -> User {
        User {
            client: TestApp::client(),
            base: base.to_owned(),
            id: String::new(),
            email: String::new(),
        }
    }

    /// Sends a request, asserts the status, and returns the JSON body (null when there is none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// POSTs `body`, asserts the status, and returns the JSON body.
    pub async fn expect_post(&self, path: &str, body: Value, expect: StatusCode) -> Value {
        self.send(reqwest::Method::POST, path, Some(body), expect)
            .await
    }

    /// As a reviewer, approves the revision `rev` (asserting it went through).
    pub async fn approve_review(&self, rev: &str) {
        let res = self
            .post(
                &format!("/v1/operator/reviews/{rev}/decision"),
                json!({"approve": true}),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.client
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn order(&self, plan: &str, periods: u32, key: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(format!("{}/v1/orders", self.base))
            .json(&json!({"plan_id": plan, "period": "month", "periods": periods}));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }

    pub async fn json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.unwrap()
    }

    /// Polls `path` until `done` holds (the workers run in the background); panics after 10 s.
    pub async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let v = self.json(path).await;
            if done(&v) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "{path} never reached the expected state: {}",
            self.json(path).await
        );
    }
}

/// Asserts a problem+json answer with this status and, when given, this field.
pub async fn assert_problem(res: Response, status: StatusCode, field: Option<&str>) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:souk:problem:"));
    if let Some(f) = field {
        assert_eq!(body["field"], f, "{body}");
    }
    body
}

/// A seller endpoint for tests: answers `newInstance` with `code` after failing `fail_first`
/// calls with HTTP 500, and counts the calls it saw.
pub struct StubSeller {
    pub code: &'static str,
    pub fail_first: usize,
    /// The first calls answer only after 4 s: longer than souk waits in the timeout test, and
    /// long enough for another seller's order to be provisioned meanwhile on a busy machine
    /// (within the 5 s souk waits by default).
    pub stall_first: usize,
    pub calls: AtomicUsize,
    /// The lifecycle calls it answered, in order: `refresh <scene> <expireTime>`, `release <id>`,
    /// `status Freeze` / `status Unfreeze`, `upgrade <id> <orderId>`.
    pub heard: std::sync::Mutex<Vec<String>>,
}

impl StubSeller {
    /// The lifecycle calls answered so far.
    pub fn heard(&self) -> Vec<String> {
        self.heard.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Polls what the seller heard until `done` holds (the calls go out in the background);
    /// returns it; panics after 10 s.
    pub async fn wait_until_heard(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..400 {
            let heard = self.heard();
            if done(&heard) {
                return heard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "the seller never heard the expected calls: {:?}",
            self.heard()
        );
    }

    fn hear(&self, what: String) {
        if let Ok(mut h) = self.heard.lock() {
            h.push(what);
        }
    }
}

impl Seller for StubSeller {
    async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
        if let Some(name) = req.v1_terms.get("customerName") {
            let term = |k: &str| req.v1_terms.get(k).cloned().unwrap_or_default();
            self.hear(format!(
                "v1 new for {name}: {} x{} trial {}",
                term("periodType"),
                term("periodNumber"),
                term("trialFlag")
            ));
        }
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
    async fn refresh_instance(&self, r: Refresh) -> SellerAnswer {
        self.hear(format!("refresh {:?} {}", r.scene, r.expire_time));
        SellerAnswer::code(ResultCode::Success, "ok")
    }
    async fn update_instance_status(&self, _: String, change: StatusChange) -> SellerAnswer {
        self.hear(format!("status {change:?}"));
        SellerAnswer::code(ResultCode::Success, "ok")
    }
    async fn release_instance(&self, id: String, _: String) -> SellerAnswer {
        self.hear(format!("release {id}"));
        SellerAnswer::code(ResultCode::Success, "ok")
    }
    async fn upgrade_instance(&self, id: String, order_id: String, _: String) -> SellerAnswer {
        self.hear(format!("upgrade {id} {order_id}"));
        SellerAnswer::code(ResultCode::Success, "ok")
    }
}

/// Serves a stub seller; returns its endpoint URL. The first `fail_first` calls get HTTP 500.
pub async fn stub_seller(
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
            heard: Default::default(),
        },
        key,
    )
    .await
}

/// A stub seller answering `000000` whose answers carry a `Body-Sign` made with `key`.
pub async fn signing_stub_seller(key: &str) -> (String, Arc<StubSeller>) {
    serve_stub_with(
        StubSeller {
            code: "000000",
            fail_first: 0,
            stall_first: 0,
            calls: AtomicUsize::new(0),
            heard: Default::default(),
        },
        key,
        true,
    )
    .await
}

pub async fn serve_stub(stub: StubSeller, key: &str) -> (String, Arc<StubSeller>) {
    serve_stub_with(stub, key, false).await
}

async fn serve_stub_with(
    stub: StubSeller,
    key: &str,
    sign_answers: bool,
) -> (String, Arc<StubSeller>) {
    let stub = Arc::new(stub);
    let counter = stub.clone();
    let keys = Keys::new([key.to_owned()]);
    let endpoint = if sign_answers {
        souk_seller::router_signing_answers(stub.clone(), keys)
    } else {
        souk_seller::router(stub.clone(), keys)
    };
    let app = axum::Router::new()
        .nest_service("/souk", endpoint)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    let n = counter.calls.fetch_add(1, Ordering::SeqCst);
                    if n < counter.stall_first {
                        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
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

pub const KEY: &str = "stub-signing-key-0123456789";

/// A new merchant `seller@acme.test` with a listed product calling `endpoint`.
pub async fn product_with(
    app: &TestApp,
    op: &User,
    endpoint: &str,
    monthly: &str,
) -> (User, String, String) {
    let seller = app.merchant(op, "seller@acme.test").await;
    let (id, plan) = listed_by(app, op, &seller, endpoint, monthly).await;
    (seller, id, plan)
}

/// A listed product of `seller` calling `endpoint` with [`KEY`]; returns (product, plan).
pub async fn listed_by(
    app: &TestApp,
    op: &User,
    seller: &User,
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
    let product: Value = app.public_json(&format!("/v1/products/{id}")).await;
    let plan = product["plans"][0]["id"].as_str().unwrap().to_owned();
    (id, plan)
}
