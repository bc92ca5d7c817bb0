//! Merchant applications and merchants.

use crate::{ms, new_id, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::merchants::MerchantApplication;

/// A merchant (or an application to become one) as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MerchantRow {
    pub id: String,
    pub account_id: String,
    pub state: String,
    pub company_name: String,
    pub support_email: String,
    pub support_phone: String,
    pub business_licence_number: String,
    pub description: String,
    pub reason: Option<String>,
    pub submitted_at: i64,
    pub decided_at: Option<i64>,
}

const COLUMNS: &str =
    "id, account_id, state, company_name, support_email, support_phone, business_licence_number, \
    description, reason, submitted_at, decided_at";

impl Store {
    /// The merchant record of an account, if it ever applied.
    pub async fn merchant_of(&self, account_id: &str) -> Result<Option<MerchantRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM merchants WHERE account_id = $1"
        ))
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One merchant by id.
    pub async fn merchant(&self, id: &str) -> Result<MerchantRow> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM merchants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("merchant application"))
    }

    /// Files an application: a new row, or the rejected one again (`previous_state` guards races).
    pub async fn apply_merchant(
        &self,
        account_id: &str,
        previous_state: Option<&str>,
        app: &MerchantApplication,
        now: DateTime<Utc>,
    ) -> Result<MerchantRow> {
        match previous_state {
            None => {
                sqlx::query(&format!(
                    "INSERT INTO merchants ({COLUMNS}) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, NULL, $8, NULL)"
                ))
                .bind(new_id("mer", now))
                .bind(account_id)
                .bind(&app.company_name)
                .bind(&app.support_email)
                .bind(&app.support_phone)
                .bind(&app.business_licence_number)
                .bind(&app.description)
                .bind(ms(now))
                .execute(&self.pool)
                .await
                .map_err(|e| match Error::from(e) {
                    Error::Conflict(_) => Error::Stale,
                    other => other,
                })?;
            }
            Some(state) => {
                crate::changed(sqlx::query(
                    "UPDATE merchants SET state = 'pending', company_name = $1, support_email = $2, support_phone = $3, \
                     business_licence_number = $4, description = $5, reason = NULL, submitted_at = $6, decided_at = NULL, \
                     decided_by = NULL WHERE account_id = $7 AND state = $8",
                )
                .bind(&app.company_name)
                .bind(&app.support_email)
                .bind(&app.support_phone)
                .bind(&app.business_licence_number)
                .bind(&app.description)
                .bind(ms(now))
                .bind(account_id)
                .bind(state)
                .execute(&self.pool)
                .await?
                .rows_affected())?;
            }
        }
        self.merchant_of(account_id)
            .await?
            .ok_or(Error::NotFound("merchant application"))
    }

    /// Records a decision on a pending application.
    pub async fn decide_merchant(
        &self,
        id: &str,
        to_state: &str,
        reason: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<MerchantRow> {
        crate::changed(sqlx::query("UPDATE merchants SET state = $1, reason = $2, decided_at = $3, decided_by = $4 WHERE id = $5 AND state = 'pending'")
            .bind(to_state)
            .bind(reason)
            .bind(ms(now))
            .bind(by)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        self.merchant(id).await
    }

    /// Applications waiting for a decision, oldest first.
    pub async fn pending_merchants(&self, limit: i64) -> Result<Vec<MerchantRow>> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM merchants WHERE state = 'pending' ORDER BY submitted_at, id LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
