//! Buying: a verified buyer orders a plan for N months or years, paid from the balance in the
//! same transaction that creates the order, the instance and its provisioning job. A retry with
//! the same `Idempotency-Key` answers the same order and charges once.

use super::{schema, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::jobs::SellerJob;
use crate::AppState;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use souk_core::ids::Id as _;
use souk_core::ids::{AccountId, OrderId, PlanId};
use souk_core::ledger::debit_floor;
use souk_core::lifecycle::InstanceState;
use souk_core::money::{Currency, Money};
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans::{add_periods, Period};
use souk_core::promotions::{Priced, Promotion};
use souk_core::review::ProductState;
use souk_store::events::TimelineEvent;
use souk_store::instances::Instance;
use souk_store::orders::{Order, Purchase};
use souk_store::products::{Plan, Product};
use souk_store::{fresh, Store};
use utoipa::ToSchema;

/// What to buy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OrderInput {
    pub plan_id: String,
    #[schema(value_type = schema::Period)]
    pub period: String,
    /// How many months or years, 1 to 36 months or 1 to 5 years.
    #[schema(minimum = 1, maximum = 36)]
    pub periods: u32,
}

/// An order with what happened to it, oldest first.
#[derive(Debug, Clone)]
pub struct OrderDetails {
    pub order: Order,
    pub timeline: Vec<TimelineEvent>,
}

/// What a paying request did, and whether an earlier request with the same key did it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub details: OrderDetails,
    pub replayed: bool,
}

/// The lowest balance a debit of `account_id` in `currency` may leave: minus the credit limit
/// finance gave the account (zero when none).
pub(crate) async fn floor(
    state: &AppState,
    account_id: &AccountId,
    currency: Currency,
) -> AppResult<i64> {
    Ok(debit_floor(
        state.store.credit_limit(account_id, currency).await?,
    ))
}

/// The answer for a short balance: the price and what is there.
pub(crate) fn short_balance(e: souk_store::Error, price: Money) -> AppError {
    match e {
        souk_store::Error::InsufficientBalance { available_minor } => {
            AppError::InsufficientBalance {
                price: price.to_string(),
                available: Money::from_minor(available_minor, price.currency).to_string(),
            }
        }
        other => other.into(),
    }
}

pub(crate) async fn details(store: &Store, order: Order) -> AppResult<OrderDetails> {
    let timeline = store
        .order_timeline(&order.id, &order.instance_id, order.created_at)
        .await?;
    Ok(OrderDetails { order, timeline })
}

/// Runs a paying request under its `Idempotency-Key`. A used key makes the store refuse the new
/// order before any debit; then (and after any other failure) the answer is the order the first
/// request with this key made, so a retry sees it even if, say, the plan has left sale since. The
/// same key on a different request is refused.
pub(crate) async fn idempotent<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    fingerprint: String,
    attempt: F,
) -> AppResult<Placed>
where
    F: FnOnce(Option<String>, String) -> Fut,
    Fut: std::future::Future<Output = AppResult<Placed>>,
{
    match (attempt(key.clone(), fingerprint.clone()).await, key) {
        (Err(e), Some(key)) => match state.store.order_by_key(caller.id(), &key).await? {
            Some(o) if o.request_fingerprint.as_deref() == Some(fingerprint.as_str()) => {
                Ok(Placed {
                    details: details(&state.store, o).await?,
                    replayed: true,
                })
            }
            Some(_) => Err(AppError::IdempotencyKeyReused),
            None => Err(e),
        },
        (outcome, _) => outcome,
    }
}

/// Buys a plan, paid from the balance.
pub async fn place(
    state: &AppState,
    caller: &Caller,
    input: OrderInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("new:{}:{}:{}", input.plan_id, input.period, input.periods);
    idempotent(state, caller, key, fingerprint, |key, fingerprint| {
        buy(state, caller, input, key, fingerprint)
    })
    .await
}

/// What an order would cost, decided exactly as buying decides it.
#[derive(Debug, Clone)]
pub struct Quote {
    pub plan: Plan,
    pub product: Product,
    pub period: Period,
    pub periods: u32,
    /// Price of one period.
    pub unit_price: Decimal,
    /// The list price, the promotion's discount and what the order would charge.
    pub priced: Priced,
    /// What the order would charge.
    pub price: Money,
}

/// A plan with its product and the product's promotions not yet ended, if both are on sale.
pub(crate) async fn on_sale(
    state: &AppState,
    plan_id: &str,
) -> AppResult<(Plan, Product, Vec<Promotion>)> {
    let on_sale = state
        .store
        .plan_with_product(&PlanId::from(plan_id), state.now())
        .await;
    let (plan, product, promotions) = match on_sale {
        Ok(found) => found,
        Err(souk_store::Error::NotFound(_)) => {
            return Err(AppError::invalid("plan_id", "no such plan"))
        }
        Err(e) => return Err(e.into()),
    };
    if product.state != ProductState::Listed || !plan.active {
        return Err(AppError::NotOnSale);
    }
    Ok((plan, product, promotions))
}

/// Prices an order without placing it: the plan must be on sale and sold by the period.
pub async fn quote(state: &AppState, input: &OrderInput) -> AppResult<Quote> {
    let period: Period = input.period.parse()?;
    let (plan, product, promotions) = on_sale(state, &input.plan_id).await?;
    let list = plan.prices.price(period, input.periods)?;
    let unit_price = plan
        .prices
        .unit_price(period)
        .ok_or_else(|| AppError::invalid("period", period.not_sold()))?;
    let priced = souk_core::promotions::price(list, period, state.now(), &promotions);
    Ok(Quote {
        plan,
        product,
        period,
        periods: input.periods,
        unit_price,
        price: priced.paid(),
        priced,
    })
}

async fn buy(
    state: &AppState,
    caller: &Caller,
    input: OrderInput,
    key: Option<String>,
    fingerprint: String,
) -> AppResult<Placed> {
    caller.require_verified()?;
    let Quote {
        plan,
        product,
        period,
        price,
        priced,
        unit_price,
        ..
    } = quote(state, &input).await?;
    if period == Period::OnDemand {
        // Nothing is charged up front, so no debit would stop an account that already owes.
        let balance = super::ledger::balances(state, caller)
            .await?
            .into_iter()
            .find(|m| m.currency == price.currency)
            .map_or(0, |m| m.minor);
        if balance < 0
            && souk_core::ledger::in_arrears(
                balance,
                state
                    .store
                    .credit_limit(caller.id(), price.currency)
                    .await?,
            )
        {
            return Err(AppError::Conflict(format!(
                "the account is in arrears in {}: top up the balance first",
                price.currency
            )));
        }
    }
    let now = state.now();
    let order = new_order(
        caller,
        (&plan, &product),
        (OrderKind::New, period, input.periods, unit_price),
        priced,
        (key, fingerprint),
        now,
    );
    let order_id = order.id.clone();
    let instance = new_instance(&order, add_periods(now, period, input.periods), false);
    let memo = match period {
        Period::OnDemand => format!(
            "{}, plan {}, on demand: use is charged by the hour",
            product.listed_name(),
            plan.name
        ),
        Period::Once => format!(
            "{}, plan {}, once for good: {}",
            product.listed_name(),
            plan.name,
            price
        ),
        Period::Month | Period::Year => format!(
            "{} {}(s) of {}, plan {}: {}",
            input.periods,
            period,
            product.listed_name(),
            plan.name,
            price
        ),
    };
    let job = SellerJob::NewInstance.spec(&order_id);
    let paid = state
        .store
        .purchase(
            Purchase {
                order: &order,
                instance: &instance,
                job: &job,
                memo: &memo,
            },
            now,
        )
        .await
        .map_err(|e| short_balance(e, price))?;
    state.wake_dispatcher.notify_waiters();
    Ok(Placed {
        details: OrderDetails {
            order,
            timeline: vec![paid],
        },
        replayed: false,
    })
}

/// A new paid order (a purchase or a trial) of `plan`, with fresh ids for it and its instance:
/// what it buys (kind, period, how many, unit price), its price, and its idempotency key and
/// request fingerprint.
fn new_order(
    caller: &Caller,
    (plan, product): (&Plan, &Product),
    (kind, period, periods, unit_price): (OrderKind, Period, u32, Decimal),
    priced: Priced,
    (idempotency_key, fingerprint): (Option<String>, String),
    now: DateTime<Utc>,
) -> Order {
    Order {
        id: fresh(now),
        buyer_id: caller.id().clone(),
        kind,
        state: OrderState::Paid,
        product_id: product.id.clone(),
        plan_id: plan.id.clone(),
        merchant_id: product.merchant_id.clone(),
        instance_id: fresh(now),
        period,
        periods,
        unit_price,
        list: priced.list,
        discount: priced.discount,
        amount: priced.paid(),
        refunded: Money::from_minor(0, priced.list.currency),
        idempotency_key,
        request_fingerprint: Some(fingerprint),
        created_at: now,
    }
}

/// The instance a new order (a purchase or a trial) makes, waiting for the seller to create it.
fn new_instance(order: &Order, expires_at: DateTime<Utc>, trial: bool) -> Instance {
    Instance {
        id: order.instance_id.clone(),
        buyer_id: order.buyer_id.clone(),
        product_id: order.product_id.clone(),
        plan_id: order.plan_id.clone(),
        merchant_id: order.merchant_id.clone(),
        order_id: order.id.clone(),
        state: InstanceState::Provisioning,
        period: order.period,
        expires_at,
        next_transition_at: None,
        version: 0,
        business_id: order.instance_id.to_string(),
        seller_instance_id: None,
        access_enc: None,
        failure_reason: None,
        trial,
        arrears_expiry: None,
        created_at: order.created_at,
        updated_at: order.created_at,
    }
}

/// Which plan to try.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TrialInput {
    pub plan_id: String,
}

/// Starts a plan's free trial: verified buyers only, once per buyer and product (also under
/// concurrent requests: the store's unique rule decides), nothing charged. The instance is
/// provisioned like a purchase and runs for the plan's trial days; converting it to a paid
/// subscription keeps it.
pub async fn start_trial(
    state: &AppState,
    caller: &Caller,
    input: TrialInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("trial:{}", input.plan_id);
    idempotent(state, caller, key, fingerprint, |key, fingerprint| {
        try_plan(state, caller, input, key, fingerprint)
    })
    .await
}

async fn try_plan(
    state: &AppState,
    caller: &Caller,
    input: TrialInput,
    key: Option<String>,
    fingerprint: String,
) -> AppResult<Placed> {
    caller.require_verified()?;
    let (plan, product, _) = on_sale(state, &input.plan_id).await?;
    let days = plan
        .trial_days
        .ok_or_else(|| AppError::invalid("plan_id", "this plan has no free trial"))?;
    let now = state.now();
    let period = plan.prices.default_period();
    let free = Money::from_minor(0, plan.prices.currency);
    let nothing = Priced {
        list: free,
        discount: free,
        percent_off: None,
    };
    let order = new_order(
        caller,
        (&plan, &product),
        (OrderKind::Trial, period, 0, Decimal::ZERO),
        nothing,
        (key, fingerprint),
        now,
    );
    let order_id = order.id.clone();
    let instance = new_instance(
        &order,
        souk_core::clock::add(now, chrono::Duration::days(i64::from(days))),
        true,
    );
    let memo = format!(
        "{days}-day free trial of {}, plan {}",
        product.listed_name(),
        plan.name
    );
    let job = SellerJob::NewInstance.spec(&order_id);
    let started = state
        .store
        .purchase(
            Purchase {
                order: &order,
                instance: &instance,
                job: &job,
                memo: &memo,
            },
            now,
        )
        .await
        .map_err(|e| match e {
            souk_store::Error::Duplicate(souk_store::Constraint::Trial) => AppError::TrialUsed,
            other => other.into(),
        })?;
    state.wake_dispatcher.notify_waiters();
    Ok(Placed {
        details: OrderDetails {
            order,
            timeline: vec![started],
        },
        replayed: false,
    })
}

/// Which of the caller's orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// `paid`, `refunded` or `unsubscribed`.
    pub state: Option<String>,
    /// `new`, `renew`, `trial`, `convert` or `change`.
    pub kind: Option<String>,
}

/// The caller's orders, newest first, filtered.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    filter: OrderFilter,
    page: PageRequest,
) -> AppResult<Page<Order>> {
    let size = page.size()?;
    let in_state = filter
        .state
        .as_deref()
        .map(|s| {
            s.parse::<OrderState>()
                .map_err(|_| AppError::invalid("state", "must be paid, refunded or unsubscribed"))
        })
        .transpose()?;
    let kind = filter
        .kind
        .as_deref()
        .map(|s| {
            s.parse::<OrderKind>().map_err(|_| {
                AppError::invalid("kind", "must be new, renew, trial, convert or change")
            })
        })
        .transpose()?;
    let rows = state
        .store
        .orders_of_buyer(
            caller.id(),
            in_state,
            kind,
            page.after(OrderId::PREFIX)?,
            size + 1,
        )
        .await?;
    Ok(page.page(rows, size, |o| o.id.as_str()))
}

/// One of the caller's orders with its timeline; another buyer's order is not found.
pub async fn get(state: &AppState, caller: &Caller, id: &OrderId) -> AppResult<OrderDetails> {
    match state.store.order(id).await {
        Ok(o) if &o.buyer_id == caller.id() => details(&state.store, o).await,
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(AppError::NotFound("order".into())),
        Err(e) => Err(e.into()),
    }
}
