//! Merchant applications and merchants.

use crate::decode::{id, opt_text, opt_time, parsed, text, time};
use crate::{fresh, ms, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, MerchantId};
use souk_core::merchants::{MerchantApplication, MerchantState};
use sqlx::any::AnyRow;

/// A merchant, or an application to become one.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub account_id: AccountId,
    pub state: MerchantState,
    /// What the company told the marketplace.
    pub application: MerchantApplication,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, account_id, state, company_name, support_email, support_phone, business_licence_number, \
    description, reason, submitted_at, decided_at";

fn merchant(row: &AnyRow) -> Result<Merchant> {
    Ok(Merchant {
        id: id(row, "id")?,
        account_id: id(row, "account_id")?,
        state: parsed(row, "state")?,
        application: MerchantApplication {
            company_name: text(row, "company_name")?,
            support_email: text(row, "support_email")?,
            support_phone: text(row, "support_phone")?,
            business_licence_number: text(row, "business_licence_number")?,
            description: text(row, "description")?,
        },
        reason: opt_text(row, "reason")?,
        submitted_at: time(row, "submitted_at")?,
        decided_at: opt_time(row, "decided_at")?,
    })
}

impl Store {
    /// The merchant record of an account, if it ever applied.
    pub async fn merchant_of(&self, account_id: &AccountId) -> Result<Option<Merchant>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM merchants WHERE account_id = $1"
        ))
        .bind(account_id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| merchant(&r))
        .transpose()
    }

    /// One merchant by id.
    pub async fn merchant(&self, id: &MerchantId) -> Result<Merchant> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM merchants WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| merchant(&r))
            .transpose()?
            .ok_or(Error::NotFound("merchant application"))
    }

    /// Files an application in state `to`: a new row when `from` is `None`, else the existing
    /// one again, if it is still in `from` (so two concurrent applications cannot both pass).
    pub async fn apply_merchant(
        &self,
        account_id: &AccountId,
        from: Option<MerchantState>,
        to: MerchantState,
        app: &MerchantApplication,
        now: DateTime<Utc>,
    ) -> Result<Merchant> {
        match from {
            None => {
                sqlx::query(&format!(
                    "INSERT INTO merchants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL)"
                ))
                .bind(fresh::<MerchantId>(now).as_str())
                .bind(account_id.as_str())
                .bind(to.as_str())
                .bind(&app.company_name)
                .bind(&app.support_email)
                .bind(&app.support_phone)
                .bind(&app.business_licence_number)
                .bind(&app.description)
                .bind(ms(now))
                .execute(&self.pool)
                .await
                .map_err(|e| match Error::from(e) {
                    // Another application of this account went in first.
                    Error::Duplicate(_) => Error::Stale,
                    other => other,
                })?;
            }
            Some(from) => {
                crate::changed(sqlx::query(
                    "UPDATE merchants SET state = $1, company_name = $2, support_email = $3, support_phone = $4, \
                     business_licence_number = $5, description = $6, reason = NULL, submitted_at = $7, decided_at = NULL, \
                     decided_by = NULL WHERE account_id = $8 AND state = $9",
                )
                .bind(to.as_str())
                .bind(&app.company_name)
                .bind(&app.support_email)
                .bind(&app.support_phone)
                .bind(&app.business_licence_number)
                .bind(&app.description)
                .bind(ms(now))
                .bind(account_id.as_str())
                .bind(from.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected())?;
            }
        }
        self.merchant_of(account_id)
            .await?
            .ok_or(Error::NotFound("merchant application"))
    }

    /// Records a decision on an application still in `from`.
    pub async fn decide_merchant(
        &self,
        id: &MerchantId,
        from: MerchantState,
        to: MerchantState,
        reason: Option<&str>,
        by: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Merchant> {
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query("UPDATE merchants SET state = $1, reason = $2, decided_at = $3, decided_by = $4 WHERE id = $5 AND state = $6")
            .bind(to.as_str())
            .bind(reason)
            .bind(ms(now))
            .bind(by.as_str())
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected())?;
        let applicant: String =
            sqlx::query_scalar("SELECT account_id FROM merchants WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let approved = to == MerchantState::Approved;
        crate::events::record_decision(
            &mut tx,
            crate::events::Decision {
                account_id: Some(&AccountId::from(applicant)),
                product_id: None,
                kind: if approved {
                    "merchant.approved"
                } else {
                    "merchant.rejected"
                },
                detail: reason.unwrap_or_default().to_owned(),
                actor: by,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        self.merchant(id).await
    }

    /// Applications waiting for a decision, oldest first.
    pub async fn pending_merchants(&self, limit: i64) -> Result<Vec<Merchant>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM merchants WHERE state = $1 ORDER BY submitted_at, id LIMIT $2"
        ))
        .bind(MerchantState::Pending.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(merchant)
        .collect()
    }
}
