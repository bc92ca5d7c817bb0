//! What the catalog reads: every listed product with its plans, in two queries.

use crate::decode::text;
use crate::products::{plan, product, Plan, Product, PLAN};
use crate::{Result, Store};
use souk_core::review::ProductState;
use std::collections::HashMap;

/// A listed product with the merchant's public name and its active plans.
#[derive(Debug, Clone)]
pub struct ListedProduct {
    pub product: Product,
    pub company_name: String,
    pub plans: Vec<Plan>,
}

impl Store {
    /// Every listed product, oldest listing first; the server caches this in memory.
    pub async fn listed_products(&self) -> Result<Vec<ListedProduct>> {
        let rows = sqlx::query(
            "SELECT p.id, p.merchant_id, p.product_type, p.state, p.signing_key_enc, p.listed_content, p.endpoint_url, \
             p.created_at, p.updated_at, p.listed_at, m.company_name \
             FROM products p JOIN merchants m ON m.id = p.merchant_id WHERE p.state = $1 ORDER BY p.listed_at, p.id",
        )
        .bind(ProductState::Listed.as_str())
        .fetch_all(&self.pool)
        .await?;
        let plan_rows = sqlx::query(&format!(
            "SELECT {PLAN} FROM plans pl JOIN products p ON p.id = pl.product_id \
             WHERE p.state = $1 AND pl.active = 1 ORDER BY pl.product_id, pl.position"
        ))
        .bind(ProductState::Listed.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut by_product: HashMap<String, Vec<Plan>> = HashMap::new();
        for row in &plan_rows {
            let plan = plan(row)?;
            by_product
                .entry(plan.product_id.to_string())
                .or_default()
                .push(plan);
        }
        rows.iter()
            .map(|row| {
                let product = product(row)?;
                Ok(ListedProduct {
                    plans: by_product.remove(product.id.as_str()).unwrap_or_default(),
                    company_name: text(row, "company_name")?,
                    product,
                })
            })
            .collect()
    }
}
