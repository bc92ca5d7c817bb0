//! What a buyer bought: instances with their state, expiry and access data, and renewal, which
//! restores an instance in grace or retention (unfreezing it at the seller) and extends its
//! expiry from the old expiry.

use super::orders::{details, floor, idempotent, short_balance, Placed};
use super::{retry_stale, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::jobs::SellerJob;
use crate::AppState;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use souk_core::ids::{InstanceId, OrderId};
use souk_core::lifecycle::{self, Event, Subject};
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans::add_periods;
use souk_protocol::AppInfo;
use souk_store::events::TimelineEvent;
use souk_store::fresh;
use souk_store::instances::Instance;
use souk_store::orders::{Order, Renewal};
use utoipa::ToSchema;

/// How long to renew for, in the instance's period.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RenewInput {
    /// 1 to 36 months, or 1 to 5 years.
    #[schema(minimum = 1, maximum = 36)]
    pub periods: u32,
}

/// An instance as its buyer sees it.
#[derive(Debug, Clone)]
pub struct InstanceDetails {
    pub instance: Instance,
    pub product_name: String,
    /// When the grace period ends (the seller is asked to freeze it then).
    pub grace_ends_at: DateTime<Utc>,
    /// When the retention period ends (the seller is asked to release it then).
    pub retention_ends_at: DateTime<Utc>,
    /// How to reach it, as the seller gave it (decrypted for its owner only).
    pub access: Option<AppInfo>,
    /// What happened, oldest first (on the single-instance view).
    pub timeline: Vec<TimelineEvent>,
}

async fn with_details(
    state: &AppState,
    i: Instance,
    with_timeline: bool,
) -> AppResult<InstanceDetails> {
    let product = state.store.product(&i.product_id).await?;
    let access = match &i.access_enc {
        Some(enc) => Some(
            serde_json::from_str(
                &state
                    .secrets
                    .open(&crate::crypto::instance_access_aad(i.id.as_str()), enc)?,
            )
            .map_err(|e| AppError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    let timeline = if with_timeline {
        state.store.instance_timeline(&i.id).await?
    } else {
        vec![]
    };
    let policy = state.settings.policy;
    Ok(InstanceDetails {
        product_name: product.listed_name().to_owned(),
        grace_ends_at: policy.grace_end(i.expires_at),
        retention_ends_at: policy.retention_end(i.expires_at),
        access,
        timeline,
        instance: i,
    })
}

async fn own_instance(state: &AppState, caller: &Caller, id: &InstanceId) -> AppResult<Instance> {
    match state.store.instance(id).await {
        Ok(i) if &i.buyer_id == caller.id() => Ok(i),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(AppError::NotFound("instance".into())),
        Err(e) => Err(e.into()),
    }
}

/// The caller's instances, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<InstanceDetails>> {
    let size = page.size()?;
    let rows = state
        .store
        .instances_of_buyer(caller.id(), page.cursor.as_deref(), size + 1)
        .await?;
    let page = page.page(rows, size, |i| i.id.as_str());
    let mut items = Vec::with_capacity(page.items.len());
    for i in page.items {
        items.push(with_details(state, i, false).await?);
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// One of the caller's instances, with access data and timeline.
pub async fn get(state: &AppState, caller: &Caller, id: &InstanceId) -> AppResult<InstanceDetails> {
    let i = own_instance(state, caller, id).await?;
    with_details(state, i, true).await
}

/// Renews an instance for N more periods from its current expiry, paid from the balance. During
/// grace or retention this restores it (unfreezing it at the seller when frozen).
pub async fn renew(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: RenewInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("renew:{id}:{}", input.periods);
    idempotent(
        state,
        caller,
        key,
        fingerprint,
        |key, fingerprint| async move {
            caller.require_verified()?;
            // A renewal is decided on the instance as read; if the scheduler moves it meanwhile, the
            // store refuses the stale write and the renewal is decided again on the new state.
            retry_stale(|| extend(state, caller, id, &input, key.clone(), fingerprint.clone()))
                .await
        },
    )
    .await
}

async fn extend(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: &RenewInput,
    key: Option<String>,
    fingerprint: String,
) -> AppResult<Placed> {
    let instance = own_instance(state, caller, id).await?;
    let plan = state.store.plan(&instance.plan_id).await?;
    let period = instance.period;
    let price = plan.prices.price(period, input.periods)?;
    let unit_price = plan.prices.unit_price(period).ok_or_else(|| {
        AppError::invalid("period", format!("this plan is not sold by the {period}"))
    })?;
    let now = state.now();
    let new_expiry = add_periods(instance.expires_at, period, input.periods);
    let t = lifecycle::transition(
        Subject {
            state: instance.state,
            expiry: instance.expires_at,
        },
        Event::Renewed { new_expiry },
        now,
        state.settings.policy,
    )?;
    let order_id: OrderId = fresh(now);
    let order = Order {
        id: order_id.clone(),
        buyer_id: caller.id().clone(),
        kind: OrderKind::Renew,
        state: OrderState::Paid,
        product_id: instance.product_id.clone(),
        plan_id: instance.plan_id.clone(),
        merchant_id: instance.merchant_id.clone(),
        instance_id: instance.id.clone(),
        period,
        periods: input.periods,
        unit_price,
        amount: price,
        idempotency_key: key,
        request_fingerprint: Some(fingerprint),
        created_at: now,
    };
    let jobs = t
        .seller_calls()
        .map(|c| SellerJob::from_call(c).spec(&order_id))
        .collect();
    let memo = format!(
        "renewal of {} for {} {}(s): {}, expires {}",
        instance.id,
        input.periods,
        period,
        price,
        new_expiry.format("%Y-%m-%d %H:%M UTC")
    );
    state
        .store
        .renew(
            Renewal {
                order: &order,
                instance: &instance,
                transition: &t,
                jobs,
                floor_minor: floor(),
            },
            &memo,
            now,
        )
        .await
        .map_err(|e| short_balance(e, price))?;
    state.wake_dispatcher.notify_waiters();
    Ok(Placed {
        details: details(&state.store, state.store.order(&order_id).await?).await?,
        replayed: false,
    })
}
