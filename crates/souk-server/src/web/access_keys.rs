//! Access keys: the account's IAM users with their policies and keys; a new key's secret is shown
//! on the page that makes it and never again. And the console's audit of refused signed requests.

use super::done;
use super::error_page;
use super::when_text;
use super::FormErrors;
use super::Nothing;
use super::Posted;
use super::Signed;
use crate::app::iam;
use crate::app::iam::{NewKey, UserInput, UserWithKeys};
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use souk_core::iam::KeyState;

/// The access keys pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/access-keys", get(keys_page))
        .route("/access-keys/users", post(create_user))
        .route("/access-keys/users/{id}/keys", post(create_key))
        .route("/console/audit", get(audit_page))
        .route("/access-keys/users/{id}/policy", post(set_policy))
        .route("/access-keys/users/{id}/delete", post(delete_user))
        .route("/access-keys/{key}/enable", post(enable))
        .route("/access-keys/{key}/disable", post(disable))
        .route("/access-keys/{key}/delete", post(delete))
}

/// What the new-user form sends.
#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub policy: String,
    /// `keys` (programmatic access), `console` (sign-in), or `both`.
    #[serde(default)]
    pub access: String,
    /// The console password; never shown again.
    #[serde(default)]
    pub password: String,
}

/// A key as the page lists it.
pub struct KeyRow {
    pub access_key: String,
    pub active: bool,
    pub created: String,
    pub last_used: String,
}

/// A user as the page lists it.
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub policy: String,
    pub console_access: bool,
    pub programmatic_access: bool,
    pub keys: Vec<KeyRow>,
    pub can_add_key: bool,
}

fn user_row(u: &UserWithKeys) -> UserRow {
    UserRow {
        id: u.user.id.clone(),
        name: u.user.name.clone(),
        policy: u.user.policy.as_str().to_owned(),
        console_access: u.user.console_access,
        programmatic_access: u.user.programmatic_access,
        keys: u
            .keys
            .iter()
            .map(|k| KeyRow {
                access_key: k.access_key.clone(),
                active: k.state == KeyState::Active,
                created: when_text(&k.created_at),
                last_used: k
                    .last_used_at
                    .as_ref()
                    .map(when_text)
                    .unwrap_or_else(|| "never".into()),
            })
            .collect(),
        can_add_key: u.user.programmatic_access
            && u.keys.len() < souk_core::iam::MAX_KEYS_PER_USER as usize,
    }
}

#[derive(Template)]
#[template(path = "access_keys.html")]
struct KeysPage {
    ctx: super::Ctx,
    users: Vec<UserRow>,
    new_key: Option<(String, String)>,
    form: UserForm,
    policies: &'static [&'static str],
    errors: FormErrors,
}

async fn render(
    state: &SharedState,
    signed: &Signed,
    form: UserForm,
    new_key: Option<NewKey>,
    refused: Option<AppError>,
) -> Response {
    let page = &signed.page;
    let users = match iam::users(state, &signed.caller).await {
        Ok(u) => u,
        Err(e) => return error_page(page, e),
    };
    let errors = refused
        .as_ref()
        .map(FormErrors::from_error)
        .unwrap_or_default();
    let status = refused.as_ref().map_or(StatusCode::OK, |e| e.parts().0);
    page.render_status(
        status,
        &KeysPage {
            ctx: super::Ctx {
                title: "Access keys · souk".into(),
                ..page.ctx.clone()
            },
            users: users.iter().map(user_row).collect(),
            new_key: new_key.map(|k| (k.key.access_key, k.secret)),
            form,
            policies: &["full_access", "read_only", "billing", "seller_operations"],
            errors,
        },
    )
}

async fn keys_page(State(state): State<SharedState>, signed: Signed) -> Response {
    render(&state, &signed, UserForm::default(), None, None).await
}

async fn create_user(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(form): Posted<UserForm>,
) -> Response {
    let (console, keys) = match form.access.as_str() {
        "console" => (true, false),
        "both" => (true, true),
        _ => (false, true),
    };
    let input = UserInput {
        name: form.name.trim().to_owned(),
        console_access: console,
        programmatic_access: keys,
        policy: form.policy.clone(),
        password: (!form.password.is_empty()).then(|| form.password.clone()),
    };
    match iam::create_user(&state, &signed.caller, input).await {
        Ok(_) => done("/access-keys", "user-created"),
        // The password is not sent back into the page.
        Err(e) => {
            let form = UserForm {
                password: String::new(),
                ..form
            };
            render(&state, &signed, form, None, Some(e)).await
        }
    }
}

async fn create_key(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match iam::create_key(&state, &signed.caller, &id).await {
        // Rendered, not redirected: the secret must not travel in a URL or survive a reload.
        Ok(key) => render(&state, &signed, UserForm::default(), Some(key), None).await,
        Err(e) => error_page(&signed.page, e),
    }
}

async fn set_enabled(state: &SharedState, signed: &Signed, key: &str, enabled: bool) -> Response {
    match iam::set_key_enabled(state, &signed.caller, key, enabled).await {
        Ok(()) => done(
            "/access-keys",
            if enabled {
                "key-enabled"
            } else {
                "key-disabled"
            },
        ),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn enable(
    State(state): State<SharedState>,
    signed: Signed,
    Path(key): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    set_enabled(&state, &signed, &key, true).await
}

async fn disable(
    State(state): State<SharedState>,
    signed: Signed,
    Path(key): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    set_enabled(&state, &signed, &key, false).await
}

async fn delete(
    State(state): State<SharedState>,
    signed: Signed,
    Path(key): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match iam::delete_key(&state, &signed.caller, &key).await {
        Ok(()) => done("/access-keys", "key-deleted"),
        Err(e) => error_page(&signed.page, e),
    }
}

/// The policy chosen for a user on its card.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    pub policy: String,
}

async fn set_policy(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<PolicyForm>,
) -> Response {
    let input = iam::PolicyInput {
        policy: form.policy,
    };
    match iam::set_policy(&state, &signed.caller, &id, input).await {
        Ok(_) => done("/access-keys", "user-policy-changed"),
        Err(e) => render(&state, &signed, UserForm::default(), None, Some(e)).await,
    }
}

async fn delete_user(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match iam::delete_user(&state, &signed.caller, &id).await {
        Ok(()) => done("/access-keys", "user-deleted"),
        Err(e) => error_page(&signed.page, e),
    }
}

/// A refused signed request as the console lists it.
pub struct RefusalRow {
    pub at: String,
    pub at_text: String,
    pub access_key: String,
    pub account_id: String,
    pub request: String,
    pub reason: String,
    pub client_address: String,
}

#[derive(Template)]
#[template(path = "console_audit.html")]
struct AuditPage {
    ctx: super::Ctx,
    rows: Vec<RefusalRow>,
    next: Option<String>,
}

/// Where the audit's pages start.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub cursor: Option<String>,
}

async fn audit_page(
    State(state): State<SharedState>,
    signed: Signed,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Response {
    let page = signed.page.titled("Signed-request audit");
    let request = crate::app::PageRequest {
        cursor: query.cursor,
        limit: Some(50),
    };
    match iam::audit(&state, &signed.caller, request).await {
        Ok(p) => page.render(&AuditPage {
            ctx: page.ctx.clone(),
            rows: p
                .items
                .iter()
                .map(|r| RefusalRow {
                    at: super::when(&r.at),
                    at_text: when_text(&r.at),
                    access_key: r.access_key.clone().unwrap_or_else(|| "-".into()),
                    account_id: r
                        .account_id
                        .as_ref()
                        .map_or_else(|| "-".into(), ToString::to_string),
                    request: format!("{} {}", r.method, r.path),
                    reason: r.reason.clone(),
                    client_address: r.client_address.clone().unwrap_or_else(|| "-".into()),
                })
                .collect(),
            next: p.next_cursor.map(|c| format!("/console/audit?cursor={c}")),
        }),
        Err(e) => error_page(&page, e),
    }
}
