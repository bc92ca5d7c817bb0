//! Background work: a runner of job handlers, and the scheduler that walks instances through
//! their lifecycle. Every node runs both; the database keeps them from doing any piece of work
//! twice.
//!
//! Each job kind implements [`JobHandler`] and is registered in [`Handlers::standard`], so a new
//! kind (e-mails, usage rating, settlement) touches no existing handler. The runner claims due
//! jobs, runs each as its own task (at most [`IN_FLIGHT`] at once, so a slow job holds up only
//! itself), keeps a record of every attempt, retries by the handler's policy and hands the job
//! back to its handler to end it when the budget is spent.

pub mod housekeeping;
pub mod mailer;
pub mod rater;
pub mod scheduler;
pub mod seller;

use crate::jobs::SellerJob;
use crate::{AppState, SharedState};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use souk_store::events::NewEvent;
use souk_store::jobs::{Attempt, Job, JobEnd, JobState};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How often an idle worker looks for work when nothing wakes it.
pub const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// The least time between a claim that emptied the queue and the next: jobs that arrive
/// meanwhile are claimed together, one statement for several rather than one each under load.
pub const CLAIM_GAP: std::time::Duration = std::time::Duration::from_millis(5);

/// Jobs in flight at once on one node.
pub const IN_FLIGHT: usize = 256;

/// Jobs of one lane (one merchant's endpoint) a node starts while others of it run: a seller that
/// hangs holds fewer than twice this many of the node's slots, and everyone else keeps the rest.
/// It is also the most jobs one claim takes.
pub const PER_LANE: usize = 32;

/// How often and how patiently a kind of job is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the job is given up.
    pub max_attempts: i64,
    /// Delay before the first retry; doubled each attempt.
    pub backoff: Duration,
    /// The longest delay between two attempts.
    pub backoff_cap: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`: doubling from the base, capped, with ±20% jitter
    /// so many failed jobs do not retry in lockstep.
    pub fn delay(&self, attempts: i64) -> Duration {
        let base = self.backoff.num_milliseconds().max(1);
        let exp = base.saturating_mul(1i64 << attempts.clamp(1, 31).saturating_sub(1));
        let capped = exp.min(self.backoff_cap.num_milliseconds());
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::milliseconds((capped as f64 * jitter) as i64)
    }
}

/// What one run of a job came to.
pub enum Step {
    /// The handler stored the job as done, with its effects.
    Done,
    /// The handler stored the job as dead for good (a final refusal), with its effects.
    Dead(String),
    /// It did not work this time; try again after the policy's delay, or give up.
    Retry(String),
}

/// What a run reports besides its step, for the attempt's record.
#[derive(Default)]
pub struct Trace {
    /// A summary of the request made.
    pub request: Option<String>,
    /// A summary of the answer.
    pub answer: Option<String>,
}

/// A boxed future, as handlers return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of background job.
pub trait JobHandler: Send + Sync {
    /// The kind it runs, as stored in the queue.
    fn kind(&self) -> &'static str;

    /// How it is retried.
    fn policy(&self, state: &AppState) -> RetryPolicy {
        RetryPolicy {
            max_attempts: state.settings.job_max_attempts,
            backoff: state.settings.job_backoff,
            backoff_cap: state.settings.job_backoff_cap,
        }
    }

    /// Runs one attempt; records what it asked and got in `trace`. An `Err` is a failure of
    /// souk's own and is retried like [`Step::Retry`].
    fn run<'a>(
        &'a self,
        state: &'a AppState,
        job: &'a Job,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Step, souk_store::Error>>;

    /// Ends a job whose budget is spent. By default it is dead, visible to operators, with the
    /// reason on the timeline of its instance.
    fn give_up<'a>(
        &'a self,
        state: &'a AppState,
        job: &'a Job,
        error: String,
    ) -> BoxFuture<'a, Result<(), souk_store::Error>> {
        Box::pin(async move {
            let detail = format!(
                "{} gave up after {} attempts: {error}",
                job.kind,
                job.attempts_in_budget()
            );
            bury(state, job, &error, detail).await
        })
    }
}

/// Ends a job as dead, with `detail` on its instance's timeline.
pub async fn bury(
    state: &AppState,
    job: &Job,
    error: &str,
    detail: String,
) -> Result<(), souk_store::Error> {
    state
        .store
        .end_job(
            JobEnd {
                id: &job.id,
                attempts: job.attempts,
                state: JobState::Dead,
                error: Some(error),
            },
            NewEvent {
                order_id: None,
                instance_id: job.instance_id.as_ref(),
                kind: "job.failed",
                detail,
                actor: None,
            },
            state.now(),
        )
        .await
}

/// The registered handlers, by kind.
#[derive(Clone)]
pub struct Handlers(HashMap<&'static str, Arc<dyn JobHandler>>);

impl Handlers {
    /// Every job kind souk runs.
    pub fn standard() -> Handlers {
        let mut h = Handlers(HashMap::new());
        for kind in SellerJob::ALL {
            h.register(Arc::new(seller::SellerCallHandler(kind)));
        }
        h.register(Arc::new(mailer::EmailHandler));
        h
    }

    /// Adds a handler for its kind.
    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.0.insert(handler.kind(), handler);
    }

    fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.0.get(kind).cloned()
    }
}

/// Starts the workers on the runtime.
pub fn spawn(state: SharedState) {
    tokio::spawn(run(state.clone(), Handlers::standard()));
    tokio::spawn(housekeeping::sweep(state.clone()));
    tokio::spawn(housekeeping::vacuum_queues(state.clone()));
    tokio::spawn(crate::replays::keep(state.clone()));
    tokio::spawn(crate::replays::watch(state.clone()));
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

/// Runs jobs forever. A finished job wakes the loop, since it may have made the next job of its
/// ordering key claimable, or its lane free again.
pub async fn run(state: SharedState, handlers: Handlers) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let lanes = Arc::new(Lanes::default());
    let mut drained_at: Option<tokio::time::Instant> = None;
    let mut leases_checked: Option<tokio::time::Instant> = None;
    loop {
        let notified = state.wake_dispatcher.notified();
        let free = slots.available_permits();
        if free == 0 {
            notified.await;
            continue;
        }
        if let Some(at) = drained_at {
            tokio::time::sleep_until(at + CLAIM_GAP).await;
        }
        // Jobs of dead workers go back to the queue; checked at most every `IDLE_POLL`, since
        // on SQLite even an update that changes nothing waits for the single writer.
        if leases_checked.is_none_or(|at| at.elapsed() >= IDLE_POLL) {
            leases_checked = Some(tokio::time::Instant::now());
            if let Err(e) = state
                .store
                .release_expired_leases(state.now(), Utc::now())
                .await
            {
                tracing::error!(error = %e, "releasing expired leases failed");
            }
        }
        let asked = free.min(PER_LANE);
        let claimed_at = tokio::time::Instant::now();
        match claim(&state, asked, &lanes.busy()).await {
            Ok(jobs) if !jobs.is_empty() => {
                drained_at = (jobs.len() < asked).then_some(claimed_at);
                for job in jobs {
                    // Never waits: at most `free` jobs were claimed and only finished jobs change
                    // the count, upwards.
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let state = state.clone();
                    let handlers = handlers.clone();
                    let lane = lanes.enter(job.lane.clone());
                    tokio::spawn(async move {
                        run_one(&state, &handlers, &job).await;
                        drop(lane);
                        drop(slot);
                        state.wake_dispatcher.notify_one();
                    });
                }
                continue;
            }
            Ok(_) => drained_at = Some(claimed_at),
            Err(e) => tracing::error!(error = %e, "claiming jobs failed"),
        }
        idle(notified).await;
    }
}

/// How many jobs of each lane run on this node.
#[derive(Default)]
struct Lanes(std::sync::Mutex<HashMap<String, usize>>);

/// A running job's place in its lane, given back when dropped.
struct InLane(Option<(Arc<Lanes>, String)>);

impl Lanes {
    /// The lanes with [`PER_LANE`] jobs running: the next claim leaves theirs.
    fn busy(&self) -> Vec<String> {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .filter(|(_, n)| **n >= PER_LANE)
            .map(|(lane, _)| lane.clone())
            .collect()
    }

    fn enter(self: &Arc<Self>, lane: Option<String>) -> InLane {
        InLane(lane.map(|lane| {
            *self
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(lane.clone())
                .or_default() += 1;
            (self.clone(), lane)
        }))
    }
}

impl Drop for InLane {
    fn drop(&mut self) {
        if let Some((lanes, lane)) = self.0.take() {
            let mut counts = lanes.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&lane) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&lane);
                }
            }
        }
    }
}

/// Claims up to `limit` due jobs, none of the `busy` lanes.
async fn claim(
    state: &AppState,
    limit: usize,
    busy: &[String],
) -> Result<Vec<Job>, souk_store::Error> {
    // The lease outlasts every attempt a job can make, so a live worker keeps its job. Leases run
    // on real time: they track live workers, which a test clock jumping ahead must not declare dead.
    let lease =
        Duration::from_std(state.settings.seller_timeout * 4).unwrap_or(Duration::seconds(60));
    state
        .store
        .claim_jobs(state.now(), Utc::now(), lease, limit as i64, busy)
        .await
}

/// Runs one claimed job through its handler, records the attempt, and retries or gives up.
pub async fn run_one(state: &AppState, handlers: &Handlers, job: &Job) {
    use tracing::Instrument;
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
    attempt(state, handlers, job).instrument(span).await
}

async fn attempt(state: &AppState, handlers: &Handlers, job: &Job) {
    let started_at = state.now();
    let started = std::time::Instant::now();
    let mut trace = Trace::default();
    let Some(handler) = handlers.get(&job.kind) else {
        let error = format!("no handler for job kind {}", job.kind);
        tracing::error!("{error}");
        if let Err(e) = bury(state, job, &error, error.clone()).await {
            tracing::warn!(error = %e, "could not end the job");
        }
        return;
    };
    let outcome = handler.run(state, job, &mut trace).await;
    let (error, retry) = match &outcome {
        Ok(Step::Done) => (None, false),
        Ok(Step::Dead(why)) => (Some(why.clone()), false),
        Ok(Step::Retry(what)) => (Some(what.clone()), true),
        Err(e) => {
            tracing::error!(error = %e, "job failed inside souk");
            (Some(e.to_string()), true)
        }
    };
    // Every attempt of a job that ever went wrong is kept; a job done at its first attempt, the
    // common case, costs no extra write.
    if error.is_some() || job.attempts > 1 {
        let attempt = Attempt {
            attempt: job.attempts,
            started_at,
            latency_ms: started.elapsed().as_millis() as i64,
            request: trace.request,
            answer: trace.answer,
            error: error.clone(),
        };
        if let Err(e) = state.store.record_attempt(&job.id, &attempt).await {
            tracing::warn!(error = %e, "could not record the attempt");
        }
    }
    let (Some(error), true) = (error, retry) else {
        return;
    };
    let policy = handler.policy(state);
    let settled = if job.attempts_in_budget() >= policy.max_attempts {
        handler.give_up(state, job, error).await
    } else {
        let at: DateTime<Utc> =
            souk_core::clock::add(state.now(), policy.delay(job.attempts_in_budget()));
        tracing::info!(retry_at = %at, "{error}");
        state
            .store
            .retry_job(&job.id, job.attempts, at, &error, state.now())
            .await
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not settle the failed job");
    }
}
