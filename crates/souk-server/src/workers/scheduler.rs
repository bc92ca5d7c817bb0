//! The lifecycle scheduler: reads the instances whose `next_transition_at` is due (an indexed
//! range, so its cost follows the due rows, not all rows), asks core for the transition and stores
//! it with its seller calls in one transaction.

use super::dispatcher::SellerJob;
use crate::SharedState;
use chrono::{DateTime, Utc};
use souk_core::clock::add;
use souk_core::lifecycle::{self, InstanceState};
use souk_store::instances::{Change, InstanceRow};

/// Instances handled per batch.
const BATCH: i64 = 200;

/// Runs forever.
pub async fn run(state: SharedState) {
    loop {
        let notified = state.wake_scheduler.notified();
        match tick(&state).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lifecycle tick failed"),
        }
        super::idle(notified).await;
    }
}

/// One pass over the due instances; returns how many were due.
pub async fn tick(state: &SharedState) -> Result<usize, souk_store::Error> {
    let now = state.now();
    let due = state.store.due_instances(now, BATCH).await?;
    let n = due.len();
    for instance in due {
        match step(state, &instance, now).await {
            Ok(()) | Err(souk_store::Error::Stale) => {}
            Err(e) => {
                tracing::error!(instance = %instance.id, error = %e, "lifecycle transition failed")
            }
        }
    }
    Ok(n)
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn step(
    state: &SharedState,
    i: &InstanceRow,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let current: InstanceState = souk_store::parse(&i.state)?;
    let expiry = souk_store::at(i.expires_at);
    let policy = state.settings.policy;
    let change = match lifecycle::due(current, expiry, now, policy) {
        Some(t) => {
            let detail = match t.state {
                InstanceState::Grace => format!(
                    "expired {}; it keeps running in the grace period until {}",
                    day(expiry),
                    day(add(expiry, policy.grace))
                ),
                InstanceState::Frozen => format!(
                    "grace period ended; frozen at the seller; data kept until {}",
                    day(add(add(expiry, policy.grace), policy.retention))
                ),
                InstanceState::Released => {
                    "retention period ended; released at the seller".to_owned()
                }
                other => format!("now {other}"),
            };
            Change {
                state: t.state.as_str(),
                next_transition_at: t.next_at,
                jobs: t
                    .calls
                    .iter()
                    .map(|c| SellerJob::from_call(*c).spec(&i.order_id))
                    .collect(),
                event: Some((event_kind(t.state), detail)),
            }
        }
        // Not due after all (changed since it was scheduled): only move the schedule.
        None => Change {
            state: current.as_str(),
            next_transition_at: lifecycle::reschedule(current, expiry, policy),
            jobs: vec![],
            event: None,
        },
    };
    let calls_seller = !change.jobs.is_empty();
    state.store.transition(i, change, now).await?;
    if calls_seller {
        state.wake_dispatcher.notify_waiters();
    }
    Ok(())
}

fn event_kind(s: InstanceState) -> &'static str {
    match s {
        InstanceState::Grace => "instance.grace",
        InstanceState::Frozen => "instance.frozen",
        InstanceState::Released => "instance.released",
        InstanceState::Active => "instance.active",
        InstanceState::Provisioning => "instance.provisioning",
        InstanceState::Failed => "instance.failed",
    }
}
