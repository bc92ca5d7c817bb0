//! Background workers: the dispatcher that makes seller calls from the job queue, and the
//! scheduler that walks instances through their lifecycle. Every node runs both; the database
//! keeps them from doing any piece of work twice.

pub mod dispatcher;
pub mod scheduler;

use crate::SharedState;
use std::time::Duration;

/// How often an idle worker looks for work when nothing wakes it.
pub const IDLE_POLL: Duration = Duration::from_millis(500);

/// Starts the workers on the runtime.
pub fn spawn(state: SharedState) {
    tokio::spawn(dispatcher::run(state.clone()));
    tokio::spawn(crate::sessions::sweep(state.clone()));
    tokio::spawn(scheduler::run(state));
}

/// Waits until woken or until `IDLE_POLL` passes; `notified` must be created before the work
/// check so a wake-up in between is not lost.
async fn idle(notified: tokio::sync::futures::Notified<'_>) {
    tokio::select! {
        _ = notified => {}
        _ = tokio::time::sleep(IDLE_POLL) => {}
    }
}
