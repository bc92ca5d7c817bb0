//! Products, their revisions (drafts and applications under review) and their listed plans.

use crate::{ms, new_id, Error, Result, Store};
use chrono::{DateTime, Utc};

/// A product as stored; `listed_content` is the JSON of the version buyers see.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    pub id: String,
    pub merchant_id: String,
    pub product_type: String,
    pub state: String,
    pub signing_key_enc: String,
    pub listed_content: Option<String>,
    pub endpoint_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub listed_at: Option<i64>,
}

impl ProductRow {
    /// The name buyers see (from the listed version), or the id for a never-listed product.
    pub fn listed_name(&self) -> String {
        self.listed_content
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|v| v["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.id.clone())
    }
}

/// One revision of a product's content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevisionRow {
    pub id: String,
    pub product_id: String,
    pub number: i64,
    pub state: String,
    pub content: String,
    pub submitted_at: Option<i64>,
    pub due_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub reasons: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A plan as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub description: String,
    pub currency: String,
    pub monthly_price: Option<String>,
    pub yearly_price: Option<String>,
    pub position: i64,
    pub active: i64,
}

/// A revision waiting in the review queue, with what the reviewer needs to see first.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub id: String,
    pub product_id: String,
    pub number: i64,
    pub content: String,
    pub submitted_at: Option<i64>,
    pub due_at: Option<i64>,
    pub product_state: String,
    pub company_name: String,
}

/// A plan to list when a revision is approved; `id` is kept for existing plans.
#[derive(Debug, Clone)]
pub struct PlanWrite {
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub currency: String,
    pub monthly_price: Option<String>,
    pub yearly_price: Option<String>,
}

const PRODUCT: &str = "id, merchant_id, product_type, state, signing_key_enc, listed_content, endpoint_url, created_at, updated_at, listed_at";
const REVISION: &str = "id, product_id, number, state, content, submitted_at, due_at, decided_at, reasons, created_at, updated_at";
const PLAN: &str =
    "id, product_id, name, description, currency, monthly_price, yearly_price, position, active";

impl Store {
    /// Creates a never-listed product with its first draft.
    pub async fn create_product(
        &self,
        merchant_id: &str,
        product_type: &str,
        seal_signing_key: impl FnOnce(&str) -> String,
        content_json: &str,
        now: DateTime<Utc>,
    ) -> Result<(ProductRow, RevisionRow)> {
        let id = new_id("prd", now);
        // Sealed once the id is known: the sealed key is bound to its row.
        let signing_key_enc = seal_signing_key(&id);
        let mut tx = self.begin().await?;
        sqlx::query(&format!("INSERT INTO products ({PRODUCT}) VALUES ($1, $2, $3, 'draft', $4, NULL, NULL, $5, $5, NULL)"))
            .bind(&id)
            .bind(merchant_id)
            .bind(product_type)
            .bind(&signing_key_enc)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("INSERT INTO product_revisions ({REVISION}) VALUES ($1, $2, 1, 'draft', $3, NULL, NULL, NULL, NULL, $4, $4)"))
            .bind(new_id("rev", now))
            .bind(&id)
            .bind(content_json)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let product = self.product(&id).await?;
        let revision = self
            .latest_revision(&id)
            .await?
            .ok_or(Error::NotFound("revision"))?;
        Ok((product, revision))
    }

    /// One product by id.
    pub async fn product(&self, id: &str) -> Result<ProductRow> {
        sqlx::query_as(&format!("SELECT {PRODUCT} FROM products WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("product"))
    }

    /// A merchant's products, newest first.
    pub async fn products_of_merchant(&self, merchant_id: &str) -> Result<Vec<ProductRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PRODUCT} FROM products WHERE merchant_id = $1 ORDER BY id DESC"
        ))
        .bind(merchant_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest revision of a product.
    pub async fn latest_revision(&self, product_id: &str) -> Result<Option<RevisionRow>> {
        Ok(sqlx::query_as(&format!("SELECT {REVISION} FROM product_revisions WHERE product_id = $1 ORDER BY number DESC LIMIT 1"))
            .bind(product_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// One revision by id.
    pub async fn revision(&self, id: &str) -> Result<RevisionRow> {
        sqlx::query_as(&format!(
            "SELECT {REVISION} FROM product_revisions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("revision"))
    }

    /// Every revision of a product, newest first: the merchant's drafts and applications.
    pub async fn revisions(&self, product_id: &str) -> Result<Vec<RevisionRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {REVISION} FROM product_revisions WHERE product_id = $1 ORDER BY number DESC"
        ))
        .bind(product_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the content of a revision that is still in `from_state`, leaving it as a draft.
    pub async fn update_revision(
        &self,
        id: &str,
        from_state: &str,
        content_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query("UPDATE product_revisions SET state = 'draft', content = $1, reasons = NULL, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(content_json)
            .bind(ms(now))
            .bind(id)
            .bind(from_state)
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        Ok(())
    }

    /// Opens a new draft revision numbered `number` (a change request to a listed product).
    pub async fn insert_revision(
        &self,
        product_id: &str,
        number: i64,
        content_json: &str,
        now: DateTime<Utc>,
    ) -> Result<RevisionRow> {
        let id = new_id("rev", now);
        sqlx::query(&format!("INSERT INTO product_revisions ({REVISION}) VALUES ($1, $2, $3, 'draft', $4, NULL, NULL, NULL, NULL, $5, $5)"))
            .bind(&id)
            .bind(product_id)
            .bind(number)
            .bind(content_json)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Stale,
                other => other,
            })?;
        self.revision(&id).await
    }

    /// Puts a revision in the review queue, due at `due_at`.
    pub async fn submit_revision(
        &self,
        id: &str,
        from_state: &str,
        now: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query("UPDATE product_revisions SET state = 'in_review', submitted_at = $1, due_at = $2, updated_at = $1 WHERE id = $3 AND state = $4")
            .bind(ms(now))
            .bind(ms(due_at))
            .bind(id)
            .bind(from_state)
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        Ok(())
    }

    /// Revisions in review, the most urgent (earliest due, so overdue) first.
    pub async fn review_queue(&self, limit: i64) -> Result<Vec<QueueRow>> {
        Ok(sqlx::query_as(
            "SELECT r.id, r.product_id, r.number, r.content, r.submitted_at, r.due_at, p.state AS product_state, m.company_name \
             FROM product_revisions r JOIN products p ON p.id = r.product_id JOIN merchants m ON m.id = p.merchant_id \
             WHERE r.state = 'in_review' ORDER BY r.due_at, r.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rejects a revision in review with the reviewer's reasons (JSON array).
    pub async fn reject_revision(
        &self,
        id: &str,
        reasons_json: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query("UPDATE product_revisions SET state = 'rejected', reasons = $1, decided_at = $2, decided_by = $3, updated_at = $2 WHERE id = $4 AND state = 'in_review'")
            .bind(reasons_json)
            .bind(ms(now))
            .bind(by)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        Ok(())
    }

    /// Approves a revision in review: its content becomes the listed version and its plans the
    /// listed plans (kept by id; plans left out stop being sold but stay for existing orders).
    pub async fn approve_revision(
        &self,
        revision: &RevisionRow,
        endpoint_url: &str,
        plans: &[PlanWrite],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query("UPDATE product_revisions SET state = 'approved', decided_at = $1, decided_by = $2, updated_at = $1 WHERE id = $3 AND state = 'in_review'")
            .bind(ms(now))
            .bind(by)
            .bind(&revision.id)
            .execute(&mut *tx)
            .await?
            .rows_affected())?;
        sqlx::query("UPDATE plans SET active = 0 WHERE product_id = $1")
            .bind(&revision.product_id)
            .execute(&mut *tx)
            .await?;
        let mut listed_plans = Vec::with_capacity(plans.len());
        for (position, p) in plans.iter().enumerate() {
            let updated = match &p.id {
                Some(id) => sqlx::query(
                    "UPDATE plans SET name = $1, description = $2, currency = $3, monthly_price = $4, yearly_price = $5, position = $6, active = 1 \
                     WHERE id = $7 AND product_id = $8",
                )
                .bind(&p.name)
                .bind(&p.description)
                .bind(&p.currency)
                .bind(&p.monthly_price)
                .bind(&p.yearly_price)
                .bind(position as i64)
                .bind(id)
                .bind(&revision.product_id)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => 0,
            };
            let id = if updated == 1 {
                p.id.clone().expect("only existing plans are updated")
            } else {
                let id = new_id("pln", now);
                sqlx::query(&format!(
                    "INSERT INTO plans ({PLAN}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)"
                ))
                .bind(&id)
                .bind(&revision.product_id)
                .bind(&p.name)
                .bind(&p.description)
                .bind(&p.currency)
                .bind(&p.monthly_price)
                .bind(&p.yearly_price)
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
                id
            };
            listed_plans.push(id);
        }
        // The listed content records the plan ids it lists, so the next draft edits them in place.
        let mut content: serde_json::Value =
            serde_json::from_str(&revision.content).map_err(|e| Error::Corrupt(e.to_string()))?;
        if let Some(arr) = content.get_mut("plans").and_then(|p| p.as_array_mut()) {
            for (plan, id) in arr.iter_mut().zip(&listed_plans) {
                plan["id"] = serde_json::Value::String(id.clone());
            }
        }
        let content = content.to_string();
        sqlx::query("UPDATE product_revisions SET content = $1 WHERE id = $2")
            .bind(&content)
            .bind(&revision.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE products SET state = 'listed', listed_content = $1, endpoint_url = $2, listed_at = $3, updated_at = $3 WHERE id = $4")
            .bind(&content)
            .bind(endpoint_url)
            .bind(ms(now))
            .bind(&revision.product_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a product from `from_state` to `to_state` (delisting).
    pub async fn set_product_state(
        &self,
        id: &str,
        from_state: &str,
        to_state: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(
            sqlx::query(
                "UPDATE products SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
            )
            .bind(to_state)
            .bind(ms(now))
            .bind(id)
            .bind(from_state)
            .execute(&self.pool)
            .await?
            .rows_affected(),
        )?;
        Ok(())
    }

    /// A plan with its product, in one read (the purchase path).
    pub async fn plan_with_product(&self, plan_id: &str) -> Result<(PlanRow, ProductRow)> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            plan: PlanRow,
            p_merchant_id: String,
            p_product_type: String,
            p_state: String,
            p_signing_key_enc: String,
            p_listed_content: Option<String>,
            p_endpoint_url: Option<String>,
            p_created_at: i64,
            p_updated_at: i64,
            p_listed_at: Option<i64>,
        }
        let r: Row = sqlx::query_as(
            "SELECT pl.id, pl.product_id, pl.name, pl.description, pl.currency, pl.monthly_price, pl.yearly_price, pl.position, pl.active, \
             p.merchant_id AS p_merchant_id, p.product_type AS p_product_type, p.state AS p_state, p.signing_key_enc AS p_signing_key_enc, \
             p.listed_content AS p_listed_content, p.endpoint_url AS p_endpoint_url, p.created_at AS p_created_at, \
             p.updated_at AS p_updated_at, p.listed_at AS p_listed_at \
             FROM plans pl JOIN products p ON p.id = pl.product_id WHERE pl.id = $1",
        )
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("plan"))?;
        let product = ProductRow {
            id: r.plan.product_id.clone(),
            merchant_id: r.p_merchant_id,
            product_type: r.p_product_type,
            state: r.p_state,
            signing_key_enc: r.p_signing_key_enc,
            listed_content: r.p_listed_content,
            endpoint_url: r.p_endpoint_url,
            created_at: r.p_created_at,
            updated_at: r.p_updated_at,
            listed_at: r.p_listed_at,
        };
        Ok((r.plan, product))
    }

    /// One plan by id.
    pub async fn plan(&self, id: &str) -> Result<PlanRow> {
        sqlx::query_as(&format!("SELECT {PLAN} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound("plan"))
    }

    /// The plans a product sells now, in the merchant's order.
    pub async fn active_plans(&self, product_id: &str) -> Result<Vec<PlanRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PLAN} FROM plans WHERE product_id = $1 AND active = 1 ORDER BY position"
        ))
        .bind(product_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
