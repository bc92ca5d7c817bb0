//! The product review queue: reviewers approve (the revision becomes the listed version) or
//! reject with reasons (the merchant edits and resubmits).

use super::{schema, Caller};
use crate::error::AppResult;
use crate::AppState;
use serde::Deserialize;
use souk_core::accounts::Role;
use souk_core::ids::{PlanId, RevisionId};
use souk_core::review::RevisionState;
use souk_core::validate;
use souk_store::products::{PlanWrite, QueueItem, Revision};
use utoipa::ToSchema;

/// A review decision.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ReviewDecision {
    pub approve: bool,
    /// What the merchant must fix, each up to 1000 characters; at least one for a rejection.
    #[serde(default)]
    #[schema(value_type = Vec<schema::Reason>)]
    pub reasons: Vec<String>,
}

/// Applications in review, overdue first, then by due date (role `reviewer`).
pub async fn queue(state: &AppState, caller: &Caller) -> AppResult<Vec<QueueItem>> {
    caller.require(Role::Reviewer)?;
    Ok(state.store.review_queue(500).await?)
}

/// Approves or rejects an application (role `reviewer`, never for the reviewer's own product).
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    revision_id: &RevisionId,
    decision: ReviewDecision,
) -> AppResult<Revision> {
    caller.require(Role::Reviewer)?;
    let revision = state.store.revision(revision_id).await?;
    let owner = state.store.product_owner(&revision.product_id).await?;
    caller.not_own(&owner, "review a product")?;
    let mut reasons = Vec::new();
    for (i, r) in decision.reasons.iter().enumerate() {
        if !r.trim().is_empty() {
            reasons.push(validate::text(&format!("reasons[{i}]"), r, 1000)?);
        }
    }
    let next = revision.state.decide(decision.approve, &reasons)?;
    let now = state.now();
    match next {
        RevisionState::Approved => {
            let content = revision
                .content
                .validated(state.settings.endpoint_rules())?;
            let plans = content
                .plans
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Ok(PlanWrite {
                        id: p.id.as_deref().map(PlanId::from),
                        name: p.name.clone(),
                        description: p.description.clone(),
                        prices: p.prices(&format!("plans[{i}]"))?,
                        trial_days: p.trial_days,
                    })
                })
                .collect::<AppResult<Vec<_>>>()?;
            state
                .store
                .approve_revision(
                    &revision,
                    revision.state,
                    next,
                    &content,
                    &plans,
                    caller.id(),
                    now,
                )
                .await?;
            state.catalog.invalidate().await;
        }
        _ => {
            state
                .store
                .reject_revision(
                    &revision.id,
                    revision.state,
                    next,
                    &reasons,
                    caller.id(),
                    now,
                )
                .await?;
        }
    }
    Ok(state.store.revision(&revision.id).await?)
}
