//! Buying: a verified buyer orders a plan for N months or years, paid from the balance in the
//! same transaction that creates the order, the instance and its provisioning job. A retry with
//! the same `Idempotency-Key` answers the same order and charges once.

use super::ledger::{MoneyView, PageParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Body, Query};
use crate::workers::dispatcher::SellerJob;
use crate::SharedState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::accounts::VerificationState;
use souk_core::money::Money;
use souk_core::orders::{idempotency_key, OrderKind, OrderState};
use souk_core::plans::{add_periods, Period, PlanPrices};
use souk_core::review::ProductState;
use souk_store::events::EventRow;
use souk_store::instances::InstanceRow;
use souk_store::orders::OrderRow;
use souk_store::{ms, new_id};
use utoipa::ToSchema;

/// What to buy.
#[derive(Deserialize, ToSchema)]
pub struct OrderInput {
    pub plan_id: String,
    /// `month` or `year`.
    pub period: String,
    /// How many months or years, 1 to 36 months or 1 to 5 years.
    pub periods: u32,
}

/// One thing that happened to an order or instance.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub at: DateTime<Utc>,
    /// e.g. `order.paid`, `instance.active`, `instance.frozen`.
    pub kind: String,
    pub detail: String,
}

impl From<EventRow> for EventView {
    fn from(e: EventRow) -> Self {
        EventView {
            at: super::time(e.at),
            kind: e.kind,
            detail: e.detail,
        }
    }
}

/// An order as its buyer sees it.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    /// `new` or `renew`.
    pub kind: String,
    /// `paid` or `refunded`.
    pub state: String,
    pub product_id: String,
    pub plan_id: String,
    pub instance_id: String,
    /// `month` or `year`.
    pub period: String,
    pub periods: i64,
    /// Price of one period when ordered.
    pub unit_price: String,
    /// What was paid.
    pub amount: MoneyView,
    pub created_at: DateTime<Utc>,
    /// What happened, oldest first (on the single-order view).
    pub timeline: Vec<EventView>,
}

impl OrderView {
    pub(crate) fn new(o: OrderRow, timeline: Vec<EventRow>) -> Self {
        OrderView {
            amount: MoneyView::new(o.amount_minor, &o.currency),
            id: o.id,
            kind: o.kind,
            state: o.state,
            product_id: o.product_id,
            plan_id: o.plan_id,
            instance_id: o.instance_id,
            period: o.period,
            periods: o.periods,
            unit_price: o.unit_price,
            created_at: super::time(o.created_at),
            timeline: timeline.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

/// The `Idempotency-Key` header, checked.
pub(crate) fn key_of(headers: &HeaderMap) -> ApiResult<Option<String>> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))
                .and_then(|v| Ok(idempotency_key(v)?))
        })
        .transpose()
}

/// The order an earlier request with this key created, if the request was the same one.
async fn replayed(
    state: &SharedState,
    buyer: &str,
    key: Option<&str>,
    fingerprint: &str,
) -> ApiResult<Option<OrderRow>> {
    let Some(key) = key else { return Ok(None) };
    match state.store.order_by_key(buyer, key).await? {
        Some(o) if o.request_fingerprint.as_deref() == Some(fingerprint) => Ok(Some(o)),
        Some(_) => Err(ApiError::invalid(
            "Idempotency-Key",
            "was already used for a different request",
        )),
        None => Ok(None),
    }
}

/// Only buyers whose real-name verification passed may buy.
pub(crate) fn require_verified(caller: &Caller) -> ApiResult<()> {
    if caller.0.verification_state == VerificationState::Verified.as_str() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "complete real-name verification before buying".into(),
        ))
    }
}

/// The 402 answer for a short balance.
pub(crate) fn short_balance(e: souk_store::Error, price: Money) -> ApiError {
    match e {
        souk_store::Error::InsufficientBalance { available_minor } => {
            ApiError::InsufficientBalance {
                price: price.to_string(),
                available: Money::from_minor(available_minor, price.currency).to_string(),
            }
        }
        other => other.into(),
    }
}

pub(crate) async fn answer(
    state: &SharedState,
    order: OrderRow,
    status: StatusCode,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let timeline = state
        .store
        .order_timeline(&order.id, &order.instance_id, order.created_at)
        .await?;
    Ok((status, Json(OrderView::new(order, timeline))))
}

/// Buys a plan. Send an `Idempotency-Key` header so a retry cannot buy twice.
#[utoipa::path(operation_id = "place_order", post, path = "/v1/orders", tag = "orders", request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the same order")),
    responses((status = 201, body = OrderView, description = "Paid; the instance is being provisioned"),
              (status = 200, body = OrderView, description = "The order an earlier request with this key created"),
              (status = 402, body = Problem, description = "The balance does not cover the price"),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn place(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Body(input): Body<OrderInput>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let key = key_of(&headers)?;
    let fingerprint = format!("new:{}:{}:{}", input.plan_id, input.period, input.periods);
    idempotent(&state, &caller, key, fingerprint, |key, fingerprint| {
        buy(&state, &caller, key, fingerprint, input)
    })
    .await
}

/// Runs a paying request under its `Idempotency-Key`. A used key makes the store refuse the new
/// order before any debit; then (and after any other failure) the answer is the order the first
/// request with this key made, so a retry sees it even if, say, the plan has left sale since. The
/// same key on a different request is refused.
pub(crate) async fn idempotent<F, Fut>(
    state: &SharedState,
    caller: &Caller,
    key: Option<String>,
    fingerprint: String,
    attempt: F,
) -> ApiResult<(StatusCode, Json<OrderView>)>
where
    F: FnOnce(Option<String>, String) -> Fut,
    Fut: std::future::Future<Output = ApiResult<(StatusCode, Json<OrderView>)>>,
{
    match attempt(key.clone(), fingerprint.clone()).await {
        Err(e) if key.is_some() => {
            match replayed(state, caller.id(), key.as_deref(), &fingerprint).await? {
                Some(order) => answer(state, order, StatusCode::OK).await,
                None => Err(e),
            }
        }
        other => other,
    }
}

async fn buy(
    state: &SharedState,
    caller: &Caller,
    key: Option<String>,
    fingerprint: String,
    input: OrderInput,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    require_verified(caller)?;
    let period: Period = input.period.parse()?;
    let (plan, product) = match state.store.plan_with_product(&input.plan_id).await {
        Ok(found) => found,
        Err(souk_store::Error::NotFound(_)) => {
            return Err(ApiError::invalid("plan_id", "no such plan"))
        }
        Err(e) => return Err(e.into()),
    };
    if product.state != ProductState::Listed.as_str() || plan.active != 1 {
        return Err(ApiError::Conflict("this plan is not on sale".into()));
    }
    let prices = PlanPrices::parse(
        "plan",
        &plan.currency,
        plan.monthly_price.as_deref(),
        plan.yearly_price.as_deref(),
    )?;
    let price = prices.price(period, input.periods)?;
    let unit_price = prices
        .unit_price(period)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let now = state.now();
    let order_id = new_id("ord", now);
    let instance_id = new_id("ins", now);
    let order = OrderRow {
        id: order_id.clone(),
        buyer_id: caller.id().to_owned(),
        kind: OrderKind::New.as_str().to_owned(),
        state: OrderState::Paid.as_str().to_owned(),
        product_id: product.id.clone(),
        plan_id: plan.id.clone(),
        merchant_id: product.merchant_id.clone(),
        instance_id: instance_id.clone(),
        period: period.as_str().to_owned(),
        periods: i64::from(input.periods),
        currency: price.currency.code().to_owned(),
        unit_price,
        amount_minor: price.minor,
        idempotency_key: key.clone(),
        request_fingerprint: Some(fingerprint),
        created_at: ms(now),
    };
    let instance = InstanceRow {
        id: instance_id.clone(),
        buyer_id: caller.id().to_owned(),
        product_id: product.id.clone(),
        plan_id: plan.id.clone(),
        merchant_id: product.merchant_id.clone(),
        order_id: order_id.clone(),
        state: souk_core::lifecycle::InstanceState::Provisioning
            .as_str()
            .to_owned(),
        period: period.as_str().to_owned(),
        expires_at: ms(add_periods(now, period, input.periods)),
        next_transition_at: None,
        version: 0,
        business_id: instance_id.clone(),
        seller_instance_id: None,
        access_enc: None,
        failure_reason: None,
        created_at: ms(now),
        updated_at: ms(now),
    };
    let memo = format!(
        "{} {}(s) of {}, plan {}: {}",
        input.periods,
        period,
        product.listed_name(),
        plan.name,
        price
    );
    let job = SellerJob::NewInstance.spec(&order_id);
    let paid = state
        .store
        .purchase(&order, &instance, &job, &memo, now)
        .await
        .map_err(|e| short_balance(e, price))?;
    state.wake_dispatcher.notify_waiters();
    Ok((StatusCode::CREATED, Json(OrderView::new(order, vec![paid]))))
}

/// The caller's orders, newest first.
#[utoipa::path(operation_id = "my_orders", get, path = "/v1/orders", tag = "orders", params(PageParams), responses((status = 200, body = OrderPage), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<OrderPage>> {
    let limit = super::page_size(p.limit)?;
    let rows = state
        .store
        .orders_of_buyer(caller.id(), p.cursor.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = super::page(rows, limit, |o| &o.id);
    let items = rows
        .into_iter()
        .map(|o| OrderView::new(o, vec![]))
        .collect();
    Ok(Json(OrderPage { items, next_cursor }))
}

/// One of the caller's orders with its timeline.
#[utoipa::path(operation_id = "get_order", get, path = "/v1/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderView>> {
    let order = match state.store.order(&order_id).await {
        Ok(o) if o.buyer_id == caller.id() => o,
        Ok(_) | Err(souk_store::Error::NotFound(_)) => {
            return Err(ApiError::NotFound("order".into()))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(answer(&state, order, StatusCode::OK).await?.1)
}
