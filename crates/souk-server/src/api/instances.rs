//! What a buyer bought: instances with their state, expiry and access data, and renewal, which
//! restores an instance in grace or retention (unfreezing it at the seller) and extends its
//! expiry from the old expiry.

use super::ledger::PageParams;
use super::orders::{
    answer, idempotent, key_of, require_verified, short_balance, EventView, OrderView,
};
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
use souk_core::clock::add;
use souk_core::lifecycle::{self, InstanceState};
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans::{add_periods, Period, PlanPrices};
use souk_protocol::AppInfo;
use souk_store::instances::InstanceRow;
use souk_store::orders::{OrderRow, Renewal};
use souk_store::{ms, new_id};
use utoipa::ToSchema;

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
    /// `provisioning`, `active`, `grace`, `frozen`, `released` or `failed`.
    pub state: String,
    /// `month` or `year`: what a renewal buys.
    pub period: String,
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

/// A page of instances.
#[derive(Serialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    pub next_cursor: Option<String>,
}

/// How long to renew for, in the instance's period.
#[derive(Deserialize, ToSchema)]
pub struct RenewInput {
    pub periods: u32,
}

async fn view(state: &SharedState, i: InstanceRow, with_timeline: bool) -> ApiResult<InstanceView> {
    let product = state.store.product(&i.product_id).await?;
    let product_name = product.listed_name();
    let access = match &i.access_enc {
        Some(enc) => {
            let info: AppInfo = serde_json::from_str(
                &state
                    .secrets
                    .open(&crate::crypto::instance_access_aad(&i.id), enc)?,
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
            Some(AccessView {
                front_end_url: info.front_end_url,
                admin_url: info.admin_url,
                user_name: info.user_name,
                password: info.password,
                memo: info.memo,
            })
        }
        None => None,
    };
    let timeline = if with_timeline {
        state
            .store
            .instance_timeline(&i.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect()
    } else {
        vec![]
    };
    let expires = super::time(i.expires_at);
    let policy = state.settings.policy;
    Ok(InstanceView {
        id: i.id,
        product_id: i.product_id,
        product_name,
        plan_id: i.plan_id,
        state: i.state,
        period: i.period,
        expires_at: expires,
        grace_ends_at: add(expires, policy.grace),
        retention_ends_at: add(add(expires, policy.grace), policy.retention),
        seller_instance_id: i.seller_instance_id,
        access,
        failure_reason: i.failure_reason,
        created_at: super::time(i.created_at),
        timeline,
    })
}

async fn own_instance(state: &SharedState, caller: &Caller, id: &str) -> ApiResult<InstanceRow> {
    match state.store.instance(id).await {
        Ok(i) if i.buyer_id == caller.id() => Ok(i),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(ApiError::NotFound("instance".into())),
        Err(e) => Err(e.into()),
    }
}

/// The caller's instances, newest first.
#[utoipa::path(operation_id = "my_instances", get, path = "/v1/instances", tag = "instances", params(PageParams), responses((status = 200, body = InstancePage), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<InstancePage>> {
    let limit = super::page_size(p.limit)?;
    let rows = state
        .store
        .instances_of_buyer(caller.id(), p.cursor.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = super::page(rows, limit, |i| &i.id);
    let mut items = Vec::new();
    for i in rows {
        items.push(view(&state, i, false).await?);
    }
    Ok(Json(InstancePage { items, next_cursor }))
}

/// One of the caller's instances, with access data and timeline.
#[utoipa::path(operation_id = "get_instance", get, path = "/v1/instances/{instance_id}", tag = "instances", params(("instance_id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> ApiResult<Json<InstanceView>> {
    let i = own_instance(&state, &caller, &instance_id).await?;
    Ok(Json(view(&state, i, true).await?))
}

/// Renews an instance for N more periods from its current expiry, paid from the balance. During
/// grace or retention this restores it (unfreezing it at the seller when frozen).
#[utoipa::path(operation_id = "renew_instance", post, path = "/v1/instances/{instance_id}/renew", tag = "instances", request_body = RenewInput,
    params(("instance_id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the same order")),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "The renewal an earlier request with this key made"),
              (status = 402, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn renew(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Path(instance_id): Path<String>,
    Body(input): Body<RenewInput>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    let key = key_of(&headers)?;
    let fingerprint = format!("renew:{instance_id}:{}", input.periods);
    idempotent(&state, &caller, key, fingerprint, |key, fingerprint| {
        extend(&state, &caller, instance_id, input, key, fingerprint)
    })
    .await
}

async fn extend(
    state: &SharedState,
    caller: &Caller,
    instance_id: String,
    input: RenewInput,
    key: Option<String>,
    fingerprint: String,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    require_verified(caller)?;
    // A renewal is decided on the instance as read; if the scheduler moves it meanwhile, the
    // store refuses the stale write and the renewal is decided again on the new state.
    for _ in 0..5 {
        let instance = own_instance(state, caller, &instance_id).await?;
        let current: InstanceState = souk_store::parse(&instance.state)?;
        let period: Period = souk_store::parse(&instance.period)?;
        let plan = state.store.plan(&instance.plan_id).await?;
        let prices = PlanPrices::parse(
            "plan",
            &plan.currency,
            plan.monthly_price.as_deref(),
            plan.yearly_price.as_deref(),
        )?;
        let price = prices.price(period, input.periods)?;
        let now = state.now();
        let new_expiry = add_periods(souk_store::at(instance.expires_at), period, input.periods);
        let t = lifecycle::renewed(current, new_expiry, now, state.settings.policy)?;
        let order_id = new_id("ord", now);
        let order = OrderRow {
            id: order_id.clone(),
            buyer_id: caller.id().to_owned(),
            kind: OrderKind::Renew.as_str().to_owned(),
            state: OrderState::Paid.as_str().to_owned(),
            product_id: instance.product_id.clone(),
            plan_id: instance.plan_id.clone(),
            merchant_id: instance.merchant_id.clone(),
            instance_id: instance.id.clone(),
            period: period.as_str().to_owned(),
            periods: i64::from(input.periods),
            currency: price.currency.code().to_owned(),
            unit_price: prices
                .unit_price(period)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            amount_minor: price.minor,
            idempotency_key: key.clone(),
            request_fingerprint: Some(fingerprint.clone()),
            created_at: ms(now),
        };
        let jobs = t
            .calls
            .iter()
            .map(|c| SellerJob::from_call(*c).spec(&order_id))
            .collect();
        let memo = format!(
            "renewal of {} for {} {}(s): {}, expires {}",
            instance.id,
            input.periods,
            period,
            price,
            new_expiry.format("%Y-%m-%d %H:%M UTC")
        );
        let renewal = Renewal {
            order,
            instance: &instance,
            new_expiry,
            new_state: t.state.as_str(),
            next_transition_at: t.next_at,
            jobs,
        };
        match state.store.renew(renewal, &memo, now).await {
            Ok(()) => {
                state.wake_dispatcher.notify_waiters();
                return answer(
                    state,
                    state.store.order(&order_id).await?,
                    StatusCode::CREATED,
                )
                .await;
            }
            Err(souk_store::Error::Stale) => continue,
            Err(e) => return Err(short_balance(e, price)),
        }
    }
    Err(ApiError::Conflict(
        "the instance kept changing; retry the renewal".into(),
    ))
}
