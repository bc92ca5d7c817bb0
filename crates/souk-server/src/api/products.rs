//! A merchant's products: create a draft, edit it, submit it for review, delist.

use crate::app::products::{self, ContentInput, SellerProduct};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppError, AppResult, Problem};
use crate::extract::{parse_json, Body, Path};
use crate::SharedState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_core::review::ProductContent;
use souk_store::products::Revision;
use utoipa::ToSchema;

/// A new product: its first draft, and optionally the signing key the seller already uses.
// This type documents the body; the handler reads `signing_key` and the content apart.
#[derive(Serialize, ToSchema)]
pub struct NewProduct {
    #[serde(flatten)]
    pub content: ContentInput,
    /// The key souk signs calls to the endpoint with; generated when absent. 16 to 128 printable
    /// characters.
    #[schema(min_length = 16, max_length = 128)]
    pub signing_key: Option<String>,
}

/// One revision: a draft, an application in review, or a decided one.
#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    pub id: String,
    pub number: i64,
    #[schema(value_type = schema::RevisionKind)]
    pub kind: String,
    #[schema(value_type = schema::Revision)]
    pub state: String,
    #[schema(value_type = Object)]
    pub content: ProductContent,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the review is due (3 working days after submission).
    pub due_at: Option<DateTime<Utc>>,
    /// The reviewer's reasons for a rejection.
    pub reasons: Vec<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<&Revision> for RevisionView {
    fn from(r: &Revision) -> Self {
        RevisionView {
            id: r.id.to_string(),
            number: r.number,
            kind: if r.number == 1 { "new" } else { "change" }.to_owned(),
            state: r.state.as_str().to_owned(),
            content: r.content.clone(),
            submitted_at: r.submitted_at,
            due_at: r.due_at,
            reasons: r.reasons.clone(),
            decided_at: r.decided_at,
        }
    }
}

/// A product as its merchant sees it.
#[derive(Serialize, ToSchema)]
pub struct SellerProductView {
    pub id: String,
    #[schema(value_type = schema::KindOfProduct)]
    pub product_type: String,
    #[schema(value_type = schema::ListingState)]
    pub state: String,
    /// The key souk signs calls to the endpoint with; configure the endpoint with it. Only in
    /// the answers to creating the product and to a new key (`POST …/signing-key`): souk never
    /// shows it again, a lost key is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The live endpoint (from the listed version).
    pub endpoint_url: Option<String>,
    /// The version buyers see, once listed.
    #[schema(value_type = Option<Object>)]
    pub listed: Option<ProductContent>,
    pub listed_at: Option<DateTime<Utc>>,
    /// The newest revision: the open draft or application, or the last decided one.
    pub current: Option<RevisionView>,
    /// All revisions, newest first (only on the single-product view).
    pub revisions: Vec<RevisionView>,
    /// When the endpoint, as the newest revision would call it, passed the endpoint check; null
    /// when it has not passed since it last changed (and on lists). Submitting needs it, unless
    /// the operator turned that off.
    pub endpoint_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn view(sp: SellerProduct, all_revisions: bool) -> SellerProductView {
    let p = sp.product;
    SellerProductView {
        id: p.id.to_string(),
        product_type: p.product_type.as_str().to_owned(),
        state: p.state.as_str().to_owned(),
        signing_key: sp.signing_key,
        endpoint_url: p.endpoint_url,
        listed: p.listed,
        listed_at: p.listed_at,
        current: sp.revisions.first().map(RevisionView::from),
        revisions: if all_revisions {
            sp.revisions.iter().map(RevisionView::from).collect()
        } else {
            vec![]
        },
        endpoint_checked_at: sp.endpoint_checked_at,
        created_at: p.created_at,
    }
}

/// Creates a SaaS product as a draft (approved merchants only).
#[utoipa::path(operation_id = "create_product", post, path = "/v1/seller/products", tag = "seller", request_body = NewProduct,
    responses((status = 201, body = SellerProductView), (status = 403, body = Problem, description = "Approved merchants only"), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Body(mut input): Body<serde_json::Value>,
) -> AppResult<(StatusCode, Json<SellerProductView>)> {
    // The key and the content arrive side by side; each is read on its own so that a bad
    // content field is reported by its exact path.
    let key = match input.as_object_mut().and_then(|o| o.remove("signing_key")) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(k)) => Some(k),
        Some(_) => return Err(AppError::invalid("signing_key", "must be a string")),
    };
    let content: ContentInput = parse_json(input.to_string().as_bytes())?;
    let sp = products::create(&state, &caller, content, key).await?;
    Ok((StatusCode::CREATED, Json(view(sp, true))))
}

/// The merchant's products with their current draft or application.
#[utoipa::path(operation_id = "my_products", get, path = "/v1/seller/products", tag = "seller", responses((status = 200, body = Vec<SellerProductView>), (status = 403, body = Problem, description = "Approved merchants only")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<SellerProductView>>> {
    let all = products::list(&state, &caller).await?;
    Ok(Json(all.into_iter().map(|sp| view(sp, false)).collect()))
}

/// One of the merchant's products with every revision.
#[utoipa::path(operation_id = "my_product", get, path = "/v1/seller/products/{product_id}", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 403, body = Problem, description = "Approved merchants only"), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> AppResult<Json<SellerProductView>> {
    let sp = products::get(&state, &caller, &product_id.into()).await?;
    Ok(Json(view(sp, true)))
}

/// Saves the draft: edits the open draft (a rejected application becomes a draft again), or
/// opens a change request for a listed product.
#[utoipa::path(operation_id = "edit_product_draft", put, path = "/v1/seller/products/{product_id}/draft", tag = "seller", request_body = ContentInput, params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 403, body = Problem, description = "Approved merchants only"), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "The product's revision cannot be edited now (in review)"), (status = 422, body = Problem)))]
pub async fn edit_draft(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
    Body(input): Body<ContentInput>,
) -> AppResult<Json<SellerProductView>> {
    let sp = products::edit_draft(&state, &caller, &product_id.into(), input).await?;
    Ok(Json(view(sp, true)))
}

/// Submits the draft for review; the review is due 3 working days later.
#[utoipa::path(operation_id = "submit_product", post, path = "/v1/seller/products/{product_id}/submit", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 403, body = Problem, description = "Approved merchants only"), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "No draft to submit, or its endpoint has not passed the endpoint check as it now stands"),
              (status = 422, body = Problem, description = "The draft no longer meets the rules (e.g. allowed endpoints changed)")))]
pub async fn submit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> AppResult<Json<SellerProductView>> {
    let sp = products::submit(&state, &caller, &product_id.into()).await?;
    Ok(Json(view(sp, true)))
}

/// Delists a listed product: no new purchases; running instances go on.
#[utoipa::path(operation_id = "delist_product", post, path = "/v1/seller/products/{product_id}/delist", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 403, body = Problem, description = "Approved merchants only"), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "Not listed")))]
pub async fn delist(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> AppResult<Json<SellerProductView>> {
    let sp = products::delist(&state, &caller, &product_id.into()).await?;
    Ok(Json(view(sp, true)))
}
