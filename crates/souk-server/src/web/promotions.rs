//! The console's promotions: what runs and is scheduled, a form to start one, and ending one.

use super::done;
use super::error_page;
use super::when_text;
use super::FormErrors;
use super::Nothing;
use super::Page;
use super::Posted;
use super::Signed;
use crate::app::promotions;
use crate::app::promotions::PromotionInput;
use crate::app::Caller;
use crate::app::PageRequest;
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// The promotions pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/console/promotions", get(promotions_page).post(create))
        .route("/console/promotions/{id}/end", post(end))
}

/// A promotion as the console lists it.
pub struct PromotionRow {
    pub id: String,
    pub product_id: String,
    pub product_name: String,
    pub percent_off: u32,
    pub period: String,
    pub starts: String,
    pub ends: String,
    /// Not yet ended, so it can be ended now.
    pub open: bool,
}

/// What the form sends; dates are whole days, UTC.
#[derive(Debug, Default, Deserialize)]
pub struct PromotionForm {
    #[serde(default)]
    pub product_id: String,
    #[serde(default)]
    pub percent_off: String,
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub starts_on: String,
    #[serde(default)]
    pub ends_on: String,
}

#[derive(Template)]
#[template(path = "console_promotions.html")]
struct PromotionsPage {
    ctx: super::Ctx,
    rows: Vec<PromotionRow>,
    form: PromotionForm,
    errors: FormErrors,
}

fn day(field: &str, text: &str) -> Result<DateTime<Utc>, AppError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| AppError::invalid(field, "a date such as 2027-03-01"))
}

impl PromotionForm {
    fn input(&self) -> Result<PromotionInput, AppError> {
        Ok(PromotionInput {
            product_id: self.product_id.trim().to_owned(),
            percent_off: self
                .percent_off
                .trim()
                .parse()
                .map_err(|_| AppError::invalid("percent_off", "a whole number from 1 to 90"))?,
            period: Some(self.period.clone()).filter(|p| !p.is_empty()),
            starts_at: day("starts_on", &self.starts_on)?,
            ends_at: day("ends_on", &self.ends_on)?,
        })
    }
}

async fn render(
    state: &SharedState,
    page: &Page,
    caller: &Caller,
    form: PromotionForm,
    refused: Option<AppError>,
) -> Response {
    let now = state.now();
    let request = PageRequest {
        cursor: None,
        limit: Some(100),
    };
    match promotions::list(state, caller, request).await {
        Ok(p) => {
            let rows = p
                .items
                .iter()
                .map(|l| (&l.promotion, &l.product_name))
                .map(|(p, name)| PromotionRow {
                    id: p.id.to_string(),
                    product_name: name.clone(),
                    product_id: p.product_id.to_string(),
                    percent_off: p.terms.percent_off,
                    period: p
                        .terms
                        .period
                        .map_or("every order".to_owned(), |u| format!("by the {u}")),
                    starts: when_text(&p.terms.starts_at),
                    ends: when_text(&p.terms.ends_at),
                    open: p.terms.ends_at > now,
                })
                .collect();
            let status = refused.as_ref().map(|e| e.parts().0);
            let body = PromotionsPage {
                ctx: page.ctx.clone(),
                rows,
                errors: refused
                    .as_ref()
                    .map(FormErrors::from_error)
                    .unwrap_or_default(),
                form,
            };
            match status {
                Some(s) => page.render_status(s, &body),
                None => page.render(&body),
            }
        }
        Err(e) => error_page(page, e),
    }
}

async fn promotions_page(State(state): State<SharedState>, signed: Signed) -> Response {
    let Signed { page, caller } = signed;
    let page = page.titled("Promotions");
    let form = PromotionForm {
        starts_on: state.now().format("%Y-%m-%d").to_string(),
        ..Default::default()
    };
    render(&state, &page, &caller, form, None).await
}

async fn create(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(form): Posted<PromotionForm>,
) -> Response {
    let Signed { page, caller } = signed;
    let page = page.titled("Promotions");
    let refused = match form.input() {
        Ok(input) => match promotions::create(&state, &caller, input).await {
            Ok(_) => return done("/console/promotions", "promotion-saved"),
            Err(e) => e,
        },
        Err(e) => e,
    };
    render(&state, &page, &caller, form, Some(refused)).await
}

async fn end(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    let Signed { page, caller } = signed;
    match promotions::end(&state, &caller, &id.into()).await {
        Ok(()) => done("/console/promotions", "promotion-ended"),
        Err(e) => error_page(&page.titled("Promotions"), e),
    }
}
