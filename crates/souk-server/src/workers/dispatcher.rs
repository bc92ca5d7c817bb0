//! The dispatcher: claims seller-call jobs, signs each call, posts it to the product's endpoint
//! and acts on the answer: stores what the seller created, retries transient failures with
//! exponential backoff and jitter, and gives up after the retry budget (a failed provisioning is
//! refunded).

use crate::SharedState;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use souk_core::lifecycle::{self, SellerCall};
use souk_protocol::access_crypto::{self, EncryptType};
use souk_protocol::signature::{signed_url, SignedParams};
use souk_protocol::{
    outcome, Activity, AppInfo, Outcome, RefreshScene, ResultCode, SellerAnswer, StatusChange,
};
use souk_store::events::NewEvent;
use souk_store::jobs::JobRow;
use souk_store::orders::JobSpec;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Seller calls in flight at once on one node.
const IN_FLIGHT: usize = 64;

/// The seller calls the job queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellerJob {
    /// `newInstance`, then the instance is active (or failed and refunded).
    NewInstance,
    /// `updateInstanceStatus` FREEZE.
    Freeze,
    /// `updateInstanceStatus` UNFREEZE.
    Unfreeze,
    /// `releaseInstance`.
    Release,
    /// `refreshInstance` RENEWAL with the new expiry.
    Refresh,
    /// `queryInstance` until the seller has the access data (it may create asynchronously).
    QueryAccess,
}

impl SellerJob {
    const ALL: [SellerJob; 6] = [
        SellerJob::NewInstance,
        SellerJob::Freeze,
        SellerJob::Unfreeze,
        SellerJob::Release,
        SellerJob::Refresh,
        SellerJob::QueryAccess,
    ];

    /// The job kind stored in the queue.
    pub fn kind(self) -> &'static str {
        match self {
            SellerJob::NewInstance => "seller.new_instance",
            SellerJob::Freeze => "seller.freeze",
            SellerJob::Unfreeze => "seller.unfreeze",
            SellerJob::Release => "seller.release",
            SellerJob::Refresh => "seller.refresh",
            SellerJob::QueryAccess => "seller.query_instance",
        }
    }

    /// The job for a call core asked for.
    pub fn from_call(call: SellerCall) -> Self {
        match call {
            SellerCall::Freeze => SellerJob::Freeze,
            SellerCall::Unfreeze => SellerJob::Unfreeze,
            SellerCall::Release => SellerJob::Release,
            SellerCall::RefreshRenewal => SellerJob::Refresh,
        }
    }

    /// The job to enqueue; `order_id` is the order that caused it.
    pub fn spec(self, order_id: &str) -> JobSpec {
        JobSpec {
            kind: self.kind(),
            payload: serde_json::json!({ "order_id": order_id }).to_string(),
        }
    }

    fn done_event(self) -> (&'static str, &'static str) {
        match self {
            SellerJob::NewInstance => ("seller.created", "the seller created the instance"),
            SellerJob::Freeze => ("seller.frozen", "the seller froze the instance"),
            SellerJob::Unfreeze => ("seller.unfrozen", "the seller unfroze the instance"),
            SellerJob::Release => ("seller.released", "the seller released the instance"),
            SellerJob::Refresh => ("seller.refreshed", "the seller recorded the new expiry"),
            SellerJob::QueryAccess => ("seller.access", "the seller gave the access data"),
        }
    }
}

/// Runs forever.
///
/// Calls run as their own tasks, at most [`IN_FLIGHT`] at once: a slow seller holds only its own
/// calls, never a round of everyone's. A finished call wakes the loop, since it may have made the
/// next job of its instance claimable.
pub async fn run(state: SharedState) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let notified = state.wake_dispatcher.notified();
        let free = slots.available_permits();
        if free == 0 {
            notified.await;
            continue;
        }
        match claim(&state, free).await {
            Ok(jobs) if !jobs.is_empty() => {
                for job in jobs {
                    // Never waits: at most `free` jobs were claimed and only finished calls change
                    // the count, upwards.
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        run_job(&state, &job).await;
                        drop(slot);
                        state.wake_dispatcher.notify_one();
                    });
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "claiming jobs failed"),
        }
        super::idle(notified).await;
    }
}

/// Claims up to `limit` due jobs.
async fn claim(state: &SharedState, limit: usize) -> Result<Vec<JobRow>, souk_store::Error> {
    // The lease outlasts every attempt a call can make, so a live worker keeps its job.
    let lease =
        Duration::from_std(state.settings.seller_timeout * 4).unwrap_or(Duration::seconds(60));
    state
        .store
        .claim_jobs(state.now(), Utc::now(), lease, limit as i64)
        .await
}

/// Runs one claimed job; a failure of souk's own (not the seller's) is retried like a failed call.
async fn run_job(state: &SharedState, job: &JobRow) {
    let Err(e) = handle(state, job).await else {
        return;
    };
    tracing::error!(job = %job.id, error = %e, "job failed");
    let error = e.to_string();
    let settled = if job.attempts >= state.settings.job_max_attempts {
        let event = NewEvent {
            order_id: None,
            instance_id: job.instance_id.as_deref(),
            kind: "job.failed",
            detail: format!(
                "{} gave up after {} attempts: {error}",
                job.kind, job.attempts
            ),
            actor: None,
        };
        state
            .store
            .end_job(
                &job.id,
                job.attempts,
                true,
                Some(&error),
                event,
                state.now(),
            )
            .await
    } else {
        let retry_at = souk_core::clock::add(state.now(), backoff(state, job.attempts));
        state
            .store
            .retry_job(&job.id, job.attempts, retry_at, &error, state.now())
            .await
    };
    if let Err(e) = settled {
        tracing::warn!(job = %job.id, error = %e, "could not settle the failed job");
    }
}

/// The delay before attempt `attempts + 1`: doubling from the configured base, capped, with
/// ±20% jitter so many failed calls do not retry in lockstep.
pub fn backoff(state: &SharedState, attempts: i64) -> Duration {
    let base = state.settings.job_backoff.num_milliseconds().max(1);
    let exp = base.saturating_mul(1i64 << attempts.clamp(0, 30).saturating_sub(1).max(0));
    let capped = exp.min(state.settings.job_backoff_cap.num_milliseconds());
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    Duration::milliseconds((capped as f64 * jitter) as i64)
}

#[derive(serde::Deserialize)]
struct Payload {
    order_id: String,
}

async fn handle(state: &SharedState, job: &JobRow) -> Result<(), souk_store::Error> {
    let kind = SellerJob::ALL
        .into_iter()
        .find(|k| k.kind() == job.kind)
        .ok_or_else(|| souk_store::Error::Corrupt(format!("unknown job kind {}", job.kind)))?;
    let payload: Payload = serde_json::from_str(&job.payload)
        .map_err(|e| souk_store::Error::Corrupt(e.to_string()))?;
    let instance_id = job
        .instance_id
        .as_deref()
        .ok_or_else(|| souk_store::Error::Corrupt("seller job without instance".into()))?;
    let (instance, endpoint, key) = state.store.instance_for_call(instance_id).await?;
    let endpoint =
        endpoint.ok_or_else(|| souk_store::Error::Corrupt("product without endpoint".into()))?;
    let key = state
        .secrets
        .open(&crate::crypto::product_key_aad(&instance.product_id), &key)
        .map_err(|e| souk_store::Error::Corrupt(e.to_string()))?;
    let now = state.now();
    let line = |order: &str| format!("{order}-000001");

    let activity = match kind {
        SellerJob::NewInstance => {
            if instance.state != lifecycle::InstanceState::Provisioning.as_str() {
                return end_with(
                    state,
                    job,
                    instance_id,
                    "job.skipped",
                    "provisioning already settled".into(),
                    false,
                    None,
                )
                .await;
            }
            Activity::NewInstance {
                order_id: instance.order_id.clone(),
                order_line_id: line(&instance.order_id),
                business_id: instance.business_id.clone(),
            }
        }
        other => {
            let Some(seller_id) = instance.seller_instance_id.clone() else {
                // Nothing exists at the seller (provisioning never finished): nothing to tell it.
                return end_with(
                    state,
                    job,
                    instance_id,
                    "job.skipped",
                    format!("{} skipped: the seller has no instance", other.kind()),
                    false,
                    None,
                )
                .await;
            };
            match other {
                SellerJob::Freeze => Activity::UpdateInstanceStatus {
                    instance_id: seller_id,
                    status: StatusChange::Freeze,
                },
                SellerJob::Unfreeze => Activity::UpdateInstanceStatus {
                    instance_id: seller_id,
                    status: StatusChange::Unfreeze,
                },
                SellerJob::QueryAccess => Activity::QueryInstance {
                    instance_ids: vec![seller_id],
                },
                SellerJob::Release => Activity::ReleaseInstance {
                    instance_id: seller_id,
                    order_id: instance.order_id.clone(),
                    order_line_id: line(&instance.order_id),
                },
                _ => Activity::RefreshInstance {
                    instance_id: seller_id,
                    order_id: payload.order_id.clone(),
                    order_line_id: line(&payload.order_id),
                    product_id: instance.product_id.clone(),
                    expire_time: souk_store::at(instance.expires_at)
                        .format("%Y%m%d%H%M%S")
                        .to_string(),
                    scene: RefreshScene::Renewal,
                },
            }
        }
    };

    let refused = crate::egress::refused(&state.settings.seller_networks(), &endpoint).await;
    let answer = match &refused {
        Some(reason) => Err(reason.clone()),
        None => call(state, &endpoint, &key, &activity).await,
    };
    let code = answer
        .as_ref()
        .ok()
        .and_then(|a| ResultCode::parse(&a.result_code));
    let what = match &answer {
        Ok(a) => format!(
            "{} answered {} {}",
            activity.name(),
            a.result_code,
            a.result_msg
        ),
        Err(e) => format!("{} failed: {e}", activity.name()),
    };
    let mut verdict = outcome(code, activity.name());
    if refused.is_some() {
        verdict = Outcome::Final;
    }
    if kind == SellerJob::NewInstance && verdict == Outcome::Done {
        let sid = answer
            .as_ref()
            .ok()
            .and_then(|a| a.instance_id.clone())
            .unwrap_or_default();
        if sid.is_empty() || sid.len() > 64 {
            verdict = Outcome::Retry;
        }
    }
    // queryInstance succeeds only once the seller has the instance's access data.
    let queried_access = match (kind, &answer) {
        (SellerJob::QueryAccess, Ok(a)) if verdict == Outcome::Done => {
            let found = a
                .info
                .iter()
                .flatten()
                .find(|i| Some(&i.instance_id) == instance.seller_instance_id.as_ref());
            match found.and_then(|i| i.app_info.clone()) {
                Some(info) => Some(decrypt_access(&key, a.encrypt_type.as_deref(), info)),
                None => {
                    verdict = Outcome::Pending;
                    None
                }
            }
        }
        _ => None,
    };
    state.metrics.seller_call(
        activity.name(),
        match verdict {
            Outcome::Done => "done",
            Outcome::Pending => "pending",
            Outcome::Retry => "retry",
            Outcome::Final => "final",
        },
    );
    let out_of_attempts = job.attempts >= state.settings.job_max_attempts;
    match (kind, verdict) {
        (SellerJob::NewInstance, Outcome::Done) => {
            let answer = answer.expect("a Done outcome has an answer");
            let seller_id = answer.instance_id.clone().unwrap_or_default();
            let access = answer
                .app_info
                .clone()
                .map(|info| decrypt_access(&key, answer.encrypt_type.as_deref(), info));
            // A seller that creates asynchronously answers the access data later, to queryInstance.
            let follow_up = access
                .is_none()
                .then(|| SellerJob::QueryAccess.spec(&instance.order_id));
            let sealed = access.map(|a| {
                state.secrets.seal(
                    &crate::crypto::instance_access_aad(&instance.id),
                    &serde_json::to_string(&a).unwrap_or_default(),
                )
            });
            let t = lifecycle::provisioned(
                lifecycle::InstanceState::Provisioning,
                souk_store::at(instance.expires_at),
            )?;
            state
                .store
                .provisioned(
                    &instance,
                    &job.id,
                    job.attempts,
                    &seller_id,
                    sealed.as_deref(),
                    t.next_at,
                    follow_up.as_ref(),
                    now,
                )
                .await?;
            Ok(())
        }
        (SellerJob::NewInstance, Outcome::Final) => {
            let order = state.store.order(&instance.order_id).await?;
            let reason = format!(
                "{} ({what})",
                code.map_or("the seller could not create the instance", |c| c
                    .refusal_reason())
            );
            state
                .store
                .provisioning_failed(&instance, &order, &job.id, job.attempts, &reason, now)
                .await
        }
        (SellerJob::NewInstance, Outcome::Retry | Outcome::Pending) if out_of_attempts => {
            let order = state.store.order(&instance.order_id).await?;
            let reason = format!(
                "the seller did not create the instance after {} attempts; last: {what}",
                job.attempts
            );
            state
                .store
                .provisioning_failed(&instance, &order, &job.id, job.attempts, &reason, now)
                .await
        }
        (_, Outcome::Done) => {
            if let Some(info) = queried_access {
                let sealed = state.secrets.seal(
                    &crate::crypto::instance_access_aad(instance_id),
                    &serde_json::to_string(&info).unwrap_or_default(),
                );
                state.store.set_access(instance_id, &sealed, now).await?;
            }
            let (kind_name, detail) = kind.done_event();
            end_with(
                state,
                job,
                instance_id,
                kind_name,
                detail.to_owned(),
                false,
                None,
            )
            .await
        }
        (_, Outcome::Final) => {
            end_with(
                state,
                job,
                instance_id,
                "seller.call_failed",
                what.clone(),
                true,
                Some(&what),
            )
            .await
        }
        (_, Outcome::Retry | Outcome::Pending) if out_of_attempts => {
            end_with(
                state,
                job,
                instance_id,
                "seller.call_failed",
                format!("gave up after {} attempts; last: {what}", job.attempts),
                true,
                Some(&what),
            )
            .await
        }
        (_, Outcome::Retry | Outcome::Pending) => {
            let at: DateTime<Utc> = souk_core::clock::add(now, backoff(state, job.attempts));
            tracing::info!(job = %job.id, attempt = job.attempts, retry_at = %at, "{what}");
            state
                .store
                .retry_job(&job.id, job.attempts, at, &what, now)
                .await
        }
    }
}

async fn end_with(
    state: &SharedState,
    job: &JobRow,
    instance_id: &str,
    kind: &str,
    detail: String,
    dead: bool,
    error: Option<&str>,
) -> Result<(), souk_store::Error> {
    let event = NewEvent {
        order_id: None,
        instance_id: Some(instance_id),
        kind,
        detail,
        actor: None,
    };
    state
        .store
        .end_job(&job.id, job.attempts, dead, error, event, state.now())
        .await
}

/// Signs and posts one call. The signature's timestamp is real time, not the injected clock: it
/// proves freshness to the seller, whose clock is real.
pub async fn call(
    state: &SharedState,
    endpoint: &str,
    key: &str,
    activity: &Activity,
) -> Result<SellerAnswer, String> {
    let body = activity.body(false);
    let params = SignedParams::new(key, &body, Utc::now().timestamp_millis());
    let res = state
        .http
        .post(signed_url(endpoint, &params))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json;charset=utf8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| crate::egress::describe(e, "connection"))?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let bytes = crate::egress::read_limited(res, state.settings.seller_answer_limit).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not the expected JSON: {e}"))
}

/// Decrypts the fields a seller may encrypt; a value that does not decrypt stays as given.
fn decrypt_access(key: &str, encrypt_type: Option<&str>, mut info: AppInfo) -> AppInfo {
    if let Some(kind) = EncryptType::from_wire(encrypt_type) {
        for field in [&mut info.password, &mut info.user_name] {
            if let Some(v) = field.as_ref() {
                if let Ok(plain) = access_crypto::decrypt(key, kind, v) {
                    *field = Some(plain);
                }
            }
        }
    }
    info
}
