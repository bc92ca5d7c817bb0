//! A merchant's products: create a draft, edit it, submit it for review, delist. Changing a
//! listed product opens a new revision (a change request) while the listed version stays live.

use super::{merchants, schema, Caller};
use crate::error::{AppError, AppResult};
use crate::AppState;
use serde::{Deserialize, Serialize};
use souk_core::ids::{PlanId, ProductId};
use souk_core::metering::{DimensionDraft, TierDraft};
use souk_core::review::{
    PlanDraft, ProductContent, ProductType, RevisionState, SellerProtocol, REVIEW_WORKING_DAYS,
};
use souk_store::merchants::Merchant;
use souk_store::products::{Product, Revision};
use utoipa::ToSchema;

/// One plan of a product.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct PlanInput {
    /// Keep the id of a plan that is already listed, so its buyers stay on it.
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: String,
    #[schema(value_type = schema::Currency)]
    pub currency: String,
    /// Price of one month, a non-negative decimal string with at most 8 decimals. A plan needs a
    /// monthly or a yearly price (or both).
    #[schema(example = "99.00")]
    pub monthly_price: Option<String>,
    /// Price of one year, like `monthly_price`.
    #[schema(example = "990.00")]
    pub yearly_price: Option<String>,
    /// Price of a one-time purchase that never expires (nothing is refunded once it is
    /// provisioned), like `monthly_price`.
    #[schema(example = "4990.00")]
    pub one_time_price: Option<String>,
    /// Days of free trial (1 to 90) a verified buyer may take once per product; leave out for
    /// no trial.
    #[schema(minimum = 1, maximum = 90)]
    pub trial_days: Option<u32>,
    /// Up to 10 metered dimensions. With no price above, the plan is sold on demand (nothing up
    /// front, use charged by the hour); with a monthly or yearly price and quotas, it is a
    /// package.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub dimensions: Vec<DimensionInput>,
}

/// A metered dimension of a plan.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct DimensionInput {
    /// What the seller's meter reports: a lowercase letter, then lowercase letters, digits or
    /// `_` (up to 40).
    #[schema(example = "api_calls", pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub key: String,
    /// The unit buyers see.
    #[schema(example = "1,000 calls", min_length = 1, max_length = 20)]
    pub unit: String,
    /// Price of one unit, like `monthly_price`; a nonzero price must charge at least one minor
    /// unit per unit (price per 1,000 calls rather than per call).
    #[schema(example = "0.80")]
    pub price: String,
    /// Up to 10 volume tiers: from `from` units in a period on, each unit costs `price`.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub tiers: Vec<TierInput>,
    /// A package's quota per period (needs a monthly or yearly price): paid for by the plan's
    /// price, reset each period.
    #[schema(example = "10000")]
    pub included: Option<String>,
    /// Past the quota: `charge` (the default; at `price`) or `refuse`.
    #[schema(value_type = Option<String>, example = "charge")]
    pub overage: Option<souk_core::metering::Overage>,
}

/// One volume tier of a dimension.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct TierInput {
    /// The quantity within a period from which the tier's price applies (above zero).
    #[schema(example = "100000")]
    pub from: String,
    #[schema(example = "0.60")]
    pub price: String,
}

/// A product's content, reviewed as a whole.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ContentInput {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub summary: String,
    #[serde(default)]
    #[schema(max_length = 20000)]
    pub description: String,
    /// See `GET /v1/categories`.
    #[schema(value_type = schema::Category)]
    pub category: String,
    /// Up to 10 tags of up to 30 characters.
    #[serde(default)]
    #[schema(max_items = 10, value_type = Vec<schema::Tag>)]
    pub tags: Vec<String>,
    /// An absolute http or https URL without credentials.
    #[schema(format = "uri", max_length = 2000)]
    pub logo_url: Option<String>,
    /// How buyers reach the seller's support.
    #[schema(min_length = 1, max_length = 200)]
    pub support_contact: String,
    #[serde(default)]
    #[schema(max_length = 50000)]
    pub licence: String,
    /// The seller's production endpoint that souk calls to provision: https, and a public
    /// address unless the operator allows others.
    #[schema(format = "uri", min_length = 1, max_length = 2000)]
    pub endpoint_url: String,
    /// The endpoint signs its answers (`Body-Sign`, HMAC-SHA256 of the answer under the product's
    /// key); souk then refuses an answer whose signature is missing or wrong, as a failed attempt.
    #[serde(default)]
    pub signed_answers: bool,
    /// The protocol the endpoint speaks: `v2` (the default), or the older `v1` (GET with an
    /// `authToken`; the endpoint then signs every answer).
    #[serde(default)]
    #[schema(value_type = Option<schema::Protocol>)]
    pub protocol: Option<SellerProtocol>,
    /// 1 to 20 plans.
    #[schema(min_items = 1, max_items = 20)]
    pub plans: Vec<PlanInput>,
}

impl ContentInput {
    /// Every plan's pricing fault at once (a refusal names the first only).
    pub fn price_problems(&self) -> Vec<AppError> {
        self.clone()
            .into_core()
            .price_problems()
            .into_iter()
            .map(AppError::from)
            .collect()
    }

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
            signed_answers: self.signed_answers,
            protocol: self.protocol.unwrap_or_default(),
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
                    one_time_price: p.one_time_price,
                    trial_days: p.trial_days,
                    dimensions: p
                        .dimensions
                        .into_iter()
                        .map(|d| DimensionDraft {
                            key: d.key,
                            unit: d.unit,
                            price: d.price,
                            tiers: d
                                .tiers
                                .into_iter()
                                .map(|t| TierDraft {
                                    from: t.from,
                                    price: t.price,
                                })
                                .collect(),
                            included: d.included,
                            overage: d.overage,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A product as its merchant sees it.
#[derive(Debug, Clone)]
pub struct SellerProduct {
    pub product: Product,
    /// The key souk signs calls to the endpoint with: in the answer to creating the product and
    /// to a new key only, so a key once shown is never read back (by a read-only user, say).
    pub signing_key: Option<String>,
    /// Revisions, newest first: all of them, or only the newest on list views.
    pub revisions: Vec<Revision>,
    /// When the endpoint, as the newest revision would call it, passed the endpoint check (on
    /// the single-product view; `None` on lists, and when it has not passed).
    pub endpoint_checked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether submitting needs that pass (`submit_needs_endpoint_check`).
    pub submit_needs_check: bool,
}

async fn seller_product(
    state: &AppState,
    product: Product,
    all_revisions: bool,
) -> AppResult<SellerProduct> {
    let revisions = if all_revisions {
        state.store.revisions(&product.id).await?
    } else {
        state
            .store
            .latest_revision(&product.id)
            .await?
            .into_iter()
            .collect()
    };
    let endpoint_checked_at = if all_revisions {
        endpoint_checked_at(state, &product, revisions.first()).await?
    } else {
        None
    };
    Ok(SellerProduct {
        signing_key: None,
        product,
        revisions,
        endpoint_checked_at,
        submit_needs_check: state.settings.submit_needs_endpoint_check,
    })
}

async fn own_product(state: &AppState, merchant: &Merchant, id: &ProductId) -> AppResult<Product> {
    match state.store.product(id).await {
        Ok(p) if p.merchant_id == merchant.id => Ok(p),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(AppError::NotFound("product".into())),
        Err(e) => Err(e.into()),
    }
}

async fn validated(
    state: &AppState,
    product_id: Option<&ProductId>,
    content: ContentInput,
) -> AppResult<ProductContent> {
    let content = content
        .into_core()
        .validated(state.settings.endpoint_rules())?;
    for (i, plan) in content.plans.iter().enumerate() {
        if let Some(id) = &plan.id {
            let stored = match (
                product_id,
                state.store.plan(&PlanId::from(id.as_str())).await,
            ) {
                (Some(pid), Ok(p)) if &p.product_id == pid => p,
                _ => {
                    return Err(AppError::invalid(
                        format!("plans[{i}].id"),
                        "is not a plan of this product",
                    ))
                }
            };
            // Its orders, refunds and metered use are in this currency; mixing two would add
            // one currency's cents to another's.
            if stored.prices.currency.code() != plan.currency {
                return Err(AppError::invalid(
                    format!("plans[{i}].currency"),
                    format!(
                        "a listed plan keeps its currency ({}); add a new plan for another",
                        stored.prices.currency
                    ),
                ));
            }
        }
    }
    Ok(content)
}

fn signing_key(given: Option<String>) -> AppResult<String> {
    match given {
        Some(k) => {
            if !(16..=128).contains(&k.len()) || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(AppError::invalid(
                    "signing_key",
                    "must be 16 to 128 printable ASCII characters",
                ));
            }
            Ok(k)
        }
        None => Ok(hex::encode(rand::random::<[u8; 32]>())),
    }
}

/// Creates a SaaS product as a draft (approved merchants only), with the seller's signing key or
/// a new one.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    content: ContentInput,
    key: Option<String>,
) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let content = validated(state, None, content).await?;
    let key = signing_key(key)?;
    let (product, _) = state
        .store
        .create_product(
            &merchant.id,
            ProductType::Saas,
            |id| {
                state
                    .secrets
                    .seal(&crate::crypto::product_key_aad(id.as_str()), &key)
            },
            &content,
            state.now(),
        )
        .await?;
    let created = seller_product(state, product, true).await?;
    Ok(SellerProduct {
        signing_key: Some(key),
        ..created
    })
}

/// The merchant's products with their newest revision.
pub async fn list(state: &AppState, caller: &Caller) -> AppResult<Vec<SellerProduct>> {
    let merchant = merchants::approved(state, caller).await?;
    let mut out = Vec::new();
    for p in state.store.products_of_merchant(&merchant.id).await? {
        out.push(seller_product(state, p, false).await?);
    }
    Ok(out)
}

/// One of the merchant's products with every revision.
pub async fn get(state: &AppState, caller: &Caller, id: &ProductId) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    seller_product(state, p, true).await
}

/// Saves the draft: edits the open draft (a rejected application becomes a draft again), or
/// opens a change request for a listed product.
pub async fn edit_draft(
    state: &AppState,
    caller: &Caller,
    id: &ProductId,
    input: ContentInput,
) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    let content = validated(state, Some(&p.id), input).await?;
    let latest = state
        .store
        .latest_revision(&p.id)
        .await?
        .ok_or(AppError::NotFound("revision".into()))?;
    if latest.state == RevisionState::Approved {
        state
            .store
            .insert_revision(&p.id, latest.number + 1, &content, state.now())
            .await?;
    } else {
        let next = latest.state.edit()?;
        state
            .store
            .update_revision(&latest.id, latest.state, next, &content, state.now())
            .await?;
    }
    seller_product(state, p, true).await
}

/// Submits the draft for review; the review is due 3 working days later. With
/// `submit_needs_endpoint_check`, only once the endpoint as the draft stands passed the check.
pub async fn submit(state: &AppState, caller: &Caller, id: &ProductId) -> AppResult<SellerProduct> {
    submit_draft(
        state,
        caller,
        id,
        state.settings.submit_needs_endpoint_check,
    )
    .await
}

/// Submits the demo's own products, which call the demo seller inside souk: while the demo is
/// filled (`souk demo`, or before `souk serve --demo` listens) nothing answers there yet.
pub(crate) async fn submit_demo(
    state: &AppState,
    caller: &Caller,
    id: &ProductId,
) -> AppResult<SellerProduct> {
    submit_draft(state, caller, id, false).await
}

async fn submit_draft(
    state: &AppState,
    caller: &Caller,
    id: &ProductId,
    needs_check: bool,
) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    let latest = state
        .store
        .latest_revision(&p.id)
        .await?
        .ok_or(AppError::NotFound("revision".into()))?;
    let next = latest.state.submit()?;
    // Content is checked again: rules (such as allowed endpoints) may have changed since it was saved.
    latest.content.validated(state.settings.endpoint_rules())?;
    // The revision checked is the one submitted: an edit since makes the submission stale.
    if needs_check
        && endpoint_checked_at(state, &p, Some(&latest))
            .await?
            .is_none()
    {
        return Err(AppError::Conflict(
            "the endpoint has not passed the endpoint check as the product now stands: run the \
             check, fix what it reports, and submit again"
                .into(),
        ));
    }
    let now = state.now();
    let due = state
        .settings
        .calendar()
        .add_working_days(now, REVIEW_WORKING_DAYS);
    state
        .store
        .submit_revision(&latest.id, latest.state, next, latest.updated_at, now, due)
        .await?;
    seller_product(state, p, true).await
}

/// Delists a listed product: no new purchases; running instances go on.
pub async fn delist(state: &AppState, caller: &Caller, id: &ProductId) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    let next = p.state.delist()?;
    state
        .store
        .set_product_state(&p.id, p.state, next, state.now())
        .await?;
    state.catalog.invalidate().await;
    let p = state.store.product(&p.id).await?;
    seller_product(state, p, true).await
}

/// Replaces the product's signing key with a new random one, shown in the answer only; calls
/// made from now on are signed with it.
pub async fn rotate_key(
    state: &AppState,
    caller: &Caller,
    id: &ProductId,
) -> AppResult<SellerProduct> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    let key = signing_key(None)?;
    let sealed = state
        .secrets
        .seal(&crate::crypto::product_key_aad(p.id.as_str()), &key);
    state
        .store
        .set_signing_key(&p.id, &sealed, state.now())
        .await?;
    let p = state.store.product(&p.id).await?;
    let rotated = seller_product(state, p, true).await?;
    Ok(SellerProduct {
        signing_key: Some(key),
        ..rotated
    })
}

/// What a product's endpoint check calls: the latest revision's endpoint, as that revision
/// would call it, with the product's key.
struct CheckTarget {
    endpoint: String,
    signed_answers: bool,
    protocol: SellerProtocol,
    key: String,
}

impl CheckTarget {
    /// The target of product `p` whose newest revision is `latest`.
    fn of(state: &AppState, p: &Product, latest: Option<&Revision>) -> AppResult<CheckTarget> {
        let (endpoint, signed_answers, protocol) = match latest {
            Some(r) => (
                r.content.endpoint_url.clone(),
                r.content.signed_answers,
                r.content.protocol,
            ),
            None => (
                p.endpoint_url.clone().unwrap_or_default(),
                false,
                SellerProtocol::V2,
            ),
        };
        let key = state.secrets.open(
            &crate::crypto::product_key_aad(p.id.as_str()),
            &p.signing_key_enc,
        )?;
        Ok(CheckTarget {
            endpoint,
            signed_answers,
            protocol,
            key,
        })
    }

    /// Names what was checked, so a later change of endpoint, protocol, answer signing or key
    /// is seen to need a new check (a one-way digest: the key cannot be read back from it).
    fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            self.endpoint.as_str(),
            self.protocol.as_str(),
            if self.signed_answers {
                "signed"
            } else {
                "unsigned"
            },
            self.key.as_str(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// Walks a made-up instance through every seller call with `testFlag` `"1"`, signed with the
/// product's key, against the latest revision's endpoint (so a draft can be checked before it is
/// submitted), and reports each call; nothing is bought. A pass is remembered: with
/// `submit_needs_endpoint_check`, it is what lets the product be submitted (approved merchants).
pub async fn check_endpoint(
    state: &AppState,
    caller: &Caller,
    id: &ProductId,
) -> AppResult<crate::conformance::Report> {
    let merchant = merchants::approved(state, caller).await?;
    let p = own_product(state, &merchant, id).await?;
    state.throttle.endpoint_check(merchant.id.as_str())?;
    let latest = state.store.latest_revision(&p.id).await?;
    let target = CheckTarget::of(state, &p, latest.as_ref())?;
    // Resolved and checked now, as for every call souk makes to a seller.
    let report =
        match crate::egress::refused(&state.settings.seller_networks(), &target.endpoint).await {
            Some(reason) => crate::conformance::Report {
                checks: vec![crate::conformance::Check {
                    name: "the endpoint may be called",
                    passed: false,
                    detail: reason,
                    latency_ms: 0,
                }],
                endpoint: target.endpoint.clone(),
            },
            None => {
                crate::conformance::run(&crate::conformance::Target {
                    http: &state.http,
                    endpoint: &target.endpoint,
                    key: &target.key,
                    answer_limit: state.settings.seller_answer_limit,
                    wire: crate::workers::seller::Wire::for_check(
                        target.protocol,
                        target.signed_answers,
                    ),
                })
                .await
            }
        };
    state
        .store
        .record_endpoint_check(&p.id, &target.fingerprint(), report.passed(), state.now())
        .await?;
    Ok(report)
}

/// When the endpoint of product `p`, as its newest revision `latest` would call it, passed the
/// endpoint check; `None` when it has not (or has changed since).
async fn endpoint_checked_at(
    state: &AppState,
    p: &Product,
    latest: Option<&Revision>,
) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some((fingerprint, at)) = state.store.endpoint_check(&p.id).await? else {
        return Ok(None);
    };
    let now = CheckTarget::of(state, p, latest)?.fingerprint();
    Ok((fingerprint == now).then_some(at))
}
