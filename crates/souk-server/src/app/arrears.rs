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
use souk_core::money::{Currency, Money};
use souk_store::events::NewEvent;

/// The buyer's balance in `currency` as it stands now (zero when it never held any).
async fn balance_now(
    state: &AppState,
    buyer: &AccountId,
    currency: Currency,
) -> Result<Money, souk_store::Error> {
    Ok(state
        .store
        .balances(buyer)
        .await?
        .into_iter()
        .find(|m| m.currency == currency)
        .unwrap_or(Money::from_minor(0, currency)))
}

/// After a usage charge in `currency`: if the balance as it stands now (a top-up may have come in
/// since the charge) is below the floor, the buyer's metered instances in that currency fall into
/// arrears (each told on its timeline).
pub async fn after_charge(
    state: &AppState,
    buyer: &AccountId,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let balance = balance_now(state, buyer, currency).await?;
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

/// After money came in or the credit limit rose: if the balance is back at or above its floor,
/// the buyer's instances in arrears in that currency get their paid time back. Also run by the
/// scheduler for every account whose arrears are paid ([`clear_paid`]), so a clearing that
/// raced another change, or a credit that did not call this, is caught at the next tick.
pub async fn after_credit(
    state: &AppState,
    buyer: &AccountId,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let balance = balance_now(state, buyer, currency).await?;
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

/// Gives their paid time back to the instances of every account whose arrears are paid (by a
/// top-up, a refund or a higher credit limit).
pub async fn clear_paid(state: &AppState, now: DateTime<Utc>) -> Result<(), souk_store::Error> {
    for (buyer, currency) in state.store.paid_arrears(100).await? {
        after_credit(state, &buyer, currency, now).await?;
    }
    Ok(())
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
