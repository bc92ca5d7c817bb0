//! The lifecycle scheduler: reads the instances whose `next_transition_at` is due (an indexed
//! range, so its cost follows the due rows, not all rows), asks core for the transition and stores
//! it with its seller calls in one transaction.

use crate::jobs::SellerJob;
use crate::{AppState, SharedState};
use chrono::{DateTime, Utc};
use souk_core::lifecycle::{self, Event, InstanceState, Subject};
use souk_store::events::NewEvent;
use souk_store::instances::{Change, Instance};

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
pub async fn tick(state: &AppState) -> Result<usize, souk_store::Error> {
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
    remind(state, now).await?;
    super::rater::rate(state, now).await?;
    // Last, so the events of this pass are told in it.
    notify(state, now).await;
    Ok(n)
}

/// Writes the notifications of the events not yet looked at, batch after batch.
async fn notify(state: &AppState, now: DateTime<Utc>) {
    loop {
        match crate::app::notifications::sweep(state, now).await {
            Ok(n) if n == crate::app::notifications::BATCH => {}
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "writing notifications failed");
                return;
            }
        }
    }
}

/// Tells buyers of active instances that expire within a week (and again within a day), once per
/// expiry, as a timeline event.
async fn remind(state: &AppState, now: DateTime<Utc>) -> Result<(), souk_store::Error> {
    for i in state.store.instances_to_remind(now, BATCH).await? {
        let Some(days) = lifecycle::reminder_due(i.expires_at, now) else {
            continue;
        };
        let detail = format!(
            "expires in {} on {}; {}",
            if days == 1 { "a day" } else { "7 days" },
            day(i.expires_at),
            if i.trial {
                "pay for it to keep it"
            } else {
                "renew to keep it running"
            }
        );
        state
            .store
            .record_reminder(
                &i,
                days,
                NewEvent {
                    order_id: Some(&i.order_id),
                    instance_id: Some(&i.id),
                    kind: "instance.expiring",
                    detail,
                    actor: None,
                },
                now,
            )
            .await?;
    }
    Ok(())
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn step(state: &AppState, i: &Instance, now: DateTime<Utc>) -> Result<(), souk_store::Error> {
    let policy = state.settings.policy;
    let t = lifecycle::transition(
        Subject {
            state: i.state,
            expiry: i.expires_at,
        },
        Event::Due,
        now,
        policy,
    )?;
    // Not due after all (changed since it was scheduled): only the schedule moves, silently.
    let event = t.changes_state(i.state).then(|| {
        let detail = match t.state {
            InstanceState::Grace => format!(
                "expired {}; it keeps running in the grace period until {}",
                day(i.expires_at),
                day(policy.grace_end(i.expires_at))
            ),
            InstanceState::Frozen => format!(
                "grace period ended; frozen at the seller; data kept until {}",
                day(policy.retention_end(i.expires_at))
            ),
            InstanceState::Released => "retention period ended; released at the seller".to_owned(),
            other => format!("now {other}"),
        };
        NewEvent {
            order_id: None,
            instance_id: Some(&i.id),
            kind: event_kind(t.state),
            detail,
            actor: None,
        }
    });
    let jobs: Vec<_> = t
        .seller_calls()
        .map(|c| SellerJob::from_call(c).spec(&i.order_id))
        .collect();
    let calls_seller = !jobs.is_empty();
    state
        .store
        .apply_change(
            i,
            Change {
                transition: &t,
                jobs,
                refund: None,
                seller_instance_id: None,
                access_enc: None,
                failure_reason: None,
                event,
                job: None,
            },
            now,
        )
        .await?;
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
