//! Notifications: what the notifier tells people of the timeline's events, in words that name
//! products, plans and orders; each person's list, unread count and e-mail preferences.

use super::Caller;
use crate::error::{AppError, AppResult};
use crate::AppState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::ids::Id as _;
use souk_core::ids::{AccountId, NotificationId, OrderId, ProductId};
use souk_core::notices::{Audience, Topic};
use souk_core::orders::OrderKind;
use souk_store::notifications::{NewNotification, Notification, Page, Unnoticed};
use souk_store::orders::Order;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Events looked at per pass.
pub const BATCH: usize = 200;

/// Looks at the events not yet looked at and writes the notifications they cause; returns how
/// many events were looked at (a full batch means there may be more).
pub async fn sweep(state: &AppState, now: DateTime<Utc>) -> AppResult<usize> {
    let events = state.store.unnoticed_events(BATCH as i64).await?;
    let mut batch = Vec::with_capacity(events.len());
    let mut names = Names::default();
    let ordered: Vec<&OrderId> = events
        .iter()
        .filter(|e| ORDER_EVENTS.contains(&e.kind.as_str()))
        .filter_map(|e| e.order_id.as_ref())
        .collect();
    for (order, plan_name) in state.store.orders_with_plan_names(&ordered).await? {
        names.orders.insert(order.id.clone(), (order, plan_name));
    }
    for e in &events {
        let notifications = match compose(state, &mut names, e).await {
            Ok(n) => n,
            // What the event names is gone: there is no one left to tell.
            Err(AppError::NotFound(what)) => {
                tracing::warn!(event = %e.id, "no notification: {what} not found");
                Vec::new()
            }
            Err(other) => return Err(other),
        };
        batch.push((e.id.clone(), notifications));
    }
    state.store.notice(&batch, now).await?;
    if batch.iter().any(|(_, n)| !n.is_empty()) {
        state.wake_dispatcher.notify_waiters();
    }
    Ok(events.len())
}

/// The events whose words describe their order.
const ORDER_EVENTS: [&str; 2] = ["order.paid", "plan.changed"];

/// Product names, and the orders of the pass with their plans' names, read once per pass.
#[derive(Default)]
struct Names {
    products: BTreeMap<ProductId, String>,
    orders: BTreeMap<OrderId, (Order, String)>,
}

impl Names {
    async fn product(&mut self, state: &AppState, id: &ProductId) -> AppResult<String> {
        if let Some(name) = self.products.get(id) {
            return Ok(name.clone());
        }
        let product = state.store.product(id).await?;
        let name = match &product.listed {
            Some(content) => content.name.clone(),
            None => state
                .store
                .latest_revision(id)
                .await?
                .map_or_else(|| product.listed_name().to_owned(), |r| r.content.name),
        };
        self.products.insert(id.clone(), name.clone());
        Ok(name)
    }
}

/// What an order was, in words: its kind, and "Team plan, 1 month, 99.00 CNY".
fn order_words(names: &Names, id: &OrderId) -> AppResult<(OrderKind, String)> {
    let (order, plan_name) = names
        .orders
        .get(id)
        .ok_or(AppError::NotFound("order".into()))?;
    let terms = match order.kind {
        OrderKind::Trial => format!("{plan_name} plan, free trial"),
        OrderKind::Change if order.amount.minor < 0 => format!(
            "{plan_name} plan for the time left, {} back",
            souk_core::money::Money::from_minor(-order.amount.minor, order.amount.currency)
        ),
        OrderKind::Change => format!(
            "{plan_name} plan for the time left, {} charged",
            order.amount
        ),
        _ => format!(
            "{plan_name} plan, {}, {}",
            order.period.words(order.periods),
            order.amount
        ),
    };
    Ok((order.kind, terms))
}

/// The notifications one event causes: none for events nobody is told of.
async fn compose(
    state: &AppState,
    names: &mut Names,
    e: &Unnoticed,
) -> AppResult<Vec<NewNotification>> {
    let mut out = Vec::new();
    for &(topic, audience) in Topic::of_event(&e.kind) {
        let to = match audience {
            Audience::Account => &e.account_id,
            Audience::Buyer => &e.buyer_id,
            Audience::Merchant => &e.merchant_account_id,
        };
        let Some(to) = to.clone() else { continue };
        if let Some((title, body, link)) = words(state, names, e, audience).await? {
            out.push(NewNotification {
                account_id: to,
                topic,
                title,
                body: body.trim().to_owned(),
                link,
            });
        }
    }
    Ok(out)
}

/// What one event says to one audience: title, body and where to act.
async fn words(
    state: &AppState,
    names: &mut Names,
    e: &Unnoticed,
    audience: Audience,
) -> AppResult<Option<(String, String, Option<String>)>> {
    let product = match &e.product_id {
        Some(id) => names.product(state, id).await?,
        None => String::new(),
    };
    let instance_link = e.instance_id.as_ref().map(|i| format!("/instances/{i}"));
    let reason = |lead: &str| {
        if e.detail.is_empty() {
            String::new()
        } else {
            format!("{lead}{}.", e.detail.trim_end_matches('.'))
        }
    };
    let seller_link = e
        .product_id
        .as_ref()
        .map(|p| format!("/seller/products/{p}"));
    Ok(Some(match e.kind.as_str() {
        "instance.failed" if audience == Audience::Merchant => (
            format!("A subscription to {product} could not be set up"),
            format!("Your endpoint did not create a buyer's subscription to {product}: {}. The calls and your endpoint's answers are on your sales page; the endpoint check tests it.", e.detail),
            Some("/seller/sales".to_owned()),
        ),
        "verification.approved" => (
            "Your verification was approved".to_owned(),
            "You can now buy, start free trials and apply to sell on souk.".to_owned(),
            Some("/account/verification".to_owned()),
        ),
        "verification.rejected" => (
            "Your verification was not approved".to_owned(),
            format!("{} You can correct your details and send them again.", reason("The reviewer's reason: ")),
            Some("/account/verification".to_owned()),
        ),
        "merchant.approved" => (
            "You can sell on souk".to_owned(),
            "Your merchant application was approved. Create a product and submit it for review.".to_owned(),
            Some("/seller".to_owned()),
        ),
        "merchant.rejected" => (
            "Your merchant application was not approved".to_owned(),
            format!("{} You can correct it and apply again.", reason("The reason: ")),
            Some("/seller".to_owned()),
        ),
        "product.approved" => (
            format!("{product} is listed"),
            format!("The review approved {product} ({}); buyers can find and buy it now.", e.detail),
            seller_link.clone(),
        ),
        "product.rejected" => (
            format!("{product} needs changes"),
            format!("The review did not approve {product}. {} Edit the draft and submit it again.", reason("What to change: ")),
            seller_link.clone(),
        ),
        "order.paid" | "plan.changed" => {
            let Some(order) = &e.order_id else {
                return Ok(None);
            };
            let (kind, terms) = order_words(names, order)?;
            let (title, body) = match kind {
                OrderKind::New => (
                    format!("Order paid: {product}"),
                    format!("Your order of {product} ({terms}) is paid. The seller is setting it up; you will hear when it is ready."),
                ),
                OrderKind::Trial => (
                    format!("Free trial started: {product}"),
                    format!("Your free trial of {product} ({terms}) has started. The seller is setting it up; you will hear when it is ready."),
                ),
                OrderKind::Renew => (
                    format!("Renewal paid: {product}"),
                    format!("Your renewal of {product} ({terms}) is paid; the subscription runs on without a break."),
                ),
                OrderKind::Convert => (
                    format!("Paid for your trial: {product}"),
                    format!("You paid for {product} ({terms}); the trial's subscription keeps running as a paid one."),
                ),
                OrderKind::Change => (
                    format!("Plan changed: {product}"),
                    format!("Your subscription to {product} moved to the {terms}. Its expiry stays as it was."),
                ),
            };
            (title, body, Some(format!("/orders/{order}")))
        }
        // The detail says what came back: "unsubscribed from X: 297.00 CNY back, …".
        "instance.unsubscribed" => (
            format!("Unsubscribed: {product}"),
            format!("{}. The refund is on your balance.", sentence(&e.detail)),
            instance_link.clone(),
        ),
        "instance.renewals_returned" => (
            format!("Renewals given back: {product}"),
            format!("{}. The refund is on your balance.", sentence(&e.detail)),
            instance_link.clone(),
        ),
        "instance.active" => (
            format!("{product} is ready"),
            format!("Your subscription to {product} is running. Its page shows how to reach it."),
            instance_link,
        ),
        "instance.failed" => (
            format!("{product} could not be set up"),
            format!("The seller could not set up your subscription to {product}: {}.", e.detail),
            instance_link,
        ),
        "instance.expiring" => (
            format!("{product} {}", e.detail.split(';').next().unwrap_or("expires soon")),
            format!("Your subscription to {product} {}.", e.detail),
            instance_link,
        ),
        "instance.grace" => (
            format!("{product} has expired"),
            format!("Your subscription to {product} {}. Renew it to keep it.", e.detail),
            instance_link,
        ),
        // Every metered subscription of the account is told, each about itself: the charge that
        // took the balance below its limit may have been another's.
        "instance.arrears" => (
            format!("Top up to keep {product}"),
            format!("{product} is paid for from your balance, and {}.", e.detail),
            Some("/balance".to_owned()),
        ),
        "instance.arrears_cleared" => (
            format!("Arrears cleared: {product}"),
            format!("Your balance covers {product} again; it keeps running."),
            instance_link,
        ),
        "instance.frozen" => (
            format!("{product} is frozen"),
            format!("Your subscription to {product} is frozen: {}.", e.detail),
            instance_link,
        ),
        "instance.released" => (
            format!("{product} was released"),
            format!("Your subscription to {product} ended: {}.", e.detail),
            instance_link,
        ),
        "seller.call_failed" | "job.failed" => (
            format!("A call to your endpoint for {product} was given up"),
            format!("souk could not complete a call to your endpoint for {product}: {}. Fix the endpoint; an operator can replay the call.", e.detail),
            seller_link,
        ),
        _ => return Ok(None),
    }))
}

/// `text` begun with a capital, as the start of a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A notification as people and programs see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationView {
    pub id: String,
    /// What it is about; e-mail preferences are per topic.
    #[schema(example = "order")]
    pub topic: String,
    pub title: String,
    pub body: String,
    /// Where in the web UI to act on it.
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    /// When its e-mail went out, if one did.
    pub emailed_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id.to_string(),
            topic: n.topic.to_string(),
            title: n.title,
            body: n.body,
            link: n.link,
            created_at: n.created_at,
            read_at: n.read_at,
            emailed_at: n.emailed_at,
        }
    }
}

/// A page of notifications with the unread count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationList {
    pub unread: i64,
    pub notifications: Vec<NotificationView>,
}

/// Notifications the largest page holds.
pub const MAX_PAGE: i64 = 100;

/// The caller's notifications, newest first: `unread_only` leaves out read ones, `before` pages
/// on from a notification's id.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    unread_only: bool,
    before: Option<&str>,
    limit: Option<i64>,
) -> AppResult<NotificationList> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("limit must be from 1 to {MAX_PAGE}"),
        ));
    }
    if before.is_some_and(|b| !souk_core::ids::well_formed(NotificationId::PREFIX, b)) {
        return Err(AppError::invalid("before", "is not a notification id"));
    }
    let before = before.map(|b| NotificationId::from(b.to_owned()));
    let notifications = state
        .store
        .notifications_of(
            caller.id(),
            Page {
                unread_only,
                before: before.as_ref(),
                limit,
            },
        )
        .await?;
    Ok(NotificationList {
        unread: state.store.unread_notifications(caller.id()).await?,
        notifications: notifications.into_iter().map(Into::into).collect(),
    })
}

/// How many of the caller's notifications are unread.
pub async fn unread(state: &AppState, account_id: &AccountId) -> AppResult<i64> {
    Ok(state.store.unread_notifications(account_id).await?)
}

/// Marks one of the caller's notifications read.
pub async fn mark_read(state: &AppState, caller: &Caller, id: &str) -> AppResult<NotificationView> {
    Ok(state
        .store
        .mark_notification_read(caller.id(), &id.to_owned().into(), state.now())
        .await?
        .into())
}

/// Marks all the caller's notifications read; returns how many were unread.
pub async fn mark_all_read(state: &AppState, caller: &Caller) -> AppResult<u64> {
    Ok(state
        .store
        .mark_all_notifications_read(caller.id(), state.now())
        .await?)
}

/// Whether one topic is wanted by e-mail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailPref {
    #[schema(example = "order")]
    pub topic: String,
    pub email: bool,
    /// What the topic covers (ignored when sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe: Option<String>,
}

/// The caller's e-mail preferences, one per topic.
pub async fn email_prefs(state: &AppState, caller: &Caller) -> AppResult<Vec<EmailPref>> {
    Ok(state
        .store
        .email_prefs(caller.id())
        .await?
        .into_iter()
        .map(|(t, email)| EmailPref {
            topic: t.to_string(),
            email,
            describe: Some(t.describe().to_owned()),
        })
        .collect())
}

/// Sets the caller's e-mail preferences for the topics given (others keep theirs); an unknown
/// topic refuses the whole change.
pub async fn set_email_prefs(
    state: &AppState,
    caller: &Caller,
    prefs: &[EmailPref],
) -> AppResult<Vec<EmailPref>> {
    let mut parsed = Vec::with_capacity(prefs.len());
    for (i, p) in prefs.iter().enumerate() {
        let topic: Topic = p.topic.parse().map_err(|_| {
            AppError::invalid(
                format!("[{i}].topic"),
                format!(
                    "unknown topic {:?}; topics are {}",
                    p.topic,
                    Topic::ALL.map(Topic::as_str).join(", ")
                ),
            )
        })?;
        parsed.push((topic, p.email));
    }
    state.store.set_email_prefs(caller.id(), &parsed).await?;
    email_prefs(state, caller).await
}
