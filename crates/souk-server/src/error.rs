//! Every error the API answers, as RFC 9457 `application/problem+json` with a stable `type` per
//! kind and, for bad input, the `field` at fault. Mapped here and nowhere else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:souk:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong this time, for people.
    pub detail: String,
    /// The input field at fault, as the API spells it (`plans[0].monthly_price`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that parses but is not acceptable.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// Input that does not parse.
    #[error("{0}")]
    BadRequest(String),
    /// Not logged in (or the session ended).
    #[error("log in first")]
    Unauthenticated,
    /// Wrong e-mail or password.
    #[error("invalid e-mail or password")]
    BadCredentials,
    /// Logged in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The path exists, but not with this method.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// Nothing here (or not yours).
    #[error("{0} not found")]
    NotFound(String),
    /// The state does not allow it, or it clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The balance does not cover the price.
    #[error("the price is {price}, the balance is {available}")]
    InsufficientBalance { price: String, available: String },
    /// Too many attempts from this address or at this account; try again after the delay.
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// Too much work waiting (password hashing); try again shortly.
    #[error("souk is busy; try again in a moment")]
    Busy,
    /// A browser write that another site started (cross-site request forgery).
    #[error("{0}")]
    CrossSite(String),
    /// A bug or an outage; details are logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid input",
            ),
            ApiError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, "bad-request", "Malformed request")
            }
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            ApiError::BadCredentials => (
                StatusCode::UNAUTHORIZED,
                "bad-credentials",
                "Invalid credentials",
            ),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (
                StatusCode::CONFLICT,
                "conflict",
                "Not possible in the current state",
            ),
            ApiError::InsufficientBalance { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient-balance",
                "Insufficient balance",
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many attempts",
            ),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy"),
            ApiError::CrossSite(_) => (
                StatusCode::FORBIDDEN,
                "cross-site",
                "Cross-site request refused",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.parts();
        Problem {
            kind: format!("urn:souk:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: match self {
                ApiError::Validation { message, .. } => message.clone(),
                other => other.to_string(),
            },
            field: match self {
                ApiError::Validation { field, .. } => Some(field.clone()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            ApiError::Busy => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        res
    }
}

impl From<souk_core::Error> for ApiError {
    fn from(e: souk_core::Error) -> Self {
        match e {
            souk_core::Error::Invalid { field, message } => ApiError::Validation { field, message },
            souk_core::Error::Refused(r) => ApiError::Conflict(r.to_string()),
        }
    }
}

impl From<souk_store::Error> for ApiError {
    fn from(e: souk_store::Error) -> Self {
        use souk_store::Error as E;
        match e {
            E::NotFound(what) => ApiError::NotFound(what.to_owned()),
            E::Conflict(msg) => ApiError::Conflict(msg),
            E::InsufficientBalance { available_minor } => ApiError::InsufficientBalance {
                price: "more".into(),
                available: available_minor.to_string(),
            },
            E::Stale => ApiError::Conflict(
                "it changed while this request ran; read it again and retry".into(),
            ),
            E::Corrupt(msg) => ApiError::Internal(msg),
            E::Database(err) => ApiError::Internal(err.to_string()),
        }
    }
}

impl From<crate::crypto::OpenError> for ApiError {
    fn from(e: crate::crypto::OpenError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
