//! Forgetting what is no longer needed, by one sweep every node runs. Dead sessions (past their
//! lifetime or idle timeout) are deleted. A done job and its attempts (each seller call's request
//! and answer) are kept for `keep_done_jobs` (30 days by default), then deleted, so the job table
//! holds the queue and its recent history rather than every job ever run. Dead jobs stay until an
//! operator replays them; what every job did stays on its instance's timeline. The audit of
//! refused signed requests is kept for `keep_auth_audit` (a year by default).

use crate::{AppState, SharedState};

/// How often every node looks for what to forget; any node may, and two at once skip each
/// other's rows (or delete nothing twice).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Rows deleted by one statement: few enough to hold few locks for little time.
const BATCH: i64 = 1_000;

/// At most this many batches a sweep; a larger backlog (after the setting was lowered, say) is
/// forgotten over the next sweeps rather than in one long burst.
const BATCHES_PER_SWEEP: usize = 100;

/// Forgets the done jobs that ended more than `keep_done_jobs` ago; returns how many.
pub async fn forget_done_jobs(state: &AppState) -> Result<u64, souk_store::Error> {
    let before = souk_core::clock::add(state.now(), -state.settings.keep_done_jobs);
    in_batches(|| state.store.forget_done_jobs(before, BATCH)).await
}

/// Forgets the audited refusals older than `keep_auth_audit`; returns how many. They are dated
/// by the real clock (a signer's clock is real), so this one is too.
pub async fn forget_old_refusals(state: &AppState) -> Result<u64, souk_store::Error> {
    let before = souk_core::clock::add(chrono::Utc::now(), -state.settings.keep_auth_audit);
    in_batches(|| state.store.forget_refusals(before, BATCH)).await
}

/// Runs `forget` until it deletes less than a batch, at most `BATCHES_PER_SWEEP` times.
async fn in_batches<F, Fut>(mut forget: F) -> Result<u64, souk_store::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, souk_store::Error>>,
{
    let mut forgotten = 0;
    for _ in 0..BATCHES_PER_SWEEP {
        let n = forget().await?;
        forgotten += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(forgotten)
}

/// How often a node looks at the queue tables' dead rows.
const VACUUM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Dead rows in a queue table that make it worth a vacuum: a few seconds of a busy node's jobs,
/// and a fraction of a second's work for the vacuum.
const VACUUM_AFTER_DEAD: i64 = 2_000;

/// Vacuums the job queue and the notifier's queue when they hold enough dead rows, forever
/// (see [`souk_store::Store::vacuum_queues`]).
pub async fn vacuum_queues(state: SharedState) {
    loop {
        tokio::time::sleep(VACUUM_EVERY).await;
        match state.store.vacuum_queues(VACUUM_AFTER_DEAD).await {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => tracing::debug!(?tables, "vacuumed queue tables"),
            Err(e) => tracing::warn!(error = %e, "vacuuming queue tables failed"),
        }
    }
}

/// Deletes dead sessions, old done jobs and old audited refusals every few minutes, forever.
pub async fn sweep(state: SharedState) {
    loop {
        match crate::sessions::delete_dead(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "deleted dead sessions"),
            Err(e) => tracing::warn!(error = %e, "deleting dead sessions failed"),
        }
        match forget_done_jobs(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "forgot done jobs"),
            Err(e) => tracing::warn!(error = %e, "forgetting done jobs failed"),
        }
        match forget_old_refusals(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(refusals = n, "forgot audited refusals"),
            Err(e) => tracing::warn!(error = %e, "forgetting audited refusals failed"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}
