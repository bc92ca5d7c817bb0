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
