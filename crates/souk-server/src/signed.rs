//! Requests signed with an access key (`SDK-HMAC-SHA256`, as Huawei Cloud's SDKs sign them): the
//! layer that checks them, and the authenticator that hands the checked caller to every use case.
//!
//! The signature covers the body, so the check runs as a layer that reads the body first; the
//! caller it proves travels in the request's extensions to [`AccessKeyAuth`], one more
//! [`Authenticator`] beside the session cookie. A refusal (malformed, unknown or disabled key,
//! stale time, bad signature, a replay, a policy that does not allow the call, a use case that
//! refuses keys) is a 401 or 403 problem document and a line in the audit operators read; past
//! `signature_refusals_per_address` in its window, an address's refusals are answered 429 and
//! not audited one by one, so bad signatures cannot fill the audit.

use crate::app::{Caller, Via};
use crate::auth::Authenticator;
use crate::error::{AppError, AppResult};
use crate::replays::{Accepted, Seen};
use crate::{AppState, SharedState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use souk_core::iam::{KeyState, SIGNATURE_WINDOW_SECS};
use souk_protocol::aksk::{self, Authorization};
use souk_store::accounts::KeyHolder;
use souk_store::iam::{refusal_id, Refusal};
use std::future::Future;
use std::pin::Pin;

/// The largest body a signed request may carry.
const MAX_SIGNED_BODY: usize = 1 << 20;

/// The most of a refused request's access key the audit keeps (souk's keys are 20 characters;
/// anything longer is an attacker's or a typo's, and a prefix names it well enough).
const AUDITED_KEY_CHARS: usize = 64;

/// The most of a refusal's reason and path the audit keeps.
const AUDITED_TEXT_CHARS: usize = 500;

/// The caller a signed request proved, for [`AccessKeyAuth`].
#[derive(Clone)]
struct Signed(Caller);

/// Checks signed requests; requests without an `SDK-HMAC-SHA256` authorization pass untouched.
pub async fn check(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let signed = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.trim_start().starts_with(aksk::ALGORITHM))
        .map(str::to_owned);
    let Some(authorization) = signed else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_SIGNED_BODY).await else {
        return AppError::BadRequest("a signed request's body is at most 1 MiB".into())
            .into_response();
    };
    let tcp = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let attempt = Attempt {
        peer: crate::client::Peer::of(&state, &parts.headers, tcp),
        // Clones that share their bytes: every signed request makes one, few are refused.
        method: parts.method.clone(),
        uri: parts.uri.clone(),
    };
    let (caller, acceptance) =
        match verify(&state, &attempt.peer, &parts, &authorization, &bytes).await {
            Ok(checked) => checked,
            Err(refused) => return refusal(&state, &attempt, refused).await,
        };
    let key = match &caller.via {
        Via::AccessKey { access_key, .. } => Some(access_key.clone()),
        _ => None,
    };
    let account = caller.account.id.clone();
    parts.extensions.insert(Signed(caller));
    let req = Request::from_parts(parts, Body::from(bytes));
    let res = if reads_only(req.method()) && acceptance.seen.is_pending() {
        // A read changes nothing, so it runs while the database remembers the signature (a key
        // the node knew, on PostgreSQL); its answer waits for the verdict, and a replay's is
        // thrown away. A verdict the node has or makes itself is awaited first, as for a write.
        let (res, accepted) = tokio::join!(next.run(req), acceptance.settle(&state, &attempt));
        if let Err(refused) = accepted {
            return refusal(&state, &attempt, refused).await;
        }
        res
    } else {
        if let Err(refused) = acceptance.settle(&state, &attempt).await {
            return refusal(&state, &attempt, refused).await;
        }
        next.run(req).await
    };
    // A use case's refusal (IAM, which only people manage; a role the account lacks) is
    // audited like the policy's own.
    match res.extensions().get::<crate::error::Refused>() {
        Some(refused) => {
            let reason = refused.0.clone();
            audit(&state, &attempt, reason, key, Some(account))
                .await
                .unwrap_or(res)
        }
        None => res,
    }
}

/// Answers a refused signed request: audited as the caller's mistake, unless it was a fault.
async fn refusal(state: &AppState, attempt: &Attempt, (error, key, account): Refused) -> Response {
    if !matches!(error, AppError::BadSignature(_) | AppError::Forbidden(_)) {
        // Not a refusal but a fault (the database, say): answered as what it is, neither
        // counted against the caller nor audited as the caller's mistake.
        return error.into_response();
    }
    let reason = error.detail();
    audit(state, attempt, reason, key, account)
        .await
        .unwrap_or_else(|| error.into_response())
}

/// Whether a request only reads, so it may run before its signature is known to be new.
fn reads_only(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Where a signed request came from and what it asked for, for the audit.
struct Attempt {
    peer: crate::client::Peer,
    method: axum::http::Method,
    uri: axum::http::Uri,
}

/// Counts a refused signed request against its address and writes it to the audit. Past the
/// address's limit nothing is written and the answer is this 429 instead of the refusal.
async fn audit(
    state: &AppState,
    attempt: &Attempt,
    reason: String,
    key: Option<String>,
    account: Option<souk_core::ids::AccountId>,
) -> Option<Response> {
    if let Err(limited) = state.throttle.signature_refused(&attempt.peer) {
        state.metrics.signature_refused(false);
        tracing::debug!(target: "audit", ip = %attempt.peer.ip, "signed request refused past the address's limit");
        return Some(limited.into_response());
    }
    state.metrics.signature_refused(true);
    let refusal = Refusal {
        id: refusal_id(Utc::now()),
        at: Utc::now(),
        access_key: key.map(|k| k.chars().take(AUDITED_KEY_CHARS).collect()),
        account_id: account,
        method: attempt
            .method
            .as_str()
            .chars()
            .take(AUDITED_TEXT_CHARS)
            .collect(),
        path: attempt
            .uri
            .path()
            .chars()
            .take(AUDITED_TEXT_CHARS)
            .collect(),
        reason: reason.chars().take(AUDITED_TEXT_CHARS).collect(),
        client_address: Some(attempt.peer.ip.to_string()),
    };
    if let Err(e) = state.store.audit_refusal(&refusal).await {
        tracing::warn!(error = %e, "could not write the audit of a refused signed request");
    }
    tracing::warn!(target: "audit", reason = %refusal.reason, key = ?refusal.access_key, "signed request refused");
    None
}

type Refused = (AppError, Option<String>, Option<souk_core::ids::AccountId>);

fn unauthenticated(why: impl Into<String>) -> AppError {
    AppError::BadSignature(why.into())
}

async fn verify(
    state: &AppState,
    peer: &crate::client::Peer,
    parts: &Parts,
    authorization: &str,
    body: &[u8],
) -> Result<(Caller, Acceptance), Refused> {
    let auth = Authorization::parse(authorization)
        .map_err(|e| (unauthenticated(e.to_string()), None, None))?;
    let ak = auth.access_key.clone();
    let refuse =
        |e: AppError, account: Option<souk_core::ids::AccountId>| (e, Some(ak.clone()), account);
    // Real time, not the injected clock: the signer's clock is real.
    let now = Utc::now();
    // A signature is accepted once while its time is within the window: it is remembered until
    // its date leaves it (a date that does not parse is refused below). It may be remembered
    // before its check, by the read of its key, so a date far ahead is not believed for that.
    let window = chrono::Duration::seconds(SIGNATURE_WINDOW_SECS);
    let dated = parts
        .headers
        .get(aksk::DATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| aksk::parse_date(d).ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or(now)
        .min(souk_core::clock::add(now, window));
    let until = souk_core::clock::add(dated, window);
    // A client past its share of bad signatures has each checked before it is remembered, so a
    // flood of forged ones (an access key is no secret) writes nothing.
    let found = if state.throttle.signatures_refused_too_often(peer) {
        state
            .replays
            .key_holder_only(&state.store, &auth.access_key)
            .await
    } else {
        state
            .replays
            .key_holder(
                &state.store,
                &auth.access_key,
                &auth.signature,
                until,
                reads_only(&parts.method),
            )
            .await
    };
    let (holder, seen) = match found {
        Ok(Some(h)) => h,
        Ok(None) => return Err(refuse(unauthenticated("unknown access key"), None)),
        Err(e) => return Err(refuse(e.into(), None)),
    };
    let key = &holder.key;
    let account_id = Some(key.account_id.clone());
    active(&holder).map_err(|e| refuse(e, account_id.clone()))?;
    let secret = state
        .secrets
        .open(
            &crate::crypto::access_key_aad(&key.access_key),
            &key.secret_enc,
        )
        .map_err(|e| refuse(e.into(), account_id.clone()))?;
    // Borrowed from the request where they can be (decoded query pairs and headers that are
    // UTF-8 are, always in practice): the check copies nothing of a well-formed request.
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().into(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let request = aksk::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        headers,
        body,
    };
    aksk::verify(
        &secret,
        &auth,
        &request,
        now.timestamp(),
        SIGNATURE_WINDOW_SECS,
    )
    .map_err(|e| refuse(unauthenticated(e.to_string()), account_id.clone()))?;
    allowed(&holder, &parts.method, parts.uri.path()).map_err(|e| refuse(e, account_id))?;
    let policy = holder.policy;
    let acceptance = Acceptance {
        seen,
        access_key: key.access_key.clone(),
        signature: auth.signature,
        account_id: key.account_id.clone(),
        last_used_at: key.last_used_at,
        now,
        until,
    };
    Ok((
        Caller {
            via: Via::AccessKey {
                access_key: holder.key.access_key,
                policy,
            },
            account: holder.account,
        },
        acceptance,
    ))
}

/// Refuses a key that is disabled.
fn active(holder: &KeyHolder) -> Result<(), AppError> {
    if holder.key.state == KeyState::Active {
        Ok(())
    } else {
        Err(unauthenticated("the access key is disabled"))
    }
}

/// Refuses a call the key's user may not make: no programmatic access, or a policy that does not
/// allow it.
fn allowed(holder: &KeyHolder, method: &Method, path: &str) -> Result<(), AppError> {
    if holder.programmatic_access && holder.policy.allows(method.as_str(), path) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "the access key's policy ({}) does not allow {method} {path}",
            holder.policy
        )))
    }
}

/// A signed request that checked out, and what remains: whether its signature is new.
struct Acceptance {
    seen: Seen,
    access_key: String,
    signature: String,
    account_id: souk_core::ids::AccountId,
    last_used_at: Option<chrono::DateTime<Utc>>,
    now: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
}

impl Acceptance {
    /// Accepts the request if its signature is new (a replay is refused) and its key did not
    /// change meanwhile in a way that refuses it, and records the key's use.
    async fn settle(self, state: &AppState, attempt: &Attempt) -> Result<(), Refused> {
        let account_id = Some(self.account_id.clone());
        let refuse = |e: AppError| (e, Some(self.access_key.clone()), account_id.clone());
        let accepted = state
            .replays
            .accept(
                &state.store,
                self.seen,
                &self.access_key,
                &self.signature,
                self.now,
                self.until,
            )
            .await
            .map_err(|e| refuse(e.into()))?;
        match accepted {
            Accepted::New => {}
            Accepted::Replay => {
                return Err(refuse(unauthenticated(
                    "this signed request was already accepted once",
                )))
            }
            Accepted::Changed(None) => return Err(refuse(unauthenticated("unknown access key"))),
            Accepted::Changed(Some(now_held)) => {
                // Changed on another node while this read ran: what the key may do now
                // decides. (What its account may do, its roles and verification, the use case
                // decided as the account stood when the read began, as for any read that
                // overlaps a change.)
                active(&now_held).map_err(refuse)?;
                allowed(&now_held, &attempt.method, attempt.uri.path()).map_err(refuse)?;
            }
        }
        // Last use is shown to the minute; a key used within the last one is not written again
        // (on SQLite every write waits for the one writer).
        let recent = self
            .last_used_at
            .is_some_and(|t| self.now - t < chrono::Duration::minutes(1));
        if !recent {
            match state
                .store
                .touch_access_key(&self.access_key, self.now)
                .await
            {
                Ok(()) => state.replays.key_used(&self.access_key, self.now),
                Err(e) => tracing::warn!(error = %e, "could not record the key's last use"),
            }
        }
        Ok(())
    }
}

/// The caller a signed request proved (checked by [`check`]).
pub struct AccessKeyAuth;

impl Authenticator for AccessKeyAuth {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        _state: &'a AppState,
    ) -> Pin<Box<dyn Future<Output = AppResult<Option<Caller>>> + Send + 'a>> {
        Box::pin(async move { Ok(parts.extensions.get::<Signed>().map(|s| s.0.clone())) })
    }
}
