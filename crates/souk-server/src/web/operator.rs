//! The operator console: the verification, merchant and review queues (due date and overdue
//! first, with the material to decide on), accounts with their balance, ledger and top-ups, and
//! dead jobs with their attempts and replay.

use super::{badge, done, error_page, money, when, when_text, FormErrors, Page, Posted, Signed};
use crate::app::accounts::{self, Decision};
use crate::app::jobs::{self, JobDetails};
use crate::app::ledger::{self, TopUp};
use crate::app::merchants;
use crate::app::reviews::{self, ReviewDecision};
use crate::app::PageRequest;
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use souk_store::jobs::JobState;

/// The console's pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/console", get(queues))
        .route("/console/verifications/{id}", post(decide_verification))
        .route("/console/merchants/{id}", post(decide_merchant))
        .route("/console/reviews/{id}", post(decide_review))
        .route("/console/accounts", get(accounts_page))
        .route("/console/accounts/{id}", get(account_page))
        .route("/console/accounts/{id}/top-up", post(top_up))
        .route("/console/jobs", get(jobs_page))
        .route("/console/jobs/{id}/replay", post(replay))
}

/// A case waiting for a decision, with what to decide on.
pub struct Case {
    pub id: String,
    pub title: String,
    pub facts: Vec<(String, String)>,
    pub due: Option<String>,
    pub due_text: Option<String>,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "console.html")]
struct Queues {
    ctx: super::Ctx,
    verifications: Option<Vec<Case>>,
    merchants: Option<Vec<Case>>,
    reviews: Option<Vec<Case>>,
    error: Option<String>,
}

fn text(s: &str) -> String {
    if s.trim().is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

async fn queues_page(state: &SharedState, signed: &Signed, error: Option<AppError>) -> Response {
    let page = &signed.page;
    let caller = &signed.caller;
    let now = state.now();
    // Each queue shows when the operator holds its role; a missing role hides it.
    let verifications = accounts::verification_queue(state, caller)
        .await
        .ok()
        .map(|q| {
            q.iter()
                .map(|a| {
                    let d = a.verification.details.clone().unwrap_or_default();
                    let mut facts = vec![
                        ("Kind".to_owned(), a.kind.as_str().to_owned()),
                        ("E-mail".to_owned(), a.email.clone()),
                        ("Legal name".to_owned(), d.legal_name),
                        ("Phone".to_owned(), d.phone),
                    ];
                    for (label, v) in [
                        ("Identity document", d.id_number),
                        ("Company", d.company_name),
                        ("Registration number", d.registration_number),
                    ] {
                        if let Some(v) = v {
                            facts.push((label.to_owned(), v));
                        }
                    }
                    Case {
                        id: a.id.to_string(),
                        title: a.name.clone(),
                        facts,
                        due: a.verification.submitted_at.as_ref().map(when),
                        due_text: a.verification.submitted_at.as_ref().map(when_text),
                        overdue: false,
                    }
                })
                .collect()
        });
    let merchant_queue = merchants::queue(state, caller).await.ok().map(|q| {
        q.iter()
            .map(|m| Case {
                id: m.id.to_string(),
                title: m.application.company_name.clone(),
                facts: vec![
                    ("Support e-mail".into(), m.application.support_email.clone()),
                    ("Support phone".into(), m.application.support_phone.clone()),
                    (
                        "Business licence".into(),
                        m.application.business_licence_number.clone(),
                    ),
                    ("About".into(), text(&m.application.description)),
                ],
                due: Some(when(&m.submitted_at)),
                due_text: Some(when_text(&m.submitted_at)),
                overdue: false,
            })
            .collect()
    });
    let review_queue = reviews::queue(state, caller).await.ok().map(|q| {
        q.iter()
            .map(|item| {
                let c = &item.revision.content;
                Case {
                    id: item.revision.id.to_string(),
                    title: format!(
                        "{} ({})",
                        c.name,
                        if item.revision.number == 1 {
                            "new listing"
                        } else {
                            "change"
                        }
                    ),
                    facts: vec![
                        ("Merchant".into(), item.company_name.clone()),
                        ("Summary".into(), c.summary.clone()),
                        ("Category".into(), c.category.clone()),
                        ("Endpoint".into(), c.endpoint_url.clone()),
                        ("Support".into(), c.support_contact.clone()),
                        (
                            "Plans".into(),
                            c.plans
                                .iter()
                                .map(|p| {
                                    format!(
                                        "{}: {}{}{}",
                                        p.name,
                                        p.monthly_price
                                            .as_ref()
                                            .map(|m| format!("{m} {} / month", p.currency))
                                            .unwrap_or_default(),
                                        if p.monthly_price.is_some() && p.yearly_price.is_some() {
                                            ", "
                                        } else {
                                            ""
                                        },
                                        p.yearly_price
                                            .as_ref()
                                            .map(|y| format!("{y} {} / year", p.currency))
                                            .unwrap_or_default()
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        ("Description".into(), text(&c.description)),
                    ],
                    due: item.revision.due_at.as_ref().map(when),
                    due_text: item.revision.due_at.as_ref().map(when_text),
                    overdue: item.revision.due_at.is_some_and(|d| d < now),
                }
            })
            .collect()
    });
    if verifications.is_none() && merchant_queue.is_none() && review_queue.is_none() {
        return error_page(
            page,
            AppError::Forbidden("the console is for operators".into()),
        );
    }
    let status = error
        .as_ref()
        .map_or(axum::http::StatusCode::OK, |e| e.parts().0);
    page.render_status(
        status,
        &Queues {
            ctx: super::Ctx {
                title: "Operator console · souk".into(),
                ..page.ctx.clone()
            },
            verifications,
            merchants: merchant_queue,
            reviews: review_queue,
            error: error.map(|e| e.detail()),
        },
    )
}

async fn queues(State(state): State<SharedState>, signed: Signed) -> Response {
    queues_page(&state, &signed, None).await
}

/// What a decision form sends.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    /// `approve` or `reject`.
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub reason: String,
}

impl DecisionForm {
    fn decision(&self) -> Decision {
        Decision {
            approve: self.decision == "approve",
            reason: Some(self.reason.clone()).filter(|r| !r.trim().is_empty()),
        }
    }
}

async fn decide_verification(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<DecisionForm>,
) -> Response {
    match accounts::decide_verification(&state, &signed.caller, &id.into(), form.decision()).await {
        Ok(_) => done("/console", "decided"),
        Err(e) => queues_page(&state, &signed, Some(e)).await,
    }
}

async fn decide_merchant(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<DecisionForm>,
) -> Response {
    match merchants::decide(&state, &signed.caller, &id.into(), form.decision()).await {
        Ok(_) => done("/console", "decided"),
        Err(e) => queues_page(&state, &signed, Some(e)).await,
    }
}

async fn decide_review(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<DecisionForm>,
) -> Response {
    // One reason a line.
    let decision = ReviewDecision {
        approve: form.decision == "approve",
        reasons: form
            .reason
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    match reviews::decide(&state, &signed.caller, &id.into(), decision).await {
        Ok(_) => done("/console", "decided"),
        Err(e) => queues_page(&state, &signed, Some(e)).await,
    }
}

/// An account as the console lists it.
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub kind: String,
    pub verification: String,
    pub badge: &'static str,
    pub roles: String,
}

fn account_row(a: &souk_store::accounts::Account) -> AccountRow {
    AccountRow {
        id: a.id.to_string(),
        name: a.name.clone(),
        email: a.email.clone(),
        kind: a.kind.as_str().to_owned(),
        verification: a.verification.state.as_str().to_owned(),
        badge: badge(a.verification.state.as_str()),
        roles: a
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The account search's query.
#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    #[serde(default)]
    pub q: String,
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "console_accounts.html")]
struct AccountsPage {
    ctx: super::Ctx,
    q: String,
    rows: Vec<AccountRow>,
    next: Option<String>,
}

async fn accounts_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(query): Query<AccountQuery>,
) -> Response {
    let page = signed.page.titled("Accounts");
    let request = PageRequest {
        cursor: query.cursor.clone(),
        limit: Some(25),
    };
    match accounts::search(&state, &signed.caller, &query.q, request).await {
        Ok(p) => page.render(&AccountsPage {
            ctx: page.ctx.clone(),
            rows: p.items.iter().map(account_row).collect(),
            next: p.next_cursor.map(|c| {
                let q: String = form_urlencoded::byte_serialize(query.q.as_bytes()).collect();
                format!("/console/accounts?q={q}&cursor={c}")
            }),
            q: query.q,
        }),
        Err(e) => error_page(&page, e),
    }
}

#[derive(Template)]
#[template(path = "console_account.html")]
struct AccountPage {
    ctx: super::Ctx,
    a: AccountRow,
    balances: Vec<String>,
    entries: Vec<super::buyer::EntryRow>,
    can_top_up: bool,
    form: TopUpForm,
    errors: FormErrors,
}

/// What the top-up form sends.
#[derive(Debug, Default, Deserialize)]
pub struct TopUpForm {
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub memo: String,
    #[serde(default)]
    pub key: String,
}

async fn account_view(
    state: &SharedState,
    signed: &Signed,
    id: &str,
    form: TopUpForm,
    refused: Option<AppError>,
) -> Response {
    let page = &signed.page;
    let account = match accounts::get(state, &signed.caller, &id.into()).await {
        Ok(a) => a,
        Err(e) => return error_page(page, e),
    };
    let (balances, entries) = match ledger::account_ledger(
        state,
        &signed.caller,
        &account.id,
        PageRequest {
            cursor: None,
            limit: Some(50),
        },
    )
    .await
    {
        Ok((b, p)) => (
            b.iter().map(money).collect(),
            p.items
                .iter()
                .map(|e| super::buyer::EntryRow {
                    at: when(&e.created_at),
                    at_text: when_text(&e.created_at),
                    kind: e.kind.as_str().replace('_', "-"),
                    memo: e.memo.clone(),
                    amount: money(&e.amount),
                    balance_after: money(&e.balance_after),
                    order_id: e.order_id.as_ref().map(|o| o.to_string()),
                })
                .collect(),
        ),
        Err(_) => (vec![], vec![]),
    };
    let form = TopUpForm {
        currency: if form.currency.is_empty() {
            "CNY".into()
        } else {
            form.currency
        },
        key: if form.key.is_empty() {
            hex::encode(rand::random::<[u8; 12]>())
        } else {
            form.key
        },
        ..form
    };
    let status = refused
        .as_ref()
        .map_or(axum::http::StatusCode::OK, |e| e.parts().0);
    page.render_status(
        status,
        &AccountPage {
            ctx: super::Ctx {
                title: format!("{} · souk", account.name),
                ..page.ctx.clone()
            },
            a: account_row(&account),
            balances,
            entries,
            can_top_up: signed
                .caller
                .account
                .has_role(souk_core::accounts::Role::Finance)
                && signed.caller.id() != &account.id,
            form,
            errors: refused
                .as_ref()
                .map(FormErrors::from_error)
                .unwrap_or_default(),
        },
    )
}

async fn account_page(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    account_view(&state, &signed, &id, TopUpForm::default(), None).await
}

async fn top_up(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<TopUpForm>,
) -> Response {
    let input = TopUp {
        account_id: Some(id.clone()),
        email: None,
        amount: form.amount.clone(),
        currency: form.currency.clone(),
        reference: Some(form.reference.clone()).filter(|r| !r.trim().is_empty()),
        memo: form.memo.clone(),
    };
    let key = Some(format!("web-{}", form.key)).filter(|_| !form.key.is_empty());
    match ledger::top_up(&state, &signed.caller, input, key).await {
        Ok(_) => done(&format!("/console/accounts/{id}"), "topped-up"),
        Err(e) => account_view(&state, &signed, &id, form, Some(e)).await,
    }
}

/// A job as the console lists it.
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub badge: &'static str,
    pub instance_id: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub history: Vec<String>,
    pub dead: bool,
}

fn job_row(d: &JobDetails) -> JobRow {
    JobRow {
        id: d.job.id.to_string(),
        kind: d.job.kind.clone(),
        state: d.job.state.as_str().to_owned(),
        badge: badge(d.job.state.as_str()),
        instance_id: d.job.instance_id.as_ref().map(|i| i.to_string()),
        attempts: d.job.attempts,
        last_error: d.job.last_error.clone(),
        history: d
            .attempts
            .iter()
            .map(|a| {
                format!(
                    "#{} at {} ({} ms): {} -> {}{}",
                    a.attempt,
                    when_text(&a.started_at),
                    a.latency_ms,
                    a.request.as_deref().unwrap_or("-"),
                    a.answer.as_deref().unwrap_or("-"),
                    a.error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            })
            .collect(),
        dead: d.job.state == JobState::Dead,
    }
}

/// The job list's query.
#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    #[serde(default)]
    pub state: String,
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "console_jobs.html")]
struct JobsPage {
    ctx: super::Ctx,
    state: String,
    rows: Vec<JobRow>,
    next: Option<String>,
}

async fn jobs_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(query): Query<JobQuery>,
) -> Response {
    let Signed { page, caller } = signed;
    let page = page.titled("Jobs");
    jobs_list(&state, &page, &caller, query).await
}

async fn jobs_list(
    state: &SharedState,
    page: &Page,
    caller: &crate::app::Caller,
    query: JobQuery,
) -> Response {
    let wanted = if query.state.is_empty() {
        "dead".to_owned()
    } else {
        query.state.clone()
    };
    let in_state = match jobs::parse_state(&wanted) {
        Ok(s) => s,
        Err(e) => return error_page(page, e),
    };
    let request = PageRequest {
        cursor: query.cursor,
        limit: Some(25),
    };
    match jobs::list(state, caller, in_state, request).await {
        Ok(p) => page.render(&JobsPage {
            ctx: page.ctx.clone(),
            rows: p.items.iter().map(job_row).collect(),
            next: p
                .next_cursor
                .map(|c| format!("/console/jobs?state={wanted}&cursor={c}")),
            state: wanted,
        }),
        Err(e) => error_page(page, e),
    }
}

/// A form that sends nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

async fn replay(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match jobs::replay(&state, &signed.caller, &id.into()).await {
        Ok(_) => done("/console/jobs", "replayed"),
        Err(e) => error_page(&signed.page, e),
    }
}
