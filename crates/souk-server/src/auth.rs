//! Who is calling: passwords (argon2), session tokens and cookies, and the pluggable
//! authentication that turns a request into the application layer's one [`Caller`] type.

use crate::app::{Caller, Via};
use crate::error::{AppError, AppResult};
use crate::{AppState, SharedState};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use souk_store::accounts::LiveSession;
use std::future::Future;
use std::pin::Pin;

/// The session cookie's name over plain http.
pub const SESSION_COOKIE: &str = "souk_session";

/// The session cookie's name over https: the `__Host-` prefix makes browsers accept it only
/// `Secure`, for this host alone (no `Domain`) and for every path, so a sibling subdomain or a
/// plain-http page cannot plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-souk_session";

/// Hashes a password with argon2id, on the calling thread (see [`crate::throttle::Throttle`]
/// for the limited way to call it from a request).
pub fn hash_now(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Checks a password against a stored hash, on the calling thread. For an unknown e-mail
/// (`None`) it hashes anyway, so the answer takes as long and does not tell which e-mails have
/// accounts.
pub fn verify_now(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(stored) => PasswordHash::new(stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
        None => {
            let salt = SaltString::generate(&mut OsRng);
            let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
            false
        }
    }
}

/// Hashes a password with argon2id, off the async threads (command line and tests; requests go
/// through the throttle's hashing limit).
pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
}

/// A new random session token and the hash under which it is stored.
pub fn new_session_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value that starts a session; `secure` when the client uses https.
pub fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    if secure {
        format!("{SECURE_SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}; Secure")
    } else {
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    if secure {
        format!("{SECURE_SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure")
    } else {
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    }
}

/// The session token sent with a request, if any (the `__Host-` cookie first).
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    let cookies = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
    };
    [SECURE_SESSION_COOKIE, SESSION_COOKIE]
        .into_iter()
        .find_map(|name| cookies().find(|(k, _)| *k == name))
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// A live session (its account, and its IAM user when one signed in): not past its lifetime,
/// not idle longer than the idle timeout. Marks the session used at most once a minute, so most
/// requests only read.
pub async fn live_session(state: &AppState, token: &str) -> AppResult<Option<LiveSession>> {
    // Sessions expire in real time: a test clock moving months ahead must not log people out.
    let now = chrono::Utc::now();
    let hash = token_hash(token);
    let idle_cutoff = souk_core::clock::add(now, -state.settings.session_idle);
    let Some(session) = state.store.live_session(&hash, now, idle_cutoff).await? else {
        return Ok(None);
    };
    if now - session.seen_at >= chrono::Duration::minutes(1) {
        state.store.touch_session(&hash, now).await?;
    }
    Ok(Some(session))
}

/// A session already read for this request (its token, and what it was), so the request's
/// authentication does not read it again.
#[derive(Clone)]
pub struct SessionRead(pub String, pub Option<LiveSession>);

/// One way of proving who is calling. Each is asked in turn; the first that recognises the
/// request answers (a session cookie today; access-key signatures plug in beside it).
pub trait Authenticator: Send + Sync {
    /// The caller this request proves, `None` when it carries nothing this scheme reads, or an
    /// error when it carries something this scheme refuses.
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        state: &'a AppState,
    ) -> Pin<Box<dyn Future<Output = AppResult<Option<Caller>>> + Send + 'a>>;
}

/// The browser session cookie.
pub struct SessionCookie;

impl Authenticator for SessionCookie {
    fn authenticate<'a>(
        &'a self,
        parts: &'a Parts,
        state: &'a AppState,
    ) -> Pin<Box<dyn Future<Output = AppResult<Option<Caller>>> + Send + 'a>> {
        Box::pin(async move {
            let Some(token) = session_token(&parts.headers) else {
                return Ok(None);
            };
            let session = match parts.extensions.get::<SessionRead>() {
                Some(SessionRead(read, session)) if *read == token => session.clone(),
                _ => live_session(state, &token).await?,
            }
            .ok_or(AppError::Unauthenticated)?;
            let via = match session.iam_user {
                None => Via::Session,
                Some(user) => {
                    // An IAM user's session does what its policy allows, as its keys would (the
                    // pages are guarded before their handlers, see `web::console_policy`).
                    let (method, path) = (parts.method.as_str(), parts.uri.path());
                    if !user.policy.allows(method, path) {
                        return Err(AppError::Forbidden(format!(
                            "the IAM user {}'s policy ({}) does not allow {method} {path}",
                            user.name, user.policy
                        )));
                    }
                    Via::ConsoleUser {
                        user: user.name,
                        policy: user.policy,
                    }
                }
            };
            Ok(Some(Caller {
                account: session.account,
                via,
            }))
        })
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> AppResult<Self> {
        for scheme in &state.authenticators {
            if let Some(caller) = scheme.authenticate(parts, state).await? {
                return Ok(caller);
            }
        }
        Err(AppError::Unauthenticated)
    }
}
