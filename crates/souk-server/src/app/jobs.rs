//! The job queue as operators see it: jobs by state (dead ones above all) with every attempt,
//! and replaying a dead job with a fresh retry budget.

use super::{Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::AppState;
use souk_core::accounts::Role;
use souk_core::ids::Id as _;
use souk_core::ids::JobId;
use souk_store::jobs::{Attempt, Job, JobState};

/// A job with every attempt made at it.
#[derive(Debug, Clone)]
pub struct JobDetails {
    pub job: Job,
    pub attempts: Vec<Attempt>,
}

/// Parses a job state as an operator writes it.
pub fn parse_state(state: &str) -> AppResult<JobState> {
    state
        .parse()
        .map_err(|_| AppError::invalid("state", "must be pending, running, done or dead"))
}

async fn with_attempts(state: &AppState, job: Job) -> AppResult<JobDetails> {
    let attempts = state.store.job_attempts(&job.id).await?;
    Ok(JobDetails { job, attempts })
}

/// Jobs in `in_state`, newest first, each with its attempts (role `operations`).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    in_state: JobState,
    page: PageRequest,
) -> AppResult<Page<JobDetails>> {
    caller.require(Role::Operations)?;
    let size = page.size()?;
    let rows = state
        .store
        .jobs_in_state(in_state, page.after(JobId::PREFIX)?, size + 1)
        .await?;
    let page = page.page(rows, size, |j| j.id.as_str());
    // Every job's attempts in one read, whatever the page's length.
    let ids: Vec<JobId> = page.items.iter().map(|j| j.id.clone()).collect();
    let mut attempts = state.store.attempts_of_jobs(&ids).await?;
    let items = page
        .items
        .into_iter()
        .map(|job| JobDetails {
            attempts: attempts.remove(&job.id).unwrap_or_default(),
            job,
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// One job with its attempts (role `operations`).
pub async fn get(state: &AppState, caller: &Caller, id: &JobId) -> AppResult<JobDetails> {
    caller.require(Role::Operations)?;
    let job = state.store.job(id).await?;
    with_attempts(state, job).await
}

/// Puts a dead job back in the queue, due now, with a fresh retry budget (role `operations`).
/// Its handler decides again on the present state (a provisioning that was refunded meanwhile
/// is skipped, not repeated).
pub async fn replay(state: &AppState, caller: &Caller, id: &JobId) -> AppResult<JobDetails> {
    caller.require(Role::Operations)?;
    let job = state.store.job(id).await?;
    if job.state != JobState::Dead {
        return Err(AppError::Refused(souk_core::Refused {
            state: job.state.to_string(),
            event: "replay a job (only dead jobs are replayed)".into(),
        }));
    }
    let job = state.store.replay_job(id, state.now()).await?;
    tracing::info!(target: "audit", operator = %caller.id(), job = %job.id, "job replayed");
    state.wake_dispatcher.notify_waiters();
    with_attempts(state, job).await
}
