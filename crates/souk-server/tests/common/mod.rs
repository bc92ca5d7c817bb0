//! `TestApp::spawn(backend)`: souk on a random port over a fresh database, with a test clock,
//! and helpers that walk people through sign-up, verification, merchant onboarding and review.
#![allow(dead_code)]

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use souk_server::{AppState, Settings, SharedState};
use souk_store::accounts::NewAccount;
use souk_store::testing::TestDb;
use souk_store::Backend;

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
        let running = souk_server::start(state.clone(), listener).unwrap();
        TestApp {
            base: format!("http://{}", running.addr),
            state,
            db: Some(db),
            backend,
        }
    }

    pub async fn cleanup(mut self) {
        if let Some(db) = self.db.take() {
            db.cleanup().await;
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
        let hash = souk_server::auth::hash_password("operator password".into())
            .await
            .unwrap();
        let a = self
            .state
            .store
            .create_account(
                NewAccount {
                    kind: "individual",
                    name: "Operator",
                    email,
                    password_hash: &hash,
                    roles,
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
            id: a.id,
            email: email.to_owned(),
        }
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
        let res = seller
            .post("/v1/seller/products", product_body(name, endpoint, monthly))
            .await;
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
        let product: Value = Self::client()
            .get(format!("{}/v1/products/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let plan = product["plans"][0]["id"].as_str().unwrap().to_owned();
        (id, plan, key)
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
            .bearer_auth(souk_server::settings::TEST_CLOCK_TOKEN_FOR_TESTS)
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
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
