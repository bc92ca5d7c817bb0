//! Metered use: sellers report it; buyers and sellers read it per dimension and day.

use super::MoneyView;
use crate::app::metering::{self, BatchAnswer, UsageBatch};
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path};
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::usage::UsageDay;
use utoipa::ToSchema;

/// Reports metered use of instances of the merchant's products: up to 1,000 records a call, each
/// answered on its own (`accepted`, `duplicate` or `rejected` with a reason). A record id sent
/// again, in the same call or another, concurrent or not, is counted once. Usage is charged to
/// the buyer by the hour once its hour has ended (approved merchants; access keys with the
/// `seller_operations` policy).
#[utoipa::path(operation_id = "report_usage", post, path = "/v1/metering/usage", tag = "seller",
    request_body = UsageBatch,
    responses((status = 200, body = BatchAnswer), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem, description = "No records, more than 1,000, or not a batch")))]
pub async fn report(
    State(state): State<SharedState>,
    caller: Caller,
    Body(batch): Body<UsageBatch>,
) -> AppResult<Json<BatchAnswer>> {
    Ok(Json(metering::report(&state, &caller, batch).await?))
}

/// Use of one dimension on one day (UTC).
#[derive(Serialize, ToSchema)]
pub struct UsageDayView {
    pub instance_id: String,
    pub dimension: String,
    /// The day, as its first instant (UTC).
    pub day: DateTime<Utc>,
    /// A decimal string.
    pub quantity: String,
    pub charged: MoneyView,
}

impl From<UsageDay> for UsageDayView {
    fn from(d: UsageDay) -> Self {
        UsageDayView {
            instance_id: d.instance_id.to_string(),
            dimension: d.dimension,
            day: d.day,
            quantity: d.quantity.to_string(),
            charged: d.amount.into(),
        }
    }
}

/// One metered dimension of an instance in its current period.
#[derive(Serialize, ToSchema)]
pub struct DimensionUseView {
    pub dimension: String,
    pub unit: String,
    /// Charged so far in the period (a decimal string).
    pub rated: String,
    /// Reported, charged when its hour has ended.
    pub pending: String,
    pub charged: MoneyView,
    /// The package's quota per period, when the plan has one.
    pub included: Option<String>,
    /// What is left of the quota, counting pending use.
    pub quota_left: Option<String>,
}

/// An instance's metered use.
#[derive(Serialize, ToSchema)]
pub struct InstanceUsageView {
    /// The period whose quota and tiers apply now.
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub dimensions: Vec<DimensionUseView>,
    /// Newest first.
    pub days: Vec<UsageDayView>,
}

/// The metered use of one of the caller's instances: each dimension in the current period
/// (quota left for a package) and what was charged per dimension and day.
#[utoipa::path(operation_id = "instance_usage", get, path = "/v1/instances/{instance_id}/usage", tag = "instances",
    params(("instance_id" = String, Path)),
    responses((status = 200, body = InstanceUsageView), (status = 404, body = Problem)))]
pub async fn of_instance(
    State(state): State<SharedState>,
    caller: Caller,
    Path(instance_id): Path<String>,
) -> AppResult<Json<InstanceUsageView>> {
    let u = metering::of_instance(&state, &caller, &instance_id).await?;
    Ok(Json(InstanceUsageView {
        period_start: u.period_start,
        period_end: u.period_end,
        dimensions: u
            .dimensions
            .into_iter()
            .map(|d| DimensionUseView {
                dimension: d.key,
                unit: d.unit,
                rated: d.period.rated.to_string(),
                pending: d.period.pending.to_string(),
                charged: d.period.charged.into(),
                included: (!d.included.is_zero()).then(|| d.included.to_string()),
                quota_left: d.quota_left.map(|q| q.to_string()),
            })
            .collect(),
        days: u.days.into_iter().map(Into::into).collect(),
    }))
}

/// Reported use not yet charged, of one instance's dimension.
#[derive(Serialize, ToSchema)]
pub struct PendingUsageView {
    pub instance_id: String,
    pub dimension: String,
    pub records: i64,
    pub quantity: String,
}

/// What the merchant reported and what was charged.
#[derive(Serialize, ToSchema)]
pub struct SellerUsageView {
    /// Charged use per instance, dimension and day, newest first.
    pub rated: Vec<UsageDayView>,
    /// Reported and waiting for its hour to end.
    pub pending: Vec<PendingUsageView>,
}

/// The usage the merchant reported: what was charged per instance, dimension and day, and what
/// waits for the rater (approved merchants).
#[utoipa::path(operation_id = "seller_usage", get, path = "/v1/seller/usage", tag = "seller",
    responses((status = 200, body = SellerUsageView), (status = 403, body = Problem)))]
pub async fn of_merchant(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<SellerUsageView>> {
    let u = metering::of_merchant(&state, &caller).await?;
    Ok(Json(SellerUsageView {
        rated: u.days.into_iter().map(Into::into).collect(),
        pending: u
            .pending
            .into_iter()
            .map(
                |(instance_id, dimension, records, quantity)| PendingUsageView {
                    instance_id: instance_id.to_string(),
                    dimension,
                    records,
                    quantity: quantity.to_string(),
                },
            )
            .collect(),
    }))
}
