//! Arrears: a usage charge that takes a balance below its floor puts the buyer's metered
//! instances (on demand and packages) in that currency through grace, frozen, retention and
//! release, as if their paid time had ended then; a top-up that clears the arrears gives them
//! their paid time back and unfreezes the frozen ones. Released instances stay released.

use crate::jobs::SellerJob;
use crate::AppState;
use chrono::{DateTime, Utc};
use souk_core::ids::AccountId;
use souk_core::ledger::in_arrears;
use souk_core::lifecycle::{self, Event, Subject};
use souk_core::money::Money;
use souk_store::events::NewEvent;

/// After a charge left `balance`: if it is below the floor, the buyer's metered instances in its
/// currency fall into arrears (each told on its timeline).
pub async fn after_charge(
    state: &AppState,
    buyer: &AccountId,
    balance: Money,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let limit = state.store.credit_limit(buyer, balance.currency).await?;
    if !in_arrears(balance.minor, limit) {
        return Ok(());
    }
    for i in state
        .store
        .metered_instances(buyer, balance.currency.code(), false)
        .await?
    {
        let t = match lifecycle::transition(
            Subject {
                state: i.state,
                expiry: i.expires_at,
            },
            Event::ArrearsBegan { since: now },
            now,
            state.settings.policy,
        ) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let jobs = t
            .seller_calls()
            .map(|c| SellerJob::from_call(c).spec(&i.order_id))
            .collect();
        let detail = format!(
            "the balance is {balance}, below what the account may owe; top up to keep it running: it runs until {}, is frozen then and released after {}",
            day(state.settings.policy.grace_end(t.expiry)),
            day(state.settings.policy.retention_end(t.expiry))
        );
        let event = NewEvent {
            order_id: None,
            instance_id: Some(&i.id),
            kind: "instance.arrears",
            detail,
            actor: None,
        };
        match state
            .store
            .apply_arrears(&i, &t, Some(i.expires_at), jobs, event, now)
            .await
        {
            // Changed meanwhile (renewed, released): the next charge looks again.
            Ok(()) | Err(souk_store::Error::Stale) => {}
            Err(e) => return Err(e),
        }
    }
    state.wake_dispatcher.notify_waiters();
    Ok(())
}

/// After money came in (a top-up): if the balance is back at or above its floor, the buyer's
/// instances in arrears in its currency get their paid time back.
pub async fn after_credit(
    state: &AppState,
    buyer: &AccountId,
    balance: Money,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let limit = state.store.credit_limit(buyer, balance.currency).await?;
    if in_arrears(balance.minor, limit) {
        return Ok(());
    }
    for i in state
        .store
        .metered_instances(buyer, balance.currency.code(), true)
        .await?
    {
        let Some(paid_expiry) = i.arrears_expiry else {
            continue;
        };
        let t = match lifecycle::transition(
            Subject {
                state: i.state,
                expiry: i.expires_at,
            },
            Event::ArrearsCleared { paid_expiry },
            now,
            state.settings.policy,
        ) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let jobs = t
            .seller_calls()
            .map(|c| SellerJob::from_call(c).spec(&i.order_id))
            .collect();
        let event = NewEvent {
            order_id: None,
            instance_id: Some(&i.id),
            kind: "instance.arrears_cleared",
            detail: format!("the arrears were paid (balance {balance}); now {}", t.state),
            actor: None,
        };
        match state
            .store
            .apply_arrears(&i, &t, None, jobs, event, now)
            .await
        {
            Ok(()) | Err(souk_store::Error::Stale) => {}
            Err(e) => return Err(e),
        }
    }
    state.wake_dispatcher.notify_waiters();
    Ok(())
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
