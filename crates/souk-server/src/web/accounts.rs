//! Logging in and out, signing up, and real-name verification.

use super::{done, FormErrors, Page, Posted, Signed};
use crate::app::accounts::{self, LogIn, SignUp, VerificationInput};
use crate::auth;
use crate::client::Peer;
use crate::error::AppError;
use crate::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// Where to go after logging in: a path on this site only.
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
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
    #[serde(default)]
    pub next: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LogInPage {
    ctx: super::Ctx,
    email: String,
    next: String,
    errors: FormErrors,
}

/// The log-in form.
pub async fn login_form(page: Page, Query(form): Query<LogInForm>) -> Response {
    let page = page.titled("Log in");
    page.render(&LogInPage {
        ctx: page.ctx.clone(),
        email: form.email,
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

/// What the log-out form sends (only its CSRF token).
#[derive(Debug, Deserialize)]
pub struct Nothing {}

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
