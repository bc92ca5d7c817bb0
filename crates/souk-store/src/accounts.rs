//! Accounts, sessions and real-name verification.

use crate::{ms, new_id, Error, Result, Store};
use chrono::{DateTime, Utc};

/// An account as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub roles: String,
    pub verification_state: String,
    pub verification_details: Option<String>,
    pub verification_reason: Option<String>,
    pub verification_submitted_at: Option<i64>,
    pub verification_decided_at: Option<i64>,
    pub created_at: i64,
}

impl AccountRow {
    /// The operator roles, parsed; unknown names are ignored.
    pub fn roles(&self) -> Vec<souk_core::accounts::Role> {
        self.roles
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect()
    }
}

const COLUMNS: &str =
    "id, kind, name, email, password_hash, roles, verification_state, verification_details, \
    verification_reason, verification_submitted_at, verification_decided_at, created_at";

/// What sign-up stores.
pub struct NewAccount<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a str,
}

impl Store {
    /// Creates an account; a taken e-mail is a [`Error::Conflict`].
    pub async fn create_account(
        &self,
        a: NewAccount<'_>,
        now: DateTime<Utc>,
    ) -> Result<AccountRow> {
        let id = new_id("acc", now);
        sqlx::query("INSERT INTO accounts (id, kind, name, email, password_hash, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(a.kind)
            .bind(a.name)
            .bind(a.email)
            .bind(a.password_hash)
            .bind(a.roles)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict("an account with this e-mail already exists".into()),
                other => other,
            })?;
        self.account(&id).await
    }

    /// One account by id.
    pub async fn account(&self, id: &str) -> Result<AccountRow> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("account"))
    }

    /// One account by (lower-case) e-mail.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<AccountRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE email = $1"))
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores a new session for `account_id`; only the token's hash is kept.
    pub async fn create_session(
        &self,
        token_hash: &str,
        account_id: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(account_id)
            .bind(ms(now))
            .bind(ms(expires))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The account of a live session.
    pub async fn session_account(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountRow>> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(sqlx::query_as(&format!(
            "SELECT {cols} FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The account of a session that is neither past `expires_at` nor idle since before
    /// `idle_cutoff`, and when the session was last seen (milliseconds).
    pub async fn live_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<(AccountRow, i64)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            account: AccountRow,
            seen_at: i64,
        }
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {cols}, COALESCE(s.last_seen_at, s.created_at) AS seen_at FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND COALESCE(s.last_seen_at, s.created_at) > $3"
        ))
        .bind(token_hash)
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.account, r.seen_at)))
    }

    /// Records that a session was used at `now`.
    pub async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(ms(now))
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of an account; returns how many there were.
    pub async fn delete_sessions_of(&self, account_id: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Deletes sessions past their expiry or idle since before `idle_cutoff`, of one account or
    /// (with `None`) of everyone.
    pub async fn delete_dead_sessions(
        &self,
        account_id: Option<&str>,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<u64> {
        let dead = "(expires_at <= $1 OR COALESCE(last_seen_at, created_at) <= $2)";
        let sql = match account_id {
            Some(_) => format!("DELETE FROM sessions WHERE {dead} AND account_id = $3"),
            None => format!("DELETE FROM sessions WHERE {dead}"),
        };
        let mut q = sqlx::query(&sql).bind(ms(now)).bind(ms(idle_cutoff));
        if let Some(id) = account_id {
            q = q.bind(id);
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records submitted verification details, if the account is still in `from_state`.
    pub async fn submit_verification(
        &self,
        id: &str,
        from_state: &str,
        to_state: &str,
        details_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query(
            "UPDATE accounts SET verification_state = $1, verification_details = $2, verification_reason = NULL, \
             verification_submitted_at = $3, verification_decided_at = NULL, verification_decided_by = NULL \
             WHERE id = $4 AND verification_state = $5",
        )
        .bind(to_state)
        .bind(details_json)
        .bind(ms(now))
        .bind(id)
        .bind(from_state)
        .execute(&self.pool)
        .await?
        .rows_affected())?;
        Ok(())
    }

    /// Records a reviewer's decision, if the verification is still pending.
    pub async fn decide_verification(
        &self,
        id: &str,
        to_state: &str,
        reason: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query(
            "UPDATE accounts SET verification_state = $1, verification_reason = $2, verification_decided_at = $3, \
             verification_decided_by = $4 WHERE id = $5 AND verification_state = 'pending'",
        )
        .bind(to_state)
        .bind(reason)
        .bind(ms(now))
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected())?;
        Ok(())
    }

    /// Verifications waiting for a reviewer, oldest first.
    pub async fn pending_verifications(&self, limit: i64) -> Result<Vec<AccountRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE verification_state = 'pending' ORDER BY verification_submitted_at, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether any account exists (demo data only fills an empty marketplace).
    pub async fn has_accounts(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
