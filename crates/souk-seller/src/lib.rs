//! The seller kit: everything a SaaS needs to be provisioned by souk (or any marketplace speaking
//! the SaaS Access Guide V2.0). Implement [`Seller`], mount [`router`] at your production endpoint,
//! and the kit verifies each call's signature, time window and nonce, parses it, dispatches it to
//! your method and answers in the wire format. The same endpoint also answers the older V1
//! protocol (a GET whose parameters carry an `authToken`; its answers are always signed), so a
//! product can speak either.
//!
//! ```no_run
//! # use souk_seller::*;
//! # async fn run(app: impl Seller) {
//! let endpoint = router(std::sync::Arc::new(app), Keys::new(["the-product-signing-key"]));
//! let app = axum::Router::new().nest("/souk", endpoint);
//! # }
//! ```

pub mod client;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use souk_protocol::signature::{self, SignedParams, TIMESTAMP_WINDOW_MS};
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use souk_protocol::access_crypto::{self, EncryptType};
pub use souk_protocol::activity::RefreshScene;
pub use souk_protocol::{Activity, AppInfo, InstanceInfo, ResultCode, SellerAnswer, StatusChange};

/// `newInstance`: create the instance for a paid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance {
    pub order_id: String,
    pub order_line_id: String,
    /// Unique per provisioning request: answer a repeat with the instance already created.
    pub business_id: String,
    /// A test call from the marketplace's endpoint check.
    pub test: bool,
    /// Under V1, what the call says of the subscription (`customerId`, `customerName`,
    /// `productId`, `skuCode`, `periodType`, `periodNumber`, `trialFlag`, `expireTime`); empty
    /// under V2, whose sellers ask the order query for it.
    pub v1_terms: BTreeMap<String, String>,
}

/// `refreshInstance`: the expiry changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: String,
    pub product_id: String,
    /// `yyyyMMddHHmmss`, UTC.
    pub expire_time: String,
    pub scene: RefreshScene,
}

/// What a seller implements: one method per call the marketplace makes.
pub trait Seller: Send + Sync + 'static {
    /// Create an instance; answer its `instanceId` and, ideally, its `appInfo`.
    fn new_instance(&self, req: NewInstance) -> impl Future<Output = SellerAnswer> + Send;
    /// Answer the access data of these instances in `info`.
    fn query_instance(
        &self,
        instance_ids: Vec<String>,
    ) -> impl Future<Output = SellerAnswer> + Send;
    /// Record a new expiry.
    fn refresh_instance(&self, req: Refresh) -> impl Future<Output = SellerAnswer> + Send;
    /// Freeze (stop serving, keep data) or unfreeze.
    fn update_instance_status(
        &self,
        instance_id: String,
        status: StatusChange,
    ) -> impl Future<Output = SellerAnswer> + Send;
    /// Release for good.
    fn release_instance(
        &self,
        instance_id: String,
        order_id: String,
    ) -> impl Future<Output = SellerAnswer> + Send;
    /// The buyer changed plan; sellers without plan changes keep the default, which refuses.
    fn upgrade_instance(
        &self,
        instance_id: String,
        order_id: String,
        product_id: String,
    ) -> impl Future<Output = SellerAnswer> + Send {
        let _ = (instance_id, order_id, product_id);
        async {
            SellerAnswer::code(
                ResultCode::InvalidParameter,
                "plan changes are not supported",
            )
        }
    }
}

/// The signing keys the endpoint accepts: the product's key, and during a rotation the old one.
#[derive(Debug, Clone)]
pub struct Keys(Arc<Vec<String>>);

impl Keys {
    /// Accept calls signed with any of `keys`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(keys: I) -> Self {
        Keys(Arc::new(keys.into_iter().map(Into::into).collect()))
    }
}

struct Endpoint<S> {
    seller: Arc<S>,
    keys: Keys,
    nonces: Mutex<NonceLog>,
    /// Sign each answer (`Body-Sign`), for a product that asks souk to check answers.
    sign_answers: bool,
}

/// The nonces seen recently, in two generations swapped every two time windows, so that checking
/// a call costs the same however many calls came before it. A nonce stays known for at least two
/// windows: longer than any call carrying it can pass the timestamp check.
#[derive(Default)]
struct NonceLog {
    current: HashSet<String>,
    previous: HashSet<String>,
    started_at: i64,
}

impl NonceLog {
    /// Records `nonce` at `now_ms`; `false` when it was seen before.
    fn first_use(&mut self, nonce: &str, now_ms: i64) -> bool {
        if now_ms - self.started_at >= 2 * TIMESTAMP_WINDOW_MS {
            self.previous = std::mem::take(&mut self.current);
            self.started_at = now_ms;
        }
        if self.previous.contains(nonce) {
            return false;
        }
        self.current.insert(nonce.to_owned())
    }
}

#[derive(Deserialize)]
struct Params {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The endpoint as an axum router answering `POST /`; mount it at the URL registered with souk.
pub fn router<S: Seller>(seller: Arc<S>, keys: Keys) -> Router {
    endpoint_router(seller, keys, false)
}

/// [`router`], signing every answer with the current key in a `Body-Sign` header, for a product
/// whose seller asked souk to check its answers (souk then refuses an unsigned or wrongly signed
/// answer as a failed attempt).
pub fn router_signing_answers<S: Seller>(seller: Arc<S>, keys: Keys) -> Router {
    endpoint_router(seller, keys, true)
}

fn endpoint_router<S: Seller>(seller: Arc<S>, keys: Keys, sign_answers: bool) -> Router {
    let endpoint = Arc::new(Endpoint {
        seller,
        keys,
        nonces: Mutex::new(NonceLog::default()),
        sign_answers,
    });
    Router::new()
        .route("/", post(handle::<S>).get(handle_v1::<S>))
        .with_state(endpoint)
}

/// A V1 call: the parameters in the query, `authToken` checked against each key and the
/// `timeStamp` window, each token accepted once; the answer always carries a `Body-Sign`.
async fn handle_v1<S: Seller>(
    State(ep): State<Arc<Endpoint<S>>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let answer = answer_v1(&ep, &params).await;
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    let key = ep.keys.0.first().map(String::as_str).unwrap_or_default();
    let signature = souk_protocol::signature::body_sign(key, &bytes);
    (
        [
            ("content-type", "application/json".to_owned()),
            (souk_protocol::signature::BODY_SIGN_HEADER, signature),
        ],
        bytes,
    )
        .into_response()
}

async fn answer_v1<S: Seller>(ep: &Endpoint<S>, params: &BTreeMap<String, String>) -> SellerAnswer {
    let keys: Vec<&str> = ep.keys.0.iter().map(String::as_str).collect();
    let now = now_ms();
    let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    if let Err(e) = souk_protocol::v1::verify(&keys, params, at) {
        return SellerAnswer::code(ResultCode::AuthFailed, e.to_string());
    }
    // V1 has no nonce; the token itself is unique per call and time, so it is remembered instead.
    let token = params.get("authToken").cloned().unwrap_or_default();
    {
        let mut seen = ep
            .nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !seen.first_use(&token, now) {
            return SellerAnswer::code(ResultCode::AuthFailed, "authToken already used");
        }
    }
    match souk_protocol::v1::parse(params) {
        Ok((activity, test)) => {
            const TERMS: [&str; 8] = [
                "customerId",
                "customerName",
                "productId",
                "skuCode",
                "periodType",
                "periodNumber",
                "trialFlag",
                "expireTime",
            ];
            let terms = params
                .iter()
                .filter(|(k, _)| TERMS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            dispatch(&*ep.seller, activity, test, terms).await
        }
        Err(e) => SellerAnswer::code(ResultCode::InvalidParameter, e.to_string()),
    }
}

async fn handle<S: Seller>(
    State(ep): State<Arc<Endpoint<S>>>,
    Query(params): Query<Params>,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let answer = answer(&ep, params, &body).await;
    match ep.keys.0.first().filter(|_| ep.sign_answers) {
        Some(key) => {
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            let signature = souk_protocol::signature::body_sign(key, &bytes);
            (
                [
                    ("content-type", "application/json".to_owned()),
                    (souk_protocol::signature::BODY_SIGN_HEADER, signature),
                ],
                bytes,
            )
                .into_response()
        }
        None => Json(answer).into_response(),
    }
}

async fn answer<S: Seller>(ep: &Endpoint<S>, params: Params, body: &[u8]) -> SellerAnswer {
    let (Some(signature), Some(timestamp), Some(nonce)) =
        (params.signature, params.timestamp, params.nonce)
    else {
        return SellerAnswer::code(
            ResultCode::AuthFailed,
            "signature, timestamp and nonce are required",
        );
    };
    let signed = SignedParams {
        signature,
        timestamp,
        nonce,
    };
    let now = now_ms();
    let keys: Vec<&str> = ep.keys.0.iter().map(String::as_str).collect();
    if let Err(e) = signature::verify(&keys, body, &signed, now) {
        return SellerAnswer::code(ResultCode::AuthFailed, e.to_string());
    }
    {
        let mut seen = ep
            .nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !seen.first_use(&signed.nonce, now) {
            return SellerAnswer::code(ResultCode::AuthFailed, "nonce already used");
        }
    }
    match Activity::parse(body) {
        Ok((activity, test)) => dispatch(&*ep.seller, activity, test, BTreeMap::new()).await,
        Err(e) => SellerAnswer::code(ResultCode::InvalidParameter, e.to_string()),
    }
}

/// Hands a verified call to the seller's method.
async fn dispatch<S: Seller>(
    seller: &S,
    activity: Activity,
    test: bool,
    v1_terms: BTreeMap<String, String>,
) -> SellerAnswer {
    match activity {
        Activity::NewInstance {
            order_id,
            order_line_id,
            business_id,
        } => {
            seller
                .new_instance(NewInstance {
                    order_id,
                    order_line_id,
                    business_id,
                    test,
                    v1_terms,
                })
                .await
        }
        Activity::QueryInstance { instance_ids } => seller.query_instance(instance_ids).await,
        Activity::RefreshInstance {
            instance_id,
            order_id,
            order_line_id,
            product_id,
            expire_time,
            scene,
        } => {
            seller
                .refresh_instance(Refresh {
                    instance_id,
                    order_id,
                    order_line_id,
                    product_id,
                    expire_time,
                    scene,
                })
                .await
        }
        Activity::UpdateInstanceStatus {
            instance_id,
            status,
        } => seller.update_instance_status(instance_id, status).await,
        Activity::ReleaseInstance {
            instance_id,
            order_id,
            ..
        } => seller.release_instance(instance_id, order_id).await,
        Activity::UpgradeInstance {
            instance_id,
            order_id,
            product_id,
            ..
        } => {
            seller
                .upgrade_instance(instance_id, order_id, product_id)
                .await
        }
    }
}

/// A random printable 16-character IV for [`access_crypto::encrypt`].
pub fn random_iv() -> String {
    souk_protocol::signature::new_nonce()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Echo;
    impl Seller for Echo {
        async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
            SellerAnswer {
                instance_id: Some(format!("i-{}", req.business_id)),
                ..SellerAnswer::code(ResultCode::Success, "ok")
            }
        }
        async fn query_instance(&self, _: Vec<String>) -> SellerAnswer {
            SellerAnswer::code(ResultCode::Success, "ok")
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

    async fn call(app: &Router, query: &str, body: &[u8]) -> SellerAnswer {
        let req = Request::post(format!("/?{query}"))
            .body(Body::from(body.to_vec()))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn nonces_stay_known_for_two_windows_at_least() {
        let mut log = NonceLog::default();
        let t0 = 1_000_000;
        assert!(log.first_use("a", t0));
        assert!(!log.first_use("a", t0 + 1));
        // After one swap the nonce is in the previous generation: still refused.
        assert!(log.first_use("b", t0 + 2 * TIMESTAMP_WINDOW_MS));
        assert!(!log.first_use("a", t0 + 2 * TIMESTAMP_WINDOW_MS + 1));
        // Two swaps later it is forgotten, long after its timestamp stopped passing the check.
        assert!(log.first_use("c", t0 + 4 * TIMESTAMP_WINDOW_MS));
        assert!(log.first_use("a", t0 + 4 * TIMESTAMP_WINDOW_MS + 1));
    }

    #[tokio::test]
    async fn verifies_dispatches_and_refuses_replays_and_bad_signatures() {
        let app = router(Arc::new(Echo), Keys::new(["key-1"]));
        let body = Activity::NewInstance {
            order_id: "o".into(),
            order_line_id: "o-1".into(),
            business_id: "b".into(),
        }
        .body(false);
        let params = SignedParams::new("key-1", &body, now_ms());
        let ok = call(&app, &params.query(), &body).await;
        assert_eq!(
            (ok.result_code.as_str(), ok.instance_id.as_deref()),
            ("000000", Some("i-b"))
        );
        let replay = call(&app, &params.query(), &body).await;
        assert_eq!(replay.result_code, "000001");
        let wrong_key = SignedParams::new("key-2", &body, now_ms());
        assert_eq!(
            call(&app, &wrong_key.query(), &body).await.result_code,
            "000001"
        );
        let stale = SignedParams::new("key-1", &body, now_ms() - 120_000);
        assert_eq!(
            call(&app, &stale.query(), &body).await.result_code,
            "000001"
        );
        assert_eq!(call(&app, "", &body).await.result_code, "000001");
        let junk = br#"{"activity":"dance","testFlag":"0"}"#;
        let p = SignedParams::new("key-1", junk, now_ms());
        assert_eq!(call(&app, &p.query(), junk).await.result_code, "000002");
    }

    #[tokio::test]
    async fn answers_v1_calls_signed_once_and_refuses_forged_and_replayed_ones() {
        use souk_protocol::v1;
        let app = router(Arc::new(Echo), Keys::new(["key-1"]));
        let get = |query: String| {
            let app = app.clone();
            async move {
                let res = app
                    .oneshot(
                        Request::get(format!("/?{query}"))
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let sign = res
                    .headers()
                    .get(souk_protocol::signature::BODY_SIGN_HEADER)
                    .map(|v| v.to_str().unwrap().to_owned());
                let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                    .await
                    .unwrap();
                assert!(
                    souk_protocol::signature::verify_body_sign(&["key-1"], &bytes, sign.as_deref()),
                    "every V1 answer is signed"
                );
                serde_json::from_slice::<SellerAnswer>(&bytes).unwrap()
            }
        };
        let new = Activity::NewInstance {
            order_id: "o".into(),
            order_line_id: "o-1".into(),
            business_id: "b".into(),
        };
        let now = chrono::Utc::now();
        let params = v1::params(&new, false, None, &v1::time_stamp(now));
        let query = v1::signed_query("key-1", &params);
        let ok = get(query.clone()).await;
        assert_eq!(
            (ok.result_code.as_str(), ok.instance_id.as_deref()),
            ("000000", Some("i-b"))
        );
        assert_eq!(
            get(query).await.result_code,
            "000001",
            "a replay is refused"
        );
        let forged = v1::signed_query(
            "key-2",
            &v1::params(&new, false, None, &v1::time_stamp(now)),
        );
        assert_eq!(get(forged).await.result_code, "000001");
        let old = now - chrono::Duration::minutes(5);
        let stale = v1::signed_query(
            "key-1",
            &v1::params(&new, false, None, &v1::time_stamp(old)),
        );
        assert_eq!(get(stale).await.result_code, "000001");
    }
}
