//! The seller-call job handler: signs each lifecycle call, posts it to the product's endpoint and
//! acts on the answer. What the answer means for the instance is core's decision (a created
//! instance becomes active, a refusal fails it and refunds the order); this handler carries it
//! out and stores it with the job's end in one transaction.

use super::{BoxFuture, JobHandler, Step, Trace};
use crate::jobs::{SellerJob, SellerPayload};
use crate::AppState;
use chrono::{DateTime, Utc};
use souk_core::lifecycle::{self, Event, InstanceState, Subject};
use souk_core::review::SellerProtocol;
use souk_protocol::access_crypto::{self, EncryptType};
use souk_protocol::signature::{signed_url, SignedParams};
use souk_protocol::v1;
use souk_protocol::{
    outcome, Activity, AppInfo, Outcome, RefreshScene, ResultCode, SellerAnswer, StatusChange,
};
use souk_store::events::NewEvent;
use souk_store::instances::{Change, Instance, Refund};
use souk_store::jobs::{Job, JobEnd, JobState};

/// Runs one kind of seller call.
pub struct SellerCallHandler(pub SellerJob);

impl JobHandler for SellerCallHandler {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn run<'a>(
        &'a self,
        state: &'a AppState,
        job: &'a Job,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Step, souk_store::Error>> {
        Box::pin(run(state, self.0, job, trace))
    }

    fn give_up<'a>(
        &'a self,
        state: &'a AppState,
        job: &'a Job,
        error: String,
    ) -> BoxFuture<'a, Result<(), souk_store::Error>> {
        Box::pin(async move {
            let attempts = job.attempts_in_budget();
            if self.0 == SellerJob::NewInstance {
                let instance = instance_of(state, job).await?;
                if instance.state == InstanceState::Provisioning {
                    let reason = format!(
                        "the seller did not create it after {attempts} attempts ({})",
                        in_plain_words(&error)
                    );
                    let error = format!("gave up after {attempts} attempts; last: {error}");
                    return fail_provisioning(state, job, &instance, &reason, &error).await;
                }
            }
            let detail = format!("gave up after {attempts} attempts; last: {error}");
            end(
                state,
                job,
                JobState::Dead,
                "seller.call_failed",
                detail,
                Some(&error),
            )
            .await
        })
    }
}

async fn instance_of(state: &AppState, job: &Job) -> Result<Instance, souk_store::Error> {
    let id = job
        .instance_id
        .as_ref()
        .ok_or_else(|| souk_store::Error::Corrupt("seller job without instance".into()))?;
    state.store.instance(id).await
}

/// Ends the job with an event on its instance's timeline.
async fn end(
    state: &AppState,
    job: &Job,
    to: JobState,
    kind: &str,
    detail: String,
    error: Option<&str>,
) -> Result<(), souk_store::Error> {
    state
        .store
        .end_job(
            JobEnd {
                id: &job.id,
                attempts: job.attempts,
                state: to,
                error,
            },
            NewEvent {
                order_id: None,
                instance_id: job.instance_id.as_ref(),
                kind,
                detail,
                actor: None,
            },
            state.now(),
        )
        .await
}

/// What went wrong with a call, in the buyer's words: where the seller's service failed, not how
/// (the call's attempts keep the technical detail for the seller and operators).
fn in_plain_words(error: &str) -> &'static str {
    if error.contains("timed out") {
        "its service did not answer in time"
    } else if error.contains("connection failed") {
        "its service could not be reached"
    } else if error.contains("refused to call") {
        "its service is at an address souk does not call"
    } else if error.contains("HTTP ") {
        "its service answered with an error"
    } else if error.contains("answer") {
        "its service gave an answer souk could not read"
    } else {
        "its service did not complete the call"
    }
}

/// Core's decision for an instance the seller could not create: failed, and its order refunded,
/// stored with the job's end. `reason` is what the buyer reads; `error` what the job records.
async fn fail_provisioning(
    state: &AppState,
    job: &Job,
    instance: &Instance,
    reason: &str,
    error: &str,
) -> Result<(), souk_store::Error> {
    let now = state.now();
    let t = lifecycle::transition(
        Subject {
            state: instance.state,
            expiry: instance.expires_at,
        },
        Event::ProvisioningFailed,
        now,
        state.settings.policy,
    )?;
    let order = state.store.order(&instance.order_id).await?;
    let refunded = order.state.refund()?;
    state
        .store
        .apply_change(
            instance,
            Change {
                transition: &t,
                jobs: vec![],
                refund: Some(Refund {
                    order_id: &order.id,
                    buyer_id: &order.buyer_id,
                    amount: order.amount,
                    from: order.state,
                    to: refunded,
                    memo: format!("refund: provisioning failed ({reason})"),
                }),
                seller_instance_id: None,
                access_enc: None,
                failure_reason: Some(reason),
                event: Some(NewEvent {
                    order_id: Some(&order.id),
                    instance_id: Some(&instance.id),
                    kind: "instance.failed",
                    detail: format!("{reason}; the order was refunded"),
                    actor: None,
                }),
                job: Some(JobEnd {
                    id: &job.id,
                    attempts: job.attempts,
                    state: JobState::Dead,
                    error: Some(error),
                }),
            },
            now,
        )
        .await
}

/// What the call is, for a seller job on `instance`; `None` when there is nothing to call.
fn activity(kind: SellerJob, instance: &Instance, payload: &SellerPayload) -> Option<Activity> {
    if kind == SellerJob::NewInstance {
        return (instance.state == InstanceState::Provisioning).then(|| Activity::NewInstance {
            order_id: instance.order_id.to_string(),
            order_line_id: crate::app::sales::order_line_id(&instance.order_id),
            business_id: instance.business_id.clone(),
        });
    }
    // Nothing exists at the seller (provisioning never finished): nothing to tell it.
    let seller_id = instance.seller_instance_id.clone()?;
    Some(match kind {
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
            order_id: instance.order_id.to_string(),
            order_line_id: crate::app::sales::order_line_id(&instance.order_id),
        },
        SellerJob::Upgrade => Activity::UpgradeInstance {
            instance_id: seller_id,
            order_id: payload.order_id.to_string(),
            order_line_id: crate::app::sales::order_line_id(&payload.order_id),
            product_id: instance.product_id.to_string(),
        },
        SellerJob::Refresh
        | SellerJob::RefreshUnsubscribed
        | SellerJob::RefreshTrial
        | SellerJob::NewInstance => Activity::RefreshInstance {
            instance_id: seller_id,
            order_id: payload.order_id.to_string(),
            order_line_id: crate::app::sales::order_line_id(&payload.order_id),
            product_id: instance.product_id.to_string(),
            expire_time: instance.expires_at.format("%Y%m%d%H%M%S").to_string(),
            scene: match kind {
                SellerJob::RefreshUnsubscribed => RefreshScene::UnsubscribeRenewalPeriod,
                SellerJob::RefreshTrial => RefreshScene::TrialToFormal,
                _ => RefreshScene::Renewal,
            },
        },
    })
}

fn done_event(kind: SellerJob) -> (&'static str, &'static str) {
    match kind {
        SellerJob::NewInstance => ("seller.created", "the seller created the instance"),
        SellerJob::Freeze => ("seller.frozen", "the seller froze the instance"),
        SellerJob::Unfreeze => ("seller.unfrozen", "the seller unfroze the instance"),
        SellerJob::Release => ("seller.released", "the seller released the instance"),
        SellerJob::Refresh | SellerJob::RefreshUnsubscribed | SellerJob::RefreshTrial => {
            ("seller.refreshed", "the seller recorded the new expiry")
        }
        SellerJob::QueryAccess => ("seller.access", "the seller gave the access data"),
        SellerJob::Upgrade => (
            "seller.upgraded",
            "the seller moved the instance to its new plan",
        ),
    }
}

async fn run(
    state: &AppState,
    kind: SellerJob,
    job: &Job,
    trace: &mut Trace,
) -> Result<Step, souk_store::Error> {
    let payload: SellerPayload = serde_json::from_str(&job.payload)
        .map_err(|e| souk_store::Error::Corrupt(e.to_string()))?;
    let instance_id = job
        .instance_id
        .as_ref()
        .ok_or_else(|| souk_store::Error::Corrupt("seller job without instance".into()))?;
    let (instance, seller) = state.store.instance_for_call(instance_id).await?;
    let Some(activity) = activity(kind, &instance, &payload) else {
        let detail = match kind {
            SellerJob::NewInstance => "provisioning already settled".to_owned(),
            other => format!("{} skipped: the seller has no instance", other.kind()),
        };
        end(state, job, JobState::Done, "job.skipped", detail, None).await?;
        return Ok(Step::Done);
    };
    let endpoint = seller
        .url
        .clone()
        .ok_or_else(|| souk_store::Error::Corrupt("product without endpoint".into()))?;
    let key = state
        .secrets
        .open(
            &crate::crypto::product_key_aad(instance.product_id.as_str()),
            &seller.signing_key_enc,
        )
        .map_err(|e| souk_store::Error::Corrupt(e.to_string()))?;
    let wire = match seller.protocol {
        SellerProtocol::V2 => Wire::V2 {
            signed_answers: seller.signed_answers,
        },
        SellerProtocol::V1 => Wire::V1 {
            terms: match &activity {
                Activity::NewInstance { .. } => Some(terms(state, &instance, &payload).await?),
                _ => None,
            },
        },
    };
    trace.request = Some(format!("{} for instance {}", activity.name(), instance.id));

    // Resolved and checked now, not when the product was saved: a name may point elsewhere since.
    let refused = crate::egress::refused(&state.settings.seller_networks(), &endpoint).await;
    let answer = match &refused {
        Some(reason) => Err(reason.clone()),
        None => call(state, &endpoint, &key, &activity, &wire).await,
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
    trace.answer = Some(match &answer {
        Ok(a) => format!("{} {}", a.result_code, a.result_msg),
        Err(e) => e.clone(),
    });
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
    let now = state.now();
    match (kind, verdict, answer) {
        (SellerJob::NewInstance, Outcome::Done, Ok(answer)) => {
            let seller_id = answer.instance_id.clone().unwrap_or_default();
            let access = answer
                .app_info
                .clone()
                .map(|info| decrypt_access(&key, answer.encrypt_type.as_deref(), info));
            // A seller that creates asynchronously answers the access data later, to queryInstance.
            let follow_up: Vec<_> = access
                .is_none()
                .then(|| SellerJob::QueryAccess.spec(&instance.order_id))
                .into_iter()
                .collect();
            let sealed = access.map(|a| {
                state.secrets.seal(
                    &crate::crypto::instance_access_aad(instance.id.as_str()),
                    &serde_json::to_string(&a).unwrap_or_default(),
                )
            });
            let t = lifecycle::transition(
                Subject {
                    state: instance.state,
                    expiry: instance.expires_at,
                },
                Event::Provisioned,
                now,
                state.settings.policy,
            )?;
            state
                .store
                .apply_change(
                    &instance,
                    Change {
                        transition: &t,
                        jobs: follow_up,
                        refund: None,
                        seller_instance_id: Some(&seller_id),
                        access_enc: sealed.as_deref(),
                        failure_reason: None,
                        event: Some(NewEvent {
                            order_id: Some(&instance.order_id),
                            instance_id: Some(&instance.id),
                            kind: "instance.active",
                            detail: format!("the seller created instance {seller_id}"),
                            actor: None,
                        }),
                        job: Some(JobEnd {
                            id: &job.id,
                            attempts: job.attempts,
                            state: JobState::Done,
                            error: None,
                        }),
                    },
                    now,
                )
                .await?;
            Ok(Step::Done)
        }
        (SellerJob::NewInstance, Outcome::Final, _) => {
            let reason = code
                .map_or("the seller could not create the instance", |c| {
                    c.refusal_reason()
                })
                .to_owned();
            let error = format!("{reason} ({what})");
            fail_provisioning(state, job, &instance, &reason, &error).await?;
            Ok(Step::Dead(error))
        }
        (_, Outcome::Done, _) => {
            if let Some(info) = queried_access {
                let sealed = state.secrets.seal(
                    &crate::crypto::instance_access_aad(instance_id.as_str()),
                    &serde_json::to_string(&info).unwrap_or_default(),
                );
                state.store.set_access(instance_id, &sealed, now).await?;
            }
            let (event, detail) = done_event(kind);
            end(state, job, JobState::Done, event, detail.to_owned(), None).await?;
            Ok(Step::Done)
        }
        (_, Outcome::Final, _) => {
            end(
                state,
                job,
                JobState::Dead,
                "seller.call_failed",
                what.clone(),
                Some(&what),
            )
            .await?;
            Ok(Step::Dead(what))
        }
        (_, Outcome::Retry | Outcome::Pending, _) => Ok(Step::Retry(what)),
    }
}

/// How a call goes on the wire, by the protocol the product speaks.
#[derive(Debug, Clone)]
pub enum Wire {
    /// V2: a POST whose JSON body is signed in the URL; with `signed_answers` the answer must
    /// carry a `Body-Sign` made with the product's key.
    V2 { signed_answers: bool },
    /// V1: a GET whose parameters carry an `authToken`; `newInstance` also carries the
    /// subscription's `terms`; every answer must be signed.
    V1 {
        terms: Option<souk_protocol::v1::Terms>,
    },
}

/// One call as it is sent.
pub struct Request<'a> {
    pub activity: &'a Activity,
    /// `testFlag` `"1"`.
    pub test: bool,
    /// The key the call is signed with (the product's, but for the endpoint check's forgery).
    pub sign_key: &'a str,
    /// The key a signed answer must be made with.
    pub answer_key: &'a str,
    /// When the call is dated: now when `None` (and under V1 a millisecond after the call before);
    /// the endpoint check dates calls in the past, or repeats one, on purpose.
    pub at: Option<DateTime<Utc>>,
    /// The V2 nonce; fresh when `None` (the endpoint check repeats one to see it refused).
    pub nonce: Option<&'a str>,
    pub wire: &'a Wire,
}

/// Calls a seller for a job of souk: signed with `key`, dated now, within the configured answer
/// size.
pub async fn call(
    state: &AppState,
    endpoint: &str,
    key: &str,
    activity: &Activity,
    wire: &Wire,
) -> Result<SellerAnswer, String> {
    let request = Request {
        activity,
        test: false,
        sign_key: key,
        answer_key: key,
        at: None,
        nonce: None,
        wire,
    };
    send(
        &state.http,
        state.settings.seller_answer_limit,
        endpoint,
        &request,
    )
    .await
}

/// Sends a call to `endpoint` and reads the seller's answer (at most `limit` bytes of JSON),
/// checking its `Body-Sign` where the protocol or the product asks for one. Errors say what went
/// wrong in words a seller acts on.
pub async fn send(
    http: &reqwest::Client,
    limit: usize,
    endpoint: &str,
    r: &Request<'_>,
) -> Result<SellerAnswer, String> {
    let (request, signed_answer) = match r.wire {
        Wire::V2 { signed_answers } => {
            let body = r.activity.body(r.test);
            let ts = r.at.unwrap_or_else(Utc::now).timestamp_millis().to_string();
            let nonce = r
                .nonce
                .map_or_else(souk_protocol::signature::new_nonce, str::to_owned);
            let params = SignedParams {
                signature: souk_protocol::signature::sign(r.sign_key, &body, &ts, &nonce),
                timestamp: ts,
                nonce,
            };
            let post = http
                .post(signed_url(endpoint, &params))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/json;charset=utf8",
                )
                .body(body);
            (post, *signed_answers)
        }
        Wire::V1 { terms } => {
            let at = r.at.unwrap_or_else(v1_now);
            let params = v1::params(r.activity, r.test, terms.as_ref(), &v1::time_stamp(at));
            let get = http
                .get(v1::signed_url(endpoint, r.sign_key, &params))
                .header(reqwest::header::ACCEPT, "application/json");
            (get, true)
        }
    };
    let res = request
        .send()
        .await
        .map_err(|e| crate::egress::describe(e, "connection"))?;
    let status = res.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body_sign = res
        .headers()
        .get(souk_protocol::signature::BODY_SIGN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = crate::egress::read_limited(res, limit).await?;
    if signed_answer
        && !souk_protocol::signature::verify_body_sign(
            &[r.answer_key],
            &bytes,
            body_sign.as_deref(),
        )
    {
        return Err("the answer's Body-Sign is missing or not made with the product's key".into());
    }
    // What was wrong, never what was said: an endpoint that is not a seller's must not have its
    // answers shown to whoever pointed souk at it. A seller's answer is an object (serde would
    // also read an array as the fields in order).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            "the answer is not a seller's answer (a JSON object with resultCode and resultMsg)"
                .to_owned(),
        );
    }
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            "the answer is JSON but not a seller's answer (an object with resultCode and resultMsg)"
                .to_owned()
        }
        _ => format!(
            "the answer is not JSON (it fails at line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

/// Now, for a V1 call. V1 has no nonce, so two identical calls in one millisecond would carry the
/// same `authToken` and a seller refusing replays would refuse the second: each call is dated at
/// least a millisecond after the one before.
fn v1_now() -> DateTime<Utc> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp_millis();
    let last = LAST.fetch_max(now, Ordering::Relaxed);
    let at = if now > last {
        now
    } else {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    };
    DateTime::from_timestamp_millis(at).unwrap_or_else(Utc::now)
}

/// What a V1 `newInstance` says of the subscription: its buyer, plan, period and trial.
async fn terms(
    state: &AppState,
    instance: &Instance,
    payload: &SellerPayload,
) -> Result<v1::Terms, souk_store::Error> {
    let order = state.store.order(&payload.order_id).await?;
    let buyer = state.store.account(&order.buyer_id).await?;
    Ok(v1::Terms {
        customer_id: buyer.id.to_string(),
        customer_name: buyer.name,
        product_id: instance.product_id.to_string(),
        sku_code: instance.plan_id.to_string(),
        period_type: order.period.as_str().to_owned(),
        period_number: order.periods.to_string(),
        trial: instance.trial,
        expire_time: instance.expires_at.format("%Y%m%d%H%M%S").to_string(),
    })
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
