//! The storefront: the home page, search with filters, and a product page.

use super::error_page;
use super::money;
use super::FormErrors;
use super::Page;
use crate::app::catalog;
use crate::app::catalog::MerchantRef;
use crate::app::catalog::PlanView;
use crate::app::catalog::ProductView;
use crate::app::catalog::SearchInput;
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use rust_decimal::Decimal;
use serde::Deserialize;
use souk_core::money::Currency;
use souk_core::money::Money;
use souk_core::review::CATEGORIES;
use std::str::FromStr;

/// The catalog pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/products/{id}", get(product))
}

/// A product as a card in a list.
pub struct Card {
    pub id: String,
    pub name: String,
    pub initials: String,
    pub merchant: String,
    pub category: String,
    pub summary: String,
    /// "from 49.00 CNY / month", when the product has a price.
    pub price_from: Option<String>,
}

fn price(text: &Option<String>, currency: &str) -> Option<Money> {
    let amount = Decimal::from_str(text.as_deref()?).ok()?;
    Money::round(amount, Currency::from_str(currency).ok()?).ok()
}

/// The lowest monthly price of a product, or its lowest yearly one, as a card shows it.
fn price_from(plans: &[PlanView]) -> Option<String> {
    let lowest = |period: fn(&PlanView) -> &Option<String>| {
        plans
            .iter()
            .filter_map(|p| price(period(p), &p.currency))
            .min_by_key(|m| m.minor)
    };
    if let Some(m) = lowest(|p| &p.monthly_price) {
        return Some(format!("from {} / month", money(&m)));
    }
    lowest(|p| &p.yearly_price).map(|m| format!("from {} / year", money(&m)))
}

impl From<&ProductView> for Card {
    fn from(p: &ProductView) -> Self {
        Card {
            id: p.id.clone(),
            initials: p
                .name
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .take(2)
                .collect::<String>()
                .to_uppercase(),
            name: p.name.clone(),
            merchant: p.merchant.company_name.clone(),
            category: p.category.clone(),
            summary: p.summary.clone(),
            price_from: price_from(&p.plans),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    ctx: super::Ctx,
    categories: Vec<&'static str>,
    newest: Vec<Card>,
}

/// The storefront's home: categories and the newest listings.
pub async fn home(State(state): State<SharedState>, page: Page) -> Response {
    let page = page.titled("Cloud software, ready today");
    match catalog::search(
        &state,
        SearchInput {
            limit: Some(8),
            ..SearchInput::default()
        },
    )
    .await
    {
        Ok(found) => page.render(&Home {
            ctx: page.ctx.clone(),
            categories: CATEGORIES.to_vec(),
            newest: found.items.iter().map(Card::from).collect(),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// What the search form sends; everything optional.
#[derive(Debug, Default, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub merchant: String,
    #[serde(default)]
    pub min_price: String,
    #[serde(default)]
    pub max_price: String,
    pub cursor: Option<String>,
}

fn nonempty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    ctx: super::Ctx,
    form: SearchForm,
    categories: Vec<&'static str>,
    merchants: Vec<MerchantRef>,
    results: Vec<Card>,
    total: usize,
    errors: FormErrors,
    next: Option<String>,
}

impl SearchPage {
    /// The link to the next page, keeping the filters.
    fn next_link(&self) -> Option<String> {
        let cursor = self.next.as_ref()?;
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.form.q)
            .append_pair("category", &self.form.category)
            .append_pair("merchant", &self.form.merchant)
            .append_pair("min_price", &self.form.min_price)
            .append_pair("max_price", &self.form.max_price)
            .append_pair("cursor", cursor)
            .finish();
        Some(format!("/search?{q}"))
    }
}

/// Search with filters in the URL, newest first, a page at a time.
pub async fn search(
    State(state): State<SharedState>,
    page: Page,
    Query(form): Query<SearchForm>,
) -> Response {
    let page = page.titled(match nonempty(&form.q) {
        Some(q) => format!("Search: {q}"),
        None => "Browse products".to_owned(),
    });
    let merchants = catalog::merchants(&state).await.unwrap_or_default();
    let input = SearchInput {
        q: nonempty(&form.q),
        category: nonempty(&form.category),
        merchant: nonempty(&form.merchant),
        min_price: nonempty(&form.min_price),
        max_price: nonempty(&form.max_price),
        cursor: form.cursor.clone(),
        limit: Some(12),
        ..SearchInput::default()
    };
    let (results, total, next, errors) = match catalog::search(&state, input).await {
        Ok(found) => (
            found.items.iter().map(Card::from).collect(),
            found.total,
            found.next_cursor,
            FormErrors::default(),
        ),
        Err(e @ AppError::Validation { .. }) => (vec![], 0, None, FormErrors::from_error(&e)),
        Err(e) => return error_page(&page, e),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page.render_status(
        status,
        &SearchPage {
            ctx: page.ctx.clone(),
            form,
            categories: CATEGORIES.to_vec(),
            merchants,
            results,
            total,
            errors,
            next,
        },
    )
}

/// A plan as the product page shows it.
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub monthly: Option<String>,
    pub yearly: Option<String>,
    pub once: Option<String>,
    /// Days of free trial, when the plan offers one.
    pub trial_days: Option<u32>,
    /// Sold on demand only (nothing up front).
    pub on_demand: bool,
    /// What each metered dimension costs, in words.
    pub metered: Vec<String>,
}

/// A metered dimension's prices in words: "0.05 CNY per page; 0.03 from 100000 in a period;
/// 10000 included each period, then refused".
fn metered_text(d: &souk_core::metering::DimensionDraft, currency: &str) -> String {
    let mut text = format!("{} {currency} per {} ({})", d.price, d.unit, d.key);
    for t in &d.tiers {
        text.push_str(&format!("; {} from {} in a period", t.price, t.from));
    }
    if let Some(q) = &d.included {
        text.push_str(&format!(
            "; {q} included each period, {}",
            if d.overage == Some(souk_core::metering::Overage::Refuse) {
                "no more after that"
            } else {
                "the rest charged as used"
            }
        ));
    }
    text
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    ctx: super::Ctx,
    product: ProductView,
    plans: Vec<PlanRow>,
    /// The viewer has had this product's free trial (one a product).
    trial_taken: bool,
}

pub(crate) fn plan_rows(p: &ProductView) -> Vec<PlanRow> {
    p.plans
        .iter()
        .map(|pl| PlanRow {
            id: pl.id.clone(),
            name: pl.name.clone(),
            description: pl.description.clone(),
            monthly: price(&pl.monthly_price, &pl.currency).map(|m| money(&m)),
            yearly: price(&pl.yearly_price, &pl.currency).map(|m| money(&m)),
            once: price(&pl.one_time_price, &pl.currency).map(|m| money(&m)),
            trial_days: pl.trial_days,
            on_demand: pl.monthly_price.is_none()
                && pl.yearly_price.is_none()
                && pl.one_time_price.is_none(),
            metered: pl
                .dimensions
                .iter()
                .map(|d| metered_text(d, &pl.currency))
                .collect(),
        })
        .collect()
}

/// A listed product: what it is, who sells it, its plans and prices, support and licence.
pub async fn product(
    State(state): State<SharedState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    match catalog::product(&state, &id).await {
        Ok(product) => {
            let page = page.titled(product.name.clone());
            // Only asked when there is a trial to offer; a failed read offers it (taking it
            // again is refused anyway).
            let trial_taken = match page.ctx.caller() {
                Some(c) if product.plans.iter().any(|p| p.trial_days.is_some()) => state
                    .store
                    .trial_taken(c.id(), &product.id.as_str().into())
                    .await
                    .unwrap_or(false),
                _ => false,
            };
            page.render(&ProductPage {
                ctx: page.ctx.clone(),
                plans: plan_rows(&product),
                product,
                trial_taken,
            })
        }
        Err(e) => error_page(&page, e),
    }
}
