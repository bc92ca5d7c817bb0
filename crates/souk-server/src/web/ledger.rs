//! The balance and the ledger with the running balance and a CSV export; top-ups recorded in the console.

use super::accounts::account_view;
use super::done;
use super::error_page;
use super::money;
use super::when;
use super::when_text;
use super::Cursor;
use super::Posted;
use super::Signed;
use crate::app::ledger;
use crate::app::ledger::TopUp;
use crate::app::PageRequest;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The ledger pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/balance", get(balance_page))
        .route("/balance/ledger.csv", get(ledger_csv))
        .route("/console/accounts/{id}/top-up", post(top_up))
        .route("/console/accounts/{id}/credit-limit", post(credit_limit))
}

/// A ledger entry as the balance page shows it.
pub struct EntryRow {
    pub at: String,
    pub at_text: String,
    pub kind: String,
    pub memo: String,
    pub amount: String,
    pub balance_after: String,
    pub order_id: Option<String>,
}

/// A ledger entry as pages show it.
pub(crate) fn entry_row(e: &souk_store::ledger::Entry) -> EntryRow {
    EntryRow {
        at: when(&e.created_at),
        at_text: when_text(&e.created_at),
        kind: e.kind.as_str().replace('_', "-"),
        memo: e.memo.clone(),
        amount: money(&e.amount),
        balance_after: money(&e.balance_after),
        order_id: e.order_id.as_ref().map(|o| o.to_string()),
    }
}

#[derive(Template)]
#[template(path = "balance.html")]
struct BalancePage {
    ctx: super::Ctx,
    balances: Vec<String>,
    /// A balance is below what the account may owe.
    in_arrears: bool,
    /// How far below zero each balance may go.
    limits: Vec<String>,
    rows: Vec<EntryRow>,
    next: Option<String>,
}

async fn balance_page(
    State(state): State<SharedState>,
    signed: Signed,
    Query(q): Query<Cursor>,
) -> Response {
    let page = signed.page.titled("Balance and ledger");
    let held = match ledger::balances(&state, &signed.caller).await {
        Ok(b) => b,
        Err(e) => return error_page(&page, e),
    };
    let limits = ledger::credit_limits(&state, &signed.caller)
        .await
        .unwrap_or_default();
    // A balance below what the account may owe puts its metered subscriptions on grace.
    let in_arrears = held.iter().any(|b| {
        let limit = limits
            .iter()
            .find(|l| l.currency == b.currency)
            .map_or(0, |l| l.minor);
        souk_core::ledger::in_arrears(b.minor, limit)
    });
    let request = PageRequest {
        cursor: q.cursor,
        limit: Some(50),
    };
    match ledger::entries(&state, &signed.caller, request).await {
        Ok(p) => page.render(&BalancePage {
            ctx: page.ctx.clone(),
            balances: held.iter().map(money).collect(),
            in_arrears,
            limits: limits.iter().map(money).collect(),
            rows: p.items.iter().map(entry_row).collect(),
            next: p.next_cursor.map(|c| format!("/balance?cursor={c}")),
        }),
        Err(e) => error_page(&page, e),
    }
}

/// One CSV field, quoted when it must be; a leading formula character is defused so a
/// spreadsheet never runs a memo as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The whole ledger as CSV, newest first, with the running balance.
async fn ledger_csv(State(state): State<SharedState>, signed: Signed) -> Response {
    let mut out =
        String::from("id,time,kind,amount,currency,balance_after,order_id,reference,memo\n");
    let mut cursor = None;
    loop {
        let request = PageRequest {
            cursor: cursor.take(),
            limit: Some(100),
        };
        let page = match ledger::entries(&state, &signed.caller, request).await {
            Ok(p) => p,
            Err(e) => return error_page(&signed.page, e),
        };
        for e in &page.items {
            let row = [
                e.id.to_string(),
                when(&e.created_at),
                e.kind.as_str().to_owned(),
                e.amount.amount_string(),
                e.amount.currency.code().to_owned(),
                e.balance_after.amount_string(),
                e.order_id
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                e.reference.clone().unwrap_or_default(),
                e.memo.clone(),
            ];
            out.push_str(
                &row.iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"souk-ledger.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

/// What the top-up form sends.
#[derive(Debug, Default, Deserialize)]
pub struct TopUpForm {
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub memo: String,
    #[serde(default)]
    pub key: String,
}

async fn top_up(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<TopUpForm>,
) -> Response {
    let input = TopUp {
        account_id: Some(id.clone()),
        email: None,
        amount: form.amount.clone(),
        currency: form.currency.clone(),
        reference: Some(form.reference.clone()).filter(|r| !r.trim().is_empty()),
        memo: form.memo.clone(),
    };
    let key = super::form_key(&format!("web-{}", form.key), &form.key);
    match ledger::top_up(&state, &signed.caller, input, key).await {
        Ok(_) => done(&format!("/console/accounts/{id}"), "topped-up"),
        Err(e) => account_view(&state, &signed, &id, form, Some(e)).await,
    }
}

/// What the credit limit form sends.
#[derive(Debug, Deserialize)]
pub struct CreditForm {
    #[serde(default)]
    pub limit: String,
    #[serde(default)]
    pub currency: String,
}

async fn credit_limit(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(form): Posted<CreditForm>,
) -> Response {
    let input = ledger::CreditLimitInput {
        limit: form.limit,
        currency: form.currency.clone(),
    };
    match ledger::set_credit_limit(&state, &signed.caller, &id.as_str().into(), input).await {
        Ok(_) => done(&format!("/console/accounts/{id}"), "credit-limit-set"),
        Err(e) => {
            let form = TopUpForm {
                currency: form.currency,
                ..TopUpForm::default()
            };
            account_view(&state, &signed, &id, form, Some(e)).await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(super::csv_field("-12.50"), "-12.50");
    }
}
