//! Products, their revisions (drafts and applications under review) and their listed plans.

use crate::decode::{id, int, json, opt_int, opt_json, opt_text, opt_time, parsed, text, time};
use crate::{fresh, ms, Error, Result, Store};
use chrono::{DateTime, Utc};
use souk_core::ids::{AccountId, MerchantId, PlanId, ProductId, RevisionId};
use souk_core::plans::PlanPrices;
use souk_core::promotions::Promotion;
use souk_core::review::{ProductContent, ProductState, ProductType, RevisionState};
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// A product; `listed` is the version buyers see.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: ProductId,
    pub merchant_id: MerchantId,
    pub product_type: ProductType,
    pub state: ProductState,
    /// The signing key, sealed by the server.
    pub signing_key_enc: String,
    pub listed: Option<ProductContent>,
    /// The live endpoint (from the listed version).
    pub endpoint_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub listed_at: Option<DateTime<Utc>>,
}

impl Product {
    /// The name buyers see (from the listed version), or the id for a never-listed product.
    pub fn listed_name(&self) -> &str {
        self.listed
            .as_ref()
            .map_or(self.id.as_str(), |c| c.name.as_str())
    }
}

/// One revision of a product's content.
#[derive(Debug, Clone)]
pub struct Revision {
    pub id: RevisionId,
    pub product_id: ProductId,
    pub number: i64,
    pub state: RevisionState,
    pub content: ProductContent,
    pub submitted_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<AccountId>,
    /// The reviewer's reasons for a rejection.
    pub reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plan as listed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: PlanId,
    pub product_id: ProductId,
    pub name: String,
    pub description: String,
    pub prices: PlanPrices,
    /// Days of free trial, when the plan offers one.
    pub trial_days: Option<u32>,
    pub position: i64,
    /// Sold now (a plan left out of a later version stays for the orders that point at it).
    pub active: bool,
}

/// A revision waiting in the review queue, with what the reviewer needs to see first.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub revision: Revision,
    pub product_state: ProductState,
    pub merchant_account: AccountId,
    pub company_name: String,
}

/// A plan to list when a revision is approved; `id` is kept for existing plans.
#[derive(Debug, Clone)]
pub struct PlanWrite {
    pub id: Option<PlanId>,
    pub name: String,
    pub description: String,
    pub prices: PlanPrices,
    pub trial_days: Option<u32>,
}

pub(crate) const PRODUCT: &str = "p.id, p.merchant_id, p.product_type, p.state, p.signing_key_enc, p.listed_content, p.endpoint_url, \
    p.created_at, p.updated_at, p.listed_at";
const REVISION: &str =
    "r.id, r.product_id, r.number, r.state, r.content, r.submitted_at, r.due_at, r.decided_at, \
    r.decided_by, r.reasons, r.created_at, r.updated_at";
pub(crate) const PLAN: &str = "pl.id, pl.product_id, pl.name, pl.description, pl.currency, pl.monthly_price, pl.yearly_price, \
    pl.position, pl.active, pl.trial_days, pl.one_time_price, pl.dimensions";

pub(crate) fn product(row: &AnyRow) -> Result<Product> {
    Ok(Product {
        id: id(row, "id")?,
        merchant_id: id(row, "merchant_id")?,
        product_type: parsed(row, "product_type")?,
        state: parsed(row, "state")?,
        signing_key_enc: text(row, "signing_key_enc")?,
        listed: opt_json(row, "listed_content")?,
        endpoint_url: opt_text(row, "endpoint_url")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        listed_at: opt_time(row, "listed_at")?,
    })
}

fn revision(row: &AnyRow) -> Result<Revision> {
    Ok(Revision {
        id: id(row, "id")?,
        product_id: id(row, "product_id")?,
        number: int(row, "number")?,
        state: parsed(row, "state")?,
        content: json(row, "content")?,
        submitted_at: opt_time(row, "submitted_at")?,
        due_at: opt_time(row, "due_at")?,
        decided_at: opt_time(row, "decided_at")?,
        decided_by: opt_text(row, "decided_by")?.map(AccountId::from),
        reasons: opt_json(row, "reasons")?.unwrap_or_default(),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(crate) fn plan(row: &AnyRow) -> Result<Plan> {
    let prices = PlanPrices::parse(
        "plan",
        &text(row, "currency")?,
        opt_text(row, "monthly_price")?.as_deref(),
        opt_text(row, "yearly_price")?.as_deref(),
        opt_text(row, "one_time_price")?.as_deref(),
    )?
    .with_metered(
        "plan",
        &opt_json::<Vec<_>>(row, "dimensions")?.unwrap_or_default(),
    )?;
    Ok(Plan {
        id: id(row, "id")?,
        product_id: id(row, "product_id")?,
        name: text(row, "name")?,
        description: text(row, "description")?,
        prices,
        trial_days: opt_int(row, "trial_days")?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| Error::Corrupt("trial_days out of range".into()))?,
        position: int(row, "position")?,
        active: int(row, "active")? == 1,
    })
}

fn content_json(content: &ProductContent) -> Result<String> {
    serde_json::to_string(content).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store {
    /// Creates a never-listed product with its first draft; `seal_signing_key` seals the key for
    /// the new product's id.
    pub async fn create_product(
        &self,
        merchant_id: &MerchantId,
        product_type: ProductType,
        seal_signing_key: impl FnOnce(&ProductId) -> String,
        content: &ProductContent,
        now: DateTime<Utc>,
    ) -> Result<(Product, Revision)> {
        let id: ProductId = fresh(now);
        // Sealed once the id is known: the sealed key is bound to its row.
        let signing_key_enc = seal_signing_key(&id);
        let content = content_json(content)?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO products (id, merchant_id, product_type, state, signing_key_enc, listed_content, endpoint_url, created_at, updated_at, listed_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $6, NULL)")
            .bind(id.as_str())
            .bind(merchant_id.as_str())
            .bind(product_type.as_str())
            .bind(ProductState::Draft.as_str())
            .bind(&signing_key_enc)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO product_revisions (id, product_id, number, state, content, created_at, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $5)")
            .bind(fresh::<RevisionId>(now).as_str())
            .bind(id.as_str())
            .bind(RevisionState::Draft.as_str())
            .bind(&content)
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
    pub async fn product(&self, id: &ProductId) -> Result<Product> {
        sqlx::query(&format!("SELECT {PRODUCT} FROM products p WHERE p.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| product(&r))
            .transpose()?
            .ok_or(Error::NotFound("product"))
    }

    /// The products of `ids` that exist, by id, in one read (ids may repeat).
    pub async fn products_by_id(&self, ids: &[ProductId]) -> Result<HashMap<ProductId, Product>> {
        let select = format!("SELECT {PRODUCT} FROM products p WHERE p.id");
        self.rows_by_id(&select, ids, |r| product(r).map(|p| (p.id.clone(), p)))
            .await
    }

    /// A merchant's products, newest first.
    pub async fn products_of_merchant(&self, merchant_id: &MerchantId) -> Result<Vec<Product>> {
        sqlx::query(&format!(
            "SELECT {PRODUCT} FROM products p WHERE p.merchant_id = $1 ORDER BY p.id DESC"
        ))
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(product)
        .collect()
    }

    /// The newest revision of a product.
    pub async fn latest_revision(&self, product_id: &ProductId) -> Result<Option<Revision>> {
        sqlx::query(&format!("SELECT {REVISION} FROM product_revisions r WHERE r.product_id = $1 ORDER BY r.number DESC LIMIT 1"))
            .bind(product_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| revision(&r))
            .transpose()
    }

    /// One revision by id.
    pub async fn revision(&self, id: &RevisionId) -> Result<Revision> {
        sqlx::query(&format!(
            "SELECT {REVISION} FROM product_revisions r WHERE r.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| revision(&r))
        .transpose()?
        .ok_or(Error::NotFound("revision"))
    }

    /// Every revision of a product, newest first: the merchant's drafts and applications.
    pub async fn revisions(&self, product_id: &ProductId) -> Result<Vec<Revision>> {
        sqlx::query(&format!(
            "SELECT {REVISION} FROM product_revisions r WHERE r.product_id = $1 ORDER BY r.number DESC"
        ))
        .bind(product_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(revision)
        .collect()
    }

    /// Replaces the content of a revision still in `from`, leaving it in `to` (a draft).
    pub async fn update_revision(
        &self,
        id: &RevisionId,
        from: RevisionState,
        to: RevisionState,
        content: &ProductContent,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query("UPDATE product_revisions SET state = $1, content = $2, reasons = NULL, updated_at = $3 WHERE id = $4 AND state = $5")
            .bind(to.as_str())
            .bind(content_json(content)?)
            .bind(ms(now))
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        Ok(())
    }

    /// Opens a new draft revision numbered `number` (a change request to a listed product); a
    /// concurrent request that opened it first makes this [`Error::Stale`].
    pub async fn insert_revision(
        &self,
        product_id: &ProductId,
        number: i64,
        content: &ProductContent,
        now: DateTime<Utc>,
    ) -> Result<Revision> {
        let id: RevisionId = fresh(now);
        sqlx::query("INSERT INTO product_revisions (id, product_id, number, state, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(id.as_str())
            .bind(product_id.as_str())
            .bind(number)
            .bind(RevisionState::Draft.as_str())
            .bind(content_json(content)?)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Duplicate(_) => Error::Stale,
                other => other,
            })?;
        self.revision(&id).await
    }

    /// Moves a revision from `from` to `to` (the review queue), due at `due_at`, provided it was
    /// last edited at `edited_at` (what the caller checked is what is submitted; otherwise
    /// [`Error::Stale`]).
    pub async fn submit_revision(
        &self,
        id: &RevisionId,
        from: RevisionState,
        to: RevisionState,
        edited_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(sqlx::query("UPDATE product_revisions SET state = $1, submitted_at = $2, due_at = $3, updated_at = $2 WHERE id = $4 AND state = $5 AND updated_at = $6")
            .bind(to.as_str())
            .bind(ms(now))
            .bind(ms(due_at))
            .bind(id.as_str())
            .bind(from.as_str())
            .bind(ms(edited_at))
            .execute(&self.pool)
            .await?
            .rows_affected())?;
        Ok(())
    }

    /// Revisions in review, the most urgent (earliest due, so overdue) first.
    pub async fn review_queue(&self, limit: i64) -> Result<Vec<QueueItem>> {
        let rows = sqlx::query(&format!(
            "SELECT {REVISION}, p.state AS product_state, m.account_id AS merchant_account, m.company_name \
             FROM product_revisions r JOIN products p ON p.id = r.product_id JOIN merchants m ON m.id = p.merchant_id \
             WHERE r.state = $1 ORDER BY r.due_at, r.id LIMIT $2"
        ))
        .bind(RevisionState::InReview.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueItem {
                    revision: revision(row)?,
                    product_state: parsed(row, "product_state")?,
                    merchant_account: id(row, "merchant_account")?,
                    company_name: text(row, "company_name")?,
                })
            })
            .collect()
    }

    /// The account behind the merchant that owns a product.
    pub async fn product_owner(&self, product_id: &ProductId) -> Result<AccountId> {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT m.account_id FROM products p JOIN merchants m ON m.id = p.merchant_id WHERE p.id = $1",
        )
        .bind(product_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        owner.map(AccountId::from).ok_or(Error::NotFound("product"))
    }

    /// Rejects a revision still in `from` with the reviewer's reasons.
    pub async fn reject_revision(
        &self,
        id: &RevisionId,
        from: RevisionState,
        to: RevisionState,
        reasons: &[String],
        by: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let detail = reasons.join("; ");
        let reasons = serde_json::to_string(reasons).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query("UPDATE product_revisions SET state = $1, reasons = $2, decided_at = $3, decided_by = $4, updated_at = $3 WHERE id = $5 AND state = $6")
            .bind(to.as_str())
            .bind(reasons)
            .bind(ms(now))
            .bind(by.as_str())
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected())?;
        let product: String =
            sqlx::query_scalar("SELECT product_id FROM product_revisions WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        crate::events::record_decision(
            &mut tx,
            crate::events::Decision {
                account_id: None,
                product_id: Some(&ProductId::from(product)),
                kind: "product.rejected",
                detail,
                actor: by,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Approves a revision still in `from`: its content becomes the listed version and its
    /// plans the listed plans (kept by id; plans left out stop being sold but stay for existing
    /// orders), and the product is listed.
    #[allow(clippy::too_many_arguments)]
    pub async fn approve_revision(
        &self,
        revision: &Revision,
        from: RevisionState,
        to: RevisionState,
        content: &ProductContent,
        plans: &[PlanWrite],
        by: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        crate::changed(sqlx::query("UPDATE product_revisions SET state = $1, decided_at = $2, decided_by = $3, updated_at = $2 WHERE id = $4 AND state = $5")
            .bind(to.as_str())
            .bind(ms(now))
            .bind(by.as_str())
            .bind(revision.id.as_str())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected())?;
        sqlx::query("UPDATE plans SET active = 0 WHERE product_id = $1")
            .bind(revision.product_id.as_str())
            .execute(&mut *tx)
            .await?;
        let mut content = content.clone();
        for (position, p) in plans.iter().enumerate() {
            let price = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
            let drafts: Vec<_> = p.prices.metered.iter().map(|d| d.draft()).collect();
            let dimensions = (!drafts.is_empty())
                .then(|| serde_json::to_string(&drafts))
                .transpose()
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            let updated = match &p.id {
                Some(id) => sqlx::query(
                    "UPDATE plans SET name = $1, description = $2, currency = $3, monthly_price = $4, yearly_price = $5, position = $6, active = 1, \
                     trial_days = $9, one_time_price = $10, dimensions = $11 WHERE id = $7 AND product_id = $8",
                )
                .bind(&p.name)
                .bind(&p.description)
                .bind(p.prices.currency.code())
                .bind(price(p.prices.monthly))
                .bind(price(p.prices.yearly))
                .bind(position as i64)
                .bind(id.as_str())
                .bind(revision.product_id.as_str())
                .bind(p.trial_days.map(i64::from))
                .bind(price(p.prices.one_time))
                .bind(&dimensions)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => 0,
            };
            let id = match (&p.id, updated) {
                (Some(id), 1) => id.clone(),
                _ => {
                    let id: PlanId = fresh(now);
                    sqlx::query(
                        "INSERT INTO plans (id, product_id, name, description, currency, monthly_price, yearly_price, position, active, trial_days, one_time_price, dimensions) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11)",
                    )
                    .bind(id.as_str())
                    .bind(revision.product_id.as_str())
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(p.prices.currency.code())
                    .bind(price(p.prices.monthly))
                    .bind(price(p.prices.yearly))
                    .bind(position as i64)
                    .bind(p.trial_days.map(i64::from))
                    .bind(price(p.prices.one_time))
                    .bind(&dimensions)
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            };
            // The listed content records the plan ids it lists, so the next draft edits them in place.
            if let Some(draft) = content.plans.get_mut(position) {
                draft.id = Some(id.to_string());
            }
        }
        let endpoint = content.endpoint_url.clone();
        let signed_answers = content.signed_answers;
        let protocol = content.protocol;
        let content = content_json(&content)?;
        sqlx::query("UPDATE product_revisions SET content = $1 WHERE id = $2")
            .bind(&content)
            .bind(revision.id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE products SET state = $1, listed_content = $2, endpoint_url = $3, listed_at = $4, updated_at = $4, signed_answers = $6, seller_protocol = $7 WHERE id = $5")
            .bind(ProductState::Listed.as_str())
            .bind(&content)
            .bind(&endpoint)
            .bind(ms(now))
            .bind(revision.product_id.as_str())
            .bind(i64::from(signed_answers))
            .bind(protocol.as_str())
            .execute(&mut *tx)
            .await?;
        crate::events::record_decision(
            &mut tx,
            crate::events::Decision {
                account_id: None,
                product_id: Some(&revision.product_id),
                kind: "product.approved",
                detail: format!("revision {}", revision.number),
                actor: by,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a product's sealed signing key.
    pub async fn set_signing_key(
        &self,
        id: &ProductId,
        signing_key_enc: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(
            sqlx::query("UPDATE products SET signing_key_enc = $1, updated_at = $2 WHERE id = $3")
                .bind(signing_key_enc)
                .bind(ms(now))
                .bind(id.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Records the outcome of a product's endpoint check of what `fingerprint` names: a pass is
    /// remembered; a failure forgets a pass of that same fingerprint only, so a slow check of
    /// an old endpoint cannot undo a newer pass.
    pub async fn record_endpoint_check(
        &self,
        id: &ProductId,
        fingerprint: &str,
        passed: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if passed {
            sqlx::query(
                "INSERT INTO endpoint_checks (product_id, fingerprint, checked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (product_id) DO UPDATE SET fingerprint = excluded.fingerprint, checked_at = excluded.checked_at",
            )
            .bind(id.as_str())
            .bind(fingerprint)
            .bind(ms(now))
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query("DELETE FROM endpoint_checks WHERE product_id = $1 AND fingerprint = $2")
                .bind(id.as_str())
                .bind(fingerprint)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The fingerprint and time of a product's last passing endpoint check, if it has one.
    pub async fn endpoint_check(&self, id: &ProductId) -> Result<Option<(String, DateTime<Utc>)>> {
        sqlx::query("SELECT fingerprint, checked_at FROM endpoint_checks WHERE product_id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Ok((text(&row, "fingerprint")?, time(&row, "checked_at")?)))
            .transpose()
    }

    /// Moves a product from `from` to `to` (delisting).
    pub async fn set_product_state(
        &self,
        id: &ProductId,
        from: ProductState,
        to: ProductState,
        now: DateTime<Utc>,
    ) -> Result<()> {
        crate::changed(
            sqlx::query(
                "UPDATE products SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
            )
            .bind(to.as_str())
            .bind(ms(now))
            .bind(id.as_str())
            .bind(from.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected(),
        )?;
        Ok(())
    }

    /// A plan with its product and the product's promotions not ended by `now` (running or to
    /// come, by start), in one read: what an order needs to price itself.
    pub async fn plan_with_product(
        &self,
        plan_id: &PlanId,
        now: DateTime<Utc>,
    ) -> Result<(Plan, Product, Vec<Promotion>)> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN}, p.merchant_id, p.product_type, p.state, p.signing_key_enc, p.listed_content, p.endpoint_url, \
             p.created_at, p.updated_at, p.listed_at, pr.id AS pr_id, pr.percent_off AS pr_percent_off, \
             pr.period AS pr_period, pr.starts_at AS pr_starts_at, pr.ends_at AS pr_ends_at \
             FROM plans pl JOIN products p ON p.id = pl.product_id \
             LEFT JOIN promotions pr ON pr.product_id = p.id AND pr.ends_at > $2 \
             WHERE pl.id = $1 ORDER BY pr.starts_at, pr.id"
        ))
        .bind(plan_id.as_str())
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        let row = rows.first().ok_or(Error::NotFound("plan"))?;
        let plan = plan(row)?;
        // The row's `id` is the plan's; its other product columns are the product's.
        let product = Product {
            id: plan.product_id.clone(),
            ..product(row)?
        };
        let mut promotions = Vec::new();
        for row in &rows {
            if opt_text(row, "pr_id")?.is_some() {
                promotions.push(crate::promotions::terms(row, "pr_")?);
            }
        }
        Ok((plan, product, promotions))
    }

    /// The plans of `ids` that exist, by id, in one read (ids may repeat).
    pub async fn plans_by_id(&self, ids: &[PlanId]) -> Result<HashMap<PlanId, Plan>> {
        let select = format!("SELECT {PLAN} FROM plans pl WHERE pl.id");
        self.rows_by_id(&select, ids, |r| plan(r).map(|p| (p.id.clone(), p)))
            .await
    }

    /// `select` (ending in the id column it filters on) for the distinct `ids`, each row read
    /// with `read`, in one statement.
    async fn rows_by_id<I, T>(
        &self,
        select: &str,
        ids: &[I],
        read: impl Fn(&AnyRow) -> Result<(I, T)>,
    ) -> Result<HashMap<I, T>>
    where
        I: Clone + Eq + std::hash::Hash + AsRef<str>,
    {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<&I> = ids.iter().filter(|i| seen.insert(*i)).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!("{select} IN ({})", crate::placeholders(1, ids.len()));
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.as_ref());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(read)
            .collect()
    }

    /// One plan by id.
    pub async fn plan(&self, id: &PlanId) -> Result<Plan> {
        sqlx::query(&format!("SELECT {PLAN} FROM plans pl WHERE pl.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| plan(&r))
            .transpose()?
            .ok_or(Error::NotFound("plan"))
    }
}
