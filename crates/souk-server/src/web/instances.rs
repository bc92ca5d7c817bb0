//! The buyer's subscriptions: state, expiry, access data (revealed on click), renewal, and provisioning that updates in place.

use super::badge;
use super::done;
use super::error_page;
use super::orders::{events, EventRow};
use super::when;
use super::when_text;
use super::Cursor;
use super::FormErrors;
use super::Posted;
use super::Signed;
use crate::app::instances;
use crate::app::instances::ConvertInput;
use crate::app::instances::InstanceDetails;
use crate::app::instances::PlanChangeInput;
use crate::app::instances::PlanChangeQuote;
use crate::app::instances::RefundQuote;
use crate::app::instances::RenewInput;
use crate::app::instances::UnsubscribeInput;
use crate::app::Caller;
use crate::app::PageRequest;
use crate::extract::Path;
use crate::AppState;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The instances pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/instances", get(instances_page))
        .route("/instances/{id}", get(instance_page))
        .route("/instances/{id}/status", get(instance_status))
        .route("/instances/{id}/renew", post(renew))
        .route("/instances/{id}/unsubscribe", post(unsubscribe))
        .route("/instances/{id}/convert", post(convert))
        .route("/instances/{id}/plan-change", post(change_plan))
}

/// A subscription as a row or a page shows it.
pub struct InstanceRow {
    pub id: String,
    pub product: String,
    pub plan: String,
    pub state: String,
    pub badge: &'static str,
    pub period: String,
    /// How it is paid for, in words ("pay as you go").
    pub mode: &'static str,
    /// "320 of 500 left (unit: page)", one per quota of its package.
    pub quotas: Vec<String>,
    pub expires: String,
    pub expires_text: String,
    /// The expiry comes (not a one-time purchase), so grace and retention dates mean something.
    pub lapses: bool,
    /// The account's balance is below its limit and this metered subscription runs on grace.
    pub in_arrears: bool,
    /// Released or failed: nothing runs and no date ahead means anything; when it ended.
    pub ended: bool,
    pub ended_at: String,
    pub ended_text: String,
    pub grace_ends: String,
    pub grace_ends_text: String,
    pub retention_ends: String,
    pub retention_ends_text: String,
    pub failure: Option<String>,
    pub front_end_url: Option<String>,
    pub admin_url: Option<String>,
    /// The same addresses when they are safe to link (http or https); others are shown as text.
    pub front_end_link: Option<String>,
    pub admin_link: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<String>,
    pub memo: Option<String>,
    /// Still being set up: the page refreshes this part until it is settled.
    pub in_progress: bool,
    pub renewable: bool,
    /// A free trial that can still be paid for.
    pub convertible: bool,
    pub trial: bool,
    pub timeline: Vec<EventRow>,
}

/// A seller-given address, if it is one a page may link to: `javascript:`, `data:` and the like
/// are the seller's text, never a link in souk's pages.
fn link(url: &Option<String>) -> Option<String> {
    url.as_ref()
        .filter(|u| {
            let lower = u.trim().to_ascii_lowercase();
            lower.starts_with("https://") || lower.starts_with("http://")
        })
        .cloned()
}

fn instance_row(d: &InstanceDetails) -> InstanceRow {
    let i = &d.instance;
    let access = d.access.as_ref();
    let state = i.state.as_str();
    InstanceRow {
        id: i.id.to_string(),
        product: d.product_name.clone(),
        plan: d.plan_name.clone(),
        state: state.to_owned(),
        badge: badge(state),
        period: i.period.as_str().to_owned(),
        mode: d.mode.words(),
        quotas: d
            .quotas
            .iter()
            .map(|q| {
                format!(
                    "{} of {} left (unit: {})",
                    q.quota_left.unwrap_or_default(),
                    q.included,
                    q.unit
                )
            })
            .collect(),
        expires: when(&i.expires_at),
        expires_text: if souk_core::plans::is_never(i.expires_at) {
            if i.period == souk_core::plans::Period::OnDemand {
                "never, while the balance pays for the use".to_owned()
            } else {
                "never (a one-time purchase)".to_owned()
            }
        } else {
            when_text(&i.expires_at)
        },
        lapses: !souk_core::plans::is_never(i.expires_at),
        in_arrears: i.arrears_expiry.is_some()
            && !matches!(
                i.state,
                souk_core::lifecycle::InstanceState::Released
                    | souk_core::lifecycle::InstanceState::Failed
            ),
        ended: matches!(
            i.state,
            souk_core::lifecycle::InstanceState::Released
                | souk_core::lifecycle::InstanceState::Failed
        ),
        ended_at: when(&i.updated_at),
        ended_text: when_text(&i.updated_at),
        grace_ends: when(&d.grace_ends_at),
        grace_ends_text: when_text(&d.grace_ends_at),
        retention_ends: when(&d.retention_ends_at),
        retention_ends_text: when_text(&d.retention_ends_at),
        failure: i.failure_reason.clone(),
        front_end_url: access.and_then(|a| a.front_end_url.clone()),
        admin_url: access.and_then(|a| a.admin_url.clone()),
        front_end_link: access.and_then(|a| link(&a.front_end_url)),
        admin_link: access.and_then(|a| link(&a.admin_url)),
        user_name: access.and_then(|a| a.user_name.clone()),
        password: access.and_then(|a| a.password.clone()),
        memo: access.and_then(|a| a.memo.clone()),
        in_progress: state == "provisioning",
        renewable: matches!(state, "active" | "grace" | "frozen")
            && !i.trial
            && !i.period.is_open_ended(),
        convertible: matches!(state, "active" | "grace" | "frozen") && i.trial,
        trial: i.trial,
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

/// What unsubscribing would give back, as the page shows it before the buyer confirms.
pub struct RefundRow {
    pub total: String,
    /// One line per order: what it paid and what goes back.
    pub lines: Vec<(String, String, String)>,
    pub new_expiry: Option<String>,
}

fn refund_row(q: RefundQuote) -> RefundRow {
    RefundRow {
        total: q.total.to_string(),
        lines: q
            .orders
            .into_iter()
            .map(|(o, back)| (o.id.to_string(), o.amount.to_string(), back.to_string()))
            .collect(),
        new_expiry: q.new_expiry.as_ref().map(when_text),
    }
}

/// The refund of each scope, where one is possible now.
async fn refunds(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> (Option<RefundRow>, Option<RefundRow>) {
    let quote = |scope: &'static str| async move {
        let input = UnsubscribeInput {
            scope: Some(scope.to_owned()),
        };
        instances::unsubscribe_quote(state, caller, &id.into(), &input)
            .await
            .ok()
            .map(refund_row)
    };
    (quote("everything").await, quote("renewals").await)
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePage {
    ctx: super::Ctx,
    i: InstanceRow,
    renew_errors: FormErrors,
    periods: String,
    renew_hint: String,
    /// What unsubscribing gives back now, and what giving back renewals does.
    everything: Option<RefundRow>,
    renewals: Option<RefundRow>,
    unsubscribe_errors: FormErrors,
    /// Metered use, when the plan meters any.
    usage: Option<UsageSection>,
    /// The other plans it can move to, with what moving costs now.
    plan_choices: Vec<PlanChoice>,
    change_errors: FormErrors,
    /// The end of the paid time a change re-prices.
    change_until: String,
    /// Part of each change form's idempotency key: the instance as shown, so a resubmitted form
    /// changes once and a later change is a new one.
    change_key: String,
}

/// Another plan of the product on the subscription page, with what moving to it costs now.
pub struct PlanChoice {
    pub plan_id: String,
    pub name: String,
    /// "62.00 CNY a month".
    pub price: String,
    pub direction: &'static str,
    /// "pay 20.00 CNY" or "get 10.50 CNY back".
    pub money: String,
}

fn plan_choice(q: PlanChangeQuote, period: souk_core::plans::Period) -> PlanChoice {
    let d = q.difference;
    PlanChoice {
        plan_id: q.to.id.to_string(),
        price: format!(
            "{} a {period}",
            souk_core::money::Money::round(q.unit_price, d.currency)
                .map_or_else(|_| q.unit_price.to_string(), |m| m.to_string())
        ),
        name: q.to.name.clone(),
        direction: q.direction(),
        money: if d.minor < 0 {
            format!(
                "get {} back",
                souk_core::money::Money::from_minor(-d.minor, d.currency)
            )
        } else {
            format!("pay {d}")
        },
    }
}

/// An instance's metered use on its page.
pub struct UsageSection {
    pub period: String,
    /// (dimension, unit, used this period, of which not yet charged, quota, quota left, charged).
    pub dimensions: Vec<[String; 7]>,
    /// (day, dimension, quantity, charged), newest first.
    pub days: Vec<[String; 4]>,
}

async fn usage_section(state: &AppState, caller: &Caller, id: &str) -> Option<UsageSection> {
    let u = crate::app::metering::of_instance(state, caller, id)
        .await
        .ok()?;
    if u.dimensions.is_empty() {
        return None;
    }
    let period = if souk_core::plans::is_never(u.period_end) {
        format!("since {}", u.period_start.format("%Y-%m-%d %H:%M UTC"))
    } else {
        format!(
            "{} to {}",
            u.period_start.format("%Y-%m-%d %H:%M"),
            u.period_end.format("%Y-%m-%d %H:%M UTC")
        )
    };
    Some(UsageSection {
        period,
        dimensions: u
            .dimensions
            .iter()
            .map(|d| {
                [
                    d.key.clone(),
                    d.unit.clone(),
                    (d.period.rated + d.period.pending).to_string(),
                    d.period.pending.to_string(),
                    if d.included.is_zero() {
                        "-".into()
                    } else {
                        d.included.to_string()
                    },
                    d.quota_left.map_or("-".into(), |q| q.to_string()),
                    d.period.charged.to_string(),
                ]
            })
            .collect(),
        days: u
            .days
            .iter()
            .map(|d| {
                [
                    d.day.format("%Y-%m-%d").to_string(),
                    d.dimension.clone(),
                    d.quantity.to_string(),
                    d.amount.to_string(),
                ]
            })
            .collect(),
    })
}

impl InstancePage {
    async fn new(
        state: &AppState,
        ctx: &super::Ctx,
        caller: &Caller,
        d: &InstanceDetails,
    ) -> InstancePage {
        let (everything, renewals) = refunds(state, caller, d.instance.id.as_str()).await;
        let usage = usage_section(state, caller, d.instance.id.as_str()).await;
        let options = instances::plan_options(state, caller, &d.instance.id)
            .await
            .unwrap_or_default();
        let change_until = options
            .first()
            .map(|q| when_text(&q.until))
            .unwrap_or_default();
        let plan_choices = options
            .into_iter()
            .map(|q| plan_choice(q, d.instance.period))
            .collect();
        InstancePage {
            usage,
            plan_choices,
            change_until,
            change_errors: FormErrors::default(),
            change_key: format!("{}-{}", d.instance.id, d.instance.version),
            ctx: ctx.clone(),
            i: instance_row(d),
            renew_hint: format!("{}s, from the current expiry", d.instance.period),
            renew_errors: FormErrors::default(),
            periods: "1".into(),
            everything,
            renewals,
            unsubscribe_errors: FormErrors::default(),
        }
    }
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
        Ok(d) => page.render(&InstancePage::new(&state, &page.ctx, &signed.caller, &d).await),
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

/// What the renew and convert forms send (`period` only when converting a trial).
#[derive(Debug, Deserialize)]
pub struct PayForm {
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub periods: String,
    #[serde(default)]
    pub key: String,
}

async fn renew(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<PayForm>,
) -> Response {
    pay(&state, signed, id, form, false).await
}

async fn convert(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<PayForm>,
) -> Response {
    pay(&state, signed, id, form, true).await
}

/// Renews a subscription, or converts a trial, paid from the balance; a refusal redisplays the
/// page with what was typed.
async fn pay(
    state: &AppState,
    signed: Signed,
    id: String,
    form: PayForm,
    convert: bool,
) -> Response {
    let page = signed.page.titled("Subscription");
    let what = if convert { "convert" } else { "renew" };
    let refused = match form.periods.trim().parse::<u32>() {
        Ok(periods) => {
            let key = super::form_key(&format!("web-{what}-{}", form.key), &form.key);
            let instance = id.as_str().into();
            let paid = if convert {
                let input = ConvertInput {
                    period: form.period.clone(),
                    periods,
                };
                instances::convert(state, &signed.caller, &instance, input, key).await
            } else {
                instances::renew(
                    state,
                    &signed.caller,
                    &instance,
                    RenewInput { periods },
                    key,
                )
                .await
            };
            match paid {
                Ok(_) => {
                    let notice = if convert { "converted" } else { "renewed" };
                    return done(&format!("/instances/{id}"), notice);
                }
                Err(e) => e,
            }
        }
        Err(_) => crate::error::AppError::invalid("periods", "must be a whole number"),
    };
    let errors = FormErrors::from_error(&refused);
    redisplay(state, &page, &signed.caller, &id, &refused, |p| {
        p.renew_errors = errors;
        p.periods = form.periods;
    })
    .await
}

/// What the unsubscribe forms send.
#[derive(Debug, Deserialize)]
pub struct UnsubscribeForm {
    #[serde(default)]
    pub scope: String,
    /// The box that says the buyer understands the instance is released for good.
    #[serde(default)]
    pub confirm: String,
}

async fn unsubscribe(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<UnsubscribeForm>,
) -> Response {
    let page = signed.page.titled("Subscription");
    let everything = form.scope != "renewals";
    let refused = if everything && form.confirm != "yes" {
        crate::error::AppError::invalid(
            "confirm",
            "tick the box to confirm: the seller releases the instance and its data for good",
        )
    } else {
        let input = UnsubscribeInput {
            scope: Some(form.scope.clone()),
        };
        match instances::unsubscribe(&state, &signed.caller, &id.as_str().into(), input).await {
            Ok(_) if everything => return done(&format!("/instances/{id}"), "unsubscribed"),
            Ok(_) => return done(&format!("/instances/{id}"), "renewals-returned"),
            Err(e) => e,
        }
    };
    let errors = FormErrors::from_error(&refused);
    redisplay(&state, &page, &signed.caller, &id, &refused, |p| {
        p.unsubscribe_errors = errors
    })
    .await
}

/// What a plan-change form sends.
#[derive(Debug, Deserialize)]
pub struct PlanChangeForm {
    #[serde(default)]
    pub plan_id: String,
    #[serde(default)]
    pub key: String,
}

/// Moves the subscription to another plan, paying or getting back the difference; a refusal
/// redisplays the page with the reason.
async fn change_plan(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<PlanChangeForm>,
) -> Response {
    let page = signed.page.titled("Subscription");
    let key = super::form_key(
        &format!("web-change-{}-{}", form.key, form.plan_id),
        &form.key,
    );
    let input = PlanChangeInput {
        plan_id: form.plan_id,
    };
    let refused =
        match instances::change_plan(&state, &signed.caller, &id.as_str().into(), input, key).await
        {
            Ok(_) => return done(&format!("/instances/{id}"), "plan-changed"),
            Err(e) => e,
        };
    let errors = FormErrors::from_error(&refused);
    redisplay(&state, &page, &signed.caller, &id, &refused, |p| {
        p.change_errors = errors
    })
    .await
}

/// The subscription page again after a refused form, with the refusal's status and what `edit`
/// puts in (the form's errors and what was typed).
async fn redisplay(
    state: &AppState,
    page: &super::Page,
    caller: &Caller,
    id: &str,
    refused: &crate::error::AppError,
    edit: impl FnOnce(&mut InstancePage),
) -> Response {
    match instances::get(state, caller, &id.into()).await {
        Ok(d) => {
            let mut body = InstancePage::new(state, &page.ctx, caller, &d).await;
            edit(&mut body);
            page.render_status(refused.parts().0, &body)
        }
        Err(e) => error_page(page, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_web_addresses_become_links() {
        let l = |u: &str| super::link(&Some(u.to_owned()));
        assert_eq!(
            l("https://t.example/a").as_deref(),
            Some("https://t.example/a")
        );
        assert_eq!(l("HTTP://t.example").as_deref(), Some("HTTP://t.example"));
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            " vbscript:x",
            "//evil",
        ] {
            assert_eq!(l(bad), None, "{bad}");
        }
    }
}
