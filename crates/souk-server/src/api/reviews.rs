//! The product review queue: reviewers approve (the revision becomes the listed version) or
//! reject with reasons (the merchant edits and resubmits).

use super::products::RevisionView;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Body;
use crate::SharedState;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::accounts::Role;
use souk_core::review::{ProductContent, RevisionState};
use souk_core::validate;
use souk_store::products::PlanWrite;
use utoipa::ToSchema;

/// An application waiting for review.
#[derive(Serialize, ToSchema)]
pub struct ReviewItem {
    pub revision_id: String,
    pub product_id: String,
    /// `new` for a first listing, `change` for a change to a listed product.
    pub kind: String,
    pub merchant: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub submitted_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    /// Past its due date.
    pub overdue: bool,
}

/// A review decision.
#[derive(Deserialize, ToSchema)]
pub struct ReviewDecision {
    pub approve: bool,
    /// What the merchant must fix; at least one for a rejection.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// Applications in review, overdue first, then by due date (role `reviewer`).
#[utoipa::path(operation_id = "review_queue", get, path = "/v1/operator/reviews", tag = "operator", responses((status = 200, body = Vec<ReviewItem>), (status = 403, body = Problem)))]
pub async fn queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ReviewItem>>> {
    caller.require(Role::Reviewer)?;
    let now = state.now();
    let items = state
        .store
        .review_queue(500)
        .await?
        .into_iter()
        .map(|r| ReviewItem {
            revision_id: r.id,
            product_id: r.product_id,
            kind: if r.product_state == "draft" {
                "new"
            } else {
                "change"
            }
            .to_owned(),
            merchant: r.company_name,
            content: serde_json::from_str(&r.content).unwrap_or(serde_json::Value::Null),
            submitted_at: r.submitted_at.map(super::time),
            overdue: r.due_at.is_some_and(|d| super::time(d) < now),
            due_at: r.due_at.map(super::time),
        })
        .collect();
    Ok(Json(items))
}

/// Approves or rejects an application (role `reviewer`).
#[utoipa::path(operation_id = "decide_review", post, path = "/v1/operator/reviews/{revision_id}/decision", tag = "operator", request_body = ReviewDecision,
    params(("revision_id" = String, Path)),
    responses((status = 200, body = RevisionView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide(
    State(state): State<SharedState>,
    caller: Caller,
    Path(revision_id): Path<String>,
    Body(d): Body<ReviewDecision>,
) -> ApiResult<Json<RevisionView>> {
    caller.require(Role::Reviewer)?;
    let revision = state.store.revision(&revision_id).await?;
    let current: RevisionState = souk_store::parse(&revision.state)?;
    let mut reasons = Vec::new();
    for (i, r) in d.reasons.iter().enumerate() {
        if !r.trim().is_empty() {
            reasons.push(validate::text(&format!("reasons[{i}]"), r, 1000)?);
        }
    }
    current.decide(d.approve, &reasons)?;
    let now = state.now();
    if d.approve {
        let content: ProductContent = serde_json::from_str(&revision.content)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let content = content.validated(state.settings.endpoint_rules())?;
        let plans: Vec<PlanWrite> = content
            .plans
            .iter()
            .map(|p| PlanWrite {
                id: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                currency: p.currency.clone(),
                monthly_price: p.monthly_price.clone(),
                yearly_price: p.yearly_price.clone(),
            })
            .collect();
        state
            .store
            .approve_revision(&revision, &content.endpoint_url, &plans, caller.id(), now)
            .await?;
        state.catalog.invalidate().await;
    } else {
        let json =
            serde_json::to_string(&reasons).map_err(|e| ApiError::Internal(e.to_string()))?;
        state
            .store
            .reject_revision(&revision.id, &json, caller.id(), now)
            .await?;
    }
    Ok(Json(RevisionView::new(
        &state.store.revision(&revision.id).await?,
    )))
}
