//! Forgetting finished work: a done job and its attempts (each seller call's request and answer)
//! are kept for `keep_done_jobs` (30 days by default), then deleted, so the job table holds the
//! queue and its recent history rather than every job ever run. Dead jobs stay until an operator
//! replays them; what every job did stays on its instance's timeline.

use crate::{AppState, SharedState};

/// How often every node looks for done jobs to forget; any node may, and two at once skip each
/// other's rows.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Jobs deleted by one statement: small enough to hold few locks for little time.
const BATCH: i64 = 1_000;

/// At most this many batches a sweep; a larger backlog (after the setting was lowered, say) is
/// forgotten over the next sweeps rather than in one long burst.
const BATCHES_PER_SWEEP: usize = 100;

/// Forgets the done jobs that ended more than `keep_done_jobs` ago; returns how many.
pub async fn forget_done_jobs(state: &AppState) -> Result<u64, souk_store::Error> {
    let before = souk_core::clock::add(state.now(), -state.settings.keep_done_jobs);
    let mut forgotten = 0;
    for _ in 0..BATCHES_PER_SWEEP {
        let n = state.store.forget_done_jobs(before, BATCH).await?;
        forgotten += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(forgotten)
}

/// Forgets old done jobs every few minutes, forever.
pub async fn sweep(state: SharedState) {
    loop {
        match forget_done_jobs(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "forgot done jobs"),
            Err(e) => tracing::warn!(error = %e, "forgetting done jobs failed"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}
