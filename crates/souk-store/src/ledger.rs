//! Balances and the append-only ledger. Every change to a balance is made together with its
//! entry, in the same transaction, so a balance always equals the sum of its entries.

use crate::{ms, new_id, Error, Result, Store};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// One ledger entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: String,
    pub account_id: String,
    pub currency: String,
    pub kind: String,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub order_id: Option<String>,
    pub reference: Option<String>,
    pub memo: String,
    pub created_at: i64,
}

/// A balance in one currency.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BalanceRow {
    pub currency: String,
    pub amount_minor: i64,
}

/// A balance that does not equal the sum of its entries.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Mismatch {
    pub account_id: String,
    pub currency: String,
    pub balance_minor: i64,
    pub entries_minor: i64,
}

/// A movement of money to record.
pub struct Movement<'a> {
    pub account_id: &'a str,
    pub currency: &'a str,
    /// Positive credits the account, negative debits it.
    pub amount_minor: i64,
    /// `top_up`, `charge`, `refund`.
    pub kind: &'a str,
    pub order_id: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub memo: &'a str,
    pub created_by: Option<&'a str>,
    /// Makes a retry by the same author harmless: a second movement with the key is a
    /// [`Error::Conflict`] and changes nothing.
    pub idempotency_key: Option<&'a str>,
}

const ENTRY: &str = "id, account_id, currency, kind, amount_minor, balance_after_minor, order_id, reference, memo, created_at";

/// Applies a movement inside the caller's transaction. A debit only happens when the balance
/// covers it (one conditional UPDATE, so concurrent debits can never overdraw); otherwise
/// [`Error::InsufficientBalance`].
pub async fn apply(
    conn: &mut AnyConnection,
    m: &Movement<'_>,
    now: DateTime<Utc>,
) -> Result<EntryRow> {
    let after: Option<i64> = if m.amount_minor >= 0 {
        sqlx::query_scalar(
            "INSERT INTO balances (account_id, currency, amount_minor) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, currency) DO UPDATE SET amount_minor = balances.amount_minor + excluded.amount_minor \
             RETURNING amount_minor",
        )
        .bind(m.account_id)
        .bind(m.currency)
        .bind(m.amount_minor)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_scalar(
            "UPDATE balances SET amount_minor = amount_minor + $1 WHERE account_id = $2 AND currency = $3 AND amount_minor + $1 >= 0 \
             RETURNING amount_minor",
        )
        .bind(m.amount_minor)
        .bind(m.account_id)
        .bind(m.currency)
        .fetch_optional(&mut *conn)
        .await?
    };
    let Some(after) = after else {
        let available: Option<i64> = sqlx::query_scalar(
            "SELECT amount_minor FROM balances WHERE account_id = $1 AND currency = $2",
        )
        .bind(m.account_id)
        .bind(m.currency)
        .fetch_optional(&mut *conn)
        .await?;
        return Err(Error::InsufficientBalance {
            available_minor: available.unwrap_or(0),
        });
    };
    let entry = EntryRow {
        id: new_id("led", now),
        account_id: m.account_id.to_owned(),
        currency: m.currency.to_owned(),
        kind: m.kind.to_owned(),
        amount_minor: m.amount_minor,
        balance_after_minor: after,
        order_id: m.order_id.map(str::to_owned),
        reference: m.reference.map(str::to_owned),
        memo: m.memo.to_owned(),
        created_at: ms(now),
    };
    sqlx::query(&format!("INSERT INTO ledger_entries ({ENTRY}, created_by, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
        .bind(&entry.id)
        .bind(&entry.account_id)
        .bind(&entry.currency)
        .bind(&entry.kind)
        .bind(entry.amount_minor)
        .bind(entry.balance_after_minor)
        .bind(&entry.order_id)
        .bind(&entry.reference)
        .bind(&entry.memo)
        .bind(entry.created_at)
        .bind(m.created_by)
        .bind(m.idempotency_key)
        .execute(&mut *conn)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict("idempotency key already used".into()),
            other => other,
        })?;
    Ok(entry)
}

impl Store {
    /// Records a movement in its own transaction (a top-up by finance).
    pub async fn record_movement(&self, m: &Movement<'_>, now: DateTime<Utc>) -> Result<EntryRow> {
        let mut tx = self.begin().await?;
        let entry = apply(&mut tx, m, now).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The entry `author` recorded with an idempotency key, if any.
    pub async fn entry_by_key(&self, author: &str, key: &str) -> Result<Option<EntryRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ENTRY} FROM ledger_entries WHERE created_by = $1 AND idempotency_key = $2"
        ))
        .bind(author)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// An account's balances, one per currency it ever held.
    pub async fn balances(&self, account_id: &str) -> Result<Vec<BalanceRow>> {
        Ok(sqlx::query_as(
            "SELECT currency, amount_minor FROM balances WHERE account_id = $1 ORDER BY currency",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// An account's entries, newest first, starting after the entry id `before` when given.
    pub async fn ledger_entries(
        &self,
        account_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EntryRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ENTRY} FROM ledger_entries WHERE account_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(account_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every balance that differs from the sum of its entries; empty when the ledger balances.
    pub async fn ledger_mismatches(&self) -> Result<Vec<Mismatch>> {
        Ok(sqlx::query_as(
            "SELECT b.account_id, b.currency, b.amount_minor AS balance_minor, \
             CAST(COALESCE((SELECT SUM(e.amount_minor) FROM ledger_entries e WHERE e.account_id = b.account_id AND e.currency = b.currency), 0) AS BIGINT) AS entries_minor \
             FROM balances b \
             WHERE b.amount_minor <> COALESCE((SELECT SUM(e.amount_minor) FROM ledger_entries e WHERE e.account_id = b.account_id AND e.currency = b.currency), 0) \
             ORDER BY b.account_id, b.currency",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
