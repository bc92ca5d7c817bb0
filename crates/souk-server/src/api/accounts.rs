//! Sign-up, sessions, the caller's own account, and real-name verification with its review.

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Body;
use crate::SharedState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::accounts::{AccountKind, Role, VerificationDetails, VerificationState};
use souk_core::validate;
use souk_store::accounts::{AccountRow, NewAccount};
use utoipa::ToSchema;

/// Sign-up details.
#[derive(Deserialize, ToSchema)]
pub struct SignUp {
    /// `individual` or `enterprise`.
    pub kind: String,
    pub name: String,
    pub email: String,
    /// 10 to 128 characters.
    pub password: String,
}

/// Log-in details.
#[derive(Deserialize, ToSchema)]
pub struct LogIn {
    pub email: String,
    pub password: String,
}

/// Real-name details: individuals give `id_number`; enterprises `company_name` and
/// `registration_number`.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct VerificationInput {
    pub legal_name: String,
    pub phone: String,
    pub id_number: Option<String>,
    pub company_name: Option<String>,
    pub registration_number: Option<String>,
}

/// Where verification stands.
#[derive(Serialize, ToSchema)]
pub struct VerificationView {
    /// `unverified`, `pending`, `verified` or `rejected`.
    pub state: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    /// What was submitted.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An account as its owner (or a reviewer) sees it.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    /// `individual` or `enterprise`.
    pub kind: String,
    pub name: String,
    pub email: String,
    /// Operator roles, empty for buyers and sellers.
    pub roles: Vec<String>,
    pub verification: VerificationView,
    pub created_at: DateTime<Utc>,
}

impl From<&AccountRow> for AccountView {
    fn from(a: &AccountRow) -> Self {
        AccountView {
            id: a.id.clone(),
            kind: a.kind.clone(),
            name: a.name.clone(),
            email: a.email.clone(),
            roles: a.roles().iter().map(|r| r.as_str().to_owned()).collect(),
            verification: VerificationView {
                state: a.verification_state.clone(),
                reason: a.verification_reason.clone(),
                submitted_at: a.verification_submitted_at.map(super::time),
                decided_at: a.verification_decided_at.map(super::time),
                details: a
                    .verification_details
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok()),
            },
            created_at: super::time(a.created_at),
        }
    }
}

/// A reviewer's decision.
#[derive(Deserialize, ToSchema)]
pub struct Decision {
    /// `true` approves, `false` rejects.
    pub approve: bool,
    /// Required when rejecting.
    pub reason: Option<String>,
}

impl Decision {
    /// The validated reason: required for a rejection.
    pub fn reason(&self) -> ApiResult<Option<String>> {
        match (&self.reason, self.approve) {
            (Some(r), _) if !r.trim().is_empty() => Ok(Some(validate::text("reason", r, 1000)?)),
            (_, false) => Err(ApiError::invalid("reason", "a rejection needs a reason")),
            _ => Ok(None),
        }
    }
}

async fn start_session(
    state: &SharedState,
    peer: &crate::client::Peer,
    account: &AccountRow,
    status: StatusCode,
) -> ApiResult<Response> {
    let (token, hash) = auth::new_session_token();
    let now = Utc::now();
    crate::sessions::sweep_account(state, &account.id, now).await;
    state
        .store
        .create_session(
            &hash,
            &account.id,
            now,
            souk_core::clock::add(now, state.settings.session_ttl),
        )
        .await?;
    let cookie = auth::session_cookie(&token, state.settings.session_ttl.num_seconds(), peer.https);
    Ok((
        status,
        [(header::SET_COOKIE, cookie)],
        Json(AccountView::from(account)),
    )
        .into_response())
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = SignUp,
    responses((status = 201, body = AccountView, description = "Created and logged in (session cookie set)"),
              (status = 409, body = Problem, description = "E-mail already registered"),
              (status = 422, body = Problem, description = "Invalid input"),
              (status = 429, body = Problem, description = "Too many sign-ups from this address; see Retry-After"),
              (status = 503, body = Problem, description = "Busy; see Retry-After")))]
pub async fn sign_up(
    State(state): State<SharedState>,
    peer: crate::client::Peer,
    Body(input): Body<SignUp>,
) -> ApiResult<Response> {
    state.throttle.sign_up(&peer)?;
    let kind: AccountKind = input
        .kind
        .parse()
        .map_err(|_| ApiError::invalid("kind", "must be \"individual\" or \"enterprise\""))?;
    let name = validate::text("name", &input.name, 100)?;
    let email = validate::email("email", &input.email)?;
    validate::password("password", &input.password)?;
    let hash = state.throttle.hash_password(input.password).await?;
    let account = state
        .store
        .create_account(
            NewAccount {
                kind: kind.as_str(),
                name: &name,
                email: &email,
                password_hash: &hash,
                roles: "",
            },
            state.now(),
        )
        .await?;
    start_session(&state, &peer, &account, StatusCode::CREATED).await
}

/// Logs in with e-mail and password; sets the session cookie.
#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = LogIn,
    responses((status = 200, body = AccountView), (status = 401, body = Problem),
              (status = 429, body = Problem, description = "Too many attempts; see Retry-After"),
              (status = 503, body = Problem, description = "Busy; see Retry-After")))]
pub async fn log_in(
    State(state): State<SharedState>,
    peer: crate::client::Peer,
    Body(input): Body<LogIn>,
) -> ApiResult<Response> {
    let email = input.email.trim().to_lowercase();
    state.throttle.log_in(&peer, &email)?;
    let account = state.store.account_by_email(&email).await?;
    let ok = state
        .throttle
        .verify_password(
            input.password,
            account.as_ref().map(|a| a.password_hash.clone()),
        )
        .await?;
    match account {
        Some(a) if ok => start_session(&state, &peer, &a, StatusCode::OK).await,
        _ => {
            state.throttle.log_in_failed(&email);
            Err(ApiError::BadCredentials)
        }
    }
}

/// Logs out.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "accounts", responses((status = 204)))]
pub async fn log_out(
    State(state): State<SharedState>,
    peer: crate::client::Peer,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    if let Some(token) = auth::session_token(&headers) {
        state
            .store
            .delete_session(&auth::token_hash(&token))
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::clear_cookie(peer.https))],
    )
        .into_response())
}

/// The logged-in account.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", responses((status = 200, body = AccountView), (status = 401, body = Problem)))]
pub async fn me(caller: Caller) -> Json<AccountView> {
    Json(AccountView::from(&caller.0))
}

/// Submits (or, after a rejection, resubmits) real-name verification.
#[utoipa::path(post, path = "/v1/me/verification", tag = "accounts", request_body = VerificationInput,
    responses((status = 202, body = AccountView, description = "Waiting for a reviewer"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn submit_verification(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<VerificationInput>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let kind: AccountKind = souk_store::parse(&caller.0.kind)?;
    let current: VerificationState = souk_store::parse(&caller.0.verification_state)?;
    let next = current.submit()?;
    let details = VerificationDetails {
        legal_name: input.legal_name,
        id_number: input.id_number,
        company_name: input.company_name,
        registration_number: input.registration_number,
        phone: input.phone,
    }
    .validated(kind)?;
    let json = serde_json::to_string(&details).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .submit_verification(
            caller.id(),
            current.as_str(),
            next.as_str(),
            &json,
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AccountView::from(&state.store.account(caller.id()).await?)),
    ))
}

/// Verifications waiting for a reviewer, oldest first (role `reviewer`).
#[utoipa::path(get, path = "/v1/operator/verifications", tag = "operator",
    responses((status = 200, body = Vec<AccountView>), (status = 403, body = Problem)))]
pub async fn verification_queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AccountView>>> {
    caller.require(Role::Reviewer)?;
    Ok(Json(
        state
            .store
            .pending_verifications(200)
            .await?
            .iter()
            .map(AccountView::from)
            .collect(),
    ))
}

/// Approves or rejects a pending verification (role `reviewer`).
#[utoipa::path(post, path = "/v1/operator/verifications/{account_id}/decision", tag = "operator", request_body = Decision,
    params(("account_id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn decide_verification(
    State(state): State<SharedState>,
    caller: Caller,
    Path(account_id): Path<String>,
    Body(d): Body<Decision>,
) -> ApiResult<Json<AccountView>> {
    caller.require(Role::Reviewer)?;
    let reason = d.reason()?;
    let account = state.store.account(&account_id).await?;
    let current: VerificationState = souk_store::parse(&account.verification_state)?;
    let next = current.decide(d.approve)?;
    state
        .store
        .decide_verification(
            &account_id,
            next.as_str(),
            reason.as_deref(),
            caller.id(),
            state.now(),
        )
        .await?;
    Ok(Json(AccountView::from(
        &state.store.account(&account_id).await?,
    )))
}
