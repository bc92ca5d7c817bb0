//! What a merchant sold: the orders and instances of its own products, with the seller calls
//! souk made for each and what the seller answered, so a seller can see why a call failed.

use super::jobs::JobDetails;
use super::{merchants, Caller, Page, PageRequest};
use crate::error::{AppError, AppResult};
use crate::AppState;
use souk_core::ids::{Id as _, InstanceId, OrderId};
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
        .orders_of_merchant(&merchant.id, page.after(OrderId::PREFIX)?, size + 1)
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
        .instances_of_merchant(&merchant.id, page.after(InstanceId::PREFIX)?, size + 1)
        .await?;
    let page = page.page(rows, size, |i| i.id.as_str());
    // A page is read in four statements whatever its length: instances, products, calls, attempts.
    let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
    let mut jobs = state.store.recent_jobs_of_instances(&ids, 5).await?;
    let job_ids: Vec<_> = jobs.values().flatten().map(|j| j.id.clone()).collect();
    let mut attempts = state.store.attempts_of_jobs(&job_ids).await?;
    let product_ids: Vec<_> = page.items.iter().map(|i| i.product_id.clone()).collect();
    let products = state.store.products_by_id(&product_ids).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for instance in page.items {
        let product = products
            .get(&instance.product_id)
            .ok_or_else(|| AppError::Internal(format!("no product for {}", instance.id)))?;
        let calls = jobs
            .remove(&instance.id)
            .unwrap_or_default()
            .into_iter()
            .map(|job| JobDetails {
                attempts: attempts.remove(&job.id).unwrap_or_default(),
                job,
            })
            .collect();
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

/// Access data a seller gives for one of its instances; what is left out stays as it was.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessInput {
    /// Where users sign in (http or https).
    pub front_end_url: Option<String>,
    /// Where the buyer administers the instance (http or https).
    pub admin_url: Option<String>,
    /// The first user's name.
    #[schema(max_length = 128)]
    pub user_name: Option<String>,
    /// The first user's password, in clear: souk seals it at rest and shows it only to the buyer.
    #[schema(max_length = 256)]
    pub password: Option<String>,
}

/// Replaces parts of an instance's access data at the seller's request (the seller changed an
/// address or reset the first user's password); on the instance's timeline. Not for an instance
/// that failed or was released.
pub async fn update_access(
    state: &AppState,
    caller: &Caller,
    instance_id: &str,
    input: AccessInput,
) -> AppResult<()> {
    use crate::error::AppError;
    use souk_core::lifecycle::InstanceState;
    let merchant = merchants::approved(state, caller).await?;
    let url = |field: &str, v: &Option<String>| -> AppResult<Option<String>> {
        v.as_deref()
            .map(|v| souk_core::validate::url(field, v, false, true))
            .transpose()
            .map_err(Into::into)
    };
    let front_end_url = url("front_end_url", &input.front_end_url)?;
    let admin_url = url("admin_url", &input.admin_url)?;
    let user_name = input
        .user_name
        .as_deref()
        .map(|v| souk_core::validate::text("user_name", v, 128))
        .transpose()?;
    let password = match input.password {
        Some(p) if p.is_empty() || p.chars().count() > 256 || p.chars().any(char::is_control) => {
            return Err(AppError::invalid(
                "password",
                "must be 1 to 256 characters without control characters",
            ))
        }
        other => other,
    };
    if front_end_url.is_none() && admin_url.is_none() && user_name.is_none() && password.is_none() {
        return Err(AppError::invalid(
            "front_end_url",
            "give at least one field",
        ));
    }
    // Read, merge, and write only over what was read: a concurrent update makes the write miss,
    // and the merge is done again on the newer value.
    for _ in 0..5 {
        let instance = match state.store.instance(&instance_id.into()).await {
            Ok(i) if i.merchant_id == merchant.id => i,
            Ok(_) | Err(souk_store::Error::NotFound(_)) => {
                return Err(AppError::NotFound("instance".into()))
            }
            Err(e) => return Err(e.into()),
        };
        if matches!(
            instance.state,
            InstanceState::Failed | InstanceState::Released
        ) {
            return Err(AppError::Refused(souk_core::Refused {
                state: instance.state.as_str().into(),
                event: "update the access data".into(),
            }));
        }
        let aad = crate::crypto::instance_access_aad(instance.id.as_str());
        let mut info: souk_protocol::AppInfo = match &instance.access_enc {
            Some(enc) => serde_json::from_str(&state.secrets.open(&aad, enc)?)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            None => Default::default(),
        };
        info.front_end_url = front_end_url.clone().or(info.front_end_url);
        info.admin_url = admin_url.clone().or(info.admin_url);
        info.user_name = user_name.clone().or(info.user_name);
        info.password = password.clone().or(info.password);
        let sealed = state.secrets.seal(
            &aad,
            &serde_json::to_string(&info).map_err(|e| AppError::Internal(e.to_string()))?,
        );
        let event = souk_store::events::NewEvent {
            order_id: None,
            instance_id: Some(&instance.id),
            kind: "seller.access_updated",
            detail: "the seller updated the access data".into(),
            actor: Some(caller.id()),
        };
        if state
            .store
            .replace_access(
                &instance.id,
                instance.access_enc.as_deref(),
                &sealed,
                event,
                state.now(),
            )
            .await?
        {
            return Ok(());
        }
    }
    Err(AppError::Stale)
}
