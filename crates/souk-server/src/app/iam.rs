//! Machine identity: an account's IAM users and their access keys (the secret shown once, sealed
//! at rest), and the audit of refused signed requests.

use super::{Caller, Page, PageRequest, Via};
use crate::error::{AppError, AppResult};
use crate::AppState;
use rand::Rng;
use serde::Deserialize;
use souk_core::accounts::Role;
use souk_core::iam::{KeyState, NewUser, Policy, MAX_KEYS_PER_USER};
use souk_store::iam::{AccessKey, IamUser, Refusal};
use utoipa::ToSchema;

/// A new IAM user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct UserInput {
    /// Letters, digits, `-`, `_` and `.`; unique in the account.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// May sign in to the web console (with the account's e-mail, its own name and `password`),
    /// doing there what its policy allows.
    #[serde(default)]
    pub console_access: bool,
    /// The console password (10 to 128 characters); required with console access, refused
    /// without it.
    #[serde(default)]
    #[schema(min_length = 10, max_length = 128)]
    pub password: Option<String>,
    /// May hold access keys and sign API calls.
    #[serde(default)]
    pub programmatic_access: bool,
    /// `full_access`, `read_only`, `billing` or `seller_operations`.
    #[schema(value_type = super::schema::IamPolicy)]
    pub policy: String,
}

/// An IAM user with its access keys.
#[derive(Debug, Clone)]
pub struct UserWithKeys {
    pub user: IamUser,
    pub keys: Vec<AccessKey>,
}

/// A key just made: the secret is here and nowhere else, ever again.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: AccessKey,
    pub secret: String,
}

/// IAM is managed by the account's people, not by its keys: a key cannot make more keys.
fn in_person(caller: &Caller) -> AppResult<()> {
    match caller.via {
        Via::AccessKey { .. } => Err(AppError::NotForKeys(
            "IAM users and keys are managed with a session, not with an access key".into(),
        )),
        Via::ConsoleUser { .. } => Err(AppError::Forbidden(
            "IAM users and keys are managed by the account itself, not by its IAM users".into(),
        )),
        _ => Ok(()),
    }
}

fn random(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// Creates an IAM user of the caller's account.
pub async fn create_user(
    state: &AppState,
    caller: &Caller,
    input: UserInput,
) -> AppResult<IamUser> {
    in_person(caller)?;
    let policy = policy(&input.policy)?;
    let user = NewUser {
        name: input.name,
        console_access: input.console_access,
        programmatic_access: input.programmatic_access,
        policy,
    }
    .validated()?;
    let password_hash = match (user.console_access, input.password) {
        (true, Some(password)) => {
            souk_core::validate::password("password", &password)?;
            Some(state.throttle.hash_password(password).await?)
        }
        (true, None) => {
            return Err(AppError::invalid(
                "password",
                "a user with console access needs a password to sign in with",
            ))
        }
        (false, Some(_)) => {
            return Err(AppError::invalid(
                "password",
                "only a user with console access signs in with a password",
            ))
        }
        (false, None) => None,
    };
    match state
        .store
        .create_iam_user(caller.id(), &user, password_hash.as_deref(), state.now())
        .await
    {
        Err(souk_store::Error::Duplicate(_)) => Err(AppError::invalid(
            "name",
            "the account already has a user with this name",
        )),
        other => Ok(other?),
    }
}

/// The caller's IAM users with their keys.
pub async fn users(state: &AppState, caller: &Caller) -> AppResult<Vec<UserWithKeys>> {
    in_person(caller)?;
    let mut out = Vec::new();
    for user in state.store.iam_users_of(caller.id()).await? {
        let keys = state.store.access_keys_of(&user.id).await?;
        out.push(UserWithKeys { user, keys });
    }
    Ok(out)
}

async fn own_user(state: &AppState, caller: &Caller, user_id: &str) -> AppResult<IamUser> {
    match state.store.iam_user(user_id).await {
        Ok(u) if &u.account_id == caller.id() => Ok(u),
        Ok(_) | Err(souk_store::Error::NotFound(_)) => Err(AppError::NotFound("IAM user".into())),
        Err(e) => Err(e.into()),
    }
}

fn policy(given: &str) -> AppResult<Policy> {
    given.parse().map_err(|_| {
        AppError::invalid(
            "policy",
            "must be full_access, read_only, billing or seller_operations",
        )
    })
}

/// A new policy for an IAM user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PolicyInput {
    /// `full_access`, `read_only`, `billing` or `seller_operations`.
    #[schema(value_type = super::schema::IamPolicy)]
    pub policy: String,
}

/// Gives one of the caller's IAM users another policy, which its keys and console sessions act
/// under from their next request.
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    input: PolicyInput,
) -> AppResult<IamUser> {
    in_person(caller)?;
    let policy = policy(&input.policy)?;
    let user = own_user(state, caller, user_id).await?;
    Ok(state
        .store
        .set_iam_user_policy(caller.id(), &user.id, policy)
        .await?)
}

/// Deletes one of the caller's IAM users with its keys and console sessions.
pub async fn delete_user(state: &AppState, caller: &Caller, user_id: &str) -> AppResult<()> {
    in_person(caller)?;
    let user = own_user(state, caller, user_id).await?;
    Ok(state.store.delete_iam_user(caller.id(), &user.id).await?)
}

/// Makes an access key for a user with programmatic access (at most two a user).
pub async fn create_key(state: &AppState, caller: &Caller, user_id: &str) -> AppResult<NewKey> {
    in_person(caller)?;
    let user = own_user(state, caller, user_id).await?;
    issue_key(state, &user).await
}

async fn issue_key(state: &AppState, user: &IamUser) -> AppResult<NewKey> {
    if !user.programmatic_access {
        return Err(AppError::Conflict(
            "this user has no programmatic access, so it holds no access keys".into(),
        ));
    }
    let access_key = random(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    let secret = random(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    );
    let sealed = state
        .secrets
        .seal(&crate::crypto::access_key_aad(&access_key), &secret);
    match state
        .store
        .create_access_key(user, &access_key, &sealed, state.now())
        .await
    {
        Ok(key) => Ok(NewKey { key, secret }),
        Err(souk_store::Error::Stale) => Err(AppError::Conflict(format!(
            "a user holds at most {MAX_KEYS_PER_USER} access keys: delete one before making another"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Enables or disables one of the caller's keys.
pub async fn set_key_enabled(
    state: &AppState,
    caller: &Caller,
    access_key: &str,
    enabled: bool,
) -> AppResult<()> {
    in_person(caller)?;
    let to = if enabled {
        KeyState::Active
    } else {
        KeyState::Disabled
    };
    Ok(state
        .store
        .set_access_key_state(caller.id(), access_key, to)
        .await?)
}

/// Deletes one of the caller's keys.
pub async fn delete_key(state: &AppState, caller: &Caller, access_key: &str) -> AppResult<()> {
    in_person(caller)?;
    Ok(state
        .store
        .delete_access_key(caller.id(), access_key)
        .await?)
}

/// The refused signed requests, newest first (roles `operations` or `support`).
pub async fn audit(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<Refusal>> {
    if !(caller.account.has_role(Role::Operations) || caller.account.has_role(Role::Support)) {
        return Err(AppError::Forbidden(
            "this needs the operator role operations or support".into(),
        ));
    }
    let size = page.size()?;
    let rows = state
        .store
        .audit_refusals(page.after(souk_store::iam::REFUSAL_PREFIX)?, size + 1)
        .await?;
    Ok(page.page(rows, size, |r| r.id.as_str()))
}

/// A key with full access for the account with `email`, under its IAM user `cli` (made on first
/// use): what `souk admin create-access-key` prints, for scripts and tests.
pub async fn create_key_for(state: &AppState, email: &str) -> AppResult<NewKey> {
    let account = state
        .store
        .account_by_email(&email.trim().to_lowercase())
        .await?
        .ok_or(AppError::NotFound("account".into()))?;
    let user = match state.store.iam_user_named(&account.id, "cli").await? {
        Some(u) => u,
        None => {
            let u = NewUser {
                name: "cli".into(),
                console_access: false,
                programmatic_access: true,
                policy: Policy::FullAccess,
            };
            state
                .store
                .create_iam_user(&account.id, &u, None, state.now())
                .await?
        }
    };
    issue_key(state, &user).await
}
