//! Operator promotions: a percentage off a product's orders (for one period unit or all) between
//! a start and an end, and the pricing every paying order goes through.

use super::{schema, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::AppState;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use souk_core::accounts::Role;
use souk_core::ids::Id as _;
use souk_core::ids::{ProductId, PromotionId};
use souk_core::money::Money;
use souk_core::plans::Period;
use souk_core::promotions::{self, Priced, Promotion};
use souk_store::fresh;
use souk_store::promotions::StoredPromotion;
use utoipa::ToSchema;

/// A promotion as an operator enters it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PromotionInput {
    pub product_id: String,
    /// 1 to 90.
    #[schema(minimum = 1, maximum = 90)]
    pub percent_off: u32,
    /// Only orders bought by this unit; every order when left out.
    #[schema(value_type = Option<schema::Period>)]
    pub period: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// After `starts_at`.
    pub ends_at: DateTime<Utc>,
}

/// Starts (or schedules) a promotion of a product (role `operations`).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: PromotionInput,
) -> AppResult<StoredPromotion> {
    caller.require(Role::Operations)?;
    let period = input.period.as_deref().map(str::parse).transpose()?;
    let terms = Promotion {
        percent_off: input.percent_off,
        period,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
    }
    .validated()?;
    let product_id = ProductId::from(input.product_id.as_str());
    match state.store.product(&product_id).await {
        Ok(_) => {}
        Err(souk_store::Error::NotFound(_)) => {
            return Err(AppError::invalid("product_id", "no such product"))
        }
        Err(e) => return Err(e.into()),
    }
    let now = state.now();
    let p = StoredPromotion {
        id: fresh(now),
        product_id,
        terms,
        created_by: caller.id().clone(),
        created_at: now,
    };
    state.store.insert_promotion(&p).await?;
    Ok(p)
}

/// A promotion with the name of its product.
#[derive(Debug, Clone)]
pub struct Listed {
    pub promotion: StoredPromotion,
    pub product_name: String,
}

/// Every promotion, newest first, with its product's name (role `operations`).
pub async fn list(state: &AppState, caller: &Caller, page: PageRequest) -> AppResult<Page<Listed>> {
    caller.require(Role::Operations)?;
    let size = page.size()?;
    let rows = state
        .store
        .promotions(page.after(PromotionId::PREFIX)?, size + 1)
        .await?;
    let page = page.page(rows, size, |p| p.id.as_str());
    let product_ids: Vec<_> = page.items.iter().map(|p| p.product_id.clone()).collect();
    let products = state.store.products_by_id(&product_ids).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for promotion in page.items {
        let product = products.get(&promotion.product_id).ok_or_else(|| {
            AppError::Internal(format!("no product for promotion {}", promotion.id))
        })?;
        items.push(Listed {
            product_name: product.listed_name().to_owned(),
            promotion,
        });
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// Ends a promotion now (role `operations`); orders placed from now on pay the list price.
pub async fn end(state: &AppState, caller: &Caller, id: &PromotionId) -> AppResult<()> {
    caller.require(Role::Operations)?;
    if state.store.end_promotion(id, state.now()).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("running or scheduled promotion".into()))
    }
}

/// What an order of `list` by `period` of `product_id` pays now: the list price less the best
/// promotion running.
pub(crate) async fn price(
    state: &AppState,
    product_id: &ProductId,
    list: Money,
    period: Period,
) -> AppResult<Priced> {
    let now = state.now();
    let running: Vec<Promotion> = state
        .store
        .promotions_of(product_id, now)
        .await?
        .into_iter()
        .map(|p| p.terms)
        .collect();
    Ok(promotions::price(list, period, now, &running))
}

/// The promotion a buyer sees on a product now, if any: the best one running for any period.
pub(crate) async fn running(
    state: &AppState,
    product_id: &ProductId,
) -> AppResult<Option<Promotion>> {
    let now = state.now();
    Ok(state
        .store
        .promotions_of(product_id, now)
        .await?
        .into_iter()
        .map(|p| p.terms)
        .filter(|p| p.starts_at <= now)
        .max_by_key(|p| p.percent_off))
}
