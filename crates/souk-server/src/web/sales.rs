//! What a merchant sold: the instances of its products with every seller call and answer, and their orders.

use super::badge;
use super::error_page;
use super::orders::order_rows;
use super::when;
use super::when_text;
use super::Cursor;
use super::Signed;
use crate::app::sales;
use crate::app::PageRequest;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

/// The sales pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/seller/sales", get(sales_page))
        .route("/seller/usage", get(usage_page))
}

#[derive(Template)]
#[template(path = "seller_usage.html")]
struct UsagePage {
    ctx: super::Ctx,
    /// (day, instance, meter, quantity, charged), newest first.
    rated: Vec<[String; 5]>,
    /// (instance, meter, records, quantity) reported and waiting for their hour to end.
    pending: Vec<[String; 4]>,
}

/// The usage the merchant reported: charged per instance, meter and day, and what waits.
async fn usage_page(State(state): State<SharedState>, signed: Signed) -> Response {
    let page = signed.page.titled("Usage");
    match crate::app::metering::of_merchant(&state, &signed.caller).await {
        Ok(u) => page.render(&UsagePage {
            ctx: page.ctx.clone(),
            rated: u
                .days
                .iter()
                .map(|d| {
                    [
                        d.day.format("%Y-%m-%d").to_string(),
                        format!(
                            "{} ({})",
                            u.products.get(&d.instance_id).map_or("", String::as_str),
                            d.instance_id
                        ),
                        d.dimension.clone(),
                        d.quantity.to_string(),
                        d.amount.to_string(),
                    ]
                })
                .collect(),
            pending: u
                .pending
                .iter()
                .map(|(i, d, n, q)| {
                    [
                        format!("{} ({i})", u.products.get(i).map_or("", String::as_str)),
                        d.clone(),
                        n.to_string(),
                        q.to_string(),
                    ]
                })
                .collect(),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// A seller call as the sales page shows it.
pub struct CallRow {
    pub kind: String,
    pub state: String,
    pub badge: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub answers: Vec<String>,
}

/// An instance sold, as the sales page shows it.
pub struct SaleRow {
    pub id: String,
    pub product: String,
    pub order_id: String,
    pub state: String,
    pub badge: &'static str,
    pub expires: String,
    /// The expiry comes (not a one-time or on-demand purchase).
    pub lapses: bool,
    pub expires_text: String,
    pub failure: Option<String>,
    pub calls: Vec<CallRow>,
}

#[derive(Template)]
#[template(path = "seller_sales.html")]
struct SalesPage {
    ctx: super::Ctx,
    rows: Vec<SaleRow>,
    orders: Vec<super::orders::OrderRow>,
    next: Option<String>,
}

async fn sales_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(q): Query<Cursor>,
) -> Response {
    let page = signed.page.titled("Sales");
    let request = PageRequest {
        cursor: q.cursor,
        limit: Some(20),
    };
    let sold = match sales::instances(&state, &signed.caller, request).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let orders = match sales::orders(
        &state,
        &signed.caller,
        PageRequest {
            cursor: None,
            limit: Some(20),
        },
    )
    .await
    {
        Ok(p) => match order_rows(&state, &p.items).await {
            Ok(rows) => rows,
            Err(e) => return error_page(&page, e),
        },
        Err(e) => return error_page(&page, e),
    };
    page.render(&SalesPage {
        ctx: page.ctx.clone(),
        rows: sold
            .items
            .iter()
            .map(|s| SaleRow {
                id: s.instance.id.to_string(),
                product: s.product_name.clone(),
                order_id: s.instance.order_id.to_string(),
                state: s.instance.state.as_str().to_owned(),
                badge: badge(s.instance.state.as_str()),
                expires: when(&s.instance.expires_at),
                lapses: !souk_core::plans::is_never(s.instance.expires_at),
                expires_text: if souk_core::plans::is_never(s.instance.expires_at) {
                    "never".to_owned()
                } else {
                    when_text(&s.instance.expires_at)
                },
                failure: s.instance.failure_reason.clone(),
                calls: s
                    .calls
                    .iter()
                    .map(|c| CallRow {
                        kind: c.job.kind.clone(),
                        state: c.job.state.as_str().to_owned(),
                        badge: badge(c.job.state.as_str()),
                        attempts: c.job.attempts,
                        last_error: c.job.last_error.clone(),
                        answers: c
                            .attempts
                            .iter()
                            .map(|a| {
                                format!(
                                    "#{} {}: {}",
                                    a.attempt,
                                    when_text(&a.started_at),
                                    a.answer.as_deref().or(a.error.as_deref()).unwrap_or("-")
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        orders,
        next: sold
            .next_cursor
            .map(|c| format!("/seller/sales?cursor={c}")),
    })
}
