//! The JSON API under `/v1`, one module per area; the OpenAPI document is generated from the
//! handlers' annotations so it cannot drift from the code.

pub mod accounts;
pub mod catalog;
pub mod contract;
pub mod iam;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod merchants;
pub mod metering;
pub mod notifications;
pub mod order_query;
pub mod orders;
pub mod products;
pub mod promotions;
pub mod reviews;
pub mod sales;
pub mod system;

use crate::app::PageRequest;
use crate::error::{AppError, AppResult};
use crate::SharedState;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Router;
use serde::{Deserialize, Serialize};
use souk_core::money::Money;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "souk", description = "The souk cloud marketplace API. Errors are application/problem+json (RFC 9457) with a stable `type` per kind of problem. Operations that need a session say so in `security` (the `session` cookie); operator operations name the role they need."),
    tags(
        (name = "accounts", description = "Sign-up, sessions, real-name verification"),
        (name = "merchants", description = "Becoming a merchant"),
        (name = "seller", description = "A merchant's products, drafts and applications"),
        (name = "catalog", description = "Listed products"),
        (name = "orders", description = "Buying and renewing"),
        (name = "instances", description = "What a buyer bought, and its lifecycle"),
        (name = "balance", description = "Balances and the ledger"),
        (name = "notifications", description = "What the caller was told, and which topics it also gets by e-mail"),
        (name = "iam", description = "IAM users and access keys for signed (SDK-HMAC-SHA256) calls"),
        (name = "operator", description = "Review queues, decisions, top-ups and the job queue"),
        (name = "system", description = "Health and this document"),
    )
)]
struct ApiDoc;

/// The whole HTTP application.
pub fn router(state: SharedState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::sign_up))
        .routes(routes!(accounts::log_in, accounts::log_out_everywhere))
        .routes(routes!(accounts::log_out))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::submit_verification))
        .routes(routes!(accounts::verification_queue))
        .routes(routes!(accounts::decide_verification))
        .routes(routes!(merchants::apply, merchants::mine))
        .routes(routes!(merchants::queue))
        .routes(routes!(merchants::decide))
        .routes(routes!(products::create, products::list))
        .routes(routes!(products::get))
        .routes(routes!(products::edit_draft))
        .routes(routes!(products::submit))
        .routes(routes!(products::delist))
        .routes(routes!(reviews::queue))
        .routes(routes!(reviews::decide))
        .routes(routes!(catalog::search))
        .routes(routes!(catalog::product))
        .routes(routes!(catalog::categories))
        .routes(routes!(ledger::balance))
        .routes(routes!(ledger::entries))
        .routes(routes!(ledger::top_up))
        .routes(routes!(ledger::set_credit_limit))
        .routes(routes!(orders::place, orders::list))
        .routes(routes!(orders::get))
        .routes(routes!(orders::start_trial))
        .routes(routes!(instances::list))
        .routes(routes!(instances::get))
        .routes(routes!(instances::renew))
        .routes(routes!(instances::refund_quote))
        .routes(routes!(instances::unsubscribe))
        .routes(routes!(instances::convert))
        .routes(routes!(
            instances::plan_change_quote,
            instances::change_plan
        ))
        .routes(routes!(metering::report))
        .routes(routes!(metering::of_instance))
        .routes(routes!(metering::of_merchant))
        .routes(routes!(sales::orders))
        .routes(routes!(sales::order))
        .routes(routes!(sales::update_access))
        .routes(routes!(sales::instances))
        .routes(routes!(sales::rotate_key))
        .routes(routes!(sales::check_endpoint))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::read))
        .routes(routes!(notifications::read_all))
        .routes(routes!(
            notifications::preferences,
            notifications::set_preferences
        ))
        .routes(routes!(iam::create_user, iam::users))
        .routes(routes!(iam::set_policy, iam::delete_user))
        .routes(routes!(iam::create_key))
        .routes(routes!(iam::disable_key))
        .routes(routes!(iam::enable_key))
        .routes(routes!(iam::delete_key))
        .routes(routes!(iam::audit))
        .routes(routes!(promotions::create, promotions::list))
        .routes(routes!(promotions::end))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::replay))
        .routes(routes!(system::healthz))
        .split_for_parts();
    let mut openapi = openapi;
    contract::complete(&mut openapi);
    let openapi = Arc::new(openapi);
    let mut app = api
        .route("/metrics", axum::routing::get(system::metrics))
        .route(order_query::PATH, axum::routing::get(order_query::query))
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || system::openapi(openapi.clone())),
        );
    if state.test_clock.is_some() {
        app = app.route(
            "/v1/test/clock",
            axum::routing::get(system::clock).post(system::move_clock),
        );
    }
    if state.settings.demo_seller {
        app = app.nest_service("/demo-seller", crate::demo_seller::router());
    }
    app.merge(crate::web::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::signed::check,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(crate::panics::layer())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::csrf::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            trace_request,
        ))
        .with_state(state)
}

/// Gives every request a span with its id (the caller's `X-Request-Id` when it sends a sane one)
/// and answers with that id, so a line in the logs can be found from a client's report.
async fn trace_request(
    axum::extract::State(state): axum::extract::State<SharedState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let took = started.elapsed();
    state.metrics.request(method.as_str(), status, took);
    let ms = took.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, ms, "answered");
        } else {
            tracing::debug!(status, ms, "answered");
        }
    });
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// Nothing here: a problem document for the API, a page for a person.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    let path = uri.path();
    if path.starts_with("/v1") || path.starts_with("/api/") || path == "/metrics" {
        AppError::NotFound("this path".into()).into_response()
    } else {
        crate::web::not_found_page()
    }
}

/// Headers every answer carries: no sniffing, no framing, no referrer to other sites; pages may
/// load only souk's own script and style; nothing but the static files may be cached, since
/// pages and answers carry what belongs to one person.
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn method_not_allowed() -> impl IntoResponse {
    AppError::MethodNotAllowed
}

/// An amount of money: a decimal string with the currency's decimals, and the ISO currency.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct MoneyView {
    /// e.g. `"99.00"`.
    pub amount: String,
    #[schema(value_type = crate::app::schema::Currency)]
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> Self {
        MoneyView {
            amount: m.amount_string(),
            currency: m.currency.code().to_owned(),
        }
    }
}

/// Paging through a list.
#[derive(Deserialize, IntoParams)]
pub struct PageParams {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

impl From<PageParams> for PageRequest {
    fn from(p: PageParams) -> Self {
        PageRequest {
            cursor: p.cursor,
            limit: p.limit,
        }
    }
}

/// The `Idempotency-Key` header, checked.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<String>> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::invalid("Idempotency-Key", "must be printable ASCII"))
                .and_then(|v| Ok(souk_core::orders::idempotency_key(v)?))
        })
        .transpose()
}
