//! The order query at the path KooGallery's sellers already call after `newInstance`, answered
//! in the shape they already parse, so a seller moving to souk changes only the host. Failures are
//! problem+json, like every other souk answer. souk's own API has the same data at
//! `GET /v1/seller/orders/{order_id}`.

use crate::app::sales::{self, SoldOrder};
use crate::app::Caller;
use crate::error::{AppError, AppResult};
use crate::SharedState;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

/// Where sellers call it.
pub const PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

/// `GET …/order/query?orderId=…[&orderLineId=…]`, signed with an access key under the
/// `seller_operations` or `full_access` policy (a session of the merchant works too).
pub async fn query(
    State(state): State<SharedState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<Value>> {
    let params: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let order_id = param("orderId")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AppError::invalid("orderId", "is required"))?;
    if order_id.len() > 64 {
        return Err(AppError::invalid("orderId", "has at most 64 characters"));
    }
    let sold = sales::sold_order(&state, &caller, order_id, param("orderLineId")).await?;
    Ok(Json(answer(&sold)))
}

/// Times as KooGallery's order query writes them: `yyyyMMddHHmmss`, UTC.
fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

fn answer(s: &SoldOrder) -> Value {
    let o = &s.order;
    json!({
        "resultCode": "MKT.0000",
        "resultMsg": "Success.",
        "orderInfo": {
            "orderId": o.id.as_str(),
            "orderType": match o.kind {
                souk_core::orders::OrderKind::New => "NEW",
                souk_core::orders::OrderKind::Renew => "RENEW",
                souk_core::orders::OrderKind::Trial => "NEW",
                souk_core::orders::OrderKind::Convert => "TRIAL_TO_FORMAL",
                souk_core::orders::OrderKind::Change => "CHANGE",
            },
            "createTime": time(&o.created_at),
            "customerId": o.buyer_id.as_str(),
            "customerName": s.buyer_name,
            "orderAmount": o.amount.amount_string(),
            "currency": o.amount.currency.code(),
            "orderLineList": [{
                "orderLineId": s.order_line_id,
                "chargingMode": match o.period {
                    souk_core::plans::Period::Once => "ONE_TIME",
                    souk_core::plans::Period::OnDemand => "ON_DEMAND",
                    souk_core::plans::Period::Month | souk_core::plans::Period::Year => "PERIOD",
                },
                "periodType": o.period.as_str(),
                "periodNumber": o.periods,
                "expireTime": time(&s.expires_at),
                "isTrial": o.kind == souk_core::orders::OrderKind::Trial,
                "productInfo": [{
                    "productId": o.product_id.as_str(),
                    "skuCode": o.plan_id.as_str(),
                    "productName": s.product_name,
                    "skuName": s.plan_name,
                    "linearValue": 1,
                }],
                "extendParams": [],
            }],
        },
    })
}
