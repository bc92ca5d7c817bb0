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
use crate::{AppState, SharedState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use souk_core::iam::{KeyState, SIGNATURE_WINDOW_SECS};
use souk_protocol::aksk::{self, Authorization};
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
    match verify(&state, &attempt.peer, &parts, &authorization, &bytes).await {
        Ok(caller) => {
            let key = match &caller.via {
                Via::AccessKey { access_key, .. } => Some(access_key.clone()),
                _ => None,
            };
            let account = caller.account.id.clone();
            parts.extensions.insert(Signed(caller));
            let res = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
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
        Err((error, key, account)) => {
            if !matches!(error, AppError::BadSignature(_) | AppError::Forbidden(_)) {
                // Not a refusal but a fault (the database, say): answered as what it is, neither
                // counted against the caller nor audited as the caller's mistake.
                return error.into_response();
            }
            let reason = error.detail();
            audit(&state, &attempt, reason, key, account)
                .await
                .unwrap_or_else(|| error.into_response())
        }
    }
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
) -> Result<Caller, Refused> {
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
            .key_holder(&state.store, &auth.access_key, &auth.signature, until)
            .await
    };
    let (holder, seen) = match found {
        Ok(Some(h)) => h,
        Ok(None) => return Err(refuse(unauthenticated("unknown access key"), None)),
        Err(e) => return Err(refuse(e.into(), None)),
    };
    let key = &holder.key;
    let account_id = Some(key.account_id.clone());
    if key.state != KeyState::Active {
        return Err(refuse(
            unauthenticated("the access key is disabled"),
            account_id,
        ));
    }
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
    let policy = holder.policy;
    if !holder.programmatic_access || !policy.allows(parts.method.as_str(), parts.uri.path()) {
        return Err(refuse(
            AppError::Forbidden(format!(
                "the access key's policy ({policy}) does not allow {} {}",
                parts.method,
                parts.uri.path()
            )),
            account_id,
        ));
    }
    let fresh = state
        .replays
        .accept(
            &state.store,
            seen,
            &key.access_key,
            &auth.signature,
            now,
            until,
        )
        .await;
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(
                unauthenticated("this signed request was already accepted once"),
                account_id,
            ))
        }
        Err(e) => return Err(refuse(e.into(), account_id)),
    }
    // Last use is shown to the minute; a key used within the last one is not written again (on
    // SQLite every write waits for the one writer).
    let recent = key
        .last_used_at
        .is_some_and(|t| now - t < chrono::Duration::minutes(1));
    if !recent {
        match state.store.touch_access_key(&key.access_key, now).await {
            Ok(()) => state.replays.key_used(&key.access_key, now),
            Err(e) => tracing::warn!(error = %e, "could not record the key's last use"),
        }
    }
    Ok(Caller {
        via: Via::AccessKey {
            access_key: holder.key.access_key,
            policy,
        },
        account: holder.account,
    })
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
