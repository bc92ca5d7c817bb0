//! Health, the OpenAPI document, and the test clock (`souk serve --test-clock` only).

use crate::error::{AppError, AppResult, Problem};
use crate::extract::Body;
use crate::SharedState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Health of this node.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = crate::app::schema::HealthStatus)]
    pub status: String,
    #[schema(value_type = crate::app::schema::Database)]
    pub database: String,
}

/// Answers when the node and its database are up.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health), (status = 500, body = Problem)))]
pub async fn healthz(State(state): State<SharedState>) -> AppResult<Json<Health>> {
    state.store.ping().await?;
    let database = match state.store.backend() {
        souk_store::Backend::Sqlite => "sqlite",
        souk_store::Backend::Postgres => "postgres",
    };
    Ok(Json(Health {
        status: "ok".into(),
        database: database.into(),
    }))
}

/// The OpenAPI 3.1 document.
pub async fn openapi(doc: Arc<utoipa::openapi::OpenApi>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

/// The test clock's time.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<Utc>,
}

/// Moves the test clock forward.
#[derive(Deserialize, ToSchema)]
pub struct MoveClock {
    /// Seconds to move forward.
    pub advance_seconds: Option<i64>,
    /// An instant to move to (never backwards).
    pub to: Option<DateTime<Utc>>,
}

fn test_clock(state: &SharedState) -> AppResult<&souk_core::clock::TestClock> {
    state
        .test_clock
        .as_deref()
        .ok_or(AppError::NotFound("test clock".into()))
}

/// The test clock's time.
pub async fn clock(
    State(state): State<SharedState>,
    _: crate::ops::ClockAccess,
) -> AppResult<Json<ClockView>> {
    Ok(Json(ClockView {
        now: souk_core::clock::Clock::now(test_clock(&state)?),
    }))
}

/// Moves the test clock and wakes the workers so due work runs at once.
pub async fn move_clock(
    State(state): State<SharedState>,
    _: crate::ops::ClockAccess,
    Body(m): Body<MoveClock>,
) -> AppResult<Json<ClockView>> {
    let clock = test_clock(&state)?;
    let now = match (m.advance_seconds, m.to) {
        (Some(s), None) if (0..=100 * 366 * 86_400).contains(&s) => {
            clock.advance(chrono::Duration::seconds(s))
        }
        (Some(_), None) => {
            return Err(AppError::invalid(
                "advance_seconds",
                "must be between 0 and 100 years",
            ))
        }
        (None, Some(to)) => clock.set(to),
        _ => {
            return Err(AppError::invalid(
                "advance_seconds",
                "give either advance_seconds or to",
            ))
        }
    };
    state.wake_scheduler.notify_waiters();
    state.wake_dispatcher.notify_waiters();
    Ok(Json(ClockView { now }))
}

/// Prometheus text: this node's counters and the queue and lifecycle gauges. It holds counts only;
/// expose it to your monitoring, not to the internet.
pub async fn metrics(
    State(state): State<SharedState>,
    _: crate::ops::MetricsAccess,
) -> AppResult<impl IntoResponse> {
    let now = state.now();
    let (jobs, oldest_job) = state.store.job_stats(now).await?;
    let (instances, earliest_due) = state.store.instance_stats(now).await?;
    let since = |ms: Option<i64>| {
        ms.map_or(0.0, |ms| {
            (now.timestamp_millis() - ms).max(0) as f64 / 1000.0
        })
    };
    let gauges = crate::metrics::Gauges {
        jobs,
        oldest_due_job_secs: since(oldest_job),
        instances,
        scheduler_lag_secs: since(earliest_due),
    };
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(&gauges),
    ))
}
