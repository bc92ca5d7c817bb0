//! A merchant's products: create a draft, edit it, submit it for review, delist. Changing a
//! listed product opens a new revision (a change request) while the listed version stays live.

use super::merchants::approved_merchant;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{parse_json, Body};
use crate::SharedState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::review::{
    PlanDraft, ProductContent, ProductState, RevisionState, REVIEW_WORKING_DAYS,
};
use souk_store::merchants::MerchantRow;
use souk_store::products::{ProductRow, RevisionRow};
use utoipa::ToSchema;

/// One plan of a product.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
pub struct PlanInput {
    /// Keep the id of a plan that is already listed, so its buyers stay on it.
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// ISO currency: CNY, USD, EUR, GBP, JPY, HKD or SGD.
    pub currency: String,
    /// Price of one month, a decimal string with at most 8 decimals.
    pub monthly_price: Option<String>,
    /// Price of one year.
    pub yearly_price: Option<String>,
}

/// A product's content, reviewed as a whole.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
pub struct ContentInput {
    pub name: String,
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// See `GET /v1/categories`.
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub logo_url: Option<String>,
    pub support_contact: String,
    #[serde(default)]
    pub licence: String,
    /// The seller's production endpoint (https) that souk calls to provision.
    pub endpoint_url: String,
    pub plans: Vec<PlanInput>,
}

impl ContentInput {
    fn into_core(self) -> ProductContent {
        ProductContent {
            name: self.name,
            summary: self.summary,
            description: self.description,
            category: self.category,
            tags: self.tags,
            logo_url: self.logo_url,
            support_contact: self.support_contact,
            licence: self.licence,
            endpoint_url: self.endpoint_url,
            plans: self
                .plans
                .into_iter()
                .map(|p| PlanDraft {
                    id: p.id,
                    name: p.name,
                    description: p.description,
                    currency: p.currency,
                    monthly_price: p.monthly_price,
                    yearly_price: p.yearly_price,
                })
                .collect(),
        }
    }
}

/// A new product: its first draft, and optionally the signing key the seller already uses.
// This type documents the body; the handler reads `signing_key` and the content apart.
#[derive(Serialize, ToSchema)]
pub struct NewProduct {
    #[serde(flatten)]
    pub content: ContentInput,
    /// The key souk signs calls to the endpoint with; generated when absent. 16 to 128 printable
    /// characters.
    pub signing_key: Option<String>,
}

/// One revision: a draft, an application in review, or a decided one.
#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    pub id: String,
    pub number: i64,
    /// `new` for a first listing, `change` for a change to a listed product.
    pub kind: String,
    /// `draft`, `in_review`, `approved` or `rejected`.
    pub state: String,
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the review is due (3 working days after submission).
    pub due_at: Option<DateTime<Utc>>,
    /// The reviewer's reasons for a rejection.
    pub reasons: Vec<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl RevisionView {
    pub(crate) fn new(r: &RevisionRow) -> Self {
        RevisionView {
            id: r.id.clone(),
            number: r.number,
            kind: if r.number == 1 { "new" } else { "change" }.to_owned(),
            state: r.state.clone(),
            content: serde_json::from_str(&r.content).unwrap_or(serde_json::Value::Null),
            submitted_at: r.submitted_at.map(super::time),
            due_at: r.due_at.map(super::time),
            reasons: r
                .reasons
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            decided_at: r.decided_at.map(super::time),
        }
    }
}

/// A product as its merchant sees it.
#[derive(Serialize, ToSchema)]
pub struct SellerProductView {
    pub id: String,
    pub product_type: String,
    /// `draft` (never listed), `listed` or `delisted`.
    pub state: String,
    /// The key souk signs calls to the endpoint with; configure the endpoint with it.
    pub signing_key: String,
    /// The live endpoint (from the listed version).
    pub endpoint_url: Option<String>,
    /// The version buyers see, once listed.
    #[schema(value_type = Option<Object>)]
    pub listed: Option<serde_json::Value>,
    pub listed_at: Option<DateTime<Utc>>,
    /// The newest revision: the open draft or application, or the last decided one.
    pub current: Option<RevisionView>,
    /// All revisions, newest first (only on the single-product view).
    pub revisions: Vec<RevisionView>,
    pub created_at: DateTime<Utc>,
}

async fn view(
    state: &SharedState,
    p: &ProductRow,
    all_revisions: bool,
) -> ApiResult<SellerProductView> {
    let revisions = if all_revisions {
        state.store.revisions(&p.id).await?
    } else {
        state
            .store
            .latest_revision(&p.id)
            .await?
            .into_iter()
            .collect()
    };
    Ok(SellerProductView {
        id: p.id.clone(),
        product_type: p.product_type.clone(),
        state: p.state.clone(),
        signing_key: state
            .secrets
            .open(&crate::crypto::product_key_aad(&p.id), &p.signing_key_enc)?,
        endpoint_url: p.endpoint_url.clone(),
        listed: p
            .listed_content
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        listed_at: p.listed_at.map(super::time),
        current: revisions.first().map(RevisionView::new),
        revisions: if all_revisions {
            revisions.iter().map(RevisionView::new).collect()
        } else {
            vec![]
        },
        created_at: super::time(p.created_at),
    })
}

async fn own_product(
    state: &SharedState,
    merchant: &MerchantRow,
    id: &str,
) -> ApiResult<ProductRow> {
    match state.store.product(id).await {
        Ok(p) if p.merchant_id == merchant.id => Ok(p),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(ApiError::NotFound("product".into())),
        Err(e) => Err(e.into()),
    }
}

async fn validated(
    state: &SharedState,
    product_id: Option<&str>,
    content: ContentInput,
) -> ApiResult<String> {
    let content = content
        .into_core()
        .validated(state.settings.endpoint_rules())?;
    for (i, plan) in content.plans.iter().enumerate() {
        if let Some(id) = &plan.id {
            let belongs = match (product_id, state.store.plan(id).await) {
                (Some(pid), Ok(p)) => p.product_id == pid,
                _ => false,
            };
            if !belongs {
                return Err(ApiError::invalid(
                    format!("plans[{i}].id"),
                    "is not a plan of this product",
                ));
            }
        }
    }
    serde_json::to_string(&content).map_err(|e| ApiError::Internal(e.to_string()))
}

fn signing_key(given: Option<String>) -> ApiResult<String> {
    match given {
        Some(k) => {
            if !(16..=128).contains(&k.len()) || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(ApiError::invalid(
                    "signing_key",
                    "must be 16 to 128 printable ASCII characters",
                ));
            }
            Ok(k)
        }
        None => Ok(hex::encode(rand::random::<[u8; 32]>())),
    }
}

/// Creates a SaaS product as a draft (approved merchants only).
#[utoipa::path(operation_id = "create_product", post, path = "/v1/seller/products", tag = "seller", request_body = NewProduct,
    responses((status = 201, body = SellerProductView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Body(mut input): Body<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<SellerProductView>)> {
    let merchant = approved_merchant(&state, &caller).await?;
    // The key and the content arrive side by side; each is read on its own so that a bad
    // content field is reported by its exact path.
    let key = match input.as_object_mut().and_then(|o| o.remove("signing_key")) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(k)) => Some(k),
        Some(_) => return Err(ApiError::invalid("signing_key", "must be a string")),
    };
    let content: ContentInput = parse_json(input.to_string().as_bytes())?;
    let content = validated(&state, None, content).await?;
    let key = signing_key(key)?;
    let (product, _) = state
        .store
        .create_product(
            &merchant.id,
            "saas",
            |id| {
                state
                    .secrets
                    .seal(&crate::crypto::product_key_aad(id), &key)
            },
            &content,
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, &product, true).await?),
    ))
}

/// The merchant's products with their current draft or application.
#[utoipa::path(operation_id = "my_products", get, path = "/v1/seller/products", tag = "seller", responses((status = 200, body = Vec<SellerProductView>), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SellerProductView>>> {
    let merchant = approved_merchant(&state, &caller).await?;
    let mut out = Vec::new();
    for p in state.store.products_of_merchant(&merchant.id).await? {
        out.push(view(&state, &p, false).await?);
    }
    Ok(Json(out))
}

/// One of the merchant's products with every revision.
#[utoipa::path(operation_id = "my_product", get, path = "/v1/seller/products/{product_id}", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> ApiResult<Json<SellerProductView>> {
    let merchant = approved_merchant(&state, &caller).await?;
    let p = own_product(&state, &merchant, &product_id).await?;
    Ok(Json(view(&state, &p, true).await?))
}

/// Saves the draft: edits the open draft (a rejected application becomes a draft again), or
/// opens a change request for a listed product.
#[utoipa::path(operation_id = "edit_product_draft", put, path = "/v1/seller/products/{product_id}/draft", tag = "seller", request_body = ContentInput, params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn edit_draft(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
    Body(input): Body<ContentInput>,
) -> ApiResult<Json<SellerProductView>> {
    let merchant = approved_merchant(&state, &caller).await?;
    let p = own_product(&state, &merchant, &product_id).await?;
    let content = validated(&state, Some(&p.id), input).await?;
    let latest = state
        .store
        .latest_revision(&p.id)
        .await?
        .ok_or(ApiError::NotFound("revision".into()))?;
    let latest_state: RevisionState = souk_store::parse(&latest.state)?;
    if latest_state == RevisionState::Approved {
        state
            .store
            .insert_revision(&p.id, latest.number + 1, &content, state.now())
            .await?;
    } else {
        latest_state.edit()?;
        state
            .store
            .update_revision(&latest.id, &latest.state, &content, state.now())
            .await?;
    }
    Ok(Json(view(&state, &p, true).await?))
}

/// Submits the draft for review; the review is due 3 working days later.
#[utoipa::path(operation_id = "submit_product", post, path = "/v1/seller/products/{product_id}/submit", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn submit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> ApiResult<Json<SellerProductView>> {
    let merchant = approved_merchant(&state, &caller).await?;
    let p = own_product(&state, &merchant, &product_id).await?;
    let latest = state
        .store
        .latest_revision(&p.id)
        .await?
        .ok_or(ApiError::NotFound("revision".into()))?;
    let current: RevisionState = souk_store::parse(&latest.state)?;
    current.submit()?;
    // Content is checked again: rules (such as allowed endpoints) may have changed since it was saved.
    let content: ProductContent =
        serde_json::from_str(&latest.content).map_err(|e| ApiError::Internal(e.to_string()))?;
    content.validated(state.settings.endpoint_rules())?;
    let now = state.now();
    let due = state
        .settings
        .calendar()
        .add_working_days(now, REVIEW_WORKING_DAYS);
    state
        .store
        .submit_revision(&latest.id, current.as_str(), now, due)
        .await?;
    Ok(Json(view(&state, &p, true).await?))
}

/// Delists a listed product: no new purchases; running instances go on.
#[utoipa::path(operation_id = "delist_product", post, path = "/v1/seller/products/{product_id}/delist", tag = "seller", params(("product_id" = String, Path)),
    responses((status = 200, body = SellerProductView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delist(
    State(state): State<SharedState>,
    caller: Caller,
    Path(product_id): Path<String>,
) -> ApiResult<Json<SellerProductView>> {
    let merchant = approved_merchant(&state, &caller).await?;
    let p = own_product(&state, &merchant, &product_id).await?;
    let current: ProductState = souk_store::parse(&p.state)?;
    let next = current.delist()?;
    state
        .store
        .set_product_state(&p.id, current.as_str(), next.as_str(), state.now())
        .await?;
    state.catalog.invalidate().await;
    let p = state.store.product(&p.id).await?;
    Ok(Json(view(&state, &p, true).await?))
}
