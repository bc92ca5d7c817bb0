//! What a merchant sold: the orders and instances of its own products, with the seller calls
//! souk made for each and what the seller answered, so a seller can see why a call failed.

use super::jobs::JobDetails;
use super::{merchants, Caller, Page, PageRequest};
use crate::error::AppResult;
use crate::AppState;
use souk_store::instances::Instance;
use souk_store::orders::Order;

/// An instance of one of the merchant's products, with its recent seller calls.
#[derive(Debug, Clone)]
pub struct Sale {
    pub instance: Instance,
    pub product_name: String,
    /// The newest calls first, each with its attempts.
    pub calls: Vec<JobDetails>,
}

/// The orders of the merchant's products, newest first.
pub async fn orders(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<Order>> {
    let merchant = merchants::approved(state, caller).await?;
    let size = page.size()?;
    let rows = state
        .store
        .orders_of_merchant(&merchant.id, page.cursor.as_deref(), size + 1)
        .await?;
    Ok(page.page(rows, size, |o| o.id.as_str()))
}

/// The instances of the merchant's products, newest first, with their recent seller calls.
pub async fn instances(
    state: &AppState,
    caller: &Caller,
    page: PageRequest,
) -> AppResult<Page<Sale>> {
    let merchant = merchants::approved(state, caller).await?;
    let size = page.size()?;
    let rows = state
        .store
        .instances_of_merchant(&merchant.id, page.cursor.as_deref(), size + 1)
        .await?;
    let page = page.page(rows, size, |i| i.id.as_str());
    let mut items = Vec::with_capacity(page.items.len());
    for instance in page.items {
        let product = state.store.product(&instance.product_id).await?;
        let mut calls = Vec::new();
        for job in state.store.jobs_of_instance(&instance.id, 5).await? {
            let attempts = state.store.job_attempts(&job.id).await?;
            calls.push(JobDetails { job, attempts });
        }
        items.push(Sale {
            product_name: product.listed_name().to_owned(),
            instance,
            calls,
        });
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// One order of the merchant's products with what a seller needs to provision it: the buyer, the
/// product and plan bought, and the instance's expiry.
#[derive(Debug, Clone)]
pub struct SoldOrder {
    pub order: Order,
    /// The single line souk's orders have: `{order id}-000001`, as in `newInstance`.
    pub order_line_id: String,
    pub buyer_name: String,
    pub product_name: String,
    pub plan_name: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The line id souk gives the one line of `order` in seller calls.
pub fn order_line_id(order: &souk_core::ids::OrderId) -> String {
    format!("{order}-000001")
}

/// One order of the merchant's products (the order query sellers make after `newInstance`); an
/// order of another merchant is not found, as is a line the order does not have.
pub async fn sold_order(
    state: &AppState,
    caller: &Caller,
    order_id: &str,
    order_line_id_asked: Option<&str>,
) -> AppResult<SoldOrder> {
    let merchant = merchants::approved(state, caller).await?;
    let not_found = || crate::error::AppError::NotFound("order".into());
    let order = match state.store.order(&order_id.into()).await {
        Ok(o) if o.merchant_id == merchant.id => o,
        Ok(_) | Err(souk_store::Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let line = order_line_id(&order.id);
    if order_line_id_asked.is_some_and(|asked| asked != line) {
        return Err(crate::error::AppError::NotFound("order line".into()));
    }
    let buyer = state.store.account(&order.buyer_id).await?;
    let product = state.store.product(&order.product_id).await?;
    let plan = state.store.plan(&order.plan_id).await?;
    let instance = state.store.instance(&order.instance_id).await?;
    Ok(SoldOrder {
        order_line_id: line,
        buyer_name: buyer.name,
        product_name: product.listed_name().to_owned(),
        plan_name: plan.name,
        expires_at: instance.expires_at,
        order,
    })
}
