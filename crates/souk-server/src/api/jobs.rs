//! The job queue for operators: dead jobs with their attempts, and replay.

use super::PageParams;
use crate::app::jobs::{self, JobDetails};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Which jobs to list.
#[derive(Deserialize, IntoParams)]
pub struct JobFilter {
    /// Default `dead`.
    #[param(value_type = Option<schema::JobStatus>)]
    pub state: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One attempt at a job.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    /// What was asked (never a secret or a signed URL).
    pub request: Option<String>,
    /// What came back.
    pub answer: Option<String>,
    pub error: Option<String>,
}

/// A background job with its attempts.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// e.g. `seller.new_instance`.
    pub kind: String,
    #[schema(value_type = schema::JobStatus)]
    pub state: String,
    pub instance_id: Option<String>,
    pub attempts: i64,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every attempt, first first.
    pub history: Vec<AttemptView>,
}

impl From<JobDetails> for JobView {
    fn from(d: JobDetails) -> Self {
        let j = d.job;
        JobView {
            id: j.id.to_string(),
            kind: j.kind,
            state: j.state.as_str().to_owned(),
            instance_id: j.instance_id.map(|i| i.to_string()),
            attempts: j.attempts,
            run_at: j.run_at,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            history: d
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    started_at: a.started_at,
                    latency_ms: a.latency_ms,
                    request: a.request,
                    answer: a.answer,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// A page of jobs.
#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    pub next_cursor: Option<String>,
}

/// Jobs in a state, newest first, with their attempts (role `operations`).
#[utoipa::path(operation_id = "list_jobs", get, path = "/v1/operator/jobs", tag = "operator", params(JobFilter),
    responses((status = 200, body = JobPage), (status = 403, body = Problem, description = "Needs the operator role `operations`"), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(f): Query<JobFilter>,
) -> AppResult<Json<JobPage>> {
    let in_state = jobs::parse_state(f.state.as_deref().unwrap_or("dead"))?;
    let page = PageParams {
        cursor: f.cursor,
        limit: f.limit,
    };
    let page = jobs::list(&state, &caller, in_state, page.into()).await?;
    Ok(Json(JobPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One job with its attempts (role `operations`).
#[utoipa::path(operation_id = "get_job", get, path = "/v1/operator/jobs/{job_id}", tag = "operator", params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = 403, body = Problem, description = "Needs the operator role `operations`"), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> AppResult<Json<JobView>> {
    Ok(Json(
        jobs::get(&state, &caller, &job_id.into()).await?.into(),
    ))
}

/// Replays a dead job: due now, with a fresh retry budget (role `operations`).
#[utoipa::path(operation_id = "replay_job", post, path = "/v1/operator/jobs/{job_id}/replay", tag = "operator", params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = 403, body = Problem, description = "Needs the operator role `operations`"), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "Only dead jobs are replayed")))]
pub async fn replay(
    State(state): State<SharedState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> AppResult<Json<JobView>> {
    Ok(Json(
        jobs::replay(&state, &caller, &job_id.into()).await?.into(),
    ))
}
