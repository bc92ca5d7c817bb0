//! Session housekeeping: deleting dead sessions cheaply (an account's own at each log-in,
//! everyone's from a background sweep).

use crate::AppState;
use chrono::{DateTime, Utc};
use souk_core::ids::AccountId;

fn idle_cutoff(state: &AppState, now: DateTime<Utc>) -> DateTime<Utc> {
    souk_core::clock::add(now, -state.settings.session_idle)
}

/// Deletes the dead sessions of one account; a failure only leaves them for the sweep.
pub async fn sweep_account(state: &AppState, account_id: &AccountId, now: DateTime<Utc>) {
    if let Err(e) = state
        .store
        .delete_dead_sessions(Some(account_id), now, idle_cutoff(state, now))
        .await
    {
        tracing::warn!(error = %e, "deleting dead sessions failed");
    }
}

/// Deletes everyone's dead sessions (the housekeeping sweep calls this every few minutes);
/// returns how many.
pub async fn delete_dead(state: &AppState) -> Result<u64, souk_store::Error> {
    let now = Utc::now();
    state
        .store
        .delete_dead_sessions(None, now, idle_cutoff(state, now))
        .await
}
