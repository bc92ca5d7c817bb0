//! Operator promotions of products.

use crate::decode::{id, int, opt_text, time};
use crate::{ms, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, ProductId, PromotionId};
use souk_core::plans::Period;
use souk_core::promotions::Promotion;
use sqlx::any::AnyRow;

/// A stored promotion.
#[derive(Debug, Clone)]
pub struct StoredPromotion {
    pub id: PromotionId,
    pub product_id: ProductId,
    pub terms: Promotion,
    pub created_by: AccountId,
    pub created_at: DateTime<Utc>,
}

const PROMOTION: &str =
    "id, product_id, percent_off, period, starts_at, ends_at, created_by, created_at";

/// A promotion's terms from the columns named `{prefix}percent_off`, `{prefix}period`,
/// `{prefix}starts_at` and `{prefix}ends_at`.
pub(crate) fn terms(row: &AnyRow, prefix: &str) -> Result<Promotion> {
    let period = opt_text(row, &format!("{prefix}period"))?
        .map(|p| p.parse::<Period>())
        .transpose()
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Promotion {
        percent_off: u32::try_from(int(row, &format!("{prefix}percent_off"))?)
            .map_err(|_| Error::Corrupt("percent_off out of range".into()))?,
        period,
        starts_at: time(row, &format!("{prefix}starts_at"))?,
        ends_at: time(row, &format!("{prefix}ends_at"))?,
    })
}

fn promotion(row: &AnyRow) -> Result<StoredPromotion> {
    Ok(StoredPromotion {
        id: id(row, "id")?,
        product_id: id(row, "product_id")?,
        terms: terms(row, "")?,
        created_by: id(row, "created_by")?,
        created_at: time(row, "created_at")?,
    })
}

impl Store {
    /// Records a promotion.
    pub async fn insert_promotion(&self, p: &StoredPromotion) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO promotions ({PROMOTION}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(p.id.as_str())
        .bind(p.product_id.as_str())
        .bind(i64::from(p.terms.percent_off))
        .bind(p.terms.period.map(Period::as_str))
        .bind(ms(p.terms.starts_at))
        .bind(ms(p.terms.ends_at))
        .bind(p.created_by.as_str())
        .bind(ms(p.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The promotions of a product that have not ended by `now` (running or to come).
    pub async fn promotions_of(
        &self,
        product_id: &ProductId,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredPromotion>> {
        sqlx::query(&format!(
            "SELECT {PROMOTION} FROM promotions WHERE product_id = $1 AND ends_at > $2 ORDER BY starts_at, id"
        ))
        .bind(product_id.as_str())
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(promotion)
        .collect()
    }

    /// Every promotion, newest first, after the id `before` when given.
    pub async fn promotions(
        &self,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredPromotion>> {
        sqlx::query(&format!(
            "SELECT {PROMOTION} FROM promotions WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(promotion)
        .collect()
    }

    /// Ends a promotion at `now` (one that has not begun ends before it begins). False when
    /// there is no such promotion or it had already ended.
    pub async fn end_promotion(&self, id: &PromotionId, now: DateTime<Utc>) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE promotions SET ends_at = $1, starts_at = CASE WHEN starts_at > $1 THEN $1 ELSE starts_at END \
             WHERE id = $2 AND ends_at > $1",
        )
        .bind(ms(now))
        .bind(id.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }
}
