//! The notifications page: what the person was told, newest first, marked read one by one or
//! all at once, and which topics they also get by e-mail.

use super::{done, error_page, when, when_text, Posted, Signed};
use crate::app::notifications::{self, EmailPref, NotificationView};
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;

/// The notifications pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/notifications", get(page))
        .route("/notifications/read-all", post(read_all))
        .route("/notifications/preferences", post(set_preferences))
        .route("/notifications/{id}/read", post(read))
}

/// Which notifications the page lists.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub unread: Option<String>,
}

/// A notification as the page lists it.
pub struct Row {
    pub id: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub at: String,
    pub at_text: String,
    pub unread: bool,
}

impl From<NotificationView> for Row {
    fn from(n: NotificationView) -> Self {
        Row {
            id: n.id,
            title: n.title,
            body: n.body,
            link: n.link,
            at: when(&n.created_at),
            at_text: when_text(&n.created_at),
            unread: n.read_at.is_none(),
        }
    }
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    ctx: super::Ctx,
    rows: Vec<Row>,
    unread: i64,
    unread_only: bool,
    prefs: Vec<EmailPref>,
}

async fn page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(filter): Query<Filter>,
) -> Response {
    let page = &signed.page;
    let unread_only = filter.unread.is_some_and(|u| u == "1");
    let list = match notifications::list(&state, &signed.caller, unread_only, None, None).await {
        Ok(l) => l,
        Err(e) => return error_page(page, e),
    };
    let prefs = match notifications::email_prefs(&state, &signed.caller).await {
        Ok(p) => p,
        Err(e) => return error_page(page, e),
    };
    page.render(&NotificationsPage {
        ctx: super::Ctx {
            title: "Notifications · souk".into(),
            ..page.ctx.clone()
        },
        rows: list.notifications.into_iter().map(Row::from).collect(),
        unread: list.unread,
        unread_only,
        prefs,
    })
}

/// Marks one read and goes where it points, or back to the list.
async fn read(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<HashMap<String, String>>,
) -> Response {
    match notifications::mark_read(&state, &signed.caller, &id).await {
        Ok(n) if form.contains_key("open") => {
            // Links are souk's own paths; anything else goes back to the list.
            let to = n
                .link
                .as_deref()
                .filter(|l| l.starts_with('/') && !l.starts_with("//"))
                .unwrap_or("/notifications");
            Redirect::to(to).into_response()
        }
        Ok(_) => done("/notifications", "marked-read"),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn read_all(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(_): Posted<HashMap<String, String>>,
) -> Response {
    match notifications::mark_all_read(&state, &signed.caller).await {
        Ok(_) => done("/notifications", "all-read"),
        Err(e) => error_page(&signed.page, e),
    }
}

/// Each topic's checkbox is `email_<topic>`; an unticked box is not sent, so every topic the
/// page showed is set from what came back.
async fn set_preferences(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(form): Posted<HashMap<String, String>>,
) -> Response {
    let prefs: Vec<EmailPref> = souk_core::notices::Topic::ALL
        .into_iter()
        .map(|t| EmailPref {
            topic: t.to_string(),
            email: form.contains_key(&format!("email_{t}")),
            describe: None,
        })
        .collect();
    match notifications::set_email_prefs(&state, &signed.caller, &prefs).await {
        Ok(_) => done("/notifications", "preferences-saved"),
        Err(e) => error_page(&signed.page, e),
    }
}
