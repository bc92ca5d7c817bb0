//! The web pages: server-rendered HTML on the API's port, from templates compiled into the binary.
//! Pages are one more front door: they extract what a person sent, call the same `app` functions
//! as the JSON API, and shape the answer as HTML. A refused action shows the application layer's
//! reason next to the field at fault and keeps what the person typed.
//!
//! Every form carries a CSRF token (a random cookie echoed in a hidden field, compared in constant
//! time); output is escaped by the templates; writes answer with a redirect to the next page
//! (post/redirect/get) and a notice it shows.

pub mod access_keys;
pub mod accounts;
pub mod catalog;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod merchants;
pub mod notifications;
pub mod orders;
pub mod products;
pub mod promotions;
pub mod reviews;
pub mod sales;

use crate::app::{Caller, Via};
use crate::client::Peer;
use crate::error::AppError;
use crate::SharedState;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use souk_core::accounts::Role;
use souk_core::money::Money;
use std::collections::HashMap;

/// The cookie holding the CSRF token forms echo.
const CSRF_COOKIE: &str = "souk_csrf";
/// The largest form souk reads.
const MAX_FORM: usize = 256 * 1024;

/// Every page, by area, beside the API's areas. An IAM user signed in to the console reaches only
/// the pages its policy allows.
pub fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .merge(catalog::routes())
        .merge(accounts::routes())
        .merge(access_keys::routes())
        .merge(orders::routes())
        .merge(instances::routes())
        .merge(ledger::routes())
        .merge(merchants::routes())
        .merge(notifications::routes())
        .merge(products::routes())
        .merge(sales::routes())
        .merge(reviews::routes())
        .merge(jobs::routes())
        .merge(promotions::routes())
        .route("/static/souk.css", get(stylesheet))
        .route("/static/souk.js", get(script))
        .route_layer(axum::middleware::from_fn_with_state(state, console_policy))
}

/// Where a long list goes on: the cursor of the next page.
#[derive(Debug, serde::Deserialize)]
pub struct Cursor {
    pub cursor: Option<String>,
}

/// A form that sends nothing but its CSRF token (a button that does one thing).
#[derive(Debug, serde::Deserialize)]
pub struct Nothing {}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/souk.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/souk.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Who is looking at a page, as the layout shows them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub is_operator: bool,
    /// The menu's links this viewer may follow (an IAM user's policy may forbid some).
    pub menu: Menu,
    /// Unread notifications, for the count beside the bell.
    pub unread: i64,
    pub caller: Caller,
}

/// Which of the menu's pages a viewer may open.
#[derive(Debug, Clone, Copy)]
pub struct Menu {
    pub orders: bool,
    pub subscriptions: bool,
    pub balance: bool,
    pub access_keys: bool,
    pub seller: bool,
}

impl Menu {
    fn of(caller: &Caller) -> Menu {
        match &caller.via {
            // The account's IAM users manage no IAM, and see what their policy lets them open.
            Via::ConsoleUser { policy, .. } => Menu {
                orders: policy.allows("GET", "/orders"),
                subscriptions: policy.allows("GET", "/instances"),
                balance: policy.allows("GET", "/balance"),
                access_keys: false,
                seller: policy.allows("GET", "/seller"),
            },
            _ => Menu {
                orders: true,
                subscriptions: true,
                balance: true,
                access_keys: true,
                seller: true,
            },
        }
    }
}

/// What every page's layout needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The `<title>`: what the page is, then the site.
    pub title: String,
    pub viewer: Option<Viewer>,
    /// Echoed by every form.
    pub csrf: String,
    /// A message about what the last action did (post/redirect/get).
    pub notice: Option<String>,
}

impl Ctx {
    /// The signed-in person, if any.
    pub fn caller(&self) -> Option<&Caller> {
        self.viewer.as_ref().map(|v| &v.caller)
    }
}

/// The context of a page request: who is looking, the CSRF token, the notice.
pub struct Page {
    pub ctx: Ctx,
    set_csrf: Option<String>,
    https: bool,
    /// The souk page the person came from (the path of a same-origin `Referer`), for an error
    /// page's way back.
    back: Option<String>,
}

impl Page {
    /// The page with this title.
    pub fn titled(mut self, title: impl Into<String>) -> Self {
        self.ctx.title = format!("{} · souk", title.into());
        self
    }

    /// Renders a template as this page's answer.
    pub fn render(&self, t: &impl Template) -> Response {
        self.render_status(StatusCode::OK, t)
    }

    /// Renders a template with a status other than 200 (a refused form is 422).
    pub fn render_status(&self, status: StatusCode, t: &impl Template) -> Response {
        let mut res = match t.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => AppError::Internal(format!("template: {e}")).into_response(),
        };
        if let Some(token) = &self.set_csrf {
            let secure = if self.https { "; Secure" } else { "" };
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
            )) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        res
    }
}

/// The path (and query) of the page that sent this request, when the browser says: souk sends
/// its referrer to itself only, and only a path is kept, so the link stays on souk whatever a
/// header claims.
fn came_from(parts: &Parts) -> Option<String> {
    let referer = parts.headers.get(header::REFERER)?.to_str().ok()?;
    let after_scheme = referer.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    let path = path.split('#').next().unwrap_or_default();
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 2000
        && !path.chars().any(|c| c == '\\' || c.is_control());
    safe.then(|| path.to_owned())
}

fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn notice_of(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    let code = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "notice")?
        .1;
    notice_text(&code).map(str::to_owned)
}

/// What a notice code in a redirect means; unknown codes show nothing.
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "welcome" => "Welcome to souk. Your account is ready.",
        "logged-in" => "You are logged in.",
        "logged-out" => "You are logged out.",
        "verification-sent" => "Your details were sent. A reviewer decides within a few working days.",
        "paid" => "Paid. The seller is setting it up; this page updates by itself.",
        "renewed" => "Renewed. The new expiry is below.",
        "credit-limit-set" => "The credit limit was set.",
        "promotion-saved" => "The promotion was saved. Orders in its time pay the discounted price.",
        "promotion-ended" => "The promotion ended. Orders from now on pay the list price.",
        "trial-started" => "Your free trial started. The seller is setting it up; this page updates by itself.",
        "converted" => "Paid. The subscription runs from now; the new expiry is below.",
        "unsubscribed" => "Unsubscribed. The refund is in your balance; the seller is releasing the instance.",
        "plan-changed" => "The plan changed. The difference is on your balance; the seller is told.",
        "renewals-returned" => "The renewals that had not begun were given back; the refund is in your balance.",
        "applied" => "Your application was sent. Operations decide within a few working days.",
        "saved" => "Saved.",
        "submitted" => "Submitted for review. The review is due within 3 working days.",
        "delisted" => "Delisted. No one can buy it now; running instances go on.",
        "key-rotated" => "A new signing key was made. Configure your endpoint with it now: it is shown only on this page.",
        "decided" => "Decision recorded.",
        "topped-up" => "Top-up recorded.",
        "replayed" => "The job was put back in the queue.",
        "user-created" => "The user was added. Make its key next.",
        "user-policy-changed" => "The policy changed. The user's keys and sessions act under it from their next request.",
        "user-deleted" => "The user was deleted with its keys and sessions: nothing it held works any more.",
        "key-enabled" => "The key is active again.",
        "key-disabled" => "The key is disabled: requests signed with it are refused.",
        "key-deleted" => "The key was deleted.",
        "marked-read" => "Marked as read.",
        "all-read" => "All notifications are marked as read.",
        "preferences-saved" => "Your e-mail choices were saved.",
        _ => return None,
    })
}

impl FromRequestParts<SharedState> for Page {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let mut viewer = None;
        for scheme in &state.authenticators {
            if let Ok(Some(caller)) = scheme.authenticate(parts, state).await {
                // A count that cannot be read shows as none rather than failing the page.
                let unread = state
                    .store
                    .unread_notifications(caller.id())
                    .await
                    .unwrap_or(0);
                let name = match &caller.via {
                    Via::ConsoleUser { user, .. } => format!("{user} ({})", caller.account.name),
                    _ => caller.account.name.clone(),
                };
                viewer = Some(Viewer {
                    unread,
                    name,
                    menu: Menu::of(&caller),
                    is_operator: !caller.account.roles.is_empty(),
                    caller,
                });
                break;
            }
        }
        let https = Peer::from_request_parts(parts, state)
            .await
            .map(|p| p.https)
            .unwrap_or(false);
        let (csrf, set_csrf) = match cookie(parts, CSRF_COOKIE) {
            Some(t) => (t, None),
            None => {
                let t = hex::encode(rand::random::<[u8; 24]>());
                (t.clone(), Some(t))
            }
        };
        Ok(Page {
            ctx: Ctx {
                title: "souk".into(),
                viewer,
                csrf,
                notice: notice_of(parts),
            },
            set_csrf,
            https,
            back: came_from(parts),
        })
    }
}

/// A page that needs a signed-in person: anyone else is sent to log in first, and back after.
pub struct Signed {
    pub page: Page,
    pub caller: Caller,
}

/// The answer for someone who must log in first.
pub struct ToLogIn(String);

impl IntoResponse for ToLogIn {
    fn into_response(self) -> Response {
        let next: String = form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

impl FromRequestParts<SharedState> for Signed {
    type Rejection = ToLogIn;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let page = Page::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        match page.ctx.caller().cloned() {
            Some(caller) => Ok(Signed { page, caller }),
            None => Err(ToLogIn(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/".to_owned(), |p| p.to_string()),
            )),
        }
    }
}

/// A posted form whose CSRF token matched the cookie; anything else is refused and changes
/// nothing.
pub struct Posted<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let expected = cookie(&parts, CSRF_COOKIE);
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| refused_form("The form is too large.").into_response())?;
        let pairs: HashMap<String, String> = form_urlencoded::parse(&bytes).into_owned().collect();
        let given = pairs.get("csrf").map(String::as_str).unwrap_or_default();
        let ok = expected.as_deref().is_some_and(|e| {
            use subtle::ConstantTimeEq;
            !e.is_empty() && bool::from(e.as_bytes().ct_eq(given.as_bytes()))
        });
        if !ok {
            let _ = Page::from_request_parts(&mut parts, state).await;
            return Err(refused_form(
                "This form has expired or came from another site. Go back, reload the page and try again.",
            )
            .into_response());
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(&bytes));
        serde_path_to_error::deserialize(de)
            .map(Posted)
            .map_err(|e| {
                let field = e.path().to_string();
                let message = e.into_inner().to_string();
                AppError::invalid(field, message).into_response()
            })
    }
}

/// Refuses a page an IAM user's policy does not allow, before its handler runs (the account's
/// own sessions pass untouched).
async fn console_policy(
    axum::extract::State(state): axum::extract::State<SharedState>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = crate::auth::session_token(req.headers()) {
        if let Ok(session) = crate::auth::live_session(&state, &token).await {
            if let Some(user) = session.as_ref().and_then(|s| s.iam_user.as_ref()) {
                let (method, path) = (req.method().as_str(), req.uri().path());
                if !user.policy.allows(method, path) {
                    let message = format!(
                        "You are signed in as the IAM user {}, whose policy ({}) does not allow this page. Ask your account's owner, or sign in as the account.",
                        user.name, user.policy
                    );
                    let (status, html) = refusal("Not allowed", &message);
                    return (status, html).into_response();
                }
            }
            // The page's own authentication reads the session from here, not again.
            req.extensions_mut()
                .insert(crate::auth::SessionRead(token, session));
        }
    }
    next.run(req).await
}

fn refused_form(message: &str) -> (StatusCode, Html<String>) {
    refusal("This form was refused", message)
}

fn refusal(heading: &str, message: &str) -> (StatusCode, Html<String>) {
    let page = ErrorPage {
        ctx: Ctx {
            title: format!("{heading} · souk"),
            viewer: None,
            csrf: String::new(),
            notice: None,
        },
        status: 403,
        heading: heading.into(),
        message: message.into(),
        back: None,
    };
    (
        StatusCode::FORBIDDEN,
        Html(page.render().unwrap_or_else(|_| message.to_owned())),
    )
}

/// The page for a refusal that has no form to go back to (not found, not allowed, …).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub ctx: Ctx,
    pub status: u16,
    pub heading: String,
    pub message: String,
    /// The page to go back to, when known.
    pub back: Option<String>,
}

/// The page for a path that is not there.
pub fn not_found_page() -> Response {
    let page = ErrorPage {
        ctx: Ctx {
            title: "Not found · souk".into(),
            viewer: None,
            csrf: String::new(),
            notice: None,
        },
        status: 404,
        heading: "This page does not exist".into(),
        message: "Check the address, or start again from the storefront.".into(),
        back: None,
    };
    match page.render() {
        Ok(html) => (StatusCode::NOT_FOUND, Html(html)).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Renders an application error as a page, with the same reason the API gives.
pub fn error_page(page: &Page, e: AppError) -> Response {
    if let AppError::Internal(detail) = &e {
        tracing::error!(%detail, "internal error on a page");
    }
    let (status, _, title) = e.parts();
    let view = ErrorPage {
        ctx: Ctx {
            title: format!("{title} · souk"),
            ..page.ctx.clone()
        },
        status: status.as_u16(),
        heading: title.to_owned(),
        message: e.detail(),
        back: page.back.clone(),
    };
    page.render_status(status, &view)
}

/// A redirect after a write, carrying the notice the next page shows.
pub fn done(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}notice={notice}")).into_response()
}

/// Field errors for a form refused by the application layer, with a summary at the top.
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    /// (field, message), in the order to list them.
    pub items: Vec<(String, String)>,
}

impl FormErrors {
    /// The application layer's refusal, on its field (or on the form as a whole).
    pub fn from_error(e: &AppError) -> FormErrors {
        FormErrors {
            items: vec![(e.field().unwrap_or("form").to_owned(), e.detail())],
        }
    }

    /// The message for `field`, if it is at fault.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether nothing is at fault.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// An instant as a page shows it: machine-readable for the script that turns it into the
/// viewer's time zone, and readable (UTC) without the script.
pub fn when(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The same instant as text, in UTC, for when the script does not run.
pub fn when_text(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Money as a page shows it: the amount with its currency's decimals, then the currency.
pub fn money(m: &Money) -> String {
    m.to_string()
}

/// The colour of a state badge: fixed meanings everywhere.
pub fn badge(state: &str) -> &'static str {
    match state {
        "provisioning" | "pending" | "in_review" | "running" => "blue",
        "active" | "paid" | "listed" | "approved" | "verified" | "done" => "green",
        "grace" | "draft" | "unverified" => "amber",
        "frozen" | "failed" | "rejected" | "dead" => "red",
        _ => "grey",
    }
}

/// Whether the viewer holds an operator role.
pub fn has_role(ctx: &Ctx, role: Role) -> bool {
    ctx.caller().is_some_and(|c| c.account.has_role(role))
}

/// The idempotency key a form's hidden `key` field makes: `full` (the field with the form's
/// prefix), when the field was sent and the result is a key souk keeps (1 to 128 printable ASCII
/// characters); a forged or missing field leaves the request without one.
pub(crate) fn form_key(full: &str, field: &str) -> Option<String> {
    if field.is_empty() {
        return None;
    }
    souk_core::orders::idempotency_key(full).ok()
}

#[cfg(test)]
mod tests {
    use super::form_key;

    #[test]
    fn a_forms_key_is_kept_only_when_souk_keeps_such_keys() {
        assert_eq!(
            form_key("web-ins_1-3", "ins_1-3").as_deref(),
            Some("web-ins_1-3")
        );
        assert_eq!(form_key("web-", ""), None, "no field, no key");
        assert_eq!(form_key("web-a b", "a b"), None, "not printable ASCII");
        let long = "k".repeat(200);
        assert_eq!(form_key(&format!("web-{long}"), &long), None, "too long");
    }
}
