//! Access to operational endpoints: `/metrics` and the test clock answer only a caller with the
//! configured bearer token or an operator's session (role `operations`), never anonymous ones.

use crate::error::AppError;
use crate::SharedState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use souk_core::accounts::Role;

/// May read `/metrics` (token `metrics_token`).
pub struct MetricsAccess;

/// May read and move the test clock (token `test_clock_token`).
pub struct ClockAccess;

impl FromRequestParts<SharedState> for MetricsAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, AppError> {
        allowed(parts, state, state.settings.metrics_token.as_deref()).await?;
        Ok(MetricsAccess)
    }
}

impl FromRequestParts<SharedState> for ClockAccess {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, AppError> {
        allowed(parts, state, state.settings.test_clock_token.as_deref()).await?;
        Ok(ClockAccess)
    }
}

async fn allowed(parts: &Parts, state: &SharedState, token: Option<&str>) -> Result<(), AppError> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let (Some(expected), Some(given)) = (token, bearer) {
        // Compared as digests, so the time taken says nothing about how much of it matched.
        if Sha256::digest(expected.as_bytes()) == Sha256::digest(given.as_bytes()) {
            return Ok(());
        }
        return Err(AppError::Unauthenticated);
    }
    let Some(session) = crate::auth::session_token(&parts.headers) else {
        return Err(AppError::Unauthenticated);
    };
    let session = crate::auth::live_session(state, &session)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let full = session
        .iam_user
        .as_ref()
        .is_none_or(|u| u.policy == souk_core::iam::Policy::FullAccess);
    if full && session.account.has_role(Role::Operations) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "this needs the operator role operations or the access token".into(),
        ))
    }
}
