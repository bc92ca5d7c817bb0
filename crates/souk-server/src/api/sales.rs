//! What a merchant sold: orders and instances of its own products, with the seller calls and
//! their answers; and the rotation of a product's signing key.

use super::jobs::JobView;
use super::orders::OrderView;
use super::products::SellerProductView;
use super::PageParams;
use crate::app::sales::{self, AccessInput, Sale, SoldOrder};
use crate::app::{products, Caller};
use crate::error::{AppResult, Problem};
use crate::extract::Path;
use crate::extract::Query;
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A page of the merchant's orders.
#[derive(Serialize, ToSchema)]
pub struct SaleOrderPage {
    pub items: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// An instance of one of the merchant's products, with the calls souk made to the seller.
#[derive(Serialize, ToSchema)]
pub struct SaleView {
    pub id: String,
    pub product_id: String,
    pub product_name: String,
    pub order_id: String,
    /// `provisioning`, `active`, `grace`, `frozen`, `released` or `failed`.
    pub state: String,
    pub expires_at: DateTime<Utc>,
    pub seller_instance_id: Option<String>,
    pub failure_reason: Option<String>,
    /// The newest seller calls first, with every attempt and the seller's answers.
    pub calls: Vec<JobView>,
}

impl From<Sale> for SaleView {
    fn from(s: Sale) -> Self {
        let i = s.instance;
        SaleView {
            id: i.id.to_string(),
            product_id: i.product_id.to_string(),
            product_name: s.product_name,
            order_id: i.order_id.to_string(),
            state: i.state.as_str().to_owned(),
            expires_at: i.expires_at,
            seller_instance_id: i.seller_instance_id,
            failure_reason: i.failure_reason,
            calls: s.calls.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of the merchant's instances.
#[derive(Serialize, ToSchema)]
pub struct SalePage {
    pub items: Vec<SaleView>,
    pub next_cursor: Option<String>,
}

/// The orders of the merchant's products, newest first (approved merchants).
#[utoipa::path(operation_id = "seller_orders", get, path = "/v1/seller/orders", tag = "seller", params(PageParams),
    responses((status = 200, body = SaleOrderPage), (status = 403, body = Problem)))]
pub async fn orders(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<SaleOrderPage>> {
    let page = sales::orders(&state, &caller, p.into()).await?;
    Ok(Json(SaleOrderPage {
        items: page
            .items
            .into_iter()
            .map(|o| {
                crate::app::orders::OrderDetails {
                    order: o,
                    timeline: vec![],
                }
                .into()
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The instances of the merchant's products with the seller calls and answers (approved merchants).
#[utoipa::path(operation_id = "seller_instances", get, path = "/v1/seller/instances", tag = "seller", params(PageParams),
    responses((status = 200, body = SalePage), (status = 403, body = Problem)))]
pub async fn instances(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<SalePage>> {
    let page = sales::instances(&state, &caller, p.into()).await?;
    Ok(Json(SalePage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Replaces the product's signing key with a new one, answered once here; configure the
/// endpoint with it (approved merchants).
#[utoipa::path(operation_id = "rotate_signing_key", post, path = "/v1/seller/products/{product_id}/signing-key", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn rotate_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> AppResult<Json<SellerProductView>> {
    let sp = products::rotate_key(&state, &caller, &product_id.into()).await?;
    Ok(Json(super::products::view(sp, true)))
}

/// One order of the merchant's products, with what provisioning needs.
#[derive(Serialize, ToSchema)]
pub struct SoldOrderView {
    #[serde(flatten)]
    pub order: OrderView,
    /// The order's single line, as in the seller calls (`{order id}-000001`).
    pub order_line_id: String,
    pub buyer_id: String,
    pub buyer_name: String,
    pub product_name: String,
    pub plan_name: String,
    /// When the instance expires.
    pub expires_at: DateTime<Utc>,
}

impl From<SoldOrder> for SoldOrderView {
    fn from(s: SoldOrder) -> Self {
        SoldOrderView {
            order_line_id: s.order_line_id,
            buyer_id: s.order.buyer_id.to_string(),
            buyer_name: s.buyer_name,
            product_name: s.product_name,
            plan_name: s.plan_name,
            expires_at: s.expires_at,
            order: crate::app::orders::OrderDetails {
                order: s.order,
                timeline: vec![],
            }
            .into(),
        }
    }
}

/// One order of the merchant's products: the buyer, the product and plan, the period and the
/// instance's expiry; what a seller queries after `newInstance` (approved merchants).
#[utoipa::path(operation_id = "seller_order", get, path = "/v1/seller/orders/{order_id}", tag = "seller", params(("order_id" = String, Path)),
    responses((status = 200, body = SoldOrderView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn order(
    State(state): State<SharedState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> AppResult<Json<SoldOrderView>> {
    Ok(Json(
        sales::sold_order(&state, &caller, &order_id, None)
            .await?
            .into(),
    ))
}

/// Replaces parts of an instance's access data (an address moved, the first user's password was
/// reset); the buyer sees the new values at once (approved merchants, their own instances).
#[utoipa::path(operation_id = "seller_update_access", put, path = "/v1/seller/instances/{instance_id}/access", tag = "seller", params(("instance_id" = String, Path)),
    request_body = AccessInput,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_access(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    crate::extract::Body(input): crate::extract::Body<AccessInput>,
) -> AppResult<axum::http::StatusCode> {
    sales::update_access(&state, &caller, &instance_id, input).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// One check of the endpoint.
#[derive(Serialize, ToSchema)]
pub struct CheckView {
    /// What was checked, e.g. "newInstance creates an instance".
    pub name: String,
    pub passed: bool,
    /// What the seller answered, or why the check failed or was skipped.
    pub detail: String,
    pub latency_ms: u64,
}

/// What checking the product's endpoint found.
#[derive(Serialize, ToSchema)]
pub struct EndpointCheckView {
    /// The endpoint checked (the latest revision's).
    pub endpoint: String,
    /// Every check passed.
    pub passed: bool,
    pub checks: Vec<CheckView>,
}

/// Walks a made-up instance through every seller call (`testFlag` `"1"`, a `TEST…` order) at the
/// product's endpoint, and sends two calls it must refuse (another key's signature, a stale
/// timestamp); reports each. Nothing is bought (approved merchants).
#[utoipa::path(operation_id = "seller_check_endpoint", post, path = "/v1/seller/products/{product_id}/check-endpoint", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = EndpointCheckView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn check_endpoint(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> AppResult<Json<EndpointCheckView>> {
    let report = products::check_endpoint(&state, &caller, &product_id.into()).await?;
    Ok(Json(EndpointCheckView {
        endpoint: report.endpoint.clone(),
        passed: report.passed(),
        checks: report
            .checks
            .into_iter()
            .map(|c| CheckView {
                name: c.name.to_owned(),
                passed: c.passed,
                detail: c.detail,
                latency_ms: c.latency_ms,
            })
            .collect(),
    }))
}
