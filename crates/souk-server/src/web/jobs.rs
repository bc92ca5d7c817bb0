//! The console's job queue: dead jobs with every attempt, and replay.

use super::badge;
use super::done;
use super::error_page;
use super::when_text;
use super::Nothing;
use super::Page;
use super::Posted;
use super::Signed;
use crate::app::jobs;
use crate::app::jobs::JobDetails;
use crate::app::PageRequest;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use souk_store::jobs::JobState;

/// The jobs pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/console/jobs", get(jobs_page))
        .route("/console/jobs/{id}/replay", post(replay))
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
    /// How many days done jobs are kept before they are forgotten.
    keep_days: i64,
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
            keep_days: state.settings.keep_done_jobs.num_days(),
        }),
        Err(e) => error_page(page, e),
    }
}

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
