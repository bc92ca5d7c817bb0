//! What the catalog reads: every listed product with its plans, in two queries.

use crate::products::{PlanRow, ProductRow};
use crate::{Result, Store};
use std::collections::HashMap;

/// A listed product with the merchant's public name and its active plans.
#[derive(Debug, Clone)]
pub struct ListedProduct {
    pub product: ProductRow,
    pub company_name: String,
    pub plans: Vec<PlanRow>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    product: ProductRow,
    company_name: String,
}

impl Store {
    /// Every listed product, oldest listing first; the server caches this in memory.
    pub async fn listed_products(&self) -> Result<Vec<ListedProduct>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id, p.merchant_id, p.product_type, p.state, p.signing_key_enc, p.listed_content, p.endpoint_url, \
             p.created_at, p.updated_at, p.listed_at, m.company_name \
             FROM products p JOIN merchants m ON m.id = p.merchant_id WHERE p.state = 'listed' ORDER BY p.listed_at, p.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let plans: Vec<PlanRow> = sqlx::query_as(
            "SELECT pl.id, pl.product_id, pl.name, pl.description, pl.currency, pl.monthly_price, pl.yearly_price, pl.position, pl.active \
             FROM plans pl JOIN products p ON p.id = pl.product_id WHERE p.state = 'listed' AND pl.active = 1 ORDER BY pl.product_id, pl.position",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_product: HashMap<String, Vec<PlanRow>> = HashMap::new();
        for plan in plans {
            by_product
                .entry(plan.product_id.clone())
                .or_default()
                .push(plan);
        }
        Ok(rows
            .into_iter()
            .map(|r| ListedProduct {
                plans: by_product.remove(&r.product.id).unwrap_or_default(),
                company_name: r.company_name,
                product: r.product,
            })
            .collect())
    }
}
