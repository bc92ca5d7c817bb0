//! Operator promotions: a percentage off a product's orders between a start and an end.

use super::PageParams;
use crate::app::promotions::{self, PromotionInput};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::promotions::StoredPromotion;
use utoipa::ToSchema;

/// A promotion as operators see it.
#[derive(Serialize, ToSchema)]
pub struct PromotionView {
    pub id: String,
    pub product_id: String,
    /// The product's listed name (its id before it is listed); on the list only.
    pub product_name: Option<String>,
    pub percent_off: u32,
    /// Only orders bought by this unit; every order when absent.
    #[schema(value_type = Option<schema::Period>)]
    pub period: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<StoredPromotion> for PromotionView {
    fn from(p: StoredPromotion) -> Self {
        PromotionView {
            id: p.id.to_string(),
            product_id: p.product_id.to_string(),
            product_name: None,
            percent_off: p.terms.percent_off,
            period: p.terms.period.map(|p| p.as_str().to_owned()),
            starts_at: p.terms.starts_at,
            ends_at: p.terms.ends_at,
            created_by: p.created_by.to_string(),
            created_at: p.created_at,
        }
    }
}

/// A page of promotions.
#[derive(Serialize, ToSchema)]
pub struct PromotionPage {
    pub items: Vec<PromotionView>,
    pub next_cursor: Option<String>,
}

/// Starts or schedules a promotion: orders of the product placed between `starts_at` and
/// `ends_at` pay the list price less `percent_off` (the best running promotion wins; they never
/// stack). Needs the operator role `operations`.
#[utoipa::path(operation_id = "create_promotion", post, path = "/v1/operator/promotions", tag = "operator", request_body = PromotionInput,
    responses((status = 201, body = PromotionView), (status = 403, body = Problem, description = "Needs the operator role `operations`"),
              (status = 422, body = Problem, description = "No such product, a percentage outside 1 to 90, or an end before the start")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Body(input): Body<PromotionInput>,
) -> AppResult<(StatusCode, Json<PromotionView>)> {
    let p = promotions::create(&state, &caller, input).await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// Every promotion, newest first. Needs the operator role `operations`.
#[utoipa::path(operation_id = "list_promotions", get, path = "/v1/operator/promotions", tag = "operator", params(PageParams),
    responses((status = 200, body = PromotionPage), (status = 403, body = Problem, description = "Needs the operator role `operations`")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<PromotionPage>> {
    let page = promotions::list(&state, &caller, p.into()).await?;
    Ok(Json(PromotionPage {
        items: page
            .items
            .into_iter()
            .map(|l| PromotionView {
                product_name: Some(l.product_name),
                ..l.promotion.into()
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Ends a running or scheduled promotion now. Needs the operator role `operations`.
#[utoipa::path(operation_id = "end_promotion", post, path = "/v1/operator/promotions/{promotion_id}/end", tag = "operator", params(("promotion_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem, description = "Needs the operator role `operations`"), (status = 404, body = Problem, description = "No such promotion, or it has ended")))]
pub async fn end(
    State(state): State<SharedState>,
    caller: Caller,
    Path(promotion_id): Path<String>,
) -> AppResult<StatusCode> {
    promotions::end(&state, &caller, &promotion_id.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}
