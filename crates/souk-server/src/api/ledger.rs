//! Balances and the ledger: the account's own view, and top-ups recorded by finance.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Body, Query};
use crate::SharedState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_core::accounts::Role;
use souk_core::money::{Currency, Money};
use souk_core::validate;
use souk_store::ledger::{EntryRow, Movement};
use utoipa::{IntoParams, ToSchema};

/// An amount of money: a decimal string with the currency's decimals, and the ISO currency.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq, Eq)]
pub struct MoneyView {
    /// e.g. `"99.00"`.
    pub amount: String,
    pub currency: String,
}

impl MoneyView {
    /// Formats stored minor units.
    pub fn new(minor: i64, currency: &str) -> Self {
        match currency.parse::<Currency>() {
            Ok(c) => MoneyView {
                amount: Money::from_minor(minor, c).amount_string(),
                currency: c.code().to_owned(),
            },
            Err(_) => MoneyView {
                amount: minor.to_string(),
                currency: currency.to_owned(),
            },
        }
    }
}

/// An account's balances.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// One per currency the account ever held.
    pub balances: Vec<MoneyView>,
}

/// One ledger entry.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    pub id: String,
    /// `top_up`, `charge` or `refund`.
    pub kind: String,
    /// Positive for credits, negative for debits.
    pub amount: MoneyView,
    /// The balance right after this entry.
    pub balance_after: MoneyView,
    pub order_id: Option<String>,
    pub reference: Option<String>,
    pub memo: String,
    pub created_at: DateTime<Utc>,
}

impl From<EntryRow> for EntryView {
    fn from(e: EntryRow) -> Self {
        EntryView {
            amount: MoneyView::new(e.amount_minor, &e.currency),
            balance_after: MoneyView::new(e.balance_after_minor, &e.currency),
            id: e.id,
            kind: e.kind,
            order_id: e.order_id,
            reference: e.reference,
            memo: e.memo,
            created_at: super::time(e.created_at),
        }
    }
}

/// A page of entries.
#[derive(Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<EntryView>,
    pub next_cursor: Option<String>,
}

/// Paging through a list.
#[derive(Deserialize, IntoParams)]
pub struct PageParams {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
}

/// A top-up recorded by finance.
#[derive(Deserialize, ToSchema)]
pub struct TopUp {
    /// The account to credit, by id…
    pub account_id: Option<String>,
    /// …or by e-mail.
    pub email: Option<String>,
    /// A positive decimal amount, e.g. `"500.00"`.
    pub amount: String,
    pub currency: String,
    /// The payment's reference (bank transfer, receipt).
    pub reference: Option<String>,
    #[serde(default)]
    pub memo: String,
}

/// The caller's balances.
#[utoipa::path(operation_id = "my_balance", get, path = "/v1/balance", tag = "balance", responses((status = 200, body = BalanceView), (status = 401, body = Problem)))]
pub async fn balance(
    State(state): State<SharedState>,
    caller: Caller,
) -> ApiResult<Json<BalanceView>> {
    let balances = state
        .store
        .balances(caller.id())
        .await?
        .into_iter()
        .map(|b| MoneyView::new(b.amount_minor, &b.currency))
        .collect();
    Ok(Json(BalanceView { balances }))
}

/// The caller's ledger, newest first.
#[utoipa::path(operation_id = "my_ledger", get, path = "/v1/ledger", tag = "balance", params(PageParams), responses((status = 200, body = EntryPage), (status = 401, body = Problem)))]
pub async fn entries(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<EntryPage>> {
    let limit = super::page_size(p.limit)?;
    let rows = state
        .store
        .ledger_entries(caller.id(), p.cursor.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = super::page(rows, limit, |e| &e.id);
    let items = rows.into_iter().map(Into::into).collect();
    Ok(Json(EntryPage { items, next_cursor }))
}

/// Records a top-up for an account (role `finance`). Send an `Idempotency-Key` so that a retry
/// credits once.
#[utoipa::path(operation_id = "record_top_up", post, path = "/v1/operator/top-ups", tag = "operator", request_body = TopUp,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry credit once")),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "The top-up an earlier request with this key recorded"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn top_up(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Body(t): Body<TopUp>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    caller.require(Role::Finance)?;
    let key = super::orders::key_of(&headers)?;
    let currency: Currency = t.currency.parse()?;
    let amount = Money::parse("amount", &t.amount, currency)?;
    if amount.minor <= 0 {
        return Err(ApiError::invalid("amount", "a top-up must be positive"));
    }
    if amount.minor > 1_000_000_000_000 {
        return Err(ApiError::invalid(
            "amount",
            "a single top-up is at most 10,000,000,000",
        ));
    }
    let account = match (&t.account_id, &t.email) {
        (Some(id), None) => state.store.account(id).await?,
        (None, Some(email)) => state
            .store
            .account_by_email(&email.trim().to_lowercase())
            .await?
            .ok_or(ApiError::NotFound("account".into()))?,
        _ => {
            return Err(ApiError::invalid(
                "account_id",
                "give either account_id or email",
            ))
        }
    };
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
                currency: currency.code(),
                amount_minor: amount.minor,
                kind: "top_up",
                order_id: None,
                reference: reference.as_deref(),
                memo: &memo,
                created_by: Some(caller.id()),
                idempotency_key: key.as_deref(),
            },
            state.now(),
        )
        .await;
    match (recorded, key) {
        (Ok(entry), _) => Ok((StatusCode::CREATED, Json(entry.into()))),
        // A retry of a top-up this operator already recorded: the same entry, credited once.
        (Err(souk_store::Error::Conflict(_)), Some(key)) => {
            let entry = state
                .store
                .entry_by_key(caller.id(), &key)
                .await?
                .ok_or(ApiError::Conflict("retry the request".into()))?;
            if entry.account_id != account.id
                || entry.amount_minor != amount.minor
                || entry.currency != currency.code()
            {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "was already used for a different top-up",
                ));
            }
            Ok((StatusCode::OK, Json(entry.into())))
        }
        (Err(e), _) => Err(e.into()),
    }
}
