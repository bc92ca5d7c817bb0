//! The calls a seller makes to souk, signed with an access key of its account (an IAM user with
//! the `seller_operations` policy) the way Huawei Cloud's SDKs sign: the order query after
//! `newInstance`, updates of an instance's access data, and usage reports of metered plans. souk accepts each signature once; the
//! client signs a random `X-Sdk-Nonce` header with every request, so the very same call twice
//! within one second (the resolution of `X-Sdk-Date`) still has two signatures and both go through.
//!
//! ```no_run
//! # async fn run() -> Result<(), souk_seller::client::Error> {
//! let souk = souk_seller::client::Marketplace::new("https://souk.example", "AK…", "SK…");
//! let order = souk.query_order("ord_…", None).await?;
//! println!("{} bought {}", order["customerName"], order["orderLineList"][0]["productInfo"][0]["productName"]);
//! # Ok(()) }
//! ```

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use souk_protocol::aksk;

/// Why a call to souk did not give an answer.
#[derive(Debug)]
pub enum Error {
    /// The request could not be made or sent.
    Transport(String),
    /// souk refused it: the HTTP status and its problem document (`detail` says why).
    Refused { status: u16, problem: Value },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "could not call souk: {e}"),
            Error::Refused { status, problem } => write!(
                f,
                "souk refused the call ({status}): {}",
                problem["detail"].as_str().unwrap_or("no detail")
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Access data for [`Marketplace::update_access`]; what is `None` stays as it was.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_end_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// One usage record for [`Marketplace::report_usage`]: how much of a plan's metered dimension
/// an instance used between two instants. souk counts a `record_id` once, however often it is
/// sent, so a report that timed out can simply be sent again.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRecord {
    pub record_id: String,
    /// souk's instance id (the `businessId` of `newInstance`).
    pub instance_id: String,
    pub dimension: String,
    /// A decimal, e.g. `"12.5"`.
    pub quantity: String,
    pub usage_start: chrono::DateTime<Utc>,
    pub usage_end: chrono::DateTime<Utc>,
}

/// souk at `base` (e.g. `https://souk.example`), called with one access key.
#[derive(Clone)]
pub struct Marketplace {
    base: reqwest::Url,
    access_key: String,
    secret_key: String,
    http: reqwest::Client,
}

impl Marketplace {
    /// Panics when `base` is not an absolute URL (a configuration mistake, found at start-up).
    pub fn new(base: &str, access_key: &str, secret_key: &str) -> Marketplace {
        Marketplace {
            base: reqwest::Url::parse(base).expect("the marketplace's base URL"),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The order's `orderInfo` (buyer, product, plan as `skuCode`, period, expiry), as KooGallery's
    /// order query answers it.
    pub async fn query_order(
        &self,
        order_id: &str,
        order_line_id: Option<&str>,
    ) -> Result<Value, Error> {
        let mut query = vec![("orderId", order_id)];
        if let Some(line) = order_line_id {
            query.push(("orderLineId", line));
        }
        let mut url = self
            .base
            .join("/api/mkp-openapi-public/global/v1/order/query")
            .map_err(|e| Error::Transport(e.to_string()))?;
        url.query_pairs_mut().extend_pairs(query);
        let answer = self.send("GET", url, None).await?;
        Ok(answer["orderInfo"].clone())
    }

    /// Replaces parts of an instance's access data (souk's instance id, `ins_…`).
    pub async fn update_access(
        &self,
        instance_id: &str,
        access: &AccessUpdate,
    ) -> Result<(), Error> {
        let url = self
            .base
            .join(&format!("/v1/seller/instances/{instance_id}/access"))
            .map_err(|e| Error::Transport(e.to_string()))?;
        let body = serde_json::to_vec(access).map_err(|e| Error::Transport(e.to_string()))?;
        self.send("PUT", url, Some(body)).await.map(|_| ())
    }

    /// Reports up to 1,000 usage records; the answer has one result per record (`accepted`,
    /// `duplicate`, or `rejected` with a `reason`) and the counts.
    pub async fn report_usage(&self, records: &[UsageRecord]) -> Result<Value, Error> {
        let url = self
            .base
            .join("/v1/metering/usage")
            .map_err(|e| Error::Transport(e.to_string()))?;
        let body = serde_json::to_vec(&serde_json::json!({ "records": records }))
            .map_err(|e| Error::Transport(e.to_string()))?;
        self.send("POST", url, Some(body)).await
    }

    async fn send(
        &self,
        method: &str,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
    ) -> Result<Value, Error> {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(Error::Transport("the URL has no host".into())),
        };
        let mut headers = vec![
            ("Host".to_owned(), host),
            (
                "X-Sdk-Date".to_owned(),
                Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
            ),
        ];
        if body.is_some() {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        // Signed like every header given: identical calls in one second differ by it.
        headers.push((
            "X-Sdk-Nonce".to_owned(),
            souk_protocol::signature::new_nonce()[..32].to_owned(),
        ));
        let bytes = body.unwrap_or_default();
        let request = aksk::Request {
            method,
            path: url.path(),
            query: url.query_pairs().collect(),
            headers: headers.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            body: &bytes,
        };
        let authorization = aksk::sign(&self.access_key, &self.secret_key, &request)
            .map_err(|e| Error::Transport(e.to_string()))?;
        let method: reqwest::Method = method
            .parse()
            .map_err(|_| Error::Transport("method".into()))?;
        let mut req = self.http.request(method, url.clone());
        for (k, v) in headers.iter().filter(|(k, _)| k != "Host") {
            req = req.header(k, v);
        }
        let res = req
            .header("Authorization", authorization.header())
            .body(bytes)
            .send()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(value)
        } else {
            Err(Error::Refused {
                status: status.as_u16(),
                problem: value,
            })
        }
    }
}
