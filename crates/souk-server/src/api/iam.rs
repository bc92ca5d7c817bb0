//! IAM users and access keys of the caller's account, and the audit of refused signed requests.

use super::PageParams;
use crate::app::iam::{self, NewKey, PolicyInput, UserInput, UserWithKeys};
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::iam::{AccessKey, IamUser, Refusal};
use utoipa::ToSchema;

/// An access key; its secret is shown once, when it is made.
#[derive(Serialize, ToSchema)]
pub struct AccessKeyView {
    pub access_key: String,
    /// `active` or `disabled`.
    #[schema(value_type = crate::app::schema::AccessKeyState)]
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&AccessKey> for AccessKeyView {
    fn from(k: &AccessKey) -> Self {
        AccessKeyView {
            access_key: k.access_key.clone(),
            state: k.state.as_str().to_owned(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// An IAM user with its keys.
#[derive(Serialize, ToSchema)]
pub struct IamUserView {
    pub id: String,
    pub name: String,
    pub console_access: bool,
    pub programmatic_access: bool,
    #[schema(value_type = crate::app::schema::IamPolicy)]
    pub policy: String,
    pub created_at: DateTime<Utc>,
    pub access_keys: Vec<AccessKeyView>,
}

fn user_view(u: &IamUser, keys: &[AccessKey]) -> IamUserView {
    IamUserView {
        id: u.id.clone(),
        name: u.name.clone(),
        console_access: u.console_access,
        programmatic_access: u.programmatic_access,
        policy: u.policy.as_str().to_owned(),
        created_at: u.created_at,
        access_keys: keys.iter().map(Into::into).collect(),
    }
}

/// A key just made, with its secret: store it now, it is not shown again.
#[derive(Serialize, ToSchema)]
pub struct NewKeyView {
    pub access_key: String,
    pub secret_key: String,
    pub created_at: DateTime<Utc>,
}

impl From<NewKey> for NewKeyView {
    fn from(k: NewKey) -> Self {
        NewKeyView {
            access_key: k.key.access_key,
            secret_key: k.secret,
            created_at: k.key.created_at,
        }
    }
}

/// Creates an IAM user of the caller's account (with a session, not with a key).
#[utoipa::path(operation_id = "create_iam_user", post, path = "/v1/iam/users", tag = "iam", request_body = UserInput,
    responses((status = 201, body = IamUserView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<UserInput>,
) -> AppResult<(StatusCode, Json<IamUserView>)> {
    let user = iam::create_user(&state, &caller, input).await?;
    Ok((StatusCode::CREATED, Json(user_view(&user, &[]))))
}

/// The caller's IAM users with their access keys.
#[utoipa::path(operation_id = "list_iam_users", get, path = "/v1/iam/users", tag = "iam",
    responses((status = 200, body = Vec<IamUserView>), (status = 403, body = Problem)))]
pub async fn users(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<IamUserView>>> {
    let all = iam::users(&state, &caller).await?;
    Ok(Json(
        all.iter()
            .map(|UserWithKeys { user, keys }| user_view(user, keys))
            .collect(),
    ))
}

/// Gives one of the caller's IAM users another policy; its keys and console sessions act under
/// it from their next request.
#[utoipa::path(operation_id = "set_iam_user_policy", patch, path = "/v1/iam/users/{user_id}", tag = "iam", params(("user_id" = String, Path)), request_body = PolicyInput,
    responses((status = 200, body = IamUserView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_policy(
    State(state): State<SharedState>,
    caller: Caller,
    Path(user_id): Path<String>,
    Body(input): Body<PolicyInput>,
) -> AppResult<Json<IamUserView>> {
    let user = iam::set_policy(&state, &caller, &user_id, input).await?;
    let keys = state.store.access_keys_of(&user.id).await?;
    Ok(Json(user_view(&user, &keys)))
}

/// Deletes one of the caller's IAM users with its access keys and console sessions.
#[utoipa::path(operation_id = "delete_iam_user", delete, path = "/v1/iam/users/{user_id}", tag = "iam", params(("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_user(
    State(state): State<SharedState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> AppResult<StatusCode> {
    iam::delete_user(&state, &caller, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes an access key for a user with programmatic access (two a user at most); the secret is
/// in this answer only.
#[utoipa::path(operation_id = "create_access_key", post, path = "/v1/iam/users/{user_id}/access-keys", tag = "iam", params(("user_id" = String, Path)),
    responses((status = 201, body = NewKeyView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> AppResult<(StatusCode, Json<NewKeyView>)> {
    let key = iam::create_key(&state, &caller, &user_id).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// Disables one of the caller's keys: its signatures are refused from now on.
#[utoipa::path(operation_id = "disable_access_key", post, path = "/v1/iam/access-keys/{access_key}/disable", tag = "iam", params(("access_key" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn disable_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(access_key): Path<String>,
) -> AppResult<StatusCode> {
    iam::set_key_enabled(&state, &caller, &access_key, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables one of the caller's keys again.
#[utoipa::path(operation_id = "enable_access_key", post, path = "/v1/iam/access-keys/{access_key}/enable", tag = "iam", params(("access_key" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn enable_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(access_key): Path<String>,
) -> AppResult<StatusCode> {
    iam::set_key_enabled(&state, &caller, &access_key, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one of the caller's keys.
#[utoipa::path(operation_id = "delete_access_key", delete, path = "/v1/iam/access-keys/{access_key}", tag = "iam", params(("access_key" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(access_key): Path<String>,
) -> AppResult<StatusCode> {
    iam::delete_key(&state, &caller, &access_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A refused signed request.
#[derive(Serialize, ToSchema)]
pub struct RefusalView {
    pub at: DateTime<Utc>,
    /// The client's address, as souk saw it (after a trusted proxy's forwarding header).
    pub client_address: Option<String>,
    pub access_key: Option<String>,
    pub account_id: Option<String>,
    pub method: String,
    pub path: String,
    pub reason: String,
}

/// A page of refusals.
#[derive(Serialize, ToSchema)]
pub struct RefusalPage {
    pub items: Vec<RefusalView>,
    pub next_cursor: Option<String>,
}

/// Refused signed requests, newest first (role `operations` or `support`).
#[utoipa::path(operation_id = "signature_audit", get, path = "/v1/operator/audit", tag = "operator", params(PageParams),
    responses((status = 200, body = RefusalPage), (status = 403, body = Problem)))]
pub async fn audit(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<RefusalPage>> {
    let page = iam::audit(&state, &caller, p.into()).await?;
    Ok(Json(RefusalPage {
        items: page
            .items
            .into_iter()
            .map(|r: Refusal| RefusalView {
                at: r.at,
                client_address: r.client_address,
                access_key: r.access_key,
                account_id: r.account_id.map(|a| a.to_string()),
                method: r.method,
                path: r.path,
                reason: r.reason,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
