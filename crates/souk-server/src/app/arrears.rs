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

/// Brings the buyer's metered instances in `currency` in line with the balance as it stands now
/// (a top-up may have come in since a charge): below the floor, those not yet in arrears fall
/// into them; at or above it, those in arrears get their paid time back. Run after every usage
/// charge and top-up, and by the scheduler for every account whose arrears are paid
/// ([`clear_paid`]), so a change that raced another, or a credit that did not call this (a refund,
/// a higher credit limit), is caught at the next tick. An instance changed meanwhile (renewed,
/// released) is left for the next run.
pub async fn reconcile(
    state: &AppState,
    buyer: &AccountId,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<(), souk_store::Error> {
    let balance = balance_now(state, buyer, currency).await?;
    let owes = in_arrears(
        balance.minor,
        state.store.credit_limit(buyer, currency).await?,
    );
    let policy = state.settings.policy;
    for i in state
        .store
        .metered_instances(buyer, currency.code(), !owes)
        .await?
    {
        let event = match (owes, i.arrears_expiry) {
            (true, _) => Event::ArrearsBegan { since: now },
            (false, Some(paid_expiry)) => Event::ArrearsCleared { paid_expiry },
            (false, None) => continue,
        };
        let subject = Subject {
            state: i.state,
            expiry: i.expires_at,
        };
        let Ok(t) = lifecycle::transition(subject, event, now, policy) else {
            continue;
        };
        let jobs = t
            .seller_calls()
            .map(|c| SellerJob::from_call(c).spec(&i.order_id))
            .collect();
        let (kind, detail, kept_expiry) = if owes {
            let detail = format!(
                "the balance is {balance}, below what the account may owe; top up to keep it running: it runs until {}, is frozen then and released after {}",
                day(policy.grace_end(t.expiry)),
                day(policy.retention_end(t.expiry))
            );
            ("instance.arrears", detail, Some(i.expires_at))
        } else {
            let detail = format!("the arrears were paid (balance {balance}); now {}", t.state);
            ("instance.arrears_cleared", detail, None)
        };
        let event = NewEvent {
            order_id: None,
            instance_id: Some(&i.id),
            kind,
            detail,
            actor: None,
        };
        match state
            .store
            .apply_arrears(&i, &t, kept_expiry, jobs, event, now)
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
        reconcile(state, &buyer, currency, now).await?;
    }
    Ok(())
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
