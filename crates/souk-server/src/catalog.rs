//! The catalog buyers browse: every listed product with its plans, held in memory and re-read
//! when this node changes a listing or after a short time-to-live (for changes made by other
//! nodes), so browsing and search never wait on the database.

use crate::error::ApiError;
use rust_decimal::Decimal;
use serde::Serialize;
use souk_core::plans::PlanPrices;
use souk_core::review::ProductContent;
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
    pub currency: String,
    /// Price of one month (decimal string), when sold by the month.
    pub monthly_price: Option<String>,
    /// Price of one year (decimal string), when sold by the year.
    pub yearly_price: Option<String>,
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
    /// `saas`.
    pub product_type: String,
    pub name: String,
    pub summary: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub logo_url: Option<String>,
    pub support_contact: String,
    pub licence: String,
    pub merchant: MerchantRef,
    pub plans: Vec<PlanView>,
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
    pub product_type: Option<String>,
    pub currency: Option<String>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
}

impl Entry {
    fn from_listed(p: ListedProduct) -> Result<Entry, ApiError> {
        let content: ProductContent = serde_json::from_str(
            p.product.listed_content.as_deref().unwrap_or("null"),
        )
        .map_err(|e| ApiError::Internal(format!("listed content of {}: {e}", p.product.id)))?;
        let mut monthly = Vec::new();
        let plans = p
            .plans
            .iter()
            .map(|pl| {
                if let Ok(prices) = PlanPrices::parse(
                    "plan",
                    &pl.currency,
                    pl.monthly_price.as_deref(),
                    pl.yearly_price.as_deref(),
                ) {
                    monthly.push((pl.currency.clone(), prices.monthly_equivalent()));
                }
                PlanView {
                    id: pl.id.clone(),
                    name: pl.name.clone(),
                    description: pl.description.clone(),
                    currency: pl.currency.clone(),
                    monthly_price: pl.monthly_price.clone(),
                    yearly_price: pl.yearly_price.clone(),
                }
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
                id: p.product.id.clone(),
                product_type: p.product.product_type.clone(),
                name: content.name,
                summary: content.summary,
                description: content.description,
                category: content.category,
                tags: content.tags,
                logo_url: content.logo_url,
                support_contact: content.support_contact,
                licence: content.licence,
                merchant: MerchantRef {
                    id: p.product.merchant_id.clone(),
                    company_name: p.company_name,
                },
                plans,
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
    pub async fn entries(&self, store: &Store) -> Result<Arc<Vec<Entry>>, ApiError> {
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
    ) -> Result<Vec<ProductView>, ApiError> {
        let entries = self.entries(store).await?;
        Ok(entries
            .iter()
            .rev()
            .filter(|e| e.matches(search))
            .map(|e| e.view.clone())
            .collect())
    }

    /// One listed product.
    pub async fn product(&self, store: &Store, id: &str) -> Result<Option<ProductView>, ApiError> {
        Ok(self
            .entries(store)
            .await?
            .iter()
            .find(|e| e.view.id == id)
            .map(|e| e.view.clone()))
    }
}

/// Parses a price filter.
pub fn parse_price(field: &str, value: Option<&str>) -> Result<Option<Decimal>, ApiError> {
    value
        .map(|v| {
            Decimal::from_str(v.trim())
                .map_err(|_| ApiError::invalid(field, format!("{v:?} is not a decimal number")))
        })
        .transpose()
}
