//! The buyer centre: orders with their timelines, subscriptions with their state, access data
//! and renewal (provisioning updates in place), and the balance with the ledger.

use super::{badge, done, error_page, money, when, when_text, FormErrors, Posted, Signed};
use crate::app::instances::{self, InstanceDetails, RenewInput};
use crate::app::orders::{self, OrderDetails, OrderFilter};
use crate::app::{ledger, PageRequest};
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use souk_store::events::TimelineEvent;
use souk_store::orders::Order;

/// The buyer centre's pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/orders", get(orders_page))
        .route("/orders/{id}", get(order_page))
        .route("/instances", get(instances_page))
        .route("/instances/{id}", get(instance_page))
        .route("/instances/{id}/status", get(instance_status))
        .route("/instances/{id}/renew", axum::routing::post(renew))
        .route("/balance", get(balance_page))
        .route("/balance/ledger.csv", get(ledger_csv))
}

/// One event on a timeline, as pages show it.
pub struct EventRow {
    pub at: String,
    pub at_text: String,
    pub kind: String,
    pub detail: String,
}

pub(crate) fn events(timeline: &[TimelineEvent]) -> Vec<EventRow> {
    timeline
        .iter()
        .map(|e| EventRow {
            at: when(&e.at),
            at_text: when_text(&e.at),
            kind: e.kind.clone(),
            detail: e.detail.clone(),
        })
        .collect()
}

/// An order as a row or a page shows it.
pub struct OrderRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub badge: &'static str,
    pub instance_id: String,
    pub what: String,
    pub amount: String,
    pub at: String,
    pub at_text: String,
}

pub(crate) fn order_row(o: &Order) -> OrderRow {
    OrderRow {
        id: o.id.to_string(),
        kind: o.kind.as_str().to_owned(),
        state: o.state.as_str().to_owned(),
        badge: badge(o.state.as_str()),
        instance_id: o.instance_id.to_string(),
        what: format!(
            "{} {}{} at {} {} each",
            o.periods,
            o.period,
            if o.periods == 1 { "" } else { "s" },
            o.unit_price,
            o.amount.currency
        ),
        amount: money(&o.amount),
        at: when(&o.created_at),
        at_text: when_text(&o.created_at),
    }
}

/// The filters of the orders page, in the URL.
#[derive(Debug, Default, Deserialize)]
pub struct OrdersQuery {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub kind: String,
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    ctx: super::Ctx,
    query: OrdersQuery,
    rows: Vec<OrderRow>,
    next: Option<String>,
    errors: FormErrors,
}

async fn orders_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(query): Query<OrdersQuery>,
) -> Response {
    let page = signed.page.titled("Your orders");
    let filter = OrderFilter {
        state: Some(query.state.clone()).filter(|s| !s.is_empty()),
        kind: Some(query.kind.clone()).filter(|s| !s.is_empty()),
    };
    let request = PageRequest {
        cursor: query.cursor.clone(),
        limit: Some(20),
    };
    let (rows, next, errors) = match orders::list(&state, &signed.caller, filter, request).await {
        Ok(p) => (
            p.items.iter().map(order_row).collect(),
            p.next_cursor.map(|c| {
                format!(
                    "/orders?state={}&kind={}&cursor={c}",
                    query.state, query.kind
                )
            }),
            FormErrors::default(),
        ),
        Err(e @ crate::error::AppError::Validation { .. }) => {
            (vec![], None, FormErrors::from_error(&e))
        }
        Err(e) => return error_page(&page, e),
    };
    page.render(&OrdersPage {
        ctx: page.ctx.clone(),
        query,
        rows,
        next,
        errors,
    })
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    ctx: super::Ctx,
    order: OrderRow,
    timeline: Vec<EventRow>,
}

async fn order_page(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let page = signed.page.titled("Order");
    match orders::get(&state, &signed.caller, &id.into()).await {
        Ok(OrderDetails { order, timeline }) => page.render(&OrderPage {
            ctx: page.ctx.clone(),
            order: order_row(&order),
            timeline: events(&timeline),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// A subscription as a row or a page shows it.
pub struct InstanceRow {
    pub id: String,
    pub product: String,
    pub state: String,
    pub badge: &'static str,
    pub period: String,
    pub expires: String,
    pub expires_text: String,
    pub grace_ends: String,
    pub grace_ends_text: String,
    pub retention_ends: String,
    pub retention_ends_text: String,
    pub failure: Option<String>,
    pub front_end_url: Option<String>,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<String>,
    pub memo: Option<String>,
    /// Still being set up: the page refreshes this part until it is settled.
    pub in_progress: bool,
    pub renewable: bool,
    pub timeline: Vec<EventRow>,
}

fn instance_row(d: &InstanceDetails) -> InstanceRow {
    let i = &d.instance;
    let access = d.access.as_ref();
    let state = i.state.as_str();
    InstanceRow {
        id: i.id.to_string(),
        product: d.product_name.clone(),
        state: state.to_owned(),
        badge: badge(state),
        period: i.period.as_str().to_owned(),
        expires: when(&i.expires_at),
        expires_text: when_text(&i.expires_at),
        grace_ends: when(&d.grace_ends_at),
        grace_ends_text: when_text(&d.grace_ends_at),
        retention_ends: when(&d.retention_ends_at),
        retention_ends_text: when_text(&d.retention_ends_at),
        failure: i.failure_reason.clone(),
        front_end_url: access.and_then(|a| a.front_end_url.clone()),
        admin_url: access.and_then(|a| a.admin_url.clone()),
        user_name: access.and_then(|a| a.user_name.clone()),
        password: access.and_then(|a| a.password.clone()),
        memo: access.and_then(|a| a.memo.clone()),
        in_progress: state == "provisioning",
        renewable: matches!(state, "active" | "grace" | "frozen"),
        timeline: events(&d.timeline),
    }
}

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    ctx: super::Ctx,
    rows: Vec<InstanceRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursor {
    cursor: Option<String>,
}

async fn instances_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(q): Query<Cursor>,
) -> Response {
    let page = signed.page.titled("Your subscriptions");
    let request = PageRequest {
        cursor: q.cursor,
        limit: Some(20),
    };
    match instances::list(&state, &signed.caller, request).await {
        Ok(p) => page.render(&InstancesPage {
            ctx: page.ctx.clone(),
            rows: p.items.iter().map(instance_row).collect(),
            next: p.next_cursor.map(|c| format!("/instances?cursor={c}")),
        }),
        Err(e) => error_page(&page, e),
    }
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePage {
    ctx: super::Ctx,
    i: InstanceRow,
    renew_errors: FormErrors,
    periods: String,
    renew_hint: String,
}

#[derive(Template)]
#[template(path = "instance_status.html")]
struct InstanceStatus {
    i: InstanceRow,
}

async fn instance_page(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let page = signed.page.titled("Subscription");
    match instances::get(&state, &signed.caller, &id.into()).await {
        Ok(d) => page.render(&InstancePage {
            ctx: page.ctx.clone(),
            i: instance_row(&d),
            renew_hint: format!("{}s, from the current expiry", d.instance.period),
            renew_errors: FormErrors::default(),
            periods: "1".into(),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// The part of the subscription page that changes while it is set up, for in-place refresh.
async fn instance_status(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match instances::get(&state, &signed.caller, &id.into()).await {
        Ok(d) => signed.page.render(&InstanceStatus {
            i: instance_row(&d),
        }),
        Err(e) => error_page(&signed.page, e),
    }
}

/// What the renew form sends.
#[derive(Debug, Deserialize)]
pub struct RenewForm {
    #[serde(default)]
    pub periods: String,
    #[serde(default)]
    pub key: String,
}

async fn renew(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<RenewForm>,
) -> Response {
    let page = signed.page.titled("Subscription");
    let refused = match form.periods.trim().parse::<u32>() {
        Ok(periods) => {
            let key = Some(format!("web-renew-{}", form.key)).filter(|_| !form.key.is_empty());
            match instances::renew(
                &state,
                &signed.caller,
                &id.as_str().into(),
                RenewInput { periods },
                key,
            )
            .await
            {
                Ok(_) => return done(&format!("/instances/{id}"), "renewed"),
                Err(e) => e,
            }
        }
        Err(_) => crate::error::AppError::invalid("periods", "must be a whole number"),
    };
    match instances::get(&state, &signed.caller, &id.into()).await {
        Ok(d) => page.render_status(
            refused.parts().0,
            &InstancePage {
                ctx: page.ctx.clone(),
                i: instance_row(&d),
                renew_hint: format!("{}s, from the current expiry", d.instance.period),
                renew_errors: FormErrors::from_error(&refused),
                periods: form.periods,
            },
        ),
        Err(e) => error_page(&page, e),
    }
}

/// A ledger entry as the balance page shows it.
pub struct EntryRow {
    pub at: String,
    pub at_text: String,
    pub kind: String,
    pub memo: String,
    pub amount: String,
    pub balance_after: String,
    pub order_id: Option<String>,
}

#[derive(Template)]
#[template(path = "balance.html")]
struct BalancePage {
    ctx: super::Ctx,
    balances: Vec<String>,
    rows: Vec<EntryRow>,
    next: Option<String>,
}

async fn balance_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(q): Query<Cursor>,
) -> Response {
    let page = signed.page.titled("Balance and ledger");
    let balances = match ledger::balances(&state, &signed.caller).await {
        Ok(b) => b.iter().map(money).collect(),
        Err(e) => return error_page(&page, e),
    };
    let request = PageRequest {
        cursor: q.cursor,
        limit: Some(50),
    };
    match ledger::entries(&state, &signed.caller, request).await {
        Ok(p) => page.render(&BalancePage {
            ctx: page.ctx.clone(),
            balances,
            rows: p
                .items
                .iter()
                .map(|e| EntryRow {
                    at: when(&e.created_at),
                    at_text: when_text(&e.created_at),
                    kind: e.kind.as_str().replace('_', "-"),
                    memo: e.memo.clone(),
                    amount: money(&e.amount),
                    balance_after: money(&e.balance_after),
                    order_id: e.order_id.as_ref().map(|o| o.to_string()),
                })
                .collect(),
            next: p.next_cursor.map(|c| format!("/balance?cursor={c}")),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// One CSV field, quoted when it must be; a leading formula character is defused so a
/// spreadsheet never runs a memo as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The whole ledger as CSV, newest first, with the running balance.
async fn ledger_csv(State(state): State<SharedState>, signed: Signed) -> Response {
    let mut out =
        String::from("id,time,kind,amount,currency,balance_after,order_id,reference,memo\n");
    let mut cursor = None;
    loop {
        let request = PageRequest {
            cursor: cursor.take(),
            limit: Some(100),
        };
        let page = match ledger::entries(&state, &signed.caller, request).await {
            Ok(p) => p,
            Err(e) => return error_page(&signed.page, e),
        };
        for e in &page.items {
            let row = [
                e.id.to_string(),
                when(&e.created_at),
                e.kind.as_str().to_owned(),
                e.amount.amount_string(),
                e.amount.currency.code().to_owned(),
                e.balance_after.amount_string(),
                e.order_id
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                e.reference.clone().unwrap_or_default(),
                e.memo.clone(),
            ];
            out.push_str(
                &row.iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"souk-ledger.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(super::csv_field("-12.50"), "-12.50");
    }
}
