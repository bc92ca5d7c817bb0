//! Notifications: the caller's list with its unread count, marking them read, and which topics
//! the caller also wants by e-mail.

use crate::app::notifications::{self, EmailPref, NotificationList, NotificationView};
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Which notifications to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// Only unread ones.
    #[serde(default)]
    pub unread: bool,
    /// Only those older than this notification (the last id of the previous page).
    pub before: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The caller's notifications, newest first, with how many are unread.
#[utoipa::path(operation_id = "my_notifications", get, path = "/v1/notifications", tag = "notifications", params(NotificationParams),
    responses((status = 200, body = NotificationList), (status = 401, body = Problem), (status = 422, body = Problem, description = "A limit outside 1 to 100, or a `before` that is not a notification id")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<NotificationParams>,
) -> AppResult<Json<NotificationList>> {
    Ok(Json(
        notifications::list(
            &state,
            &caller,
            p.unread,
            p.before.as_deref(),
            p.limit.map(i64::from),
        )
        .await?,
    ))
}

/// Marks one of the caller's notifications read; reading it again changes nothing.
#[utoipa::path(operation_id = "read_notification", post, path = "/v1/notifications/{notification_id}/read", tag = "notifications",
    params(("notification_id" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 401, body = Problem), (status = 404, body = Problem, description = "None of the caller's notifications has this id")))]
pub async fn read(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Json<NotificationView>> {
    Ok(Json(notifications::mark_read(&state, &caller, &id).await?))
}

/// How many notifications a call marked read.
#[derive(Serialize, ToSchema)]
pub struct MarkedRead {
    pub marked: u64,
}

/// Marks all the caller's notifications read.
#[utoipa::path(operation_id = "read_all_notifications", post, path = "/v1/notifications/read-all", tag = "notifications",
    responses((status = 200, body = MarkedRead), (status = 401, body = Problem)))]
pub async fn read_all(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<MarkedRead>> {
    Ok(Json(MarkedRead {
        marked: notifications::mark_all_read(&state, &caller).await?,
    }))
}

/// Which topics the caller gets by e-mail (every notification is also in the list).
#[utoipa::path(operation_id = "my_email_preferences", get, path = "/v1/notifications/preferences", tag = "notifications",
    responses((status = 200, body = Vec<EmailPref>), (status = 401, body = Problem)))]
pub async fn preferences(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<Vec<EmailPref>>> {
    Ok(Json(notifications::email_prefs(&state, &caller).await?))
}

/// Sets whether the caller gets the topics given by e-mail; topics left out keep their setting.
#[utoipa::path(operation_id = "set_email_preferences", put, path = "/v1/notifications/preferences", tag = "notifications", request_body = Vec<EmailPref>,
    responses((status = 200, body = Vec<EmailPref>, description = "Every topic's setting now"), (status = 401, body = Problem), (status = 422, body = Problem, description = "An unknown topic")))]
pub async fn set_preferences(
    State(state): State<SharedState>,
    caller: Caller,
    Body(prefs): Body<Vec<EmailPref>>,
) -> AppResult<Json<Vec<EmailPref>>> {
    Ok(Json(
        notifications::set_email_prefs(&state, &caller, &prefs).await?,
    ))
}
