//! Browsing and searching listed products.

use crate::app::catalog::{self, ProductView, SearchInput};
use crate::app::schema;
use crate::error::{AppResult, Problem};
use crate::extract::{Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use souk_core::review::CATEGORIES;
use utoipa::{IntoParams, ToSchema};

/// Search filters; all optional.
#[derive(Deserialize, IntoParams)]
pub struct SearchParams {
    /// Words that must all appear in the name, summary, description, tags or merchant.
    pub q: Option<String>,
    /// A category from `GET /v1/categories`.
    #[param(value_type = Option<schema::Category>)]
    pub category: Option<String>,
    /// Only this merchant's products (its id, `mer_…`).
    #[param(max_length = 64)]
    pub merchant: Option<String>,
    /// Product type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<schema::KindOfProduct>)]
    pub product_type: Option<String>,
    /// Lowest price of one month (a yearly price counts as a twelfth).
    pub min_price: Option<String>,
    /// Highest price of one month.
    pub max_price: Option<String>,
    /// Only plans in this currency.
    #[param(value_type = Option<schema::Currency>)]
    pub currency: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One page of products.
#[derive(Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// How many products match in all.
    pub total: usize,
}

/// Lists and searches listed products, newest first.
#[utoipa::path(operation_id = "search_products", get, path = "/v1/products", tag = "catalog", params(SearchParams),
    responses((status = 200, body = ProductPage), (status = 422, body = Problem)))]
pub async fn search(
    State(state): State<SharedState>,
    Query(p): Query<SearchParams>,
) -> AppResult<Json<ProductPage>> {
    let found = catalog::search(
        &state,
        SearchInput {
            q: p.q,
            category: p.category,
            merchant: p.merchant,
            product_type: p.product_type,
            min_price: p.min_price,
            max_price: p.max_price,
            currency: p.currency,
            cursor: p.cursor,
            limit: p.limit,
        },
    )
    .await?;
    Ok(Json(ProductPage {
        items: found.items,
        next_cursor: found.next_cursor,
        total: found.total,
    }))
}

/// One listed product with its plans.
#[utoipa::path(operation_id = "get_product", get, path = "/v1/products/{product_id}", tag = "catalog", params(("product_id" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
pub async fn product(
    State(state): State<SharedState>,
    Path(product_id): Path<String>,
) -> AppResult<Json<ProductView>> {
    Ok(Json(catalog::product(&state, &product_id).await?))
}

/// The categories products are listed under.
#[utoipa::path(operation_id = "list_categories", get, path = "/v1/categories", tag = "catalog", responses((status = 200, body = Vec<schema::Category>)))]
pub async fn categories() -> Json<Vec<&'static str>> {
    Json(CATEGORIES.to_vec())
}
