//! Browsing and searching listed products.

use crate::catalog::{parse_price, ProductView, Search};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Query;
use crate::SharedState;
use axum::extract::{Path, State};
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
    pub category: Option<String>,
    /// Product type, e.g. `saas`.
    #[serde(rename = "type")]
    pub product_type: Option<String>,
    /// Lowest price of one month (a yearly price counts as a twelfth).
    pub min_price: Option<String>,
    /// Highest price of one month.
    pub max_price: Option<String>,
    /// Only plans in this currency.
    pub currency: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
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
) -> ApiResult<Json<ProductPage>> {
    let limit = super::page_size(p.limit)? as usize;
    if let Some(c) = &p.category {
        if !CATEGORIES.contains(&c.as_str()) {
            return Err(ApiError::invalid(
                "category",
                format!("must be one of: {}", CATEGORIES.join(", ")),
            ));
        }
    }
    if let Some(c) = &p.currency {
        c.parse::<souk_core::money::Currency>()?;
    }
    let offset = match &p.cursor {
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API gave out"))?,
        None => 0,
    };
    let search = Search {
        text: p.q.filter(|q| !q.trim().is_empty()),
        category: p.category,
        product_type: p.product_type,
        currency: p.currency,
        min_price: parse_price("min_price", p.min_price.as_deref())?,
        max_price: parse_price("max_price", p.max_price.as_deref())?,
    };
    let all = state.catalog.search(&state.store, &search).await?;
    let total = all.len();
    let items: Vec<ProductView> = all.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    Ok(Json(ProductPage {
        next_cursor: (next < total).then(|| next.to_string()),
        items,
        total,
    }))
}

/// One listed product with its plans.
#[utoipa::path(operation_id = "get_product", get, path = "/v1/products/{product_id}", tag = "catalog", params(("product_id" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
pub async fn product(
    State(state): State<SharedState>,
    Path(product_id): Path<String>,
) -> ApiResult<Json<ProductView>> {
    state
        .catalog
        .product(&state.store, &product_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("product".into()))
}

/// The categories products are listed under.
#[utoipa::path(operation_id = "list_categories", get, path = "/v1/categories", tag = "catalog", responses((status = 200, body = Vec<String>)))]
pub async fn categories() -> Json<Vec<&'static str>> {
    Json(CATEGORIES.to_vec())
}
