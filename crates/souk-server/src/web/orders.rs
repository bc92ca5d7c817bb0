//! Buying (the plan, the period and how many, the price, the balance and what is missing), and the buyer's orders with their timelines.

use super::badge;
use super::catalog::{plan_rows, PlanRow};
use super::done;
use super::error_page;
use super::money;
use super::when;
use super::when_text;
use super::FormErrors;
use super::Page;
use super::Posted;
use super::Signed;
use crate::app::catalog;
use crate::app::catalog::ProductView;
use crate::app::ledger;
use crate::app::orders;
use crate::app::orders::OrderDetails;
use crate::app::orders::OrderFilter;
use crate::app::orders::OrderInput;
use crate::app::Caller;
use crate::app::PageRequest;
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
use serde::Deserialize;
use souk_core::money::Money;
use souk_store::events::TimelineEvent;
use souk_store::orders::Order;

/// The orders pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/products/{id}/buy", get(buy_form).post(buy))
        .route("/products/{id}/try", axum::routing::post(start_trial))
        .route("/orders", get(orders_page))
        .route("/orders/{id}", get(order_page))
}

/// What the trial button sends.
#[derive(Debug, Deserialize)]
pub struct TrialForm {
    #[serde(default)]
    pub plan: String,
}

/// Starts the plan's free trial and shows the new subscription; a refusal (not verified, trial
/// used, no trial) is a page that says why.
async fn start_trial(
    State(state): State<SharedState>,
    signed: Signed,
    Path(_product): Path<String>,
    Posted(form): Posted<TrialForm>,
) -> Response {
    let page = signed.page.titled("Free trial");
    let input = orders::TrialInput { plan_id: form.plan };
    match orders::start_trial(&state, &signed.caller, input, None).await {
        Ok(placed) => done(
            &format!("/instances/{}", placed.details.order.instance_id),
            "trial-started",
        ),
        Err(e) => error_page(&page, e),
    }
}

/// What the buy form sends.
#[derive(Debug, Clone, Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    pub plan: String,
    /// Empty when not sent: the page then shows the plan's first way of selling, while a
    /// purchase without it is refused.
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub periods: String,
    /// Made when the form was shown, so a double submit buys once.
    #[serde(default)]
    pub key: String,
}

#[derive(Template)]
#[template(path = "buy.html")]
struct BuyPage {
    ctx: super::Ctx,
    product: ProductView,
    plans: Vec<PlanRow>,
    /// The chosen plan's ways of being sold (a period it does not sell is not offered).
    periods_sold: Vec<(&'static str, &'static str)>,
    form: BuyForm,
    errors: FormErrors,
    /// "3 months of Team: 297.00 CNY".
    summary: Option<String>,
    /// What paying would charge, for the button.
    total: Option<String>,
    /// The list price and the promotion's discount, when one applies.
    discounted: Option<(String, String, u32)>,
    /// The buyer's balance in the plan's currency.
    balance: Option<String>,
    /// How much is missing when the balance is short.
    missing: Option<String>,
    verified: bool,
}

async fn buy_page(
    state: &SharedState,
    page: &Page,
    caller: &Caller,
    product_id: &str,
    form: BuyForm,
    refused: Option<AppError>,
) -> Response {
    let product = match catalog::product(state, product_id).await {
        Ok(p) => p,
        Err(e) => return error_page(page, e),
    };
    let mut form = form;
    if form.plan.is_empty() {
        form.plan = product
            .plans
            .first()
            .map(|p| p.id.clone())
            .unwrap_or_default();
    }
    if form.key.is_empty() {
        form.key = hex::encode(rand::random::<[u8; 12]>());
    }
    // A page opened without a choice shows the plan's first one; a refused purchase shows what
    // was sent.
    if refused.is_none() {
        if form.period.is_empty() {
            let plan = product.plans.iter().find(|p| p.id == form.plan);
            form.period = plan.map_or("month", first_period).to_owned();
        }
        if form.periods.is_empty() {
            form.periods = "1".into();
        }
    }
    let mut errors = refused
        .as_ref()
        .map(FormErrors::from_error)
        .unwrap_or_default();
    let (mut summary, mut total, mut balance, mut missing) = (None, None, None, None);
    let mut discounted = None;
    match periods(&form).map(|n| OrderInput {
        plan_id: form.plan.clone(),
        period: form.period.clone(),
        periods: n,
    }) {
        Ok(input) => match orders::quote(state, &input).await {
            Ok(q) => {
                summary = Some(match q.period {
                    souk_core::plans::Period::OnDemand => format!(
                        "{}, plan {}, on demand: nothing now; use is charged from the balance by the hour",
                        q.product.listed_name(),
                        q.plan.name
                    ),
                    souk_core::plans::Period::Once => format!(
                        "{}, plan {}, once for good",
                        q.product.listed_name(),
                        q.plan.name
                    ),
                    _ => format!(
                        "{} {}{} of {}, plan {}",
                        q.periods,
                        q.period,
                        if q.periods == 1 { "" } else { "s" },
                        q.product.listed_name(),
                        q.plan.name
                    ),
                });
                total = Some(money(&q.price));
                discounted = q
                    .priced
                    .percent_off
                    .map(|pct| (money(&q.priced.list), money(&q.priced.discount), pct));
                let have = ledger::balances(state, caller)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|m| m.currency == q.price.currency)
                    .unwrap_or(Money::from_minor(0, q.price.currency));
                balance = Some(money(&have));
                let credit = ledger::credit_limits(state, caller)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|m| m.currency == q.price.currency)
                    .map_or(0, |m| m.minor);
                let room = have.minor + credit;
                if room < q.price.minor {
                    missing = Some(money(&Money::from_minor(
                        q.price.minor - room,
                        q.price.currency,
                    )));
                }
            }
            Err(e) if errors.is_empty() => errors = FormErrors::from_error(&e),
            Err(_) => {}
        },
        Err(e) if errors.is_empty() => errors = FormErrors::from_error(&e),
        Err(_) => {}
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page_title = format!("Buy {}", product.name);
    let ctx = super::Ctx {
        title: format!("{page_title} · souk"),
        ..page.ctx.clone()
    };
    page.render_status(
        status,
        &BuyPage {
            ctx,
            periods_sold: product
                .plans
                .iter()
                .find(|p| p.id == form.plan)
                .map(periods_sold)
                .unwrap_or_default(),
            plans: plan_rows(&product),
            product,
            form,
            errors,
            summary,
            total,
            discounted,
            balance,
            missing,
            verified: caller.require_verified().is_ok(),
        },
    )
}

/// A purchase names its plan, period and number of periods: nothing is bought by default.
fn required(form: &BuyForm) -> Result<(), AppError> {
    for (field, value, missing) in [
        // Named as the API and the page's plan field name it.
        ("plan_id", &form.plan, "choose a plan"),
        ("period", &form.period, "choose a period"),
        ("periods", &form.periods, "say how many periods"),
    ] {
        if value.trim().is_empty() {
            return Err(AppError::invalid(field, missing));
        }
    }
    Ok(())
}

/// How a plan is sold first: by the month, the year, once, or on demand.
fn first_period(plan: &crate::app::catalog::PlanView) -> &'static str {
    periods_sold(plan).first().map_or("on_demand", |(v, _)| v)
}

/// The ways `plan` is sold, as the form's period choices: (value, words).
fn periods_sold(plan: &crate::app::catalog::PlanView) -> Vec<(&'static str, &'static str)> {
    let mut sold = Vec::new();
    if plan.monthly_price.is_some() {
        sold.push(("month", "month"));
    }
    if plan.yearly_price.is_some() {
        sold.push(("year", "year"));
    }
    if plan.one_time_price.is_some() {
        sold.push(("once", "once, for good"));
    }
    // A plan with no price of its own is sold by use.
    if sold.is_empty() {
        sold.push(("on_demand", "use, on demand"));
    }
    sold
}

fn periods(form: &BuyForm) -> Result<u32, AppError> {
    form.periods
        .trim()
        .parse()
        .map_err(|_| AppError::invalid("periods", "must be a whole number"))
}

/// The buy page: the plan, period and number of periods, the price, the balance, and the button.
pub async fn buy_form(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(form): Query<BuyForm>,
) -> Response {
    buy_page(&state, &signed.page, &signed.caller, &id, form, None).await
}

/// Pays from the balance; a double submit of the same form buys once.
pub async fn buy(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<BuyForm>,
) -> Response {
    let input = match required(&form).and_then(|()| periods(&form)) {
        Ok(n) => OrderInput {
            plan_id: form.plan.clone(),
            period: form.period.clone(),
            periods: n,
        },
        Err(e) => return buy_page(&state, &signed.page, &signed.caller, &id, form, Some(e)).await,
    };
    let key = super::form_key(&format!("web-{}", form.key), &form.key);
    match orders::place(&state, &signed.caller, input, key).await {
        Ok(placed) => done(
            &format!("/instances/{}", placed.details.order.instance_id),
            "paid",
        ),
        Err(e) => buy_page(&state, &signed.page, &signed.caller, &id, form, Some(e)).await,
    }
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
    /// The product's name.
    pub product: String,
    pub what: String,
    pub amount: String,
    /// The list price and the discount, when a promotion took something off.
    pub discounted: Option<(String, String)>,
    /// What went back, when anything did.
    pub refunded: Option<String>,
    pub at: String,
    pub at_text: String,
}

/// The rows of `orders`, each naming its product (read once for all of them).
pub(crate) async fn order_rows(
    state: &crate::AppState,
    orders: &[Order],
) -> Result<Vec<OrderRow>, crate::error::AppError> {
    let ids: Vec<_> = orders.iter().map(|o| o.product_id.clone()).collect();
    let products = state.store.products_by_id(&ids).await?;
    Ok(orders
        .iter()
        .map(|o| {
            let name = products
                .get(&o.product_id)
                .map_or_else(|| o.product_id.to_string(), |p| p.listed_name().to_owned());
            order_row(o, &name)
        })
        .collect())
}

/// What the buyer calls a kind of order (the filter's words).
fn kind_words(kind: souk_core::orders::OrderKind) -> &'static str {
    use souk_core::orders::OrderKind;
    match kind {
        OrderKind::New => "new",
        OrderKind::Renew => "renewal",
        OrderKind::Trial => "free trial",
        OrderKind::Convert => "trial paid for",
        OrderKind::Change => "plan change",
    }
}

/// A unit price with at least its currency's decimals (99 CNY reads 99.00; 0.004 stays).
fn unit_price(price: rust_decimal::Decimal, currency: souk_core::money::Currency) -> String {
    let mut p = price;
    p.rescale(p.scale().max(currency.minor_digits()));
    format!("{p} {currency}")
}

fn order_row(o: &Order, product: &str) -> OrderRow {
    let price = unit_price(o.unit_price, o.amount.currency);
    OrderRow {
        id: o.id.to_string(),
        kind: kind_words(o.kind).to_owned(),
        state: o.state.as_str().to_owned(),
        badge: badge(o.state.as_str()),
        instance_id: o.instance_id.to_string(),
        product: product.to_owned(),
        what: format!(
            "{product}: {}",
            if o.kind == souk_core::orders::OrderKind::Trial {
                "free trial".to_owned()
            } else if o.kind == souk_core::orders::OrderKind::Change {
                format!(
                    "{} to a plan at {price} a {} for the time left",
                    if o.amount.minor < 0 {
                        "downgrade"
                    } else {
                        "upgrade"
                    },
                    o.period
                )
            } else if o.period == souk_core::plans::Period::OnDemand {
                "on demand: metered use is charged by the hour".to_owned()
            } else if o.period == souk_core::plans::Period::Once {
                format!("one-time purchase at {price}")
            } else {
                format!("{} at {price} each", o.period.words(o.periods))
            }
        ),
        amount: money(&o.amount),
        refunded: (o.refunded.minor > 0).then(|| money(&o.refunded)),
        discounted: (o.discount.minor > 0).then(|| (money(&o.list), money(&o.discount))),
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
            match order_rows(&state, &p.items).await {
                Ok(rows) => rows,
                Err(e) => return error_page(&page, e),
            },
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
        Ok(OrderDetails { order, timeline }) => {
            let rows = match order_rows(&state, std::slice::from_ref(&order)).await {
                Ok(rows) => rows,
                Err(e) => return error_page(&page, e),
            };
            match rows.into_iter().next() {
                Some(order) => page.render(&OrderPage {
                    ctx: page.ctx.clone(),
                    order,
                    timeline: events(&timeline),
                }),
                None => error_page(&page, crate::error::AppError::NotFound("order".into())),
            }
        }
        Err(e) => error_page(&page, e),
    }
}
