//! Balances and the append-only ledger. Every change to a balance is made together with its
//! entry, in the same transaction, so a balance always equals the sum of its entries.

use crate::decode::{id, int, opt_id, opt_text, parsed, text, time};
use crate::{fresh, ms, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, EntryId, OrderId};
use souk_core::ledger::EntryKind;
use souk_core::money::{Currency, Money};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

/// One ledger entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub account_id: AccountId,
    pub kind: EntryKind,
    /// Positive for credits, negative for debits.
    pub amount: Money,
    /// The balance right after this entry.
    pub balance_after: Money,
    pub order_id: Option<OrderId>,
    pub reference: Option<String>,
    pub memo: String,
    pub created_by: Option<AccountId>,
    pub created_at: DateTime<Utc>,
}

/// A balance that does not equal the sum of its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub account_id: AccountId,
    pub currency: String,
    pub balance_minor: i64,
    pub entries_minor: i64,
}

/// An order whose money the ledger does not account for: what it kept (charged less refunded)
/// differs from what its ledger entries took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderMismatch {
    pub order_id: OrderId,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    /// The sum of its entries: minus what they took.
    pub entries_minor: i64,
}

/// A movement of money to record.
pub struct Movement<'a> {
    pub account_id: &'a AccountId,
    /// Positive credits the account, negative debits it.
    pub amount: Money,
    pub kind: EntryKind,
    pub order_id: Option<&'a OrderId>,
    pub reference: Option<&'a str>,
    pub memo: &'a str,
    pub created_by: Option<&'a AccountId>,
    /// Makes a retry by the same author harmless: a second movement with the key is a
    /// [`Error::Duplicate`] and changes nothing.
    pub idempotency_key: Option<&'a str>,
    /// The lowest balance a debit may leave, in minor units (core's `debit_floor`).
    pub floor_minor: i64,
    /// Debit even past the floor (usage that already happened); the balance may fall into
    /// arrears.
    pub overdraw: bool,
}

const ENTRY: &str = "id, account_id, currency, kind, amount_minor, balance_after_minor, order_id, reference, memo, \
    created_by, created_at";

fn entry(row: &AnyRow) -> Result<Entry> {
    let currency: Currency = parsed(row, "currency")?;
    Ok(Entry {
        id: id(row, "id")?,
        account_id: id(row, "account_id")?,
        kind: parsed(row, "kind")?,
        amount: Money::from_minor(int(row, "amount_minor")?, currency),
        balance_after: Money::from_minor(int(row, "balance_after_minor")?, currency),
        order_id: opt_id(row, "order_id")?,
        reference: opt_text(row, "reference")?,
        memo: text(row, "memo")?,
        created_by: opt_id(row, "created_by")?,
        created_at: time(row, "created_at")?,
    })
}

/// The balance of an account in a currency, read inside a transaction (0 when it never held any).
pub(crate) async fn available(
    conn: &mut AnyConnection,
    account_id: &AccountId,
    currency: Currency,
) -> Result<i64> {
    let available: Option<i64> = sqlx::query_scalar(
        "SELECT amount_minor FROM balances WHERE account_id = $1 AND currency = $2",
    )
    .bind(account_id.as_str())
    .bind(currency.code())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(available.unwrap_or(0))
}

/// The credit limit of `account_id` in `currency`, read inside a transaction (0 when none).
pub(crate) async fn credit_limit_in(
    conn: &mut AnyConnection,
    account_id: &AccountId,
    currency: Currency,
) -> Result<i64> {
    let limit: Option<i64> = sqlx::query_scalar(
        "SELECT limit_minor FROM credit_limits WHERE account_id = $1 AND currency = $2",
    )
    .bind(account_id.as_str())
    .bind(currency.code())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(limit.unwrap_or(0))
}

/// Applies a movement inside the caller's transaction. A debit only happens when the balance
/// stays at or above the movement's floor (one conditional UPDATE, so concurrent debits can never
/// overdraw); otherwise [`Error::InsufficientBalance`].
pub async fn apply(
    conn: &mut AnyConnection,
    m: &Movement<'_>,
    now: DateTime<Utc>,
) -> Result<Entry> {
    let currency = m.amount.currency;
    let after: Option<i64> = if m.amount.minor >= 0 || m.overdraw {
        sqlx::query_scalar(
            "INSERT INTO balances (account_id, currency, amount_minor) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, currency) DO UPDATE SET amount_minor = balances.amount_minor + excluded.amount_minor \
             RETURNING amount_minor",
        )
        .bind(m.account_id.as_str())
        .bind(currency.code())
        .bind(m.amount.minor)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        if m.floor_minor < 0 {
            // Credit may be drawn before the account ever held money: the balance row must exist
            // for the conditional debit to apply to.
            sqlx::query("INSERT INTO balances (account_id, currency, amount_minor) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING")
                .bind(m.account_id.as_str())
                .bind(currency.code())
                .execute(&mut *conn)
                .await?;
        }
        // The floor given, and never below the credit limit as it stands now: a limit finance
        // lowered after the caller read it still holds.
        sqlx::query_scalar(
            "UPDATE balances SET amount_minor = amount_minor + $1 WHERE account_id = $2 AND currency = $3 AND amount_minor + $1 >= $4 \
             AND amount_minor + $1 >= 0 - COALESCE((SELECT c.limit_minor FROM credit_limits c WHERE c.account_id = $2 AND c.currency = $3), 0) \
             RETURNING amount_minor",
        )
        .bind(m.amount.minor)
        .bind(m.account_id.as_str())
        .bind(currency.code())
        .bind(m.floor_minor)
        .fetch_optional(&mut *conn)
        .await?
    };
    let Some(after) = after else {
        return Err(Error::InsufficientBalance {
            available_minor: available(conn, m.account_id, currency).await?,
        });
    };
    let entry = Entry {
        id: fresh(now),
        account_id: m.account_id.clone(),
        kind: m.kind,
        amount: m.amount,
        balance_after: Money::from_minor(after, currency),
        order_id: m.order_id.cloned(),
        reference: m.reference.map(str::to_owned),
        memo: m.memo.to_owned(),
        created_by: m.created_by.cloned(),
        created_at: now,
    };
    sqlx::query(&format!("INSERT INTO ledger_entries ({ENTRY}, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
        .bind(entry.id.as_str())
        .bind(entry.account_id.as_str())
        .bind(currency.code())
        .bind(entry.kind.as_str())
        .bind(entry.amount.minor)
        .bind(after)
        .bind(entry.order_id.as_ref().map(OrderId::as_str))
        .bind(&entry.reference)
        .bind(&entry.memo)
        .bind(entry.created_by.as_ref().map(AccountId::as_str))
        .bind(ms(now))
        .bind(m.idempotency_key)
        .execute(&mut *conn)
        .await?;
    Ok(entry)
}

impl Store {
    /// Records a movement in its own transaction (a top-up by finance).
    pub async fn record_movement(&self, m: &Movement<'_>, now: DateTime<Utc>) -> Result<Entry> {
        let mut tx = self.begin().await?;
        let entry = apply(&mut tx, m, now).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The entry `author` recorded with an idempotency key, if any.
    pub async fn entry_by_key(&self, author: &AccountId, key: &str) -> Result<Option<Entry>> {
        sqlx::query(&format!(
            "SELECT {ENTRY} FROM ledger_entries WHERE created_by = $1 AND idempotency_key = $2"
        ))
        .bind(author.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| entry(&r))
        .transpose()
    }

    /// An account's balances, one per currency it ever held.
    pub async fn balances(&self, account_id: &AccountId) -> Result<Vec<Money>> {
        sqlx::query(
            "SELECT currency, amount_minor FROM balances WHERE account_id = $1 ORDER BY currency",
        )
        .bind(account_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Money::from_minor(
                int(row, "amount_minor")?,
                parsed(row, "currency")?,
            ))
        })
        .collect()
    }

    /// An account's entries, newest first, starting after the entry id `before` when given.
    pub async fn ledger_entries(
        &self,
        account_id: &AccountId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Entry>> {
        sqlx::query(&format!(
            "SELECT {ENTRY} FROM ledger_entries WHERE account_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(account_id.as_str())
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// Every balance that differs from the sum of its entries; empty when the ledger balances.
    pub async fn ledger_mismatches(&self) -> Result<Vec<Mismatch>> {
        sqlx::query(
            "SELECT b.account_id, b.currency, b.amount_minor AS balance_minor, \
             CAST(COALESCE((SELECT SUM(e.amount_minor) FROM ledger_entries e WHERE e.account_id = b.account_id AND e.currency = b.currency), 0) AS BIGINT) AS entries_minor \
             FROM balances b \
             WHERE b.amount_minor <> COALESCE((SELECT SUM(e.amount_minor) FROM ledger_entries e WHERE e.account_id = b.account_id AND e.currency = b.currency), 0) \
             ORDER BY b.account_id, b.currency",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Mismatch {
                account_id: id(row, "account_id")?,
                currency: text(row, "currency")?,
                balance_minor: int(row, "balance_minor")?,
                entries_minor: int(row, "entries_minor")?,
            })
        })
        .collect()
    }

    /// Every order whose money is not accounted for: paid = charged - refunded must equal what
    /// its ledger entries took, and a refund never exceeds the charge (a plan change's credit is a
    /// negative charge, with nothing refunded on top). Empty when all is well.
    pub async fn order_mismatches(&self) -> Result<Vec<OrderMismatch>> {
        sqlx::query(
            "SELECT o.id, o.amount_minor, o.refunded_minor, CAST(COALESCE(s.total, 0) AS BIGINT) AS entries_minor \
             FROM orders o LEFT JOIN (SELECT order_id, SUM(amount_minor) AS total FROM ledger_entries \
                                      WHERE order_id IS NOT NULL GROUP BY order_id) s ON s.order_id = o.id \
             WHERE o.amount_minor - o.refunded_minor <> 0 - COALESCE(s.total, 0) \
                OR o.refunded_minor < 0 OR (o.refunded_minor > 0 AND o.refunded_minor > o.amount_minor) \
             ORDER BY o.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(OrderMismatch {
                order_id: id(row, "id")?,
                amount_minor: int(row, "amount_minor")?,
                refunded_minor: int(row, "refunded_minor")?,
                entries_minor: int(row, "entries_minor")?,
            })
        })
        .collect()
    }

    /// Sets how far below zero `account`'s balance in the limit's currency may go (0 removes
    /// the credit). Debits decided from now on use it.
    pub async fn set_credit_limit(
        &self,
        account_id: &AccountId,
        limit: Money,
        by: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO credit_limits (account_id, currency, limit_minor, set_by, set_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, currency) DO UPDATE SET limit_minor = excluded.limit_minor, set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(account_id.as_str())
        .bind(limit.currency.code())
        .bind(limit.minor)
        .bind(by.as_str())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An account's credit limits, one per currency that has one above zero.
    pub async fn credit_limits(&self, account_id: &AccountId) -> Result<Vec<Money>> {
        sqlx::query("SELECT currency, limit_minor FROM credit_limits WHERE account_id = $1 AND limit_minor > 0 ORDER BY currency")
            .bind(account_id.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let currency: Currency = parsed(row, "currency")?;
                Ok(Money::from_minor(int(row, "limit_minor")?, currency))
            })
            .collect()
    }

    /// The credit limit of `account_id` in `currency`, in minor units (0 when none is set).
    pub async fn credit_limit(&self, account_id: &AccountId, currency: Currency) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        let limit = credit_limit_in(&mut conn, account_id, currency).await;
        conn.check(limit)
    }
}
