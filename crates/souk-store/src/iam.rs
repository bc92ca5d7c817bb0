//! IAM users and their access keys, the signatures already accepted, and the audit of refused
//! signed requests.

use crate::decode::{id, int, opt_text, opt_time, parsed, text, time};
use crate::{ms, new_id, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::iam::{KeyState, NewUser, Policy, MAX_KEYS_PER_USER};
use souk_core::ids::AccountId;
use sqlx::any::AnyRow;

/// An IAM user of an account.
#[derive(Debug, Clone)]
pub struct IamUser {
    pub id: String,
    pub account_id: AccountId,
    pub name: String,
    pub console_access: bool,
    pub programmatic_access: bool,
    pub policy: Policy,
    pub created_at: DateTime<Utc>,
}

/// An access key; the secret is sealed by the server.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub access_key: String,
    pub user_id: String,
    pub account_id: AccountId,
    pub secret_enc: String,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A refused signed request, as the audit keeps it.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub id: String,
    pub at: DateTime<Utc>,
    pub access_key: Option<String>,
    pub account_id: Option<AccountId>,
    pub method: String,
    pub path: String,
    pub reason: String,
    /// The client's address (none on refusals audited before addresses were kept).
    pub client_address: Option<String>,
}

fn user(row: &AnyRow) -> Result<IamUser> {
    Ok(IamUser {
        id: text(row, "id")?,
        account_id: id(row, "account_id")?,
        name: text(row, "name")?,
        console_access: int(row, "console_access")? == 1,
        programmatic_access: int(row, "programmatic_access")? == 1,
        policy: parsed(row, "policy")?,
        created_at: time(row, "created_at")?,
    })
}

fn key(row: &AnyRow) -> Result<AccessKey> {
    Ok(AccessKey {
        access_key: text(row, "access_key")?,
        user_id: text(row, "user_id")?,
        account_id: id(row, "account_id")?,
        secret_enc: text(row, "secret_enc")?,
        state: parsed(row, "state")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

const USER: &str = "id, account_id, name, console_access, programmatic_access, policy, created_at";
const KEY: &str = "access_key, user_id, account_id, secret_enc, state, created_at, last_used_at";

impl Store {
    /// Creates an IAM user; a name the account already uses is a duplicate.
    /// Creates an IAM user (with its console password's hash when it may sign in to the
    /// console); a name the account already uses is a duplicate.
    pub async fn create_iam_user(
        &self,
        account: &AccountId,
        u: &NewUser,
        password_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<IamUser> {
        let id = new_id("usr", now);
        sqlx::query(&format!(
            "INSERT INTO iam_users ({USER}, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&id)
        .bind(account.as_str())
        .bind(&u.name)
        .bind(i64::from(u.console_access))
        .bind(i64::from(u.programmatic_access))
        .bind(u.policy.as_str())
        .bind(ms(now))
        .bind(password_hash)
        .execute(&self.pool)
        .await?;
        self.iam_user(&id).await
    }

    /// The console password hash of an account's IAM user with console access, for signing in.
    pub async fn console_user(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<(IamUser, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER}, password_hash FROM iam_users \
             WHERE account_id = $1 AND name = $2 AND console_access = 1 AND password_hash IS NOT NULL"
        ))
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user(&r)?, text(&r, "password_hash")?)))
            .transpose()
    }

    /// One IAM user.
    pub async fn iam_user(&self, id: &str) -> Result<IamUser> {
        sqlx::query(&format!("SELECT {USER} FROM iam_users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user(&r))
            .transpose()?
            .ok_or(Error::NotFound("IAM user"))
    }

    /// An account's IAM user by name, if any.
    pub async fn iam_user_named(&self, account: &AccountId, name: &str) -> Result<Option<IamUser>> {
        sqlx::query(&format!(
            "SELECT {USER} FROM iam_users WHERE account_id = $1 AND name = $2"
        ))
        .bind(account.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| user(&r))
        .transpose()
    }

    /// An account's IAM users, oldest first.
    pub async fn iam_users_of(&self, account: &AccountId) -> Result<Vec<IamUser>> {
        sqlx::query(&format!(
            "SELECT {USER} FROM iam_users WHERE account_id = $1 ORDER BY id"
        ))
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user)
        .collect()
    }

    /// Changes the policy of an IAM user of `account`; its keys and console sessions act under
    /// the new one from their next request (each reads the policy with its key or session).
    pub async fn set_iam_user_policy(
        &self,
        account: &AccountId,
        id: &str,
        policy: Policy,
    ) -> Result<IamUser> {
        let _changing = self.access_changing();
        let changed =
            sqlx::query("UPDATE iam_users SET policy = $1 WHERE id = $2 AND account_id = $3")
                .bind(policy.as_str())
                .bind(id)
                .bind(account.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        crate::changed(changed).map_err(|_| Error::NotFound("IAM user"))?;
        self.iam_user(id).await
    }

    /// Deletes an IAM user of `account` with its access keys and console sessions, together:
    /// nothing it held signs or signs in from then on.
    pub async fn delete_iam_user(&self, account: &AccountId, id: &str) -> Result<()> {
        let _changing = self.access_changing();
        let mut tx = self.begin().await?;
        if self.backend == crate::Backend::Postgres {
            // Taken before its keys go, so a key being made now is made first and goes too.
            sqlx::query("SELECT id FROM iam_users WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM access_keys WHERE user_id = $1 AND account_id = $2")
            .bind(id)
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE iam_user_id = $1 AND account_id = $2")
            .bind(id)
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM iam_users WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        crate::changed(gone).map_err(|_| Error::NotFound("IAM user"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an access key to a user, unless it already holds [`MAX_KEYS_PER_USER`]
    /// ([`Error::Stale`] then: the count is checked in the same transaction).
    pub async fn create_access_key(
        &self,
        user: &IamUser,
        access_key: &str,
        secret_enc: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessKey> {
        let mut tx = self.begin().await?;
        // Two concurrent creations for one user take turns on the user's row (and a deletion
        // with them); a user deleted meanwhile gets no key.
        let lock = match self.backend {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        sqlx::query(&format!("SELECT id FROM iam_users WHERE id = $1{lock}"))
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("IAM user"))?;
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_keys WHERE user_id = $1")
            .bind(&user.id)
            .fetch_one(&mut *tx)
            .await?;
        if held >= MAX_KEYS_PER_USER {
            return Err(Error::Stale);
        }
        sqlx::query(&format!(
            "INSERT INTO access_keys ({KEY}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
        ))
        .bind(access_key)
        .bind(&user.id)
        .bind(user.account_id.as_str())
        .bind(secret_enc)
        .bind(KeyState::Active.as_str())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.access_key(access_key)
            .await?
            .ok_or(Error::NotFound("access key"))
    }

    /// One access key with its user's policy, if it exists.
    pub async fn access_key(&self, access_key: &str) -> Result<Option<AccessKey>> {
        sqlx::query(&format!(
            "SELECT {KEY} FROM access_keys WHERE access_key = $1"
        ))
        .bind(access_key)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| key(&r))
        .transpose()
    }

    /// A user's access keys, oldest first.
    pub async fn access_keys_of(&self, user_id: &str) -> Result<Vec<AccessKey>> {
        sqlx::query(&format!(
            "SELECT {KEY} FROM access_keys WHERE user_id = $1 ORDER BY created_at, access_key"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key)
        .collect()
    }

    /// Enables or disables a key of `account`.
    pub async fn set_access_key_state(
        &self,
        account: &AccountId,
        access_key: &str,
        to: KeyState,
    ) -> Result<()> {
        let _changing = self.access_changing();
        let changed = sqlx::query(
            "UPDATE access_keys SET state = $1 WHERE access_key = $2 AND account_id = $3",
        )
        .bind(to.as_str())
        .bind(access_key)
        .bind(account.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        crate::changed(changed).map_err(|_| Error::NotFound("access key"))
    }

    /// Deletes a key of `account`.
    pub async fn delete_access_key(&self, account: &AccountId, access_key: &str) -> Result<()> {
        let _changing = self.access_changing();
        let gone = sqlx::query("DELETE FROM access_keys WHERE access_key = $1 AND account_id = $2")
            .bind(access_key)
            .bind(account.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        crate::changed(gone).map_err(|_| Error::NotFound("access key"))
    }

    /// Records that a key signed a request at `now` (at most once a minute, so reads stay reads).
    pub async fn touch_access_key(&self, access_key: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE access_keys SET last_used_at = $1 WHERE access_key = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(ms(now))
            .bind(access_key)
            .bind(ms(now) - 60_000)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Remembers one checked signature's digest until `expires` (PostgreSQL's table of them):
    /// `true` when it is new, `false` when a node accepted it before, [`Error::KeptElsewhere`]
    /// while a node keeps signatures alone.
    pub async fn remember_signature_digest(
        &self,
        digest: &[u8],
        expires: DateTime<Utc>,
    ) -> Result<bool> {
        // Behind the gate (nodes.rs): not while a node keeps signatures alone.
        let (open, inserted): (i64, i64) = sqlx::query_as(&format!(
            "WITH gate AS MATERIALIZED (SELECT {gate} AS open), \
             fresh AS (INSERT INTO signature_digests (digest, expires_at) SELECT $1, $2 \
                       WHERE (SELECT open FROM gate) ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT CAST(CAST((SELECT open FROM gate) AS INTEGER) AS BIGINT), (SELECT count(*) FROM fresh)",
            gate = crate::nodes::keeper_gate()
        ))
        .bind(digest)
        .bind(ms(expires))
        .fetch_one(&self.pool)
        .await?;
        if open != 1 {
            return Err(Error::KeptElsewhere);
        }
        Ok(inserted == 1)
    }

    /// Writes signatures a node accepted and remembered itself, each as the node's digest of
    /// it (hex) with its expiry. On SQLite, whose single node decides replays itself, as one
    /// row kept until the last of them expires; on PostgreSQL, by the node keeping signatures
    /// alone (nodes.rs), as the rows every node reads once it hands them over.
    pub async fn remember_signature_batch(
        &self,
        accepted: &[(String, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(last) = accepted.iter().map(|(_, expires)| *expires).max() else {
            return Ok(());
        };
        if self.backend == crate::Backend::Postgres {
            let rows: Vec<serde_json::Value> = accepted
                .iter()
                .map(|(d, expires)| serde_json::json!({"d": d, "e": ms(*expires)}))
                .collect();
            sqlx::query(
                "INSERT INTO signature_digests (digest, expires_at) \
                 SELECT decode(r.d, 'hex'), r.e FROM json_to_recordset(CAST($1 AS JSON)) AS r(d TEXT, e BIGINT) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&self.pool)
            .await?;
            return Ok(());
        }
        let mut lines = String::with_capacity(accepted.len() * 48);
        for (digest, expires) in accepted {
            lines.push_str(&format!("{digest}\t{}\n", ms(*expires)));
        }
        sqlx::query(
            "INSERT INTO signature_batches (id, expires_at, signatures) VALUES ($1, $2, $3)",
        )
        .bind(new_id("sgb", now))
        .bind(ms(last))
        .bind(lines)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The signature digests (hex) remembered and not yet expired at `now`, with their expiry.
    pub async fn remembered_signatures(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>> {
        if self.backend == crate::Backend::Postgres {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT encode(digest, 'hex'), expires_at FROM signature_digests WHERE expires_at >= $1",
            )
            .bind(ms(now))
            .fetch_all(&self.pool)
            .await?;
            return rows
                .into_iter()
                .map(|(d, e)| {
                    DateTime::from_timestamp_millis(e)
                        .map(|e| (d, e))
                        .ok_or_else(|| Error::Corrupt(format!("signature digest expiry {e}")))
                })
                .collect();
        }
        let batches: Vec<String> =
            sqlx::query_scalar("SELECT signatures FROM signature_batches WHERE expires_at >= $1")
                .bind(ms(now))
                .fetch_all(&self.pool)
                .await?;
        let mut kept = Vec::new();
        for line in batches.iter().flat_map(|b| b.lines()) {
            let parsed = line.split_once('\t').and_then(|(digest, expires)| {
                let expires = DateTime::from_timestamp_millis(expires.parse().ok()?)?;
                Some((digest.to_owned(), expires))
            });
            match parsed {
                Some((digest, expires)) if expires >= now => kept.push((digest, expires)),
                Some(_) => {}
                None => return Err(Error::Corrupt(format!("signature batch line {line:?}"))),
            }
        }
        Ok(kept)
    }

    /// Forgets the signatures expired at `now`: rows on PostgreSQL, whole batches on SQLite.
    pub async fn forget_expired_signatures(&self, now: DateTime<Utc>) -> Result<u64> {
        let table = match self.backend {
            crate::Backend::Sqlite => "signature_batches",
            crate::Backend::Postgres => "signature_digests",
        };
        Ok(
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Writes a refused signed request to the audit.
    pub async fn audit_refusal(&self, r: &Refusal) -> Result<()> {
        sqlx::query("INSERT INTO auth_audit (id, at, access_key, account_id, method, path, reason, client_address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&r.id)
            .bind(ms(r.at))
            .bind(&r.access_key)
            .bind(r.account_id.as_ref().map(AccountId::as_str))
            .bind(&r.method)
            .bind(&r.path)
            .bind(&r.reason)
            .bind(&r.client_address)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets at most `limit` audited refusals made before `before`, oldest first; returns how
    /// many. A refusal's id begins with its time, so this reads only the rows it deletes.
    pub async fn forget_refusals(&self, before: DateTime<Utc>, limit: i64) -> Result<u64> {
        let below = souk_core::ids::make_id(REFUSAL_PREFIX, ms(before), [0; 10]);
        Ok(sqlx::query(
            "DELETE FROM auth_audit WHERE id IN (SELECT id FROM auth_audit WHERE id < $1 ORDER BY id LIMIT $2)",
        )
        .bind(below)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The audit of refused signed requests, newest first, after the id `before`.
    pub async fn audit_refusals(&self, before: Option<&str>, limit: i64) -> Result<Vec<Refusal>> {
        sqlx::query(
            "SELECT id, at, access_key, account_id, method, path, reason, client_address FROM auth_audit \
                     WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Refusal {
                id: text(row, "id")?,
                at: time(row, "at")?,
                access_key: opt_text(row, "access_key")?,
                account_id: opt_text(row, "account_id")?.map(AccountId::from),
                method: text(row, "method")?,
                path: text(row, "path")?,
                reason: text(row, "reason")?,
                client_address: opt_text(row, "client_address")?,
            })
        })
        .collect()
    }
}

/// The prefix of an audited refusal's id.
pub const REFUSAL_PREFIX: &str = "aud";

/// A new id for an audited refusal made at `now`.
pub fn refusal_id(now: DateTime<Utc>) -> String {
    new_id(REFUSAL_PREFIX, now)
}
