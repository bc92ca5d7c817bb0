//! Logging in and out, signing up, real-name verification, and accounts in the console.

use super::badge;
use super::done;
use super::error_page;
use super::ledger::TopUpForm;
use super::money;
use super::FormErrors;
use super::Nothing;
use super::Page;
use super::Posted;
use super::Signed;
use crate::app::accounts;
use crate::app::accounts::LogIn;
use crate::app::accounts::SignUp;
use crate::app::accounts::VerificationInput;
use crate::app::ledger;
use crate::app::PageRequest;
use crate::auth;
use crate::client::Peer;
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Redirect;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The account pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/login", get(login_form).post(log_in))
        .route("/signup", get(sign_up_form).post(sign_up))
        .route("/logout", post(log_out))
        .route(
            "/account/verification",
            get(verification_form).post(submit_verification),
        )
        .route("/console/accounts", get(accounts_page))
        .route("/console/accounts/{id}", get(account_page))
}

/// Where to go after logging in: a path on this site only.
/// Where to go after logging in: a path on this site only, in printable ASCII without a
/// backslash or a fragment, so no browser can read it as another site (`/\t/evil` is `//evil`
/// once the tab is dropped) and it goes into a `Location` header as it is.
pub(crate) fn safe_next(next: &str) -> String {
    let printable = next.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if printable && next.starts_with('/') && !next.starts_with("//") && !next.contains(['\\', '#'])
    {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// What the log-in form sends.
#[derive(Debug, Default, Deserialize)]
pub struct LogInForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    /// An IAM user's name, to sign in as that user.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub next: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LogInPage {
    ctx: super::Ctx,
    email: String,
    user: String,
    next: String,
    errors: FormErrors,
}

/// The log-in form.
pub async fn login_form(page: Page, Query(form): Query<LogInForm>) -> Response {
    let page = page.titled("Log in");
    page.render(&LogInPage {
        ctx: page.ctx.clone(),
        email: form.email,
        user: form.user,
        next: safe_next(&form.next),
        errors: FormErrors::default(),
    })
}

fn with_session(peer: &Peer, state: &SharedState, token: &str, to: Response) -> Response {
    let cookie = auth::session_cookie(token, state.settings.session_ttl.num_seconds(), peer.https);
    let mut res = to;
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Logs in and goes back to where the person was going.
pub async fn log_in(
    State(state): State<SharedState>,
    page: Page,
    peer: Peer,
    Posted(form): Posted<LogInForm>,
) -> Response {
    let next = safe_next(&form.next);
    let input = LogIn {
        email: form.email.clone(),
        password: form.password,
        user: Some(form.user.clone()),
    };
    match accounts::log_in(&state, &peer, input).await {
        Ok(session) => with_session(&peer, &state, &session.token, done(&next, "logged-in")),
        Err(e) => {
            let page = page.titled("Log in");
            let status = e.parts().0;
            let mut errors = FormErrors::from_error(&e);
            if matches!(e, AppError::BadCredentials) {
                errors.items = vec![("email".into(), e.detail())];
            }
            page.render_status(
                status,
                &LogInPage {
                    ctx: page.ctx.clone(),
                    email: form.email,
                    user: form.user,
                    next,
                    errors,
                },
            )
        }
    }
}

/// What the sign-up form sends.
#[derive(Debug, Default, Deserialize)]
pub struct SignUpForm {
    #[serde(default = "individual")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

fn individual() -> String {
    "individual".into()
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage {
    ctx: super::Ctx,
    form: SignUpForm,
    errors: FormErrors,
}

/// The sign-up form.
pub async fn sign_up_form(page: Page) -> Response {
    let page = page.titled("Create an account");
    page.render(&SignUpPage {
        ctx: page.ctx.clone(),
        form: SignUpForm {
            kind: individual(),
            ..SignUpForm::default()
        },
        errors: FormErrors::default(),
    })
}

/// Creates the account and logs it in.
pub async fn sign_up(
    State(state): State<SharedState>,
    page: Page,
    peer: Peer,
    Posted(form): Posted<SignUpForm>,
) -> Response {
    let input = SignUp {
        kind: form.kind.clone(),
        name: form.name.clone(),
        email: form.email.clone(),
        password: form.password.clone(),
    };
    match accounts::sign_up(&state, &peer, input).await {
        Ok(session) => with_session(
            &peer,
            &state,
            &session.token,
            done("/account/verification", "welcome"),
        ),
        Err(e) => {
            let page = page.titled("Create an account");
            let mut errors = FormErrors::from_error(&e);
            if matches!(e, AppError::DuplicateEmail) {
                errors.items = vec![("email".into(), e.detail())];
            }
            page.render_status(
                e.parts().0,
                &SignUpPage {
                    ctx: page.ctx.clone(),
                    form: SignUpForm {
                        password: String::new(),
                        ..form
                    },
                    errors,
                },
            )
        }
    }
}

/// Logs out.
pub async fn log_out(
    State(state): State<SharedState>,
    peer: Peer,
    headers: HeaderMap,
    Posted(_): Posted<Nothing>,
) -> Response {
    if let Some(token) = auth::session_token(&headers) {
        if let Err(e) = accounts::log_out(&state, &token).await {
            tracing::warn!(error = %e, "log-out failed");
        }
    }
    let mut res = Redirect::to("/?notice=logged-out").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&auth::clear_cookie(peer.https)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// What the verification form sends.
#[derive(Debug, Default, Deserialize)]
pub struct VerificationForm {
    #[serde(default)]
    pub legal_name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub company_name: String,
    #[serde(default)]
    pub registration_number: String,
}

#[derive(Template)]
#[template(path = "verification.html")]
struct VerificationPage {
    ctx: super::Ctx,
    kind: String,
    state: String,
    reason: Option<String>,
    can_submit: bool,
    form: VerificationForm,
    errors: FormErrors,
}

fn verification_page(
    signed: &Signed,
    form: VerificationForm,
    errors: FormErrors,
    status: StatusCode,
) -> Response {
    let page = &signed.page;
    let account = &signed.caller.account;
    let v = &account.verification;
    let form = match (&v.details, errors.is_empty()) {
        (Some(d), true) => VerificationForm {
            legal_name: d.legal_name.clone(),
            phone: d.phone.clone(),
            id_number: d.id_number.clone().unwrap_or_default(),
            company_name: d.company_name.clone().unwrap_or_default(),
            registration_number: d.registration_number.clone().unwrap_or_default(),
        },
        _ => form,
    };
    page.render_status(
        status,
        &VerificationPage {
            ctx: super::Ctx {
                title: "Verification · souk".into(),
                ..page.ctx.clone()
            },
            kind: account.kind.as_str().to_owned(),
            state: v.state.as_str().to_owned(),
            reason: v.reason.clone(),
            can_submit: v.state.submit().is_ok(),
            form,
            errors,
        },
    )
}

/// The account's verification: where it stands, and the form while it can be (re)submitted.
pub async fn verification_form(signed: Signed) -> Response {
    verification_page(
        &signed,
        VerificationForm::default(),
        FormErrors::default(),
        StatusCode::OK,
    )
}

fn optional(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Sends the verification details.
pub async fn submit_verification(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(form): Posted<VerificationForm>,
) -> Response {
    let input = VerificationInput {
        legal_name: form.legal_name.clone(),
        phone: form.phone.clone(),
        id_number: optional(&form.id_number),
        company_name: optional(&form.company_name),
        registration_number: optional(&form.registration_number),
    };
    match accounts::submit_verification(&state, &signed.caller, input).await {
        Ok(_) => done("/account/verification", "verification-sent"),
        Err(e) => {
            let status = e.parts().0;
            verification_page(&signed, form, FormErrors::from_error(&e), status)
        }
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
    /// The account's credit limits, per currency.
    limits: Vec<String>,
    entries: Vec<super::ledger::EntryRow>,
    can_top_up: bool,
    form: TopUpForm,
    errors: FormErrors,
}

pub(crate) async fn account_view(
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
            p.items.iter().map(super::ledger::entry_row).collect(),
        ),
        Err(_) => (vec![], vec![]),
    };
    let limits = ledger::account_credit_limits(state, &signed.caller, &account.id)
        .await
        .map(|l| l.iter().map(money).collect())
        .unwrap_or_default();
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
            limits,
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

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_paths_of_this_site_are_followed_after_log_in() {
        assert_eq!(super::safe_next("/orders?state=paid"), "/orders?state=paid");
        for bad in [
            "//evil.example",
            "/\\evil",
            "/\t/evil.example",
            "/\n/x",
            "https://evil.example",
            "/a#frag",
            "/caf\u{e9}",
            "",
        ] {
            assert_eq!(super::safe_next(bad), "/", "{bad:?}");
        }
    }
}
