//! Accounts, their operator roles, sessions and real-name verification.

use crate::decode::{id, int, opt_json, opt_text, opt_time, parsed, text, time};
use crate::{fresh, ms, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::accounts::{AccountKind, Role, VerificationDetails, VerificationState};
use souk_core::ids::AccountId;
use sqlx::any::AnyRow;

/// Where an account's real-name verification stands.
#[derive(Debug, Clone)]
pub struct Verification {
    pub state: VerificationState,
    /// What was submitted, once submitted.
    pub details: Option<VerificationDetails>,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<AccountId>,
}

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    /// Operator roles; empty for buyers and sellers.
    pub roles: Vec<Role>,
    pub verification: Verification,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// Whether the account holds the operator role `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

const COLUMNS: &str = "a.id, a.kind, a.name, a.email, a.password_hash, a.verification_state, a.verification_details, \
    a.verification_reason, a.verification_submitted_at, a.verification_decided_at, a.verification_decided_by, a.created_at, r.role";

/// The columns of a key (`k`) and its user (`u`), read beside its account's [`COLUMNS`].
const KEY_COLUMNS: &str = "k.access_key, k.user_id, k.secret_enc, k.state AS key_state, \
    k.created_at AS key_created_at, k.last_used_at, u.programmatic_access, u.policy";

/// The database's access generation, read beside a key in the same statement.
const GENERATION: &str = "(SELECT n FROM access_generation WHERE id = 1) AS access_generation";

/// A signed request's key, and its signature's digest to remember until `expires`.
#[derive(Debug, Clone, Copy)]
pub struct SignedLookup<'a> {
    pub access_key: &'a str,
    pub digest: &'a [u8],
    pub expires: DateTime<Utc>,
    /// The access generation at which the node read the key's holder, if it has: the holder
    /// is not read again unless the generation has moved since.
    pub known_at: Option<i64>,
}

/// A signed request's key holder as its batch's statement found it.
#[derive(Debug, Clone)]
pub enum KeyRead {
    /// As the node knew it: nothing that decides what a key may do has changed since.
    Unchanged,
    /// Read by the statement: the holder, or none for a key that does not exist.
    Read(Option<Box<KeyHolder>>),
}

/// The key holder in `rows` (one per role of its account), if any.
fn key_holder(rows: &[AnyRow]) -> Result<Option<KeyHolder>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let key = crate::iam::AccessKey {
        access_key: text(first, "access_key")?,
        user_id: text(first, "user_id")?,
        account_id: id(first, "id")?,
        secret_enc: text(first, "secret_enc")?,
        state: parsed(first, "key_state")?,
        created_at: time(first, "key_created_at")?,
        last_used_at: opt_time(first, "last_used_at")?,
    };
    let programmatic_access = int(first, "programmatic_access")? == 1;
    let policy = parsed(first, "policy")?;
    let generation = int(first, "access_generation")?;
    Ok(accounts(rows)?.into_iter().next().map(|account| KeyHolder {
        key,
        programmatic_access,
        policy,
        account,
        generation,
    }))
}

/// Reads accounts from rows joined with their roles (one row per role, or one with no role),
/// in the order the rows came.
fn accounts(rows: &[AnyRow]) -> Result<Vec<Account>> {
    let mut out: Vec<Account> = Vec::new();
    for row in rows {
        let role: Option<Role> = opt_text(row, "role")?
            .map(|r| r.parse().map_err(|e| Error::Corrupt(format!("role: {e}"))))
            .transpose()?;
        let account_id: AccountId = id(row, "id")?;
        match out.last_mut() {
            Some(last) if last.id == account_id => last.roles.extend(role),
            _ => out.push(Account {
                id: account_id,
                kind: parsed(row, "kind")?,
                name: text(row, "name")?,
                email: text(row, "email")?,
                password_hash: text(row, "password_hash")?,
                roles: role.into_iter().collect(),
                verification: Verification {
                    state: parsed(row, "verification_state")?,
                    details: opt_json(row, "verification_details")?,
                    reason: opt_text(row, "verification_reason")?,
                    submitted_at: opt_time(row, "verification_submitted_at")?,
                    decided_at: opt_time(row, "verification_decided_at")?,
                    decided_by: opt_text(row, "verification_decided_by")?.map(AccountId::from),
                },
                created_at: time(row, "created_at")?,
            }),
        }
    }
    for account in &mut out {
        account
            .roles
            .sort_by_key(|r| Role::ALL.iter().position(|x| x == r));
    }
    Ok(out)
}

/// What a signed request needs, read at once: the key, its user's access and policy, and the
/// account it acts for.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub key: crate::iam::AccessKey,
    pub programmatic_access: bool,
    pub policy: souk_core::iam::Policy,
    pub account: Account,
    /// The database's access generation when it was read: it stands for as long as the
    /// generation does.
    pub generation: i64,
}

fn one(rows: Vec<AnyRow>) -> Result<Option<Account>> {
    Ok(accounts(&rows)?.into_iter().next())
}

/// What sign-up stores.
pub struct NewAccount<'a> {
    pub kind: AccountKind,
    pub name: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a [Role],
}

/// A live session.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub account: Account,
    /// The IAM user who signed in, when it was not the account itself.
    pub iam_user: Option<SessionUser>,
    pub seen_at: DateTime<Utc>,
}

/// The IAM user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
    pub policy: souk_core::iam::Policy,
}

impl Store {
    /// Creates an account with its roles; a taken e-mail is
    /// [`Error::Duplicate`]`(`[`crate::Constraint::AccountEmail`]`)`.
    pub async fn create_account(&self, a: NewAccount<'_>, now: DateTime<Utc>) -> Result<Account> {
        let id: AccountId = fresh(now);
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, kind, name, email, password_hash, verification_state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(a.kind.as_str())
        .bind(a.name)
        .bind(a.email)
        .bind(a.password_hash)
        .bind(VerificationState::Unverified.as_str())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        for role in a.roles {
            sqlx::query("INSERT INTO account_roles (account_id, role) VALUES ($1, $2)")
                .bind(id.as_str())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.account(&id).await
    }

    /// Gives an account operator roles it does not hold yet.
    pub async fn add_roles(&self, id: &AccountId, roles: &[Role]) -> Result<()> {
        let _changing = self.access_changing();
        let mut tx = self.begin().await?;
        for role in roles {
            sqlx::query("INSERT INTO account_roles (account_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id.as_str())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One account by id.
    pub async fn account(&self, id: &AccountId) -> Result<Account> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts a LEFT JOIN account_roles r ON r.account_id = a.id WHERE a.id = $1"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        one(rows)?.ok_or(Error::NotFound("account"))
    }

    /// One account by (lower-case) e-mail.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts a LEFT JOIN account_roles r ON r.account_id = a.id WHERE a.email = $1"
        ))
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        one(rows)
    }

    /// Stores a new session for `account_id`, or for one of its IAM users; only the token's hash
    /// is kept.
    pub async fn create_session(
        &self,
        token_hash: &str,
        account_id: &AccountId,
        iam_user_id: Option<&str>,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, account_id, created_at, expires_at, iam_user_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(account_id.as_str())
            .bind(ms(now))
            .bind(ms(expires))
            .bind(iam_user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The access key `access_key` with its user and account, and the access generation they
    /// were read at, in one round trip.
    pub async fn key_holder(&self, access_key: &str) -> Result<Option<KeyHolder>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, {KEY_COLUMNS}, {GENERATION} FROM access_keys k JOIN iam_users u ON u.id = k.user_id \
             JOIN accounts a ON a.id = k.account_id LEFT JOIN account_roles r ON r.account_id = a.id \
             WHERE k.access_key = $1"
        ))
        .bind(access_key)
        .fetch_all(&self.pool)
        .await?;
        key_holder(&rows)
    }

    /// For each signed request of a batch, its key with its user and account (unless the node
    /// knows them at the current access generation), and whether its signature's digest is new,
    /// remembering the new ones (of keys that exist) until their expiry: one statement for the
    /// whole batch (PostgreSQL, whose nodes share the signatures they accepted). Also returns
    /// the access generation the statement saw. A digest given twice in one batch is new at
    /// most once, for its first request. The statement fails or succeeds for all; a holder that
    /// cannot be read back fails its own request only.
    pub async fn key_holders_remembering(
        &self,
        batch: &[SignedLookup<'_>],
    ) -> Result<(Vec<Result<(KeyRead, bool)>>, i64)> {
        // The batch is one JSON parameter, so the statement is the same text (prepared once)
        // whatever the batch's size; each key is read once however many requests it signed, and
        // the digests remembered come back as one value beside it. (A statement with a row of
        // parameters per request, joined with the keys per request, cost PostgreSQL half again
        // as much per request.) A key the node knows at the current generation is neither read
        // nor looked for: it exists, since deleting it would have moved the generation.
        let requests: Vec<serde_json::Value> = batch
            .iter()
            .map(|l| {
                serde_json::json!({
                    "k": l.access_key,
                    "d": hex::encode(l.digest),
                    "e": ms(l.expires),
                    "g": l.known_at,
                })
            })
            .collect();
        // The gate comes first: a node keeping signatures alone (nodes.rs) means none may be
        // remembered here, and the batch is refused whole.
        let rows = sqlx::query(&format!(
            "WITH gate AS MATERIALIZED (SELECT {gate} AS open), \
             req AS (SELECT r.k AS access_key, decode(r.d, 'hex') AS digest, r.e AS expires_at, \
                                 r.g IS NOT DISTINCT FROM (SELECT n FROM access_generation WHERE id = 1) AS known \
                          FROM json_to_recordset(CAST($1 AS JSON)) AS r(k TEXT, d TEXT, e BIGINT, g BIGINT)), \
             fresh AS (INSERT INTO signature_digests (digest, expires_at) \
                       SELECT DISTINCT ON (req.digest) req.digest, req.expires_at FROM req \
                       WHERE (SELECT open FROM gate) \
                       AND (req.known OR EXISTS (SELECT 1 FROM access_keys x WHERE x.access_key = req.access_key)) \
                       ORDER BY req.digest \
                       ON CONFLICT DO NOTHING RETURNING digest) \
             SELECT CAST(CAST((SELECT open FROM gate) AS INTEGER) AS BIGINT) AS open, \
                    (SELECT string_agg(encode(digest, 'hex'), ',') FROM fresh) AS fresh, \
                    {GENERATION}, h.* FROM (SELECT 1) one LEFT JOIN \
             (SELECT {COLUMNS}, {KEY_COLUMNS} FROM access_keys k JOIN iam_users u ON u.id = k.user_id \
              JOIN accounts a ON a.id = k.account_id LEFT JOIN account_roles r ON r.account_id = a.id \
              WHERE k.access_key IN (SELECT access_key FROM req WHERE NOT known)) h ON TRUE",
            gate = crate::nodes::keeper_gate()
        ))
        .bind(serde_json::Value::Array(requests).to_string())
        .fetch_all(&self.pool)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Corrupt("a signed batch's statement returned no row".into()))?;
        if int(first, "open")? != 1 {
            return Err(Error::KeptElsewhere);
        }
        let generation = int(first, "access_generation")?;
        let fresh: std::collections::HashSet<Vec<u8>> = opt_text(first, "fresh")?
            .unwrap_or_default()
            .split(',')
            .filter_map(|d| hex::decode(d).ok())
            .collect();
        let mut by_key: std::collections::HashMap<String, Vec<AnyRow>> = Default::default();
        for row in rows {
            if let Some(key) = opt_text(&row, "access_key")? {
                by_key.entry(key).or_default().push(row);
            }
        }
        // Each key's holder is read from its rows once, however many requests of the batch it
        // signed (a client's requests usually all carry its one key).
        let holders: std::collections::HashMap<
            String,
            std::result::Result<Option<KeyHolder>, String>,
        > = by_key
            .into_iter()
            .map(|(key, rows)| {
                let holder = key_holder(&rows).map_err(|e| match e {
                    Error::Corrupt(why) => why,
                    other => other.to_string(),
                });
                (key, holder)
            })
            .collect();
        let mut counted = std::collections::HashSet::new();
        let answers = batch
            .iter()
            .map(|lookup| {
                let mut new = || fresh.contains(lookup.digest) && counted.insert(lookup.digest);
                if lookup.known_at == Some(generation) {
                    return Ok((KeyRead::Unchanged, new()));
                }
                match holders.get(lookup.access_key) {
                    None => Ok((KeyRead::Read(None), false)),
                    Some(Err(why)) => Err(Error::Corrupt(why.clone())),
                    Some(Ok(holder)) => Ok((KeyRead::Read(holder.clone().map(Box::new)), new())),
                }
            })
            .collect();
        Ok((answers, generation))
    }

    /// The session that is past neither its lifetime (`expires_at > now`) nor its idle timeout
    /// (last used after `idle_cutoff`): its account, its IAM user if one signed in, and when it
    /// was last used, in one round trip. A session of an IAM user deleted meanwhile (signed in
    /// while the user was being deleted) is none: it must never read as the account's own.
    pub async fn live_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        idle_cutoff: DateTime<Utc>,
    ) -> Result<Option<LiveSession>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, COALESCE(s.last_seen_at, s.created_at) AS seen_at, \
                    u.id AS iam_id, u.name AS iam_name, u.policy AS iam_policy FROM sessions s \
             JOIN accounts a ON a.id = s.account_id LEFT JOIN account_roles r ON r.account_id = a.id \
             LEFT JOIN iam_users u ON u.id = s.iam_user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND COALESCE(s.last_seen_at, s.created_at) > $3 \
             AND (s.iam_user_id IS NULL OR u.id IS NOT NULL)"
        ))
        .bind(token_hash)
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let seen_at = time(first, "seen_at")?;
        let iam_user = match opt_text(first, "iam_id")? {
            Some(id) => Some(SessionUser {
                id,
                name: text(first, "iam_name")?,
                policy: parsed(first, "iam_policy")?,
            }),
            None => None,
        };
        Ok(one(rows)?.map(|account| LiveSession {
            account,
            iam_user,
            seen_at,
        }))
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

    /// Ends the console sessions of one IAM user of an account.
    pub async fn delete_sessions_of_iam_user(
        &self,
        account_id: &AccountId,
        user_name: &str,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE account_id = $1 AND iam_user_id IN \
             (SELECT id FROM iam_users WHERE account_id = $1 AND name = $2)",
        )
        .bind(account_id.as_str())
        .bind(user_name)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Ends every session of an account; returns how many there were.
    pub async fn delete_sessions_of(&self, account_id: &AccountId) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Deletes sessions past their expiry or idle since before `idle_cutoff`, of one account or
    /// (with `None`) of everyone.
    pub async fn delete_dead_sessions(
        &self,
        account_id: Option<&AccountId>,
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
            q = q.bind(id.as_str());
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

    /// Records submitted verification details, if the account is still in `from`.
    pub async fn submit_verification(
        &self,
        id: &AccountId,
        from: VerificationState,
        to: VerificationState,
        details: &VerificationDetails,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let _changing = self.access_changing();
        let details = serde_json::to_string(details).map_err(|e| Error::Corrupt(e.to_string()))?;
        crate::changed(sqlx::query(
            "UPDATE accounts SET verification_state = $1, verification_details = $2, verification_reason = NULL, \
             verification_submitted_at = $3, verification_decided_at = NULL, verification_decided_by = NULL \
             WHERE id = $4 AND verification_state = $5",
        )
        .bind(to.as_str())
        .bind(details)
        .bind(ms(now))
        .bind(id.as_str())
        .bind(from.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())?;
        Ok(())
    }

    /// Records a reviewer's decision, if the verification is still in `from`.
    pub async fn decide_verification(
        &self,
        id: &AccountId,
        from: VerificationState,
        to: VerificationState,
        reason: Option<&str>,
        by: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let _changing = self.access_changing();
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query(
            "UPDATE accounts SET verification_state = $1, verification_reason = $2, verification_decided_at = $3, \
             verification_decided_by = $4 WHERE id = $5 AND verification_state = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(ms(now))
        .bind(by.as_str())
        .bind(id.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected())?;
        let approved = to == VerificationState::Verified;
        crate::events::record_decision(
            &mut tx,
            crate::events::Decision {
                account_id: Some(id),
                product_id: None,
                kind: if approved {
                    "verification.approved"
                } else {
                    "verification.rejected"
                },
                detail: reason.unwrap_or_default().to_owned(),
                actor: by,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Verifications waiting for a reviewer, oldest first.
    pub async fn pending_verifications(&self, limit: i64) -> Result<Vec<Account>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM accounts WHERE verification_state = $1 \
             ORDER BY verification_submitted_at, id LIMIT $2) a \
             LEFT JOIN account_roles r ON r.account_id = a.id ORDER BY a.verification_submitted_at, a.id"
        ))
        .bind(VerificationState::Pending.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        accounts(&rows)
    }

    /// Accounts whose e-mail or name contains `text` (any case), newest first, after the
    /// account id `before` when given.
    pub async fn search_accounts(
        &self,
        text: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Account>> {
        let pattern = format!(
            "%{}%",
            text.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM accounts WHERE (LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(name) LIKE $1 ESCAPE '\\') \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3) a \
             LEFT JOIN account_roles r ON r.account_id = a.id ORDER BY a.id DESC"
        ))
        .bind(pattern)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        accounts(&rows)
    }

    /// Whether any account exists but the one with e-mail `besides` (demo data only fills a
    /// marketplace nobody has joined; the command line's own account does not count).
    pub async fn has_accounts_besides(&self, besides: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE email <> $1")
            .bind(besides)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
