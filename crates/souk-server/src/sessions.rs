//! Session housekeeping: ending all of an account's sessions, and deleting dead ones cheaply
//! (an account's own at each log-in, everyone's from a background sweep).

use crate::auth::Caller;
use crate::client::Peer;
use crate::error::{ApiResult, Problem};
use crate::SharedState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// How often the background sweep deletes dead sessions.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Logs out everywhere: ends every session of the caller's account, this one included.
#[utoipa::path(delete, path = "/v1/sessions", tag = "accounts",
    responses((status = 204, description = "Every session of the account ended"), (status = 401, body = Problem)))]
pub async fn log_out_everywhere(
    State(state): State<SharedState>,
    peer: Peer,
    caller: Caller,
) -> ApiResult<Response> {
    state.store.delete_sessions_of(caller.id()).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, crate::auth::clear_cookie(peer.https))],
    )
        .into_response())
}

fn idle_cutoff(state: &SharedState, now: DateTime<Utc>) -> DateTime<Utc> {
    souk_core::clock::add(now, -state.settings.session_idle)
}

/// Deletes the dead sessions of one account; a failure only leaves them for the sweep.
pub async fn sweep_account(state: &SharedState, account_id: &str, now: DateTime<Utc>) {
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
