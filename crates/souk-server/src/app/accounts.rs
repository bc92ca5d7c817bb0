//! Accounts: sign-up, log-in and log-out, real-name verification and its review, and the
//! operators made on the command line.

use super::{schema, Caller, Via};
use crate::auth;
use crate::client::Peer;
use crate::error::{AppError, AppResult};
use crate::AppState;
use serde::{Deserialize, Serialize};
use souk_core::accounts::{AccountKind, Role, VerificationDetails};
use souk_core::ids::AccountId;
use souk_core::ids::Id as _;
use souk_core::validate;
use souk_store::accounts::{Account, NewAccount};
use utoipa::ToSchema;

/// Sign-up details.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignUp {
    #[schema(value_type = schema::Kind)]
    pub kind: String,
    /// The person's or the company's name; blank names are refused.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
}

/// Log-in details.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LogIn {
    /// The e-mail the account signed up with (any case).
    pub email: String,
    /// Wrong e-mail or password are answered alike, with 401.
    pub password: String,
    /// An IAM user of the account with console access signs in with its name and its own
    /// password; its session does what its policy allows.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub user: Option<String>,
}

/// Real-name details: individuals give `id_number`; enterprises `company_name` and
/// `registration_number`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct VerificationInput {
    /// The person's legal name (for enterprises, the legal representative's).
    #[schema(min_length = 1, max_length = 100)]
    pub legal_name: String,
    /// Digits, `+`, `-`, spaces and parentheses.
    #[schema(min_length = 1, max_length = 32, pattern = r"^[0-9+\-() ]+$")]
    pub phone: String,
    /// The national id number: required for individuals, refused for enterprises.
    #[schema(min_length = 1, max_length = 40)]
    pub id_number: Option<String>,
    /// Required for enterprises, refused for individuals.
    #[schema(min_length = 1, max_length = 200)]
    pub company_name: Option<String>,
    /// Required for enterprises, refused for individuals.
    #[schema(min_length = 1, max_length = 40)]
    pub registration_number: Option<String>,
}

/// A reviewer's decision on a verification or a merchant application.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Decision {
    /// `true` approves, `false` rejects.
    pub approve: bool,
    /// Required when rejecting.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

impl Decision {
    /// The validated reason: required for a rejection.
    pub fn reason(&self) -> AppResult<Option<String>> {
        match (&self.reason, self.approve) {
            (Some(r), _) if !r.trim().is_empty() => Ok(Some(validate::text("reason", r, 1000)?)),
            (_, false) => Err(AppError::invalid("reason", "a rejection needs a reason")),
            _ => Ok(None),
        }
    }
}

/// A new session: the token for the client (shown once) and the account it belongs to.
pub struct Session {
    pub token: String,
    pub account: Account,
}

async fn start_session(
    state: &AppState,
    account: Account,
    iam_user: Option<&str>,
) -> AppResult<Session> {
    let (token, hash) = auth::new_session_token();
    // Sessions expire in real time: a test clock moving months ahead must not log people out.
    let now = chrono::Utc::now();
    crate::sessions::sweep_account(state, &account.id, now).await;
    state
        .store
        .create_session(
            &hash,
            &account.id,
            iam_user,
            now,
            souk_core::clock::add(now, state.settings.session_ttl),
        )
        .await?;
    Ok(Session { token, account })
}

/// Creates an account and logs it in; sign-ups are throttled per client address.
pub async fn sign_up(state: &AppState, peer: &Peer, input: SignUp) -> AppResult<Session> {
    state.throttle.sign_up(peer)?;
    let account = register(state, input).await?;
    start_session(state, account, None).await
}

/// Creates an account (sign-up without a session or a client to throttle: the demo).
pub async fn register(state: &AppState, input: SignUp) -> AppResult<Account> {
    let kind: AccountKind = input
        .kind
        .parse()
        .map_err(|_| AppError::invalid("kind", "must be \"individual\" or \"enterprise\""))?;
    let name = validate::text("name", &input.name, 100)?;
    let email = validate::email("email", &input.email)?;
    validate::password("password", &input.password)?;
    let hash = state.throttle.hash_password(input.password).await?;
    Ok(state
        .store
        .create_account(
            NewAccount {
                kind,
                name: &name,
                email: &email,
                password_hash: &hash,
                roles: &[],
            },
            state.now(),
        )
        .await?)
}

/// Logs in with e-mail and password; attempts are throttled per client address and per account,
/// and password checks wait in a bounded line.
pub async fn log_in(state: &AppState, peer: &Peer, input: LogIn) -> AppResult<Session> {
    let email = input.email.trim().to_lowercase();
    state.throttle.log_in(peer, &email)?;
    let account = state.store.account_by_email(&email).await?;
    let user = input
        .user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    // Whose password to check: the account's, or its IAM user's. An unknown account or user is
    // hashed against all the same, and answered like a wrong password.
    let (hash, iam_user) = match (&account, user) {
        (Some(a), None) => (Some(a.password_hash.clone()), None),
        (Some(a), Some(name)) => match state.store.console_user(&a.id, name).await? {
            Some((u, hash)) => (Some(hash), Some(u.id)),
            None => (None, None),
        },
        (None, _) => (None, None),
    };
    let ok = state.throttle.verify_password(input.password, hash).await?;
    match account {
        Some(a) if ok => start_session(state, a, iam_user.as_deref()).await,
        _ => {
            state.throttle.log_in_failed(&email);
            Err(AppError::BadCredentials)
        }
    }
}

/// Ends the session with this token (nothing happens for an unknown one).
pub async fn log_out(state: &AppState, token: &str) -> AppResult<()> {
    Ok(state.store.delete_session(&auth::token_hash(token)).await?)
}

/// Ends every session of the caller's account, the current one and its IAM users' included; an
/// IAM user ends only its own.
pub async fn log_out_everywhere(state: &AppState, caller: &Caller) -> AppResult<u64> {
    Ok(match &caller.via {
        super::Via::ConsoleUser { user, .. } => {
            state
                .store
                .delete_sessions_of_iam_user(caller.id(), user)
                .await?
        }
        _ => state.store.delete_sessions_of(caller.id()).await?,
    })
}

/// Submits (or, after a rejection, resubmits) the caller's real-name verification.
pub async fn submit_verification(
    state: &AppState,
    caller: &Caller,
    input: VerificationInput,
) -> AppResult<Account> {
    let current = caller.account.verification.state;
    let next = current.submit()?;
    let details = VerificationDetails {
        legal_name: input.legal_name,
        id_number: input.id_number,
        company_name: input.company_name,
        registration_number: input.registration_number,
        phone: input.phone,
    }
    .validated(caller.account.kind)?;
    state
        .store
        .submit_verification(caller.id(), current, next, &details, state.now())
        .await?;
    Ok(state.store.account(caller.id()).await?)
}

/// Verifications waiting for a reviewer, oldest first (role `reviewer`).
pub async fn verification_queue(state: &AppState, caller: &Caller) -> AppResult<Vec<Account>> {
    caller.require(Role::Reviewer)?;
    Ok(state.store.pending_verifications(200).await?)
}

/// Approves or rejects a pending verification (role `reviewer`, never the reviewer's own).
pub async fn decide_verification(
    state: &AppState,
    caller: &Caller,
    account_id: &AccountId,
    decision: Decision,
) -> AppResult<Account> {
    caller.require(Role::Reviewer)?;
    let reason = decision.reason()?;
    caller.not_own(account_id, "decide the verification")?;
    let account = state.store.account(account_id).await?;
    let current = account.verification.state;
    let next = current.decide(decision.approve)?;
    state
        .store
        .decide_verification(
            account_id,
            current,
            next,
            reason.as_deref(),
            caller.id(),
            state.now(),
        )
        .await?;
    Ok(state.store.account(account_id).await?)
}

/// Creates an operator account with `roles` (all when empty): how the first operator is made.
pub async fn create_operator(
    state: &AppState,
    email: &str,
    name: &str,
    password: String,
    roles: &[Role],
) -> AppResult<Account> {
    let email = validate::email("email", email)?;
    let name = validate::text("name", name, 100)?;
    validate::password("password", &password)?;
    let roles = if roles.is_empty() { Role::ALL } else { roles };
    let hash = auth::hash_password(password).await?;
    Ok(state
        .store
        .create_account(
            NewAccount {
                kind: AccountKind::Individual,
                name: &name,
                email: &email,
                password_hash: &hash,
                roles,
            },
            state.now(),
        )
        .await?)
}

/// The e-mail of the marketplace's own system operator, which `souk admin …` acts as.
pub const SYSTEM_EMAIL: &str = "system@souk.invalid";

/// The caller `souk admin …` acts as: the system operator, with every role, created on first
/// use. It has no password, so no one can log in as it; what it does is recorded under its id.
pub async fn command_line_caller(state: &AppState) -> AppResult<Caller> {
    let account = match state.store.account_by_email(SYSTEM_EMAIL).await? {
        Some(a) => a,
        None => {
            let created = state
                .store
                .create_account(
                    NewAccount {
                        kind: AccountKind::Enterprise,
                        name: "souk (command line)",
                        email: SYSTEM_EMAIL,
                        // Not a PHC string: no password ever verifies against it.
                        password_hash: "!",
                        roles: Role::ALL,
                    },
                    state.now(),
                )
                .await;
            match created {
                Ok(a) => a,
                // Another command made it at the same moment.
                Err(souk_store::Error::Duplicate(_)) => state
                    .store
                    .account_by_email(SYSTEM_EMAIL)
                    .await?
                    .ok_or(AppError::NotFound("system operator".into()))?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(Caller {
        account,
        via: Via::CommandLine,
    })
}

/// Accounts whose e-mail or name contains `text`, newest first (any operator role).
pub async fn search(
    state: &AppState,
    caller: &Caller,
    text: &str,
    page: super::PageRequest,
) -> AppResult<super::Page<Account>> {
    if caller.account.roles.is_empty() {
        return Err(AppError::Forbidden("this needs an operator role".into()));
    }
    let size = page.size()?;
    let text = validate::optional_text("q", text, 200)?;
    let rows = state
        .store
        .search_accounts(&text, page.after(AccountId::PREFIX)?, size + 1)
        .await?;
    Ok(page.page(rows, size, |a| a.id.as_str()))
}

/// One account, for an operator (any operator role).
pub async fn get(state: &AppState, caller: &Caller, id: &AccountId) -> AppResult<Account> {
    if caller.account.roles.is_empty() {
        return Err(AppError::Forbidden("this needs an operator role".into()));
    }
    Ok(state.store.account(id).await?)
}
