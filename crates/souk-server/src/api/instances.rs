//! What a buyer bought: instances with their state, expiry and access data, and renewal.

use super::orders::{placed, EventView, OrderView};
use super::MoneyView;
use super::{idempotency_key, PageParams};
use crate::app::instances::{
    self, ConvertInput, InstanceDetails, PlanChangeInput, PlanChangeQuote, RefundQuote, RenewInput,
    UnsubscribeInput,
};
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
use souk_core::refunds::Scope;
use utoipa::{IntoParams, ToSchema};

/// How the buyer reaches the instance, as the seller gave it (decrypted for its owner only).
#[derive(Serialize, ToSchema)]
pub struct AccessView {
    pub front_end_url: Option<String>,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<String>,
    pub memo: Option<String>,
}

/// An instance as its buyer sees it.
#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub product_id: String,
    pub product_name: String,
    pub plan_id: String,
    /// The plan it is on now.
    pub plan_name: String,
    #[schema(value_type = schema::Lifecycle)]
    pub state: String,
    /// What a renewal buys.
    #[schema(value_type = schema::Period)]
    pub period: String,
    /// A free trial, until it is converted to a paid subscription.
    pub trial: bool,
    /// How it is paid for.
    #[schema(value_type = schema::BillingMode)]
    pub mode: String,
    /// What is left of each quota its package includes in the current period (empty when the
    /// plan includes none).
    pub quotas: Vec<QuotaView>,
    pub expires_at: DateTime<Utc>,
    /// When the grace period ends (the seller is asked to freeze it then).
    pub grace_ends_at: DateTime<Utc>,
    /// When the retention period ends (the seller is asked to release it then).
    pub retention_ends_at: DateTime<Utc>,
    /// The seller's id for it.
    pub seller_instance_id: Option<String>,
    pub access: Option<AccessView>,
    /// Why provisioning failed.
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// What happened, oldest first (on the single-instance view).
    pub timeline: Vec<EventView>,
}

impl From<InstanceDetails> for InstanceView {
    fn from(d: InstanceDetails) -> Self {
        let i = d.instance;
        InstanceView {
            id: i.id.to_string(),
            product_id: i.product_id.to_string(),
            product_name: d.product_name,
            plan_name: d.plan_name,
            plan_id: i.plan_id.to_string(),
            state: i.state.as_str().to_owned(),
            period: i.period.as_str().to_owned(),
            trial: i.trial,
            mode: d.mode.as_str().to_owned(),
            quotas: d
                .quotas
                .into_iter()
                .map(|q| QuotaView {
                    dimension: q.key,
                    unit: q.unit,
                    included: q.included.to_string(),
                    left: q.quota_left.unwrap_or_default().to_string(),
                })
                .collect(),
            expires_at: i.expires_at,
            grace_ends_at: d.grace_ends_at,
            retention_ends_at: d.retention_ends_at,
            seller_instance_id: i.seller_instance_id,
            access: d.access.map(|a| AccessView {
                front_end_url: a.front_end_url,
                admin_url: a.admin_url,
                user_name: a.user_name,
                password: a.password,
                memo: a.memo,
            }),
            failure_reason: i.failure_reason,
            created_at: i.created_at,
            timeline: d.timeline.into_iter().map(Into::into).collect(),
        }
    }
}

/// One quota of a package in the current period.
#[derive(Serialize, ToSchema)]
pub struct QuotaView {
    pub dimension: String,
    pub unit: String,
    /// What the period includes (a decimal string).
    pub included: String,
    /// What is left of it, counting use reported and not yet charged (a decimal string).
    pub left: String,
}

/// A page of instances.
#[derive(Serialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    pub next_cursor: Option<String>,
}

/// The caller's instances, newest first.
#[utoipa::path(operation_id = "my_instances", get, path = "/v1/instances", tag = "instances", params(PageParams), responses((status = 200, body = InstancePage), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<InstancePage>> {
    let page = instances::list(&state, &caller, p.into()).await?;
    Ok(Json(InstancePage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One of the caller's instances, with access data and timeline.
#[utoipa::path(operation_id = "get_instance", get, path = "/v1/instances/{instance_id}", tag = "instances", params(("instance_id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> AppResult<Json<InstanceView>> {
    Ok(Json(
        instances::get(&state, &caller, &instance_id.into())
            .await?
            .into(),
    ))
}

/// Renews an instance for N more periods from its current expiry, paid from the balance. During
/// grace or retention this restores it (unfreezing it at the seller when frozen).
#[utoipa::path(operation_id = "renew_instance", post, path = "/v1/instances/{instance_id}/renew", tag = "instances", request_body = RenewInput,
    params(("instance_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry return the same order")),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "The renewal an earlier request with this key made"),
              (status = 402, body = Problem, description = "The balance does not cover the price"),
              (status = 403, body = Problem, description = "Real-name verification must pass before buying"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "Released or failed instances cannot be renewed, or it changed meanwhile"),
              (status = 422, body = Problem, description = "Invalid input, or an Idempotency-Key used for a different order")))]
pub async fn renew(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Path(instance_id): Path<String>,
    Body(input): Body<RenewInput>,
) -> AppResult<(StatusCode, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    Ok(placed(
        instances::renew(&state, &caller, &instance_id.into(), input, key).await?,
    ))
}

/// Which refund to price.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeParams {
    /// `everything` (the default) or `renewals`.
    #[param(value_type = Option<schema::UnsubscribeScope>)]
    pub scope: Option<String>,
}

/// One order given back, and what goes back for it.
#[derive(Serialize, ToSchema)]
pub struct RefundLine {
    pub order_id: String,
    /// What the order charged.
    pub paid: MoneyView,
    /// What goes back for it.
    pub refund: MoneyView,
}

/// What unsubscribing gives back, order by order.
#[derive(Serialize, ToSchema)]
pub struct RefundQuoteView {
    #[schema(value_type = schema::UnsubscribeScope)]
    pub scope: String,
    pub orders: Vec<RefundLine>,
    /// Everything that goes back.
    pub total: MoneyView,
    /// The expiry afterwards, when only renewals are given back.
    pub new_expiry: Option<DateTime<Utc>>,
}

impl From<RefundQuote> for RefundQuoteView {
    fn from(q: RefundQuote) -> Self {
        RefundQuoteView {
            scope: match q.scope {
                Scope::Everything => "everything",
                Scope::RenewalsOnly => "renewals",
            }
            .to_owned(),
            orders: q
                .orders
                .into_iter()
                .map(|(o, back)| RefundLine {
                    order_id: o.id.to_string(),
                    paid: o.amount.into(),
                    refund: back.into(),
                })
                .collect(),
            total: q.total.into(),
            new_expiry: q.new_expiry,
        }
    }
}

/// What an unsubscription did.
#[derive(Serialize, ToSchema)]
pub struct UnsubscribedView {
    pub instance: InstanceView,
    /// Everything that went back to the balance.
    pub refunded: MoneyView,
    /// The orders given back, as they are now.
    pub orders: Vec<OrderView>,
}

/// What unsubscribing would give back now, decided exactly as unsubscribing decides it.
#[utoipa::path(operation_id = "quote_unsubscribe", get, path = "/v1/instances/{instance_id}/refund-quote", tag = "instances",
    params(("instance_id" = String, Path), ScopeParams),
    responses((status = 200, body = RefundQuoteView), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The instance is provisioning, released or failed"),
              (status = 422, body = Problem, description = "An unknown scope, or no renewal left to give back")))]
pub async fn refund_quote(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Query(p): Query<ScopeParams>,
) -> AppResult<Json<RefundQuoteView>> {
    let input = UnsubscribeInput { scope: p.scope };
    Ok(Json(
        instances::unsubscribe_quote(&state, &caller, &instance_id.into(), &input)
            .await?
            .into(),
    ))
}

/// Unsubscribes: gives back what the refund rules allow (in full within the first days of an
/// order, the unused share of the running period after, renewals that have not begun in full) and
/// tells the seller. With scope `renewals`, only renewed periods that have not begun go back.
#[utoipa::path(operation_id = "unsubscribe_instance", post, path = "/v1/instances/{instance_id}/unsubscribe", tag = "instances", request_body = UnsubscribeInput,
    params(("instance_id" = String, Path)),
    responses((status = 200, body = UnsubscribedView), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The instance is provisioning, already released, or failed"),
              (status = 422, body = Problem, description = "An unknown scope, or no renewal left to give back")))]
pub async fn unsubscribe(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Body(input): Body<UnsubscribeInput>,
) -> AppResult<Json<UnsubscribedView>> {
    let done = instances::unsubscribe(&state, &caller, &instance_id.into(), input).await?;
    Ok(Json(UnsubscribedView {
        instance: done.instance.into(),
        refunded: done.refunded.into(),
        orders: done
            .orders
            .into_iter()
            .map(|o| OrderView::new(o, vec![]))
            .collect(),
    }))
}

/// Converts a free trial into a paid subscription of the same plan, keeping the instance: the
/// paid time runs from now. Send an `Idempotency-Key` so a retry cannot pay twice.
#[utoipa::path(operation_id = "convert_trial", post, path = "/v1/instances/{instance_id}/convert", tag = "instances", request_body = ConvertInput,
    params(("instance_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry return the same order")),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "The conversion an earlier request with this key made"),
              (status = 402, body = Problem, description = "The balance does not cover the price"),
              (status = 403, body = Problem, description = "Real-name verification must pass before buying"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "Not a trial, or released, or it changed meanwhile"),
              (status = 422, body = Problem, description = "Invalid input, a period the plan is not sold by, or an Idempotency-Key used for a different order")))]
pub async fn convert(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Path(instance_id): Path<String>,
    Body(input): Body<ConvertInput>,
) -> AppResult<(StatusCode, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    Ok(placed(
        instances::convert(&state, &caller, &instance_id.into(), input, key).await?,
    ))
}

/// Which plan to price a change to.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanParams {
    /// Another plan of the instance's product, sold by the instance's period.
    pub plan_id: String,
}

/// What moving an instance to another plan costs for the time left.
#[derive(Serialize, ToSchema)]
pub struct PlanChangeQuoteView {
    pub from_plan_id: String,
    pub from_plan: String,
    pub to_plan_id: String,
    pub to_plan: String,
    /// `upgrade` (the difference is charged) or `downgrade` (it goes back to the balance).
    pub direction: String,
    /// Positive: charged; negative: given back.
    pub difference: MoneyView,
    /// The end of the paid time re-priced at the new plan (the expiry does not move).
    pub until: DateTime<Utc>,
}

impl From<PlanChangeQuote> for PlanChangeQuoteView {
    fn from(q: PlanChangeQuote) -> Self {
        PlanChangeQuoteView {
            direction: q.direction().to_owned(),
            from_plan_id: q.from.id.to_string(),
            from_plan: q.from.name,
            to_plan_id: q.to.id.to_string(),
            to_plan: q.to.name,
            difference: q.difference.into(),
            until: q.until,
        }
    }
}

/// What moving a running subscription to another plan of its product would cost now, decided
/// exactly as changing decides it.
#[utoipa::path(operation_id = "quote_plan_change", get, path = "/v1/instances/{instance_id}/plan-change", tag = "instances",
    params(("instance_id" = String, Path), PlanParams),
    responses((status = 200, body = PlanChangeQuoteView), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "Not a running monthly or yearly subscription, a trial, or in arrears"),
              (status = 422, body = Problem, description = "No such plan on sale in this product, the same plan, or one not sold by the instance's period")))]
pub async fn plan_change_quote(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
    Query(p): Query<PlanParams>,
) -> AppResult<Json<PlanChangeQuoteView>> {
    let input = PlanChangeInput { plan_id: p.plan_id };
    Ok(Json(
        instances::plan_change_quote(&state, &caller, &instance_id.into(), &input)
            .await?
            .into(),
    ))
}

/// Moves a running subscription to another plan of its product for the time left: the time left
/// is re-priced at the new plan, and the difference is charged (an upgrade) or given back (a
/// downgrade, an order with a negative amount). The expiry does not move; the seller is told with
/// `upgradeInstance`. Send an `Idempotency-Key` so a retry cannot pay twice.
#[utoipa::path(operation_id = "change_plan", post, path = "/v1/instances/{instance_id}/plan-change", tag = "instances", request_body = PlanChangeInput,
    params(("instance_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry return the same order")),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "The change an earlier request with this key made"),
              (status = 402, body = Problem, description = "The balance does not cover the difference"),
              (status = 403, body = Problem, description = "Real-name verification must pass before buying"),
              (status = 404, body = Problem),
              (status = 409, body = Problem, description = "Not a running monthly or yearly subscription, a trial, in arrears, or it changed meanwhile"),
              (status = 422, body = Problem, description = "No such plan on sale in this product, the same plan, one not sold by the instance's period, or an Idempotency-Key used for a different order")))]
pub async fn change_plan(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Path(instance_id): Path<String>,
    Body(input): Body<PlanChangeInput>,
) -> AppResult<(StatusCode, Json<OrderView>)> {
    let key = idempotency_key(&headers)?;
    Ok(placed(
        instances::change_plan(&state, &caller, &instance_id.into(), input, key).await?,
    ))
}
