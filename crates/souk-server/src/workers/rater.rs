//! The rater: turns reported usage into hourly charges once each hour has ended. Each group of
//! records is claimed and charged in one transaction, so several nodes can rate side by side and
//! every record is charged exactly once.

use crate::AppState;
use chrono::{DateTime, Utc};
use souk_core::metering::hour_of;

/// Groups rated per pass.
const BATCH: i64 = 500;

/// Charges the usage of every hour that ended before `now`; returns how many charges were made.
pub async fn rate(state: &AppState, now: DateTime<Utc>) -> Result<usize, souk_store::Error> {
    let mut made = 0;
    for group in state.store.unrated_usage(hour_of(now), BATCH).await? {
        match state.store.rate_usage(&group, now).await {
            Ok(Some(rated)) => {
                made += 1;
                if let Some(balance) = rated.balance_after {
                    crate::app::arrears::reconcile(
                        state,
                        &rated.charge.buyer_id,
                        balance.currency,
                        now,
                    )
                    .await?;
                }
            }
            // Charged by another node first, or changed under us: the next pass sees it.
            Ok(None) | Err(souk_store::Error::Stale) => {}
            Err(e) => {
                tracing::error!(instance = %group.instance_id, dimension = %group.dimension, error = %e, "rating usage failed")
            }
        }
    }
    crate::app::arrears::clear_paid(state, now).await?;
    Ok(made)
}
