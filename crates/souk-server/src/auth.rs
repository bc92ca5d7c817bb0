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
use std::future::Future;
use std::pin::Pin;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "souk_session";

/// Hashes a password with argon2id, off the async threads.
pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::Internal(e.to_string()))
}

/// Checks a password against a stored hash. For an unknown e-mail (`None`) it hashes anyway, so
/// the answer takes as long and does not tell which e-mails have accounts.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(stored) => PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
        None => {
            let salt = SaltString::generate(&mut OsRng);
            let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
            false
        }
    })
    .await
    .unwrap_or(false)
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

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The session token sent with a request, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

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
            // Sessions expire in real time: a test clock moving months ahead must not log
            // people out.
            let account = state
                .store
                .session_account(&token_hash(&token), chrono::Utc::now())
                .await?
                .ok_or(AppError::Unauthenticated)?;
            Ok(Some(Caller {
                account,
                via: Via::Session,
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
