//! The catalog buyers browse: every listed product with its plans, held in memory and re-read
//! when this node changes a listing or after a short time-to-live (for changes made by other
//! nodes), so browsing and search never wait on the database.

use crate::error::{AppError, AppResult};
use crate::AppState;
use rust_decimal::Decimal;
use serde::Serialize;
use souk_core::ids::ProductId;
use souk_core::review::CATEGORIES;
use souk_store::catalog::ListedProduct;
use souk_store::Store;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use utoipa::ToSchema;

/// A plan as buyers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// ISO currency of the prices.
    #[schema(value_type = super::schema::Currency)]
    pub currency: String,
    /// Price of one month (decimal string), when sold by the month.
    pub monthly_price: Option<String>,
    /// Price of one year (decimal string), when sold by the year.
    pub yearly_price: Option<String>,
    /// Price of a one-time purchase that never expires (decimal string), when sold so.
    pub one_time_price: Option<String>,
    /// Days of free trial a verified buyer may take once, when the plan offers one.
    pub trial_days: Option<u32>,
    /// What the plan charges by use: alone, the plan is sold on demand; with a monthly or yearly
    /// price and quotas, it is a package.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<super::products::DimensionInput>)]
    pub dimensions: Vec<souk_core::metering::DimensionDraft>,
}

/// The merchant behind a product, as buyers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MerchantRef {
    pub id: String,
    pub company_name: String,
}

/// A listed product as buyers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    #[schema(value_type = super::schema::KindOfProduct)]
    pub product_type: String,
    pub name: String,
    pub summary: String,
    pub description: String,
    #[schema(value_type = super::schema::Category)]
    pub category: String,
    pub tags: Vec<String>,
    pub logo_url: Option<String>,
    pub support_contact: String,
    pub licence: String,
    pub merchant: MerchantRef,
    pub plans: Vec<PlanView>,
    /// The best promotion running now, on the single-product view.
    pub promotion: Option<PromotionView>,
}

/// A promotion as buyers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromotionView {
    pub percent_off: u32,
    /// Only orders bought by this unit; every order when absent.
    #[schema(value_type = Option<super::schema::Period>)]
    pub period: Option<String>,
    pub ends_at: chrono::DateTime<chrono::Utc>,
}

/// One product with what search and filters need precomputed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub view: ProductView,
    /// Lower-cased name, summary, description, tags and merchant, for text search.
    haystack: String,
    /// Per plan: currency and the price of one month (a yearly price counts as a twelfth).
    monthly: Vec<(String, Decimal)>,
}

/// Filters of a catalog search.
#[derive(Debug, Default, Clone)]
pub struct Search {
    pub text: Option<String>,
    pub category: Option<String>,
    /// A merchant's id.
    pub merchant: Option<String>,
    pub product_type: Option<String>,
    pub currency: Option<String>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
}

impl Entry {
    fn from_listed(p: ListedProduct) -> Result<Entry, AppError> {
        let content = p.product.listed.clone().ok_or_else(|| {
            AppError::Internal(format!(
                "listed product {} has no listed content",
                p.product.id
            ))
        })?;
        let monthly = p
            .plans
            .iter()
            .map(|pl| {
                (
                    pl.prices.currency.code().to_owned(),
                    pl.prices.monthly_equivalent(),
                )
            })
            .collect();
        let plans = p
            .plans
            .iter()
            .map(|pl| PlanView {
                id: pl.id.to_string(),
                name: pl.name.clone(),
                description: pl.description.clone(),
                currency: pl.prices.currency.code().to_owned(),
                monthly_price: pl.prices.monthly.map(|d| d.to_string()),
                yearly_price: pl.prices.yearly.map(|d| d.to_string()),
                one_time_price: pl.prices.one_time.map(|d| d.to_string()),
                dimensions: pl.prices.metered.iter().map(|d| d.draft()).collect(),
                trial_days: pl.trial_days,
            })
            .collect();
        let haystack = format!(
            "{} {} {} {} {}",
            content.name,
            content.summary,
            content.description,
            content.tags.join(" "),
            p.company_name
        )
        .to_lowercase();
        Ok(Entry {
            view: ProductView {
                id: p.product.id.to_string(),
                product_type: p.product.product_type.as_str().to_owned(),
                name: content.name,
                summary: content.summary,
                description: content.description,
                category: content.category,
                tags: content.tags,
                logo_url: content.logo_url,
                support_contact: content.support_contact,
                licence: content.licence,
                merchant: MerchantRef {
                    id: p.product.merchant_id.to_string(),
                    company_name: p.company_name,
                },
                plans,
                promotion: None,
            },
            haystack,
            monthly,
        })
    }

    fn matches(&self, s: &Search) -> bool {
        if let Some(text) = &s.text {
            if !text
                .split_whitespace()
                .all(|word| self.haystack.contains(&word.to_lowercase()))
            {
                return false;
            }
        }
        if s.category
            .as_ref()
            .is_some_and(|c| *c != self.view.category)
        {
            return false;
        }
        if s.merchant
            .as_ref()
            .is_some_and(|m| *m != self.view.merchant.id)
        {
            return false;
        }
        if s.product_type
            .as_ref()
            .is_some_and(|t| *t != self.view.product_type)
        {
            return false;
        }
        if s.min_price.is_some() || s.max_price.is_some() || s.currency.is_some() {
            return self.monthly.iter().any(|(currency, price)| {
                s.currency.as_ref().is_none_or(|c| c == currency)
                    && s.min_price.is_none_or(|min| *price >= min)
                    && s.max_price.is_none_or(|max| *price <= max)
            });
        }
        true
    }
}

struct Snapshot {
    loaded: Instant,
    entries: Arc<Vec<Entry>>,
}

/// The in-memory catalog.
pub struct CatalogCache {
    ttl: Duration,
    snapshot: RwLock<Option<Snapshot>>,
}

impl CatalogCache {
    /// An empty cache that re-reads after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        CatalogCache {
            ttl,
            snapshot: RwLock::new(None),
        }
    }

    /// Forgets the snapshot; the next read loads the catalog again.
    pub async fn invalidate(&self) {
        *self.snapshot.write().await = None;
    }

    /// Every listed product.
    pub async fn entries(&self, store: &Store) -> Result<Arc<Vec<Entry>>, AppError> {
        if let Some(s) = self.snapshot.read().await.as_ref() {
            if s.loaded.elapsed() < self.ttl {
                return Ok(s.entries.clone());
            }
        }
        let mut guard = self.snapshot.write().await;
        if let Some(s) = guard.as_ref() {
            if s.loaded.elapsed() < self.ttl {
                return Ok(s.entries.clone());
            }
        }
        let entries = Arc::new(
            store
                .listed_products()
                .await?
                .into_iter()
                .map(Entry::from_listed)
                .collect::<Result<Vec<_>, _>>()?,
        );
        *guard = Some(Snapshot {
            loaded: Instant::now(),
            entries: entries.clone(),
        });
        Ok(entries)
    }

    /// Listed products matching `search`, newest listing first.
    pub async fn search(
        &self,
        store: &Store,
        search: &Search,
    ) -> Result<Vec<ProductView>, AppError> {
        let entries = self.entries(store).await?;
        Ok(entries
            .iter()
            .rev()
            .filter(|e| e.matches(search))
            .map(|e| e.view.clone())
            .collect())
    }

    /// One listed product.
    pub async fn product(&self, store: &Store, id: &str) -> Result<Option<ProductView>, AppError> {
        Ok(self
            .entries(store)
            .await?
            .iter()
            .find(|e| e.view.id == id)
            .map(|e| e.view.clone()))
    }
}

/// Search filters as a person gives them; all optional.
#[derive(Debug, Clone, Default)]
pub struct SearchInput {
    pub q: Option<String>,
    pub category: Option<String>,
    /// A merchant's id.
    pub merchant: Option<String>,
    pub product_type: Option<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    pub currency: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One page of listed products.
pub struct Found {
    pub items: Vec<ProductView>,
    pub next_cursor: Option<String>,
    /// How many products match in all.
    pub total: usize,
}

fn parse_price(field: &str, value: Option<&str>) -> AppResult<Option<Decimal>> {
    value
        .map(|v| {
            Decimal::from_str(v.trim())
                .map_err(|_| AppError::invalid(field, format!("{v:?} is not a decimal number")))
        })
        .transpose()
}

/// Lists and searches listed products, newest first.
pub async fn search(state: &AppState, input: SearchInput) -> AppResult<Found> {
    let limit = super::PageRequest {
        cursor: None,
        limit: input.limit,
    }
    .size()? as usize;
    if let Some(c) = &input.category {
        if !CATEGORIES.contains(&c.as_str()) {
            return Err(AppError::invalid(
                "category",
                format!("must be one of: {}", CATEGORIES.join(", ")),
            ));
        }
    }
    if let Some(c) = &input.currency {
        c.parse::<souk_core::money::Currency>()?;
    }
    let product_type = input.product_type.filter(|t| !t.is_empty());
    if let Some(t) = &product_type {
        if t.parse::<souk_core::review::ProductType>().is_err() {
            return Err(AppError::invalid(
                "type",
                format!(
                    "must be one of: {}",
                    souk_core::review::ProductType::ALL
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if let Some(m) = &input.merchant {
        souk_core::validate::optional_text("merchant", m, 64)?;
    }
    let offset = match &input.cursor {
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| AppError::invalid("cursor", "is not a cursor this API gave out"))?,
        None => 0,
    };
    let search = Search {
        text: input.q.filter(|q| !q.trim().is_empty()),
        category: input.category,
        merchant: input.merchant.filter(|m| !m.trim().is_empty()),
        product_type,
        currency: input.currency,
        min_price: parse_price("min_price", input.min_price.as_deref())?,
        max_price: parse_price("max_price", input.max_price.as_deref())?,
    };
    let all = state.catalog.search(&state.store, &search).await?;
    let total = all.len();
    let items: Vec<ProductView> = all.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    Ok(Found {
        next_cursor: (next < total).then(|| next.to_string()),
        items,
        total,
    })
}

/// The merchants with something listed, by name, for filters.
pub async fn merchants(state: &AppState) -> AppResult<Vec<MerchantRef>> {
    let entries = state.catalog.entries(&state.store).await?;
    let mut out: Vec<MerchantRef> = Vec::new();
    for e in entries.iter() {
        if !out.iter().any(|m| m.id == e.view.merchant.id) {
            out.push(e.view.merchant.clone());
        }
    }
    out.sort_by(|a, b| a.company_name.cmp(&b.company_name));
    Ok(out)
}

/// One listed product with its plans.
pub async fn product(state: &AppState, id: &str) -> AppResult<ProductView> {
    let mut view = state
        .catalog
        .product(&state.store, id)
        .await?
        .ok_or(AppError::NotFound("product".into()))?;
    // Promotions start and end with time, so they are read now, not cached with the listing.
    view.promotion = super::promotions::running(state, &ProductId::from(id))
        .await?
        .map(|p| PromotionView {
            percent_off: p.percent_off,
            period: p.period.map(|p| p.as_str().to_owned()),
            ends_at: p.ends_at,
        });
    Ok(view)
}
