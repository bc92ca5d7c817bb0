//! Applying to become a merchant, and the operators' decision.

use super::accounts::Decision;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Body;
use crate::SharedState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::accounts::{AccountKind, Role, VerificationState};
use souk_core::merchants::{self, MerchantApplication, MerchantState};
use souk_store::merchants::MerchantRow;
use utoipa::ToSchema;

/// What a company tells the marketplace to become a merchant.
#[derive(Deserialize, ToSchema)]
pub struct ApplicationInput {
    pub company_name: String,
    pub support_email: String,
    pub support_phone: String,
    /// Business-information certification: the registered business licence number.
    pub business_licence_number: String,
    #[serde(default)]
    pub description: String,
}

/// A merchant, or an application to become one.
#[derive(Serialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub account_id: String,
    /// `pending`, `approved` or `rejected`.
    pub state: String,
    pub company_name: String,
    pub support_email: String,
    pub support_phone: String,
    pub business_licence_number: String,
    pub description: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<MerchantRow> for MerchantView {
    fn from(m: MerchantRow) -> Self {
        MerchantView {
            id: m.id,
            account_id: m.account_id,
            state: m.state,
            company_name: m.company_name,
            support_email: m.support_email,
            support_phone: m.support_phone,
            business_licence_number: m.business_licence_number,
            description: m.description,
            reason: m.reason,
            submitted_at: super::time(m.submitted_at),
            decided_at: m.decided_at.map(super::time),
        }
    }
}

/// Applies to become a merchant (enterprise-verified accounts), or applies again after a rejection.
#[utoipa::path(operation_id = "apply_as_merchant", post, path = "/v1/merchant", tag = "merchants", request_body = ApplicationInput,
    responses((status = 201, body = MerchantView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn apply(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<ApplicationInput>,
) -> ApiResult<(StatusCode, Json<MerchantView>)> {
    let kind: AccountKind = souk_store::parse(&caller.0.kind)?;
    let verification: VerificationState = souk_store::parse(&caller.0.verification_state)?;
    merchants::may_apply(kind, verification)?;
    let app = MerchantApplication {
        company_name: input.company_name,
        support_email: input.support_email,
        support_phone: input.support_phone,
        business_licence_number: input.business_licence_number,
        description: input.description,
    }
    .validated()?;
    let current = state.store.merchant_of(caller.id()).await?;
    let current_state = current
        .as_ref()
        .map(|m| souk_store::parse::<MerchantState>(&m.state))
        .transpose()?;
    MerchantState::apply(current_state)?;
    let row = state
        .store
        .apply_merchant(
            caller.id(),
            current_state.map(|s| s.as_str()),
            &app,
            state.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The caller's merchant record.
#[utoipa::path(operation_id = "my_merchant", get, path = "/v1/merchant", tag = "merchants", responses((status = 200, body = MerchantView), (status = 404, body = Problem)))]
pub async fn mine(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<MerchantView>> {
    let row = state
        .store
        .merchant_of(caller.id())
        .await?
        .ok_or(ApiError::NotFound("merchant application".into()))?;
    Ok(Json(row.into()))
}

/// Merchant applications waiting for a decision (role `operations`).
#[utoipa::path(operation_id = "merchant_queue", get, path = "/v1/operator/merchants", tag = "operator", responses((status = 200, body = Vec<MerchantView>), (status = 403, body = Problem)))]
pub async fn queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<MerchantView>>> {
    caller.require(Role::Operations)?;
    Ok(Json(
        state
            .store
            .pending_merchants(200)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Approves or rejects a merchant application (role `operations`).
#[utoipa::path(operation_id = "decide_merchant", post, path = "/v1/operator/merchants/{merchant_id}/decision", tag = "operator", request_body = Decision,
    params(("merchant_id" = String, Path)),
    responses((status = 200, body = MerchantView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn decide(
    State(state): State<SharedState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    Body(d): Body<Decision>,
) -> ApiResult<Json<MerchantView>> {
    caller.require(Role::Operations)?;
    let reason = d.reason()?;
    let current: MerchantState =
        souk_store::parse(&state.store.merchant(&merchant_id).await?.state)?;
    let next = current.decide(d.approve)?;
    Ok(Json(
        state
            .store
            .decide_merchant(
                &merchant_id,
                next.as_str(),
                reason.as_deref(),
                caller.id(),
                state.now(),
            )
            .await?
            .into(),
    ))
}

/// The caller's merchant, if approved; selling endpoints use this.
pub async fn approved_merchant(state: &SharedState, caller: &Caller) -> ApiResult<MerchantRow> {
    match state.store.merchant_of(caller.id()).await? {
        Some(m) if m.state == MerchantState::Approved.as_str() => Ok(m),
        Some(m) => Err(ApiError::Forbidden(format!(
            "the merchant application is {}; only approved merchants can sell",
            m.state
        ))),
        None => Err(ApiError::Forbidden(
            "apply to become a merchant first".into(),
        )),
    }
}
