//! Balances and the ledger: the account's own view, and top-ups recorded by finance.

use super::{idempotency_key, MoneyView, PageParams};
use crate::app::ledger::{self, CreditLimitInput, TopUp};
use crate::app::schema;
use crate::app::Caller;
use crate::error::{AppResult, Problem};
use crate::extract::{Body, Path, Query};
use crate::SharedState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use souk_store::ledger::Entry;
use utoipa::ToSchema;

/// An account's balances.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// One per currency the account ever held; negative while credit is drawn.
    pub balances: Vec<MoneyView>,
    /// How far below zero each balance may go, per currency finance gave credit in.
    pub credit_limits: Vec<MoneyView>,
}

/// One ledger entry.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    pub id: String,
    #[schema(value_type = schema::Movement)]
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

impl From<Entry> for EntryView {
    fn from(e: Entry) -> Self {
        EntryView {
            id: e.id.to_string(),
            kind: e.kind.as_str().to_owned(),
            amount: e.amount.into(),
            balance_after: e.balance_after.into(),
            order_id: e.order_id.map(|o| o.to_string()),
            reference: e.reference,
            memo: e.memo,
            created_at: e.created_at,
        }
    }
}

/// A page of entries.
#[derive(Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<EntryView>,
    pub next_cursor: Option<String>,
}

/// The caller's balances.
#[utoipa::path(operation_id = "my_balance", get, path = "/v1/balance", tag = "balance", responses((status = 200, body = BalanceView), (status = 401, body = Problem)))]
pub async fn balance(
    State(state): State<SharedState>,
    caller: Caller,
) -> AppResult<Json<BalanceView>> {
    let balances = ledger::balances(&state, &caller).await?;
    let limits = ledger::credit_limits(&state, &caller).await?;
    Ok(Json(BalanceView {
        balances: balances.into_iter().map(Into::into).collect(),
        credit_limits: limits.into_iter().map(Into::into).collect(),
    }))
}

/// Sets how far below zero an account's balance may go; 0 removes the credit. Needs the operator
/// role `finance`, and not for one's own account.
#[utoipa::path(operation_id = "set_credit_limit", put, path = "/v1/operator/accounts/{account_id}/credit-limit", tag = "operator", request_body = CreditLimitInput,
    params(("account_id" = String, Path)),
    responses((status = 200, body = MoneyView, description = "The credit limit now"), (status = 403, body = Problem, description = "Needs the operator role `finance`, and not for one's own account"),
              (status = 404, body = Problem, description = "No such account"),
              (status = 422, body = Problem, description = "A limit below 0 or above 10,000,000,000, or more decimals than the currency has")))]
pub async fn set_credit_limit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(account_id): Path<String>,
    Body(input): Body<CreditLimitInput>,
) -> AppResult<Json<MoneyView>> {
    let limit = ledger::set_credit_limit(&state, &caller, &account_id.into(), input).await?;
    Ok(Json(limit.into()))
}

/// The caller's ledger, newest first.
#[utoipa::path(operation_id = "my_ledger", get, path = "/v1/ledger", tag = "balance", params(PageParams), responses((status = 200, body = EntryPage), (status = 401, body = Problem)))]
pub async fn entries(
    State(state): State<SharedState>,
    caller: Caller,
    Query(p): Query<PageParams>,
) -> AppResult<Json<EntryPage>> {
    let page = ledger::entries(&state, &caller, p.into()).await?;
    Ok(Json(EntryPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Records a top-up for an account (role `finance`; not one's own). Send an `Idempotency-Key`
/// so that a retry credits once.
#[utoipa::path(operation_id = "record_top_up", post, path = "/v1/operator/top-ups", tag = "operator", request_body = TopUp,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$", description = "1 to 128 printable ASCII characters. Makes a retry credit once")),
    responses((status = 201, body = EntryView), (status = 200, body = EntryView, description = "The top-up an earlier request with this key recorded"), (status = 403, body = Problem, description = "Needs the operator role `finance`, and not for one's own account"),
              (status = 404, body = Problem, description = "No such account"),
              (status = 409, body = Problem, description = "A concurrent request with the same Idempotency-Key is still being recorded"),
              (status = 422, body = Problem, description = "Invalid input, neither or both of account_id and email, or an Idempotency-Key used for a different top-up")))]
pub async fn top_up(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    Body(t): Body<TopUp>,
) -> AppResult<(StatusCode, Json<EntryView>)> {
    let key = idempotency_key(&headers)?;
    let recorded = ledger::top_up(&state, &caller, t, key).await?;
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(recorded.entry.into())))
}
