//! Balances and the ledger: the account's own view, and top-ups recorded by finance (through the
//! API, the console or `souk admin top-up`, all with the same limit and idempotency).

use super::{schema, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::AppState;
use serde::Deserialize;
use souk_core::accounts::Role;
use souk_core::ids::AccountId;
use souk_core::ids::Id as _;
use souk_core::ledger::{self, EntryKind};
use souk_core::money::{Currency, Money};
use souk_core::validate;
use souk_store::ledger::{Entry, Movement};
use utoipa::ToSchema;

/// A top-up recorded by finance.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TopUp {
    /// The account to credit, by id…
    pub account_id: Option<String>,
    /// …or by e-mail (give one of the two).
    #[schema(format = "email", max_length = 254)]
    pub email: Option<String>,
    /// A positive decimal amount with at most the currency's decimals, up to 10,000,000,000.
    #[schema(example = "500.00")]
    pub amount: String,
    #[schema(value_type = schema::Currency)]
    pub currency: String,
    /// The payment's reference (bank transfer, receipt).
    #[schema(min_length = 1, max_length = 200)]
    pub reference: Option<String>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub memo: String,
}

/// What a top-up did: the entry, and whether an earlier request with the same key made it.
pub struct Recorded {
    pub entry: Entry,
    pub replayed: bool,
}

/// The caller's balances, one per currency it ever held.
pub async fn balances(state: &AppState, caller: &Caller) -> AppResult<Vec<Money>> {
    Ok(state.store.balances(caller.id()).await?)
}

/// The caller's credit limits, one per currency that has one.
pub async fn credit_limits(state: &AppState, caller: &Caller) -> AppResult<Vec<Money>> {
    Ok(state.store.credit_limits(caller.id()).await?)
}

/// A credit limit as finance sets it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreditLimitInput {
    /// How far below zero the balance may go: a decimal amount with at most the currency's
    /// decimals, 0 for no credit.
    #[schema(example = "1000.00")]
    pub limit: String,
    #[schema(value_type = schema::Currency)]
    pub currency: String,
}

/// Sets how far below zero an account's balance may go (role `finance`, never for the operator's
/// own account). Orders from now on may spend into the credit; what is owed shows as a negative
/// balance until a top-up covers it.
pub async fn set_credit_limit(
    state: &AppState,
    caller: &Caller,
    account_id: &AccountId,
    input: CreditLimitInput,
) -> AppResult<Money> {
    caller.require(Role::Finance)?;
    let currency: Currency = input.currency.parse()?;
    let limit = ledger::credit_limit(Money::parse("limit", &input.limit, currency)?)?;
    let account = state.store.account(account_id).await?;
    caller.not_own(&account.id, "set the credit limit")?;
    state
        .store
        .set_credit_limit(&account.id, limit, caller.id(), state.now())
        .await?;
    Ok(limit)
}

/// The caller's ledger, newest first.
pub async fn entries(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<Entry>> {
    let size = page.size()?;
    let rows = state
        .store
        .ledger_entries(
            caller.id(),
            page.after(souk_core::ids::EntryId::PREFIX)?,
            size + 1,
        )
        .await?;
    Ok(page.page(rows, size, |e| e.id.as_str()))
}

/// Another account's balances and ledger, newest first (roles `finance` or `support`).
pub async fn account_ledger(
    state: &AppState,
    caller: &Caller,
    account: &AccountId,
    page: PageRequest,
) -> AppResult<(Vec<Money>, Page<Entry>)> {
    if !(caller.account.has_role(Role::Finance) || caller.account.has_role(Role::Support)) {
        return Err(AppError::Forbidden(
            "this needs the operator role finance or support".into(),
        ));
    }
    let balances = state.store.balances(account).await?;
    let size = page.size()?;
    let rows = state
        .store
        .ledger_entries(
            account,
            page.after(souk_core::ids::EntryId::PREFIX)?,
            size + 1,
        )
        .await?;
    Ok((balances, page.page(rows, size, |e| e.id.as_str())))
}

/// Another account's credit limits (roles `finance` or `support`).
pub async fn account_credit_limits(
    state: &AppState,
    caller: &Caller,
    account: &AccountId,
) -> AppResult<Vec<Money>> {
    if !(caller.account.has_role(Role::Finance) || caller.account.has_role(Role::Support)) {
        return Err(AppError::Forbidden(
            "this needs the operator role finance or support".into(),
        ));
    }
    Ok(state.store.credit_limits(account).await?)
}

/// Records a top-up (role `finance`, never to the operator's own account). With an idempotency
/// key a retry credits once and answers the first entry.
pub async fn top_up(
    state: &AppState,
    caller: &Caller,
    t: TopUp,
    key: Option<String>,
) -> AppResult<Recorded> {
    caller.require(Role::Finance)?;
    let currency: Currency = t.currency.parse()?;
    let amount = ledger::top_up_amount(Money::parse("amount", &t.amount, currency)?)?;
    let account = match (&t.account_id, &t.email) {
        (Some(id), None) => state.store.account(&AccountId::from(id.as_str())).await?,
        (None, Some(email)) => state
            .store
            .account_by_email(&email.trim().to_lowercase())
            .await?
            .ok_or(AppError::NotFound("account".into()))?,
        _ => {
            return Err(AppError::invalid(
                "account_id",
                "give either account_id or email",
            ))
        }
    };
    caller.not_own(&account.id, "top up the balance")?;
    let reference = t
        .reference
        .as_deref()
        .map(|r| validate::text("reference", r, 200))
        .transpose()?;
    let memo = validate::optional_text("memo", &t.memo, 500)?;
    let memo = if memo.is_empty() {
        "top-up".to_owned()
    } else {
        memo
    };
    let recorded = state
        .store
        .record_movement(
            &Movement {
                account_id: &account.id,
                amount,
                kind: EntryKind::TopUp,
                order_id: None,
                reference: reference.as_deref(),
                memo: &memo,
                created_by: Some(caller.id()),
                idempotency_key: key.as_deref(),
                floor_minor: 0,
                overdraw: false,
            },
            state.now(),
        )
        .await;
    match (recorded, key) {
        (Ok(entry), _) => {
            super::arrears::reconcile(
                state,
                &account.id,
                entry.balance_after.currency,
                state.now(),
            )
            .await?;
            Ok(Recorded {
                entry,
                replayed: false,
            })
        }
        // A retry of a top-up this operator already recorded: the same entry, credited once.
        (
            Err(souk_store::Error::Duplicate(souk_store::Constraint::EntryIdempotencyKey)),
            Some(key),
        ) => {
            let entry = state
                .store
                .entry_by_key(caller.id(), &key)
                .await?
                .ok_or(AppError::Stale)?;
            if entry.account_id != account.id || entry.amount != amount {
                return Err(AppError::IdempotencyKeyReused);
            }
            Ok(Recorded {
                entry,
                replayed: true,
            })
        }
        (Err(e), _) => Err(e.into()),
    }
}
