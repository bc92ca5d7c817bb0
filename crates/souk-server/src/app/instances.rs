//! What a buyer bought: instances with their state, expiry and access data, and renewal, which
//! restores an instance in grace or retention (unfreezing it at the seller) and extends its
//! expiry from the old expiry.

use super::orders::{details, floor, idempotent, short_balance, Placed};
use super::{retry_stale, schema, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::jobs::SellerJob;
use crate::AppState;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use souk_core::ids::Id as _;
use souk_core::ids::{InstanceId, OrderId};
use souk_core::lifecycle::{self, Event, Subject, Transition};
use souk_core::money::Money;
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plan_changes::{self, Held};
use souk_core::plans::{add_periods, Period};
use souk_core::refunds::{self, Bought, PaidSpan, Scope, Starts, Terms};
use souk_protocol::AppInfo;
use souk_store::events::TimelineEvent;
use souk_store::fresh;
use souk_store::instances::Instance;
use souk_store::orders::{Order, OrderRefund, PlanChange, Renewal, Unsubscription};
use souk_store::products::{Plan, Product};
use utoipa::ToSchema;

/// How long to renew for, in the instance's period.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RenewInput {
    /// 1 to 36 months, or 1 to 5 years.
    #[schema(minimum = 1, maximum = 36)]
    pub periods: u32,
}

/// An instance as its buyer sees it.
#[derive(Debug, Clone)]
pub struct InstanceDetails {
    pub instance: Instance,
    pub product_name: String,
    /// The plan it is on now.
    pub plan_name: String,
    /// When the grace period ends (the seller is asked to freeze it then).
    pub grace_ends_at: DateTime<Utc>,
    /// When the retention period ends (the seller is asked to release it then).
    pub retention_ends_at: DateTime<Utc>,
    /// How it is paid for.
    pub mode: souk_core::plans::Mode,
    /// What is left of each quota its package includes this period (none when it has none).
    pub quotas: Vec<super::metering::DimensionUse>,
    /// How to reach it, as the seller gave it (decrypted for its owner only).
    pub access: Option<AppInfo>,
    /// What happened, oldest first (on the single-instance view).
    pub timeline: Vec<TimelineEvent>,
}

/// `i` with what its owner sees of it; `product` and `plan` are its own.
async fn with_details(
    state: &AppState,
    i: Instance,
    product: &Product,
    plan: Plan,
    with_timeline: bool,
) -> AppResult<InstanceDetails> {
    // Once released the seller has let it go: there is nothing left to reach.
    let released = i.state == souk_core::lifecycle::InstanceState::Released;
    let access = match &i.access_enc {
        Some(enc) if !released => Some(
            serde_json::from_str(
                &state
                    .secrets
                    .open(&crate::crypto::instance_access_aad(i.id.as_str()), enc)?,
            )
            .map_err(|e| AppError::Internal(e.to_string()))?,
        ),
        _ => None,
    };
    let timeline = if with_timeline {
        // The job queue's own events (a replayed call skipped, a call given up) are for the
        // seller and operators; the buyer's timeline says what happened to the subscription.
        let mut events = state.store.instance_timeline(&i.id).await?;
        events.retain(|e| !e.kind.starts_with("job."));
        events
    } else {
        vec![]
    };
    let quotas = if plan.prices.metered.iter().any(|d| !d.included.is_zero()) {
        let (_, _, uses) = super::metering::dimension_uses(state, &i, &plan).await?;
        uses.into_iter()
            .filter(|u| u.quota_left.is_some())
            .collect()
    } else {
        vec![]
    };
    let policy = state.settings.policy;
    Ok(InstanceDetails {
        product_name: product.listed_name().to_owned(),
        mode: plan.prices.mode(i.period, i.trial),
        quotas,
        plan_name: plan.name,
        grace_ends_at: policy.grace_end(i.expires_at),
        retention_ends_at: policy.retention_end(i.expires_at),
        access,
        timeline,
        instance: i,
    })
}

pub(crate) async fn own_instance(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
) -> AppResult<Instance> {
    match state.store.instance(id).await {
        Ok(i) if &i.buyer_id == caller.id() => Ok(i),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(AppError::NotFound("instance".into())),
        Err(e) => Err(e.into()),
    }
}

/// The caller's instances, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<InstanceDetails>> {
    let size = page.size()?;
    let rows = state
        .store
        .instances_of_buyer(caller.id(), page.after(InstanceId::PREFIX)?, size + 1)
        .await?;
    let page = page.page(rows, size, |i| i.id.as_str());
    // Products and plans are read once for the page (a buyer's instances share them).
    let product_ids: Vec<_> = page.items.iter().map(|i| i.product_id.clone()).collect();
    let products = state.store.products_by_id(&product_ids).await?;
    let plan_ids: Vec<_> = page.items.iter().map(|i| i.plan_id.clone()).collect();
    let plans = state.store.plans_by_id(&plan_ids).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for i in page.items {
        let missing = || AppError::Internal(format!("instance {} without its plan", i.id));
        let product = products.get(&i.product_id).ok_or_else(missing)?;
        let plan = plans.get(&i.plan_id).ok_or_else(missing)?.clone();
        items.push(with_details(state, i, product, plan, false).await?);
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// One of the caller's instances, with access data and timeline.
pub async fn get(state: &AppState, caller: &Caller, id: &InstanceId) -> AppResult<InstanceDetails> {
    let i = own_instance(state, caller, id).await?;
    let product = state.store.product(&i.product_id).await?;
    let plan = state.store.plan(&i.plan_id).await?;
    with_details(state, i, &product, plan, true).await
}

/// Renews an instance for N more periods from its current expiry, paid from the balance. During
/// grace or retention this restores it (unfreezing it at the seller when frozen).
pub async fn renew(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: RenewInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("renew:{id}:{}", input.periods);
    let more = Extension::Renew {
        periods: input.periods,
    };
    pay_on_instance(state, caller, key, fingerprint, |key, fingerprint| {
        extend(state, caller, id, more, key, fingerprint)
    })
    .await
}

/// Runs a paying request on an instance (a renewal, a conversion, a plan change) under its
/// `Idempotency-Key`. It is decided on the instance as read; if the scheduler or another request
/// moves the instance meanwhile, the store refuses the stale write and it is decided again on the
/// new state.
async fn pay_on_instance<F, Fut>(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    fingerprint: String,
    attempt: F,
) -> AppResult<Placed>
where
    F: Fn(Option<String>, String) -> Fut,
    Fut: std::future::Future<Output = AppResult<Placed>>,
{
    idempotent(
        state,
        caller,
        key,
        fingerprint,
        |key, fingerprint| async move {
            caller.require_verified()?;
            retry_stale(|| attempt(key.clone(), fingerprint.clone())).await
        },
    )
    .await
}

/// How long to pay for, converting a trial.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ConvertInput {
    #[schema(value_type = schema::Period)]
    pub period: String,
    /// 1 to 36 months, or 1 to 5 years.
    #[schema(minimum = 1, maximum = 36)]
    pub periods: u32,
}

/// Converts a free trial into a paid subscription of the same plan, keeping its instance: the
/// paid time runs from now, and the seller is told with `refreshInstance` scene
/// `TRIAL_TO_FORMAL` (unfrozen first when the trial had run out that far).
pub async fn convert(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: ConvertInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("convert:{id}:{}:{}", input.period, input.periods);
    let more = Extension::Convert {
        period: input.period.parse()?,
        periods: input.periods,
    };
    pay_on_instance(state, caller, key, fingerprint, |key, fingerprint| {
        extend(state, caller, id, more, key, fingerprint)
    })
    .await
}

/// What a paid extension of an instance buys.
#[derive(Debug, Clone, Copy)]
enum Extension {
    /// More periods of a paid subscription, from its expiry.
    Renew { periods: u32 },
    /// A trial becomes paid, from now.
    Convert { period: Period, periods: u32 },
}

async fn extend(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    more: Extension,
    key: Option<String>,
    fingerprint: String,
) -> AppResult<Placed> {
    let instance = own_instance(state, caller, id).await?;
    if instance.arrears_expiry.is_some() {
        // Its paid expiry is held aside until the arrears are paid; extending it now would be
        // undone then.
        return Err(AppError::Conflict(
            "the account is in arrears: top up the balance first, then renew".into(),
        ));
    }
    let plan = state.store.plan(&instance.plan_id).await?;
    let now = state.now();
    let (kind, period, periods, new_expiry) = match more {
        Extension::Renew { .. } if instance.period.is_open_ended() => {
            return Err(AppError::Conflict(
                "a one-time or on-demand purchase never expires and is not renewed".into(),
            ))
        }
        Extension::Renew { .. } if instance.trial => {
            return Err(AppError::Conflict(
                "a free trial is converted to a paid subscription, not renewed".into(),
            ))
        }
        Extension::Convert { .. } if !instance.trial => {
            return Err(AppError::Conflict(
                "only a free trial is converted; renew a paid subscription instead".into(),
            ))
        }
        Extension::Renew { periods } => (
            OrderKind::Renew,
            instance.period,
            periods,
            add_periods(instance.expires_at, instance.period, periods),
        ),
        Extension::Convert { period, periods } => (
            OrderKind::Convert,
            period,
            periods,
            add_periods(now, period, periods),
        ),
    };
    let priced = super::promotions::price(
        state,
        &instance.product_id,
        plan.prices.price(period, periods)?,
        period,
    )
    .await?;
    let price = priced.paid();
    let unit_price = plan
        .prices
        .unit_price(period)
        .ok_or_else(|| AppError::invalid("period", period.not_sold()))?;
    let event = match kind {
        OrderKind::Convert => Event::Converted { new_expiry },
        _ => Event::Renewed { new_expiry },
    };
    let t = lifecycle::transition(
        Subject {
            state: instance.state,
            expiry: instance.expires_at,
        },
        event,
        now,
        state.settings.policy,
    )?;
    let order_id: OrderId = fresh(now);
    let order = Order {
        id: order_id.clone(),
        buyer_id: caller.id().clone(),
        kind,
        state: OrderState::Paid,
        product_id: instance.product_id.clone(),
        plan_id: instance.plan_id.clone(),
        merchant_id: instance.merchant_id.clone(),
        instance_id: instance.id.clone(),
        period,
        periods,
        unit_price,
        list: priced.list,
        discount: priced.discount,
        amount: price,
        refunded: Money::from_minor(0, price.currency),
        idempotency_key: key,
        request_fingerprint: Some(fingerprint),
        created_at: now,
    };
    let jobs = t
        .seller_calls()
        .map(|c| SellerJob::from_call(c).spec(&order_id))
        .collect();
    let product = state.store.product(&instance.product_id).await?;
    let memo = format!(
        "{} of {} for {} {}(s): {}, expires {}",
        if kind == OrderKind::Convert {
            "trial converted to paid"
        } else {
            "renewal"
        },
        product.listed_name(),
        periods,
        period,
        price,
        new_expiry.format("%Y-%m-%d %H:%M UTC")
    );
    state
        .store
        .renew(
            Renewal {
                order: &order,
                instance: &instance,
                transition: &t,
                jobs,
                floor_minor: floor(state, caller.id(), price.currency).await?,
                converts_to: (kind == OrderKind::Convert).then_some(period),
            },
            &memo,
            now,
        )
        .await
        .map_err(|e| short_balance(e, price))?;
    state.wake_dispatcher.notify_waiters();
    Ok(Placed {
        details: details(&state.store, state.store.order(&order_id).await?).await?,
        replayed: false,
    })
}

/// What to give back when unsubscribing.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UnsubscribeInput {
    /// `everything` (the default) ends the subscription and releases the instance; `renewals`
    /// gives back only renewed periods that have not begun, and the instance runs to the end of
    /// the rest.
    #[schema(value_type = Option<schema::UnsubscribeScope>)]
    pub scope: Option<String>,
}

impl UnsubscribeInput {
    fn scope(&self) -> AppResult<Scope> {
        match self.scope.as_deref() {
            None | Some("everything") => Ok(Scope::Everything),
            Some("renewals") => Ok(Scope::RenewalsOnly),
            Some(_) => Err(AppError::invalid(
                "scope",
                "must be \"everything\" or \"renewals\"",
            )),
        }
    }
}

/// What unsubscribing would give back, order by order, decided exactly as unsubscribing does.
#[derive(Debug, Clone)]
pub struct RefundQuote {
    pub scope: Scope,
    /// Each order given back, with what goes back for it.
    pub orders: Vec<(Order, Money)>,
    /// Everything that goes back.
    pub total: Money,
    /// The expiry afterwards, when only renewals are given back.
    pub new_expiry: Option<DateTime<Utc>>,
    transition: Transition,
}

/// What an unsubscription did.
#[derive(Debug, Clone)]
pub struct Unsubscribed {
    pub instance: InstanceDetails,
    pub refunded: Money,
    /// The orders given back, as they are now.
    pub orders: Vec<Order>,
}

/// A stretch of time, from its start to its end.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The paid orders of an instance, oldest first, each with the span of time it paid for (a plan
/// change's: the time it re-priced). Returned renewals no longer pay for any time, so the spans
/// chain over the paid orders only.
fn paid_spans(orders: Vec<Order>) -> Vec<(Order, Span)> {
    let paid: Vec<Order> = orders
        .into_iter()
        .filter(|o| o.state == OrderState::Paid)
        .collect();
    let bought: Vec<Bought> = paid
        .iter()
        .map(|o| Bought {
            period: o.period,
            periods: o.periods,
            starts: match o.kind {
                OrderKind::Renew => Starts::AfterPrevious,
                OrderKind::Change => Starts::Change(o.created_at),
                OrderKind::New | OrderKind::Trial | OrderKind::Convert => {
                    Starts::Placed(o.created_at)
                }
            },
        })
        .collect();
    let spans = refunds::spans(&bought);
    paid.into_iter().zip(spans).collect()
}

/// The paid orders as a plan change prices them.
fn held(paid: &[(Order, Span)]) -> Vec<Held> {
    paid.iter()
        .map(|(o, span)| Held {
            span: *span,
            change: o.kind == OrderKind::Change,
            periods: o.periods,
            unit_price: o.unit_price,
            list_minor: o.list.minor,
            paid_minor: o.amount.minor,
        })
        .collect()
}

fn decide(
    state: &AppState,
    instance: &Instance,
    orders: Vec<Order>,
    scope: Scope,
    now: DateTime<Utc>,
) -> AppResult<RefundQuote> {
    let paid = paid_spans(orders);
    let held = held(&paid);
    let mut spans = Vec::with_capacity(paid.len());
    for (i, (o, (starts_at, ends_at))) in paid.iter().enumerate() {
        let terms = match (o.kind, o.period) {
            (OrderKind::Change, _) => Terms::Change {
                left_minor: plan_changes::change_left(&held, i, now, o.amount.currency)?,
            },
            (_, Period::Once) => Terms::OneTime,
            _ => Terms::Periodic,
        };
        spans.push(PaidSpan {
            paid_minor: o.amount.minor - o.refunded.minor,
            ordered_at: o.created_at,
            starts_at: *starts_at,
            ends_at: *ends_at,
            terms,
        });
    }
    let paid: Vec<Order> = paid.into_iter().map(|(o, _)| o).collect();
    let (event, new_expiry) = match scope {
        Scope::Everything => (Event::Unsubscribed, None),
        Scope::RenewalsOnly => {
            let back = refunds::expiry_without_unbegun(&spans, now).ok_or_else(|| {
                AppError::invalid(
                    "scope",
                    "no renewed period is still to begin; there is nothing to give back",
                )
            })?;
            if spans
                .iter()
                .any(|s| matches!(s.terms, Terms::Change { .. }) && s.ends_at > back)
            {
                // The change re-priced those renewals; giving them back alone would leave its
                // share of them paid for.
                return Err(AppError::Conflict(
                    "the plan changed after these renewals were bought: unsubscribe from everything instead".into(),
                ));
            }
            (Event::RenewalsReturned { new_expiry: back }, Some(back))
        }
    };
    let transition = lifecycle::transition(
        Subject {
            state: instance.state,
            expiry: instance.expires_at,
        },
        event,
        now,
        state.settings.policy,
    )?;
    let policy = state.settings.refunds;
    let (given, spans): (Vec<Order>, Vec<PaidSpan>) = paid
        .into_iter()
        .zip(spans)
        .filter(|(_, span)| scope == Scope::Everything || now < span.starts_at)
        .unzip();
    let returned: Vec<(Order, Money)> = refunds::give_back(&spans, now, policy, scope)
        .into_iter()
        .zip(given)
        .map(|(back, o)| {
            let back = Money::from_minor(back, o.amount.currency);
            (o, back)
        })
        .collect();
    let currency = returned
        .first()
        .map_or(souk_core::money::Currency::Cny, |(o, _)| o.amount.currency);
    let total = Money::from_minor(returned.iter().map(|(_, m)| m.minor).sum(), currency);
    Ok(RefundQuote {
        scope,
        orders: returned,
        total,
        new_expiry,
        transition,
    })
}

/// What unsubscribing one of the caller's instances would give back now.
pub async fn unsubscribe_quote(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: &UnsubscribeInput,
) -> AppResult<RefundQuote> {
    let scope = input.scope()?;
    let instance = own_instance(state, caller, id).await?;
    let orders = state.store.orders_of_instance(id).await?;
    decide(state, &instance, orders, scope, state.now())
}

/// Unsubscribes one of the caller's instances: gives back what the refund rules allow, and tells
/// the seller (`releaseInstance`, or `refreshInstance` with scene `UNSUBSCRIBE_RENEWAL_PERIOD`
/// when only renewals are given back). A second unsubscribe is refused: the instance is released.
pub async fn unsubscribe(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: UnsubscribeInput,
) -> AppResult<Unsubscribed> {
    let scope = input.scope()?;
    let refunded = retry_stale(|| give_back(state, caller, id, scope)).await?;
    state.wake_dispatcher.notify_waiters();
    let instance = get(state, caller, id).await?;
    let mut orders = Vec::with_capacity(refunded.1.len());
    for order_id in &refunded.1 {
        orders.push(state.store.order(order_id).await?);
    }
    Ok(Unsubscribed {
        instance,
        refunded: refunded.0,
        orders,
    })
}

async fn give_back(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    scope: Scope,
) -> AppResult<(Money, Vec<OrderId>)> {
    let instance = own_instance(state, caller, id).await?;
    let orders = state.store.orders_of_instance(id).await?;
    let now = state.now();
    let quote = decide(state, &instance, orders, scope, now)?;
    // The seller hears of it under the order that ends: the purchase when the whole instance goes,
    // the first returned renewal otherwise.
    let cause = match scope {
        Scope::Everything => instance.order_id.clone(),
        Scope::RenewalsOnly => quote
            .orders
            .first()
            .map_or(instance.order_id.clone(), |(o, _)| o.id.clone()),
    };
    let jobs = quote
        .transition
        .seller_calls()
        .map(|c| SellerJob::from_call(c).spec(&cause))
        .collect();
    let product = state.store.product(&instance.product_id).await?;
    let product = product.listed_name();
    let memo = match quote.new_expiry {
        None => format!(
            "unsubscribed from {product}: {} back, released at the seller",
            quote.total
        ),
        Some(expiry) => format!(
            "gave back {} renewal(s) of {product}: {} back, expires {}",
            quote.orders.len(),
            quote.total,
            expiry.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    let refunds = quote
        .orders
        .iter()
        .map(|(o, back)| OrderRefund {
            order: o,
            amount: *back,
            memo: format!(
                "refund of {product} (order {}, {} paid): {back}",
                o.id, o.amount
            ),
        })
        .collect();
    state
        .store
        .unsubscribe(
            Unsubscription {
                instance: &instance,
                transition: &quote.transition,
                jobs,
                refunds,
                event_kind: match scope {
                    Scope::Everything => "instance.unsubscribed",
                    Scope::RenewalsOnly => "instance.renewals_returned",
                },
                memo: &memo,
                actor: caller.id(),
            },
            now,
        )
        .await?;
    Ok((
        quote.total,
        quote.orders.iter().map(|(o, _)| o.id.clone()).collect(),
    ))
}

/// Which plan of the product to move to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PlanChangeInput {
    pub plan_id: String,
}

/// What moving an instance to another plan would cost, decided exactly as changing decides it.
#[derive(Debug, Clone)]
pub struct PlanChangeQuote {
    pub product_name: String,
    pub from: Plan,
    pub to: Plan,
    /// The new plan's price of one period.
    pub unit_price: rust_decimal::Decimal,
    /// Charged when positive (an upgrade), given back when negative (a downgrade).
    pub difference: Money,
    /// The end of the paid time the change re-prices.
    pub until: DateTime<Utc>,
}

impl PlanChangeQuote {
    /// "upgrade" or "downgrade", by which way the money goes.
    pub fn direction(&self) -> &'static str {
        if self.difference.minor < 0 {
            "downgrade"
        } else {
            "upgrade"
        }
    }
}

async fn decide_change(
    state: &AppState,
    instance: &Instance,
    input: &PlanChangeInput,
    now: DateTime<Utc>,
) -> AppResult<PlanChangeQuote> {
    if instance.arrears_expiry.is_some() {
        return Err(AppError::Conflict(
            "the account is in arrears: top up the balance first, then change plan".into(),
        ));
    }
    if instance.trial {
        return Err(AppError::Conflict(
            "a free trial changes plan by being converted to a paid subscription".into(),
        ));
    }
    if instance.period.is_open_ended() {
        return Err(AppError::Conflict(
            "only a monthly or yearly subscription changes plan; buy the other plan instead".into(),
        ));
    }
    if instance.state != souk_core::lifecycle::InstanceState::Active {
        return Err(AppError::Conflict(format!(
            "only a running subscription changes plan; this one is {}",
            instance.state
        )));
    }
    let (to, product, _) = super::orders::on_sale(state, &input.plan_id).await?;
    if product.id != instance.product_id {
        return Err(AppError::invalid(
            "plan_id",
            "the plan belongs to another product; a plan change stays within the product",
        ));
    }
    if to.id == instance.plan_id {
        return Err(AppError::invalid(
            "plan_id",
            "the instance is on this plan already",
        ));
    }
    let period = instance.period;
    let unit_price = to
        .prices
        .unit_price(period)
        .ok_or_else(|| AppError::invalid("plan_id", period.not_sold()))?;
    let from = state.store.plan(&instance.plan_id).await?;
    if to.prices.currency != from.prices.currency {
        return Err(AppError::invalid(
            "plan_id",
            format!(
                "this plan is priced in {}, the subscription in {}: buy it instead",
                to.prices.currency, from.prices.currency
            ),
        ));
    }
    if !to.prices.metered.is_empty() || !from.prices.metered.is_empty() {
        // Use is rated against the period's running total at the plan's prices; a plan change
        // in the middle would re-price the use before it.
        return Err(AppError::invalid(
            "plan_id",
            "plans that meter use do not change in the middle of a period: buy the other plan instead",
        ));
    }
    let paid = paid_spans(state.store.orders_of_instance(&instance.id).await?);
    let spans = held(&paid);
    let until = plan_changes::time_left_until(&spans, now).ok_or_else(|| {
        AppError::Conflict("no paid time is left to move to another plan; renew first".into())
    })?;
    let currency = to.prices.currency;
    // Never more back than the orders paid in all.
    let paid: i64 = paid
        .iter()
        .map(|(o, _)| o.amount.minor - o.refunded.minor)
        .sum();
    let difference = plan_changes::difference(&spans, now, unit_price, currency)?.max(-paid.max(0));
    Ok(PlanChangeQuote {
        product_name: product.listed_name().to_owned(),
        from,
        to,
        unit_price,
        difference: Money::from_minor(difference, currency),
        until,
    })
}

/// What moving one of the caller's instances to `input`'s plan would cost now.
pub async fn plan_change_quote(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: &PlanChangeInput,
) -> AppResult<PlanChangeQuote> {
    let instance = own_instance(state, caller, id).await?;
    decide_change(state, &instance, input, state.now()).await
}

/// What moving one of the caller's instances to each other plan of its product on sale would cost
/// now; empty when the instance cannot change plan.
pub async fn plan_options(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
) -> AppResult<Vec<PlanChangeQuote>> {
    let instance = own_instance(state, caller, id).await?;
    let Some(product) = state
        .catalog
        .product(&state.store, instance.product_id.as_str())
        .await?
    else {
        return Ok(Vec::new());
    };
    let now = state.now();
    let mut options = Vec::new();
    for plan in product
        .plans
        .iter()
        .filter(|p| p.id != instance.plan_id.as_str())
    {
        let input = PlanChangeInput {
            plan_id: plan.id.clone(),
        };
        match decide_change(state, &instance, &input, now).await {
            Ok(quote) => options.push(quote),
            Err(AppError::Conflict(_)) => return Ok(Vec::new()),
            // Not sold by the instance's period, for one: not an option.
            Err(_) => {}
        }
    }
    Ok(options)
}

/// Moves one of the caller's running subscriptions to another plan of its product for the time
/// left: the difference is charged from the balance (an upgrade) or given back to it (a
/// downgrade), and the seller is told with `upgradeInstance`. The expiry does not move.
pub async fn change_plan(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: PlanChangeInput,
    key: Option<String>,
) -> AppResult<Placed> {
    let fingerprint = format!("change:{id}:{}", input.plan_id);
    let input = &input;
    pay_on_instance(state, caller, key, fingerprint, |key, fingerprint| {
        switch(state, caller, id, input, key, fingerprint)
    })
    .await
}

async fn switch(
    state: &AppState,
    caller: &Caller,
    id: &InstanceId,
    input: &PlanChangeInput,
    key: Option<String>,
    fingerprint: String,
) -> AppResult<Placed> {
    let instance = own_instance(state, caller, id).await?;
    let now = state.now();
    let quote = decide_change(state, &instance, input, now).await?;
    let difference = quote.difference;
    let order_id: OrderId = fresh(now);
    let order = Order {
        id: order_id.clone(),
        buyer_id: caller.id().clone(),
        kind: OrderKind::Change,
        state: OrderState::Paid,
        product_id: instance.product_id.clone(),
        plan_id: quote.to.id.clone(),
        merchant_id: instance.merchant_id.clone(),
        instance_id: instance.id.clone(),
        period: instance.period,
        periods: 0,
        unit_price: quote.unit_price,
        list: difference,
        discount: Money::from_minor(0, difference.currency),
        amount: difference,
        refunded: Money::from_minor(0, difference.currency),
        idempotency_key: key,
        request_fingerprint: Some(fingerprint),
        created_at: now,
    };
    let money = if difference.minor < 0 {
        format!(
            "{} back",
            Money::from_minor(-difference.minor, difference.currency)
        )
    } else {
        format!("{difference} charged")
    };
    let memo = format!(
        "{} of {} from plan {} to plan {} for the time left until {}: {money}",
        quote.direction(),
        quote.product_name,
        quote.from.name,
        quote.to.name,
        quote.until.format("%Y-%m-%d %H:%M UTC"),
    );
    let job = SellerJob::Upgrade.spec(&order_id);
    state
        .store
        .change_plan(
            PlanChange {
                order: &order,
                instance: &instance,
                job: &job,
                floor_minor: floor(state, caller.id(), difference.currency).await?,
                memo: &memo,
            },
            now,
        )
        .await
        .map_err(|e| short_balance(e, difference))?;
    state.wake_dispatcher.notify_waiters();
    Ok(Placed {
        details: details(&state.store, state.store.order(&order_id).await?).await?,
        replayed: false,
    })
}
