//! Session housekeeping: deleting dead sessions cheaply (an account's own at each log-in,
//! everyone's from a background sweep).

use crate::{AppState, SharedState};
use chrono::{DateTime, Utc};
use souk_core::ids::AccountId;

/// How often the background sweep deletes dead sessions.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

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

/// Deletes everyone's dead sessions every few minutes, forever.
pub async fn sweep(state: SharedState) {
    loop {
        let now = Utc::now();
        match state
            .store
            .delete_dead_sessions(None, now, idle_cutoff(&state, now))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "deleted dead sessions"),
            Err(e) => tracing::warn!(error = %e, "deleting dead sessions failed"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}
