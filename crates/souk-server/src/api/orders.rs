//! Buying: orders paid from the balance, and the buyer's view of them.

use super::{idempotency_key, MoneyView, PageParams};
use crate::app::orders::{self, OrderDetails, OrderInput, Placed, TrialInput};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_store::events::TimelineEvent;
use souk_store::orders::Order;
use utoipa::IntoParams;
use utoipa::ToSchema;

/// One thing that happened to an order or instance.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub at: DateTime<Utc>,
    /// e.g. `order.paid`, `instance.active`, `instance.frozen`.
    pub kind: String,
    pub detail: String,
}

impl From<TimelineEvent> for EventView {
    fn from(e: TimelineEvent) -> Self {
        EventView {
            at: e.at,
            kind: e.kind,
            detail: e.detail,
        }
    }
}

/// An order as its buyer sees it.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    #[schema(value_type = schema::KindOfOrder)]
    pub kind: String,
    #[schema(value_type = schema::Payment)]
    pub state: String,
    pub product_id: String,
    pub plan_id: String,
    pub instance_id: String,
    #[schema(value_type = schema::Period)]
    pub period: String,
    pub periods: u32,
    /// Price of one period when ordered.
    pub unit_price: String,
    /// The price before any promotion.
    pub list_price: MoneyView,
    /// What a promotion took off: amount = list_price - discount.
    pub discount: MoneyView,
    /// What was paid.
    pub amount: MoneyView,
    /// What went back to the buyer: all of it when provisioning failed, what the refund rules
    /// allowed when the buyer unsubscribed.
    pub refunded: MoneyView,
    /// Whether the order counts in sales and settlement: neither refunded nor unsubscribed, and
    /// paid for (a free trial does not count) or on demand.
    pub valid: bool,
    pub created_at: DateTime<Utc>,
    /// What happened, oldest first (on the single-order view).
    pub timeline: Vec<EventView>,
}

impl OrderView {
    pub(crate) fn new(o: Order, timeline: Vec<TimelineEvent>) -> Self {
        OrderView {
            id: o.id.to_string(),
            kind: o.kind.as_str().to_owned(),
            state: o.state.as_str().to_owned(),
            product_id: o.product_id.to_string(),
            plan_id: o.plan_id.to_string(),
            instance_id: o.instance_id.to_string(),
            period: o.period.as_str().to_owned(),
            periods: o.periods,
            unit_price: o.unit_price.to_string(),
            valid: souk_core::orders::is_valid(
                o.state,
                o.amount.minor - o.refunded.minor,
                o.period,
            ),
            list_price: o.list.into(),
            discount: o.discount.into(),
            amount: o.amount.into(),
            refunded: o.refunded.into(),
            created_at: o.created_at,
            timeline: timeline.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<OrderDetails> for OrderView {
    fn from(d: OrderDetails) -> Self {
        OrderView::new(d.order, d.timeline)
    }
}

/// The answer to a paying request: 201 when it paid now, 200 when an earlier request with the
/// same key did.
pub(crate) fn placed(p: Placed) -> (StatusCode, Json<OrderView>) {
    let status = if p.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(p.details.into()))
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// Buys a plan. Send an `Idempotency-Key` header so a retry cannot buy twice.
#[utoipa::path(operation_id = "place_order", post, path = "/v1/orders", tag = "orders", request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry return the same order")),
    responses((status = 201, body = OrderView, description = "Paid; the instance is being provisioned"),
              (status = 200, body = OrderView, description = "The order an earlier request with this key created"),
              (status = 402, body = Problem, description = "The balance does not cover the price"),
              (status = 403, body = Problem, description = "Real-name verification must pass before buying"),
              (status = 409, body = Problem, description = "The plan is not on sale, or the balance changed meanwhile"),
              (status = 422, body = Problem, description = "Invalid input, no such plan, a period the plan is not sold by, or an Idempotency-Key used for a different order")))]
pub async fn place(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Body(input): Body<OrderInput>,
) -> AppResult<(StatusCode, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    Ok(placed(orders::place(&state, &caller, input, key).await?))
}

/// Starts a plan's free trial: verified buyers only, once per buyer and product, nothing charged.
/// The instance is provisioned like a purchase; `POST /v1/instances/{id}/convert` pays for it.
#[utoipa::path(operation_id = "start_trial", post, path = "/v1/trials", tag = "orders", request_body = TrialInput,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry return the same trial")),
    responses((status = 201, body = OrderView, description = "The trial started; the instance is being provisioned"),
              (status = 200, body = OrderView, description = "The trial an earlier request with this key started"),
              (status = 403, body = Problem, description = "Real-name verification must pass before a trial"),
              (status = 409, body = Problem, description = "The account already took this product's trial, or the plan is not on sale"),
              (status = 422, body = Problem, description = "No such plan, or the plan has no trial")))]
pub async fn start_trial(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Body(input): Body<TrialInput>,
) -> AppResult<(StatusCode, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    Ok(placed(
        orders::start_trial(&state, &caller, input, key).await?,
    ))
}

/// Which orders to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only orders whose money stands so.
    #[param(value_type = Option<schema::Payment>)]
    pub state: Option<String>,
    /// Only orders of this kind.
    #[param(value_type = Option<schema::KindOfOrder>)]
    pub kind: Option<String>,
}

/// The caller's orders, newest first, filtered by state and kind.
#[utoipa::path(operation_id = "my_orders", get, path = "/v1/orders", tag = "orders", params(OrderListParams),
    responses((status = 200, body = OrderPage), (status = 401, body = Problem), (status = 422, body = Problem, description = "An unknown state or kind")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<OrderListParams>,
) -> AppResult<Json<OrderPage>> {
    let filter = orders::OrderFilter {
        state: p.state,
        kind: p.kind,
    };
    let page = PageParams {
        cursor: p.cursor,
        limit: p.limit,
    };
    let page = orders::list(&state, &caller, filter, page.into()).await?;
    Ok(Json(OrderPage {
        items: page
            .items
            .into_iter()
            .map(|o| OrderView::new(o, vec![]))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One of the caller's orders with its timeline.
#[utoipa::path(operation_id = "get_order", get, path = "/v1/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> AppResult<Json<OrderView>> {
    Ok(Json(
        orders::get(&state, &caller, &order_id.into()).await?.into(),
    ))
}
