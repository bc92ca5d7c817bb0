//! Metered use: sellers report it in batches (each record answered on its own), the rater turns
//! it into hourly charges, and buyers and sellers see it per dimension and day.

use super::{merchants, Caller};
use crate::error::{AppError, AppResult};
use crate::AppState;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use souk_core::ids::{Id as _, InstanceId};
use souk_core::metering::{self, Rejection, MAX_BATCH};
use souk_store::usage::{Outcome, PeriodUse, UsageDay, UsageRecord};
use utoipa::ToSchema;

/// One usage record as the seller's meter reports it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecordInput {
    /// The seller's own id for the record (1 to 64 printable ASCII characters): a record sent
    /// again with the same id is counted once.
    #[schema(min_length = 1, max_length = 64, example = "meter-7f3a-2027-03-01T10")]
    pub record_id: String,
    /// souk's instance id (the `businessId` the seller was given).
    pub instance_id: String,
    /// One of the plan's metered dimensions, e.g. `api_calls`.
    pub dimension: String,
    /// How much was used: a decimal (string or number) from 0 to 1,000,000,000 with at most six
    /// decimals.
    pub quantity: Quantity,
    /// When the use began (RFC 3339).
    pub usage_start: DateTime<Utc>,
    /// When it ended (RFC 3339): not in the future, nor more than 6 hours ago.
    pub usage_end: DateTime<Utc>,
}

/// A quantity as a meter writes it: a decimal string (exact) or a JSON number, kept as the text
/// it is parsed from.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Quantity {
    #[schema(example = "1250.5")]
    Text(String),
    #[schema(value_type = f64)]
    Number(String),
}

// By hand rather than `untagged`, which buffers every value before trying each shape: a batch
// holds a thousand quantities.
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Quantity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::Text(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity::Number(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::Number(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity::Number(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A batch of usage records.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1,000 records. A batch that is not well formed is refused whole (422, naming the
    /// field); each well-formed record is then answered on its own, so one refused record spoils
    /// nothing else.
    #[schema(min_items = 1, max_items = 1000)]
    pub records: Vec<UsageRecordInput>,
}

/// What became of one record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordAnswer {
    /// The record's id as sent (empty when it had none).
    pub record_id: String,
    /// `accepted`, `duplicate` (sent before; counted once) or `rejected`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// Why a record was rejected: `invalid`, `unknown_instance` (also another seller's),
    /// `instance_released` (use that ended after the release, or a failed instance),
    /// `before_instance` (use that ended before the instance was bought), `unknown_dimension`, `start_after_end`, `too_old`, `in_future` or `over_quota`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The reason in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The answer to a batch: one answer per record, in order, and the counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<RecordAnswer>,
}

fn parse_record(r: UsageRecordInput) -> (String, Result<UsageRecord, Rejection>) {
    let record_id = r.record_id.clone();
    let parsed = (|| {
        metering::record_id(&r.record_id)?;
        let quantity = match &r.quantity {
            Quantity::Text(s) | Quantity::Number(s) => metering::parse_quantity("quantity", s),
        }
        .map_err(|e| Rejection::Invalid(e.to_string()))?;
        // Answered here, not by the database: an id that is not an instance id's shape (a NUL
        // character, say, which PostgreSQL cannot even compare) names no instance.
        if !souk_core::ids::well_formed(InstanceId::PREFIX, &r.instance_id) {
            return Err(Rejection::UnknownInstance);
        }
        if r.dimension.chars().any(char::is_control) {
            return Err(Rejection::UnknownDimension);
        }
        Ok(UsageRecord {
            record_id: r.record_id,
            instance_id: r.instance_id.as_str().into(),
            dimension: r.dimension,
            quantity,
            started_at: r.usage_start,
            ended_at: r.usage_end,
        })
    })();
    (record_id, parsed)
}

/// Records a seller's batch of usage for instances of its own products.
pub async fn report(
    state: &AppState,
    caller: &Caller,
    batch: UsageBatch,
) -> AppResult<BatchAnswer> {
    let merchant = merchants::approved(state, caller).await?;
    if batch.records.is_empty() || batch.records.len() > MAX_BATCH {
        return Err(AppError::invalid(
            "records",
            format!("send 1 to {MAX_BATCH} records a call"),
        ));
    }
    // The record id's length is part of a well-formed batch (the document states it); what the
    // id may contain is answered per record.
    if let Some(i) = batch
        .records
        .iter()
        .position(|r| r.record_id.is_empty() || r.record_id.chars().count() > 64)
    {
        return Err(AppError::invalid(
            format!("records[{i}].record_id"),
            "1 to 64 characters",
        ));
    }
    let (ids, records): (Vec<String>, Vec<_>) = batch.records.into_iter().map(parse_record).unzip();
    let outcomes = super::retry_stale(|| async {
        Ok(state
            .store
            .record_usage(
                &merchant.id,
                &records,
                state.settings.usage_window,
                state.now(),
            )
            .await?)
    })
    .await?;
    let mut answer = BatchAnswer {
        accepted: 0,
        duplicates: 0,
        rejected: 0,
        results: Vec::with_capacity(outcomes.len()),
    };
    for (record_id, outcome) in ids.into_iter().zip(outcomes) {
        let (status, reason, detail) = match outcome {
            Outcome::Accepted => {
                answer.accepted += 1;
                ("accepted", None, None)
            }
            Outcome::Duplicate => {
                answer.duplicates += 1;
                ("duplicate", None, None)
            }
            Outcome::Rejected(r) => {
                answer.rejected += 1;
                ("rejected", Some(r.code()), Some(r.to_string()))
            }
        };
        answer.results.push(RecordAnswer {
            record_id,
            status,
            reason,
            detail,
        });
    }
    Ok(answer)
}

/// Where one metered dimension of an instance stands in its current period.
#[derive(Debug, Clone)]
pub struct DimensionUse {
    pub key: String,
    pub unit: String,
    pub period: PeriodUse,
    /// The package's quota per period (zero when none).
    pub included: Decimal,
    /// What is left of the quota, counting use reported but not yet charged.
    pub quota_left: Option<Decimal>,
}

/// An instance's metered use: its dimensions in the current period, and per day.
#[derive(Debug, Clone)]
pub struct InstanceUsage {
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub dimensions: Vec<DimensionUse>,
    pub days: Vec<UsageDay>,
}

/// The metered use of one of the caller's instances (empty dimensions when its plan meters
/// nothing).
pub async fn of_instance(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
) -> AppResult<InstanceUsage> {
    let instance = super::instances::own_instance(state, caller, &instance_id.into()).await?;
    let plan = state.store.plan(&instance.plan_id).await?;
    let (start, end, dimensions) = dimension_uses(state, &instance, &plan).await?;
    let days = state
        .store
        .usage_days(Some(&instance.id), None, 400)
        .await?;
    Ok(InstanceUsage {
        period_start: start,
        period_end: end,
        dimensions,
        days,
    })
}

/// Where each metered dimension of `instance` stands in its current period (from, until, and
/// the dimensions of `plan`, its plan).
pub(crate) async fn dimension_uses(
    state: &AppState,
    instance: &souk_store::instances::Instance,
    plan: &souk_store::products::Plan,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>, Vec<DimensionUse>)> {
    let (start, end) = metering::usage_window(instance.created_at, instance.period, state.now());
    let uses = state
        .store
        .period_use(&instance.id, start, plan.prices.currency)
        .await?;
    let dimensions = plan
        .prices
        .metered
        .iter()
        .map(|d| {
            let period = uses
                .iter()
                .find(|u| u.dimension == d.key)
                .cloned()
                .unwrap_or(PeriodUse {
                    dimension: d.key.clone(),
                    window_start: start,
                    rated: Decimal::ZERO,
                    pending: Decimal::ZERO,
                    charged: souk_core::money::Money::from_minor(0, plan.prices.currency),
                });
            let used = period.rated + period.pending;
            DimensionUse {
                key: d.key.clone(),
                unit: d.unit.clone(),
                included: d.included,
                quota_left: (!d.included.is_zero()).then(|| (d.included - used).max(Decimal::ZERO)),
                period,
            }
        })
        .collect();
    Ok((start, end, dimensions))
}

/// What the caller's merchant reported: charged use per instance, dimension and day, and what
/// waits for the rater.
pub struct SellerUsage {
    pub days: Vec<UsageDay>,
    /// (instance, dimension, records, quantity) reported and not yet charged.
    pub pending: Vec<(souk_core::ids::InstanceId, String, i64, Decimal)>,
    /// The product each instance above belongs to, by name.
    pub products: std::collections::HashMap<souk_core::ids::InstanceId, String>,
}

/// The merchant's reported and rated usage.
pub async fn of_merchant(state: &AppState, caller: &Caller) -> AppResult<SellerUsage> {
    let merchant = merchants::approved(state, caller).await?;
    let days = state
        .store
        .usage_days(None, Some(&merchant.id), 400)
        .await?;
    let pending = state.store.pending_usage(&merchant.id).await?;
    let mut products = std::collections::HashMap::new();
    let mut names = std::collections::HashMap::new();
    for id in days
        .iter()
        .map(|d| &d.instance_id)
        .chain(pending.iter().map(|p| &p.0))
    {
        if products.contains_key(id) {
            continue;
        }
        let instance = state.store.instance(id).await?;
        if !names.contains_key(&instance.product_id) {
            let product = state.store.product(&instance.product_id).await?;
            names.insert(
                instance.product_id.clone(),
                product.listed_name().to_owned(),
            );
        }
        products.insert(id.clone(), names[&instance.product_id].clone());
    }
    Ok(SellerUsage {
        days,
        pending,
        products,
    })
}
