//! Sign-up, sessions, the caller's own account, and real-name verification with its review.

use crate::app::accounts::{self, Decision, LogIn, Session, SignUp, VerificationInput};
use crate::app::schema;
use crate::app::Caller;
use crate::auth;
use crate::client::Peer;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path};
use crate::SharedState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::accounts::Account;
use utoipa::ToSchema;

/// Where verification stands.
#[derive(Serialize, ToSchema)]
pub struct VerificationView {
    #[schema(value_type = schema::Verification)]
    pub state: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    /// What was submitted.
    pub details: Option<VerificationInput>,
}

/// An account as its owner (or a reviewer) sees it.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    #[schema(value_type = schema::Kind)]
    pub kind: String,
    pub name: String,
    pub email: String,
    /// Operator roles, empty for buyers and sellers.
    #[schema(value_type = Vec<schema::OperatorRole>)]
    pub roles: Vec<String>,
    pub verification: VerificationView,
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        let v = &a.verification;
        AccountView {
            id: a.id.to_string(),
            kind: a.kind.as_str().to_owned(),
            name: a.name.clone(),
            email: a.email.clone(),
            roles: a.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            verification: VerificationView {
                state: v.state.as_str().to_owned(),
                reason: v.reason.clone(),
                submitted_at: v.submitted_at,
                decided_at: v.decided_at,
                details: v.details.as_ref().map(|d| VerificationInput {
                    legal_name: d.legal_name.clone(),
                    phone: d.phone.clone(),
                    id_number: d.id_number.clone(),
                    company_name: d.company_name.clone(),
                    registration_number: d.registration_number.clone(),
                }),
            },
            created_at: a.created_at,
        }
    }
}

fn with_cookie(state: &SharedState, peer: &Peer, session: Session, status: StatusCode) -> Response {
    let cookie = auth::session_cookie(
        &session.token,
        state.settings.session_ttl.num_seconds(),
        peer.https,
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Json(AccountView::from(&session.account)),
    )
        .into_response()
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = SignUp,
    responses((status = 201, body = AccountView, description = "Created and logged in (session cookie set)"),
              (status = 409, body = Problem, description = "E-mail already registered")))]
pub async fn sign_up(
    State(state): State<SharedState>,
    peer: Peer,
    Body(input): Body<SignUp>,
) -> AppResult<Response> {
    let session = accounts::sign_up(&state, &peer, input).await?;
    Ok(with_cookie(&state, &peer, session, StatusCode::CREATED))
}

/// Logs in with e-mail and password; sets the session cookie.
#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = LogIn,
    responses((status = 200, body = AccountView, description = "Logged in (session cookie set)"), (status = 401, body = Problem, description = "Wrong e-mail or password")))]
pub async fn log_in(
    State(state): State<SharedState>,
    peer: Peer,
    Body(input): Body<LogIn>,
) -> AppResult<Response> {
    let session = accounts::log_in(&state, &peer, input).await?;
    Ok(with_cookie(&state, &peer, session, StatusCode::OK))
}

/// Logs out.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "accounts", responses((status = 204)))]
pub async fn log_out(
    State(state): State<SharedState>,
    peer: Peer,
    headers: HeaderMap,
) -> AppResult<Response> {
    if let Some(token) = auth::session_token(&headers) {
        accounts::log_out(&state, &token).await?;
    }
    Ok(cleared(&peer))
}

/// Logs out everywhere: ends every session of the caller's account, this one included.
#[utoipa::path(delete, path = "/v1/sessions", tag = "accounts",
    responses((status = 204, description = "Every session of the account ended"), (status = 401, body = Problem)))]
pub async fn log_out_everywhere(
    State(state): State<SharedState>,
    peer: Peer,
    caller: Caller,
) -> AppResult<Response> {
    accounts::log_out_everywhere(&state, &caller).await?;
    Ok(cleared(&peer))
}

fn cleared(peer: &Peer) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::clear_cookie(peer.https))],
    )
        .into_response()
}

/// The logged-in account.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", responses((status = 200, body = AccountView), (status = 401, body = Problem)))]
pub async fn me(caller: Caller) -> Json<AccountView> {
    Json(AccountView::from(&caller.account))
}

/// Submits (or, after a rejection, resubmits) real-name verification.
#[utoipa::path(post, path = "/v1/me/verification", tag = "accounts", request_body = VerificationInput,
    responses((status = 202, body = AccountView, description = "Waiting for a reviewer"),
              (status = 409, body = Problem, description = "Already pending or verified"),
              (status = 422, body = Problem, description = "Invalid input, or details that do not fit the account's kind")))]
pub async fn submit_verification(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<VerificationInput>,
) -> AppResult<(StatusCode, Json<AccountView>)> {
    let account = accounts::submit_verification(&state, &caller, input).await?;
    Ok((StatusCode::ACCEPTED, Json(AccountView::from(&account))))
}

/// Verifications waiting for a reviewer, oldest first (role `reviewer`).
#[utoipa::path(get, path = "/v1/operator/verifications", tag = "operator",
    responses((status = 200, body = Vec<AccountView>), (status = 403, body = Problem, description = "Needs the operator role `reviewer`")))]
pub async fn verification_queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<AccountView>>> {
    let queue = accounts::verification_queue(&state, &caller).await?;
    Ok(Json(queue.iter().map(AccountView::from).collect()))
}

/// Approves or rejects a pending verification (role `reviewer`; not one's own).
#[utoipa::path(post, path = "/v1/operator/verifications/{account_id}/decision", tag = "operator", request_body = Decision,
    params(("account_id" = String, Path)),
    responses((status = 200, body = AccountView),
              (status = 403, body = Problem, description = "Needs the operator role `reviewer`, and not for one's own account"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "Not pending, or it changed meanwhile")))]
pub async fn decide_verification(
    State(state): State<SharedState>,
    caller: Caller,
    Path(account_id): Path<String>,
    Body(d): Body<Decision>,
) -> AppResult<Json<AccountView>> {
    let account = accounts::decide_verification(&state, &caller, &account_id.into(), d).await?;
    Ok(Json(AccountView::from(&account)))
}
