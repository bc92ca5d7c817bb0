//! Applying to become a merchant, and the operators' decision.

use crate::app::accounts::Decision;
use crate::app::merchants::{self, ApplicationInput};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path};
use crate::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::merchants::Merchant;
use utoipa::ToSchema;

/// A merchant, or an application to become one.
#[derive(Serialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub account_id: String,
    #[schema(value_type = schema::MerchantStatus)]
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

impl From<Merchant> for MerchantView {
    fn from(m: Merchant) -> Self {
        MerchantView {
            id: m.id.to_string(),
            account_id: m.account_id.to_string(),
            state: m.state.as_str().to_owned(),
            company_name: m.application.company_name,
            support_email: m.application.support_email,
            support_phone: m.application.support_phone,
            business_licence_number: m.application.business_licence_number,
            description: m.application.description,
            reason: m.reason,
            submitted_at: m.submitted_at,
            decided_at: m.decided_at,
        }
    }
}

/// Applies to become a merchant (enterprise-verified accounts), or applies again after a rejection.
#[utoipa::path(operation_id = "apply_as_merchant", post, path = "/v1/merchant", tag = "merchants", request_body = ApplicationInput,
    responses((status = 201, body = MerchantView),
              (status = 409, body = Problem, description = "Not an enterprise-verified account, or an application is pending or approved"),
              (status = 422, body = Problem)))]
pub async fn apply(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<ApplicationInput>,
) -> AppResult<(StatusCode, Json<MerchantView>)> {
    let m = merchants::apply(&state, &caller, input).await?;
    Ok((StatusCode::CREATED, Json(m.into())))
}

/// The caller's merchant record.
#[utoipa::path(operation_id = "my_merchant", get, path = "/v1/merchant", tag = "merchants", responses((status = 200, body = MerchantView), (status = 404, body = Problem, description = "The account never applied")))]
pub async fn mine(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<MerchantView>> {
    Ok(Json(merchants::mine(&state, &caller).await?.into()))
}

/// Merchant applications waiting for a decision (role `operations`).
#[utoipa::path(operation_id = "merchant_queue", get, path = "/v1/operator/merchants", tag = "operator", responses((status = 200, body = Vec<MerchantView>), (status = 403, body = Problem, description = "Needs the operator role `operations`")))]
pub async fn queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<MerchantView>>> {
    let queue = merchants::queue(&state, &caller).await?;
    Ok(Json(queue.into_iter().map(Into::into).collect()))
}

/// Approves or rejects a merchant application (role `operations`; not one's own).
#[utoipa::path(operation_id = "decide_merchant", post, path = "/v1/operator/merchants/{merchant_id}/decision", tag = "operator", request_body = Decision,
    params(("merchant_id" = String, Path)),
    responses((status = 200, body = MerchantView),
              (status = 403, body = Problem, description = "Needs the operator role `operations`, and not for one's own application"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "Not pending, or it changed meanwhile")))]
pub async fn decide(
    State(state): State<SharedState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    Body(d): Body<Decision>,
) -> AppResult<Json<MerchantView>> {
    let m = merchants::decide(&state, &caller, &merchant_id.into(), d).await?;
    Ok(Json(m.into()))
}
