//! The application layer: one function per thing a person or a machine does, shared by every
//! front door (the JSON API, the web pages, the command line). Each takes the typed caller and
//! typed input, checks the caller's rights, asks `souk-core` to decide, lets `souk-store` keep the
//! decision in one transaction, and returns typed results or an [`AppError`].

pub mod accounts;
pub mod arrears;
pub mod catalog;
pub mod iam;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod merchants;
pub mod metering;
pub mod notifications;
pub mod orders;
pub mod products;
pub mod promotions;
pub mod reviews;
pub mod sales;
pub mod schema;

use crate::error::{AppError, AppResult};
use souk_core::accounts::{Role, VerificationState};
use souk_core::ids::AccountId;
use souk_store::accounts::Account;

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session cookie.
    Session,
    /// `souk admin …` on the machine itself, acting as the marketplace's system operator.
    CommandLine,
    /// A request signed with an IAM user's access key (`SDK-HMAC-SHA256`).
    AccessKey {
        access_key: String,
        policy: souk_core::iam::Policy,
    },
    /// A browser session of an IAM user with console access, bounded by its policy.
    ConsoleUser {
        user: String,
        policy: souk_core::iam::Policy,
    },
}

/// Who is asking: one type whatever the authentication, so no use case knows how it was called.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub via: Via,
}

impl Caller {
    /// The caller's account id.
    pub fn id(&self) -> &AccountId {
        &self.account.id
    }

    /// Refuses unless the caller is an operator with `role`.
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.account.has_role(role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the operator role {role}"
            )))
        }
    }

    /// Refuses unless the caller's real-name verification passed (buying needs it).
    pub fn require_verified(&self) -> AppResult<()> {
        if self.account.verification.state == VerificationState::Verified {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "complete real-name verification before buying".into(),
            ))
        }
    }

    /// Separation of duties: an operator never decides a case of their own account. The refusal
    /// is written to the audit log.
    pub fn not_own(&self, subject: &AccountId, what: &str) -> AppResult<()> {
        if subject == self.id() {
            tracing::warn!(target: "audit", operator = %self.id(), %what, "refused: an operator acted on their own case");
            Err(AppError::OwnCase(format!(
                "an operator cannot {what} of their own account"
            )))
        } else {
            Ok(())
        }
    }
}

/// Paging through a list: a cursor from the previous page and a size.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One page of a list and the cursor of the next, if there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl PageRequest {
    /// The page size: 20 by default, 1 to 100.
    pub fn size(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(20),
            Some(n @ 1..=100) => Ok(i64::from(n)),
            Some(_) => Err(AppError::invalid("limit", "must be between 1 and 100")),
        }
    }

    /// The cursor, which must be an id of the listed kind (`prefix`): a cursor is the last id of
    /// the page before, and anything else would page from an arbitrary place unnoticed.
    pub fn after(&self, prefix: &str) -> AppResult<Option<&str>> {
        match self.cursor.as_deref() {
            Some(c) if !souk_core::ids::well_formed(prefix, c) => Err(AppError::invalid(
                "cursor",
                "is not a cursor this API gave out",
            )),
            cursor => Ok(cursor),
        }
    }

    /// Splits rows read with `size + 1` into one page and the cursor of the next page (the id of
    /// the last row shown), if there is one.
    pub fn page<R>(&self, mut rows: Vec<R>, size: i64, id: impl Fn(&R) -> &str) -> Page<R> {
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_owned())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// Runs `attempt` until the store stops finding the subject changed under it: each try decides
/// again on a fresh read. Gives up after a few tries (a subject that never stops changing).
pub(crate) async fn retry_stale<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    for _ in 0..5 {
        match attempt().await {
            Err(AppError::Stale) => continue,
            other => return other,
        }
    }
    Err(AppError::Stale)
}
