//! Every error the application layer can answer, one catalogue for every front door. The API
//! answers it as RFC 9457 `application/problem+json` with a stable `type` per kind and, for bad
//! input, the `field` at fault; the command line prints its detail. Mapped here and nowhere else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use souk_store::Constraint;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:souk:problem:validation`.
    #[serde(rename = "type")]
    #[schema(format = "uri", example = "urn:souk:problem:validation")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time, for people.
    pub detail: String,
    /// The input field at fault, as the API spells it (`plans[0].monthly_price`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    /// A signed request that does not prove its access key: why, in the detail.
    #[error("{0}")]
    BadSignature(String),
    /// Logged in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Not something an access key may do at all, whatever its policy (managing IAM): answered
    /// like [`AppError::Forbidden`], and audited with the key's other refusals.
    #[error("{0}")]
    NotForKeys(String),
    /// An operator acting on their own case (their verification, their product, their balance).
    #[error("{0}")]
    OwnCase(String),
    /// The path exists, but not with this method.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// Nothing here (or not yours).
    #[error("{0} not found")]
    NotFound(String),
    /// The state machine refused the step in the state the subject is in.
    #[error("{0}")]
    Refused(souk_core::Refused),
    /// The subject changed while the request ran; reading it again and retrying may succeed.
    #[error("it changed while this request ran; read it again and retry")]
    Stale,
    /// Sign-up with an e-mail that has an account.
    #[error("an account with this e-mail already exists")]
    DuplicateEmail,
    /// An `Idempotency-Key` used before for a different request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The plan or product is not for sale (not listed, or the plan was withdrawn).
    #[error("this plan is not on sale")]
    NotOnSale,
    /// The buyer already took this product's free trial.
    #[error("this account already took the free trial of this product; buy a plan instead")]
    TrialUsed,
    /// The balance does not cover the price.
    #[error("the price is {price}, the balance is {available}")]
    InsufficientBalance { price: String, available: String },
    /// Some other unique rule or state clash.
    #[error("{0}")]
    Conflict(String),
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

/// Shorthand for use-case and handler results.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status, the stable kind and the title of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use AppError::*;
        match self {
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid input",
            ),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            BadCredentials => (
                StatusCode::UNAUTHORIZED,
                "bad-credentials",
                "Invalid credentials",
            ),
            BadSignature(_) => (
                StatusCode::UNAUTHORIZED,
                "bad-signature",
                "Signature refused",
            ),
            Forbidden(_) | NotForKeys(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            OwnCase(_) => (
                StatusCode::FORBIDDEN,
                "own-case",
                "Not allowed on your own case",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Refused(_) => (
                StatusCode::CONFLICT,
                "transition-refused",
                "Not possible in the current state",
            ),
            Stale => (StatusCode::CONFLICT, "stale-write", "Changed concurrently"),
            DuplicateEmail => (
                StatusCode::CONFLICT,
                "duplicate-email",
                "E-mail already registered",
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            NotOnSale => (StatusCode::CONFLICT, "not-on-sale", "Not on sale"),
            TrialUsed => (StatusCode::CONFLICT, "trial-used", "Trial already taken"),
            InsufficientBalance { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient-balance",
                "Insufficient balance",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many attempts",
            ),
            Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy"),
            CrossSite(_) => (
                StatusCode::FORBIDDEN,
                "cross-site",
                "Cross-site request refused",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The input field at fault, if there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Validation { field, .. } => Some(field),
            AppError::IdempotencyKeyReused => Some("Idempotency-Key"),
            _ => None,
        }
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> String {
        match self {
            AppError::Validation { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.parts();
        Problem {
            kind: format!("urn:souk:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            field: self.field().map(str::to_owned),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
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
            AppError::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            AppError::Busy => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let AppError::Forbidden(why) | AppError::NotForKeys(why) = self {
            res.extensions_mut().insert(Refused(why));
        }
        res
    }
}

/// Why a use case refused its caller (a 403: [`AppError::Forbidden`], [`AppError::NotForKeys`]),
/// kept on the response so the layer of signed requests audits every refusal of a key, whether
/// the key or its account lacked the permission.
#[derive(Clone, Debug)]
pub struct Refused(pub String);

impl From<souk_core::Error> for AppError {
    fn from(e: souk_core::Error) -> Self {
        match e {
            souk_core::Error::Invalid { field, message } => AppError::Validation { field, message },
            souk_core::Error::Refused(r) => AppError::Refused(r),
        }
    }
}

impl From<souk_store::Error> for AppError {
    fn from(e: souk_store::Error) -> Self {
        use souk_store::Error as E;
        match e {
            E::NotFound(what) => AppError::NotFound(what.to_owned()),
            E::Duplicate(Constraint::AccountEmail) => AppError::DuplicateEmail,
            E::Duplicate(Constraint::OrderIdempotencyKey | Constraint::EntryIdempotencyKey) => {
                AppError::IdempotencyKeyReused
            }
            E::Duplicate(other) => AppError::Conflict(format!("already exists ({other:?})")),
            E::Stale => AppError::Stale,
            E::KeptElsewhere => AppError::Busy,
            // Callers that debit map this with the price; reaching here is a bug.
            E::InsufficientBalance { available_minor } => {
                AppError::Internal(format!("unexpected short balance ({available_minor})"))
            }
            E::Unstorable => {
                AppError::BadRequest("text may not contain the NUL character (U+0000)".into())
            }
            E::Corrupt(msg) | E::Migration(msg) => AppError::Internal(msg),
            E::Database(err) => AppError::Internal(err.to_string()),
        }
    }
}

impl From<crate::crypto::OpenError> for AppError {
    fn from(e: crate::crypto::OpenError) -> Self {
        AppError::Internal(e.to_string())
    }
}
