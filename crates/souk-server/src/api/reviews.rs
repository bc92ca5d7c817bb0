//! The product review queue: reviewers approve or reject with reasons.

use super::products::RevisionView;
use crate::app::reviews::{self, ReviewDecision};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path};
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_core::review::{ProductContent, ProductState};
use utoipa::ToSchema;

/// An application waiting for review.
#[derive(Serialize, ToSchema)]
pub struct ReviewItem {
    pub revision_id: String,
    pub product_id: String,
    #[schema(value_type = schema::RevisionKind)]
    pub kind: String,
    pub merchant: String,
    #[schema(value_type = Object)]
    pub content: ProductContent,
    pub submitted_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    /// Past its due date.
    pub overdue: bool,
}

/// Applications in review, overdue first, then by due date (role `reviewer`).
#[utoipa::path(operation_id = "review_queue", get, path = "/v1/operator/reviews", tag = "operator", responses((status = 200, body = Vec<ReviewItem>), (status = 403, body = Problem, description = "Needs the operator role `reviewer`")))]
pub async fn queue(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<ReviewItem>>> {
    let now = state.now();
    let items = reviews::queue(&state, &caller)
        .await?
        .into_iter()
        .map(|q| ReviewItem {
            revision_id: q.revision.id.to_string(),
            product_id: q.revision.product_id.to_string(),
            kind: if q.product_state == ProductState::Draft {
                "new"
            } else {
                "change"
            }
            .to_owned(),
            merchant: q.company_name,
            overdue: q.revision.due_at.is_some_and(|d| d < now),
            submitted_at: q.revision.submitted_at,
            due_at: q.revision.due_at,
            content: q.revision.content,
        })
        .collect();
    Ok(Json(items))
}

/// Approves or rejects an application (role `reviewer`; not for one's own product).
#[utoipa::path(operation_id = "decide_review", post, path = "/v1/operator/reviews/{revision_id}/decision", tag = "operator", request_body = ReviewDecision,
    params(("revision_id" = String, Path)),
    responses((status = 200, body = RevisionView),
              (status = 403, body = Problem, description = "Needs the operator role `reviewer`, and not for one's own product"),
              (status = 404, body = Problem), (status = 409, body = Problem, description = "Not in review, or it changed meanwhile"),
              (status = 422, body = Problem, description = "A rejection without reasons, or content that no longer meets the rules")))]
pub async fn decide(
    State(state): State<SharedState>,
    caller: Caller,
    Path(revision_id): Path<String>,
    Body(d): Body<ReviewDecision>,
) -> AppResult<Json<RevisionView>> {
    let revision = reviews::decide(&state, &caller, &revision_id.into(), d).await?;
    Ok(Json(RevisionView::from(&revision)))
}
