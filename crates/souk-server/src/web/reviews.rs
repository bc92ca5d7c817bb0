//! The console's queues: product reviews, verifications and merchant applications, due date and overdue first, each with the material to decide on.

use super::done;
use super::error_page;
use super::when;
use super::when_text;
use super::Posted;
use super::Signed;
use crate::app::accounts;
use crate::app::accounts::Decision;
use crate::app::merchants;
use crate::app::reviews;
use crate::app::reviews::ReviewDecision;
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The reviews pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/console", get(queues))
        .route("/console/verifications/{id}", post(decide_verification))
        .route("/console/merchants/{id}", post(decide_merchant))
        .route("/console/reviews/{id}", post(decide_review))
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
                                .map(|p| format!("{}: {}", p.name, p.terms()))
                                .collect::<Vec<_>>()
                                .join(" · "),
                        ),
                        ("Description".into(), text(&c.description)),
                        ("Tags".into(), text(&c.tags.join(", "))),
                        ("Licence".into(), text(&c.licence)),
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
