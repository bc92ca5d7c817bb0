//! The older V1 protocol, for products whose seller still speaks it. The same lifecycle calls
//! travel as the URL query of a GET (every value a string, URL-encoded), dated by `timeStamp`
//! (`yyyyMMddHHmmssSSS`, UTC) and signed by `authToken`:
//!
//! `authToken = base64(HMAC-SHA256(key = accessKey + timeStamp, message = k1=v1&k2=v2&…))` over
//! every parameter but `authToken`, sorted by name, values decoded.
//!
//! `newInstance` carries the subscription's terms itself (buyer, product, SKU, period, trial),
//! freezing is `expireInstance`, a plan change is `upgrade`, and the seller must sign every answer
//! (`Body-Sign`, see [`crate::signature::body_sign`]).

use crate::activity::{Activity, RefreshScene, StatusChange};
use crate::Error;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// How far a `timeStamp` may be from the seller's clock.
pub const TIME_STAMP_WINDOW_MS: i64 = 60_000;

/// `timeStamp` for an instant: `yyyyMMddHHmmssSSS` in UTC.
pub fn time_stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H%M%S%3f").to_string()
}

/// What a V1 `newInstance` tells the seller about the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The buyer's account id and name.
    pub customer_id: String,
    pub customer_name: String,
    pub product_id: String,
    /// The plan bought.
    pub sku_code: String,
    /// `month`, `year`, `once` or `on_demand`.
    pub period_type: String,
    pub period_number: String,
    pub trial: bool,
    /// `yyyyMMddHHmmss`, UTC.
    pub expire_time: String,
}

/// The message `authToken` signs: every parameter but `authToken`, sorted, `k=v` joined by `&`.
pub fn message(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "authToken")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn mac(access_key: &str, time_stamp: &str, message: &str) -> [u8; 32] {
    let mut key = access_key.as_bytes().to_vec();
    key.extend_from_slice(time_stamp.as_bytes());
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
    m.update(message.as_bytes());
    m.finalize().into_bytes().into()
}

/// The `authToken` of `params` (which must hold `timeStamp`).
pub fn auth_token(access_key: &str, params: &BTreeMap<String, String>) -> String {
    let ts = params.get("timeStamp").map(String::as_str).unwrap_or("");
    base64::engine::general_purpose::STANDARD.encode(mac(access_key, ts, &message(params)))
}

/// The parameters of a call: the activity's fields (V1 names), `testFlag`, `timeStamp`, and for
/// `newInstance` the subscription's `terms`; without `authToken`.
pub fn params(
    activity: &Activity,
    test: bool,
    terms: Option<&Terms>,
    time_stamp: &str,
) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        m.insert(k.to_owned(), v.to_owned());
    };
    put("testFlag", if test { "1" } else { "0" });
    put("timeStamp", time_stamp);
    match activity {
        Activity::NewInstance {
            order_id,
            order_line_id,
            business_id,
        } => {
            put("activity", "newInstance");
            put("orderId", order_id);
            put("orderLineId", order_line_id);
            put("businessId", business_id);
            if let Some(t) = terms {
                put("customerId", &t.customer_id);
                put("customerName", &t.customer_name);
                put("productId", &t.product_id);
                put("skuCode", &t.sku_code);
                put("periodType", &t.period_type);
                put("periodNumber", &t.period_number);
                put("trialFlag", if t.trial { "1" } else { "0" });
                put("expireTime", &t.expire_time);
            }
        }
        Activity::QueryInstance { instance_ids } => {
            put("activity", "queryInstance");
            put("instanceId", &instance_ids.join(","));
        }
        Activity::RefreshInstance {
            instance_id,
            order_id,
            order_line_id,
            product_id,
            expire_time,
            scene,
        } => {
            put("activity", "refreshInstance");
            put("instanceId", instance_id);
            put("orderId", order_id);
            put("orderLineId", order_line_id);
            put("productId", product_id);
            put("expireTime", expire_time);
            put(
                "trialToFormal",
                if *scene == RefreshScene::TrialToFormal {
                    "1"
                } else {
                    "0"
                },
            );
        }
        Activity::UpdateInstanceStatus {
            instance_id,
            status: StatusChange::Freeze,
        } => {
            put("activity", "expireInstance");
            put("instanceId", instance_id);
        }
        Activity::UpdateInstanceStatus {
            instance_id,
            status: StatusChange::Unfreeze,
        } => {
            put("activity", "updateInstanceStatus");
            put("instanceId", instance_id);
            put("instanceStatus", "UNFREEZE");
        }
        Activity::ReleaseInstance {
            instance_id,
            order_id,
            order_line_id,
        } => {
            put("activity", "releaseInstance");
            put("instanceId", instance_id);
            put("orderId", order_id);
            put("orderLineId", order_line_id);
        }
        Activity::UpgradeInstance {
            instance_id,
            order_id,
            order_line_id,
            product_id,
        } => {
            put("activity", "upgrade");
            put("instanceId", instance_id);
            put("orderId", order_id);
            put("orderLineId", order_line_id);
            put("productId", product_id);
        }
    }
    m
}

/// The signed query string of `params`: each value URL-encoded, `authToken` last.
pub fn signed_query(access_key: &str, params: &BTreeMap<String, String>) -> String {
    let token = auth_token(access_key, params);
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.append_pair("authToken", &token);
    q.finish()
}

/// Appends a signed query to an endpoint URL that may already carry one.
pub fn signed_url(endpoint: &str, access_key: &str, params: &BTreeMap<String, String>) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", signed_query(access_key, params))
}

/// Reads a query string as a seller receives it (values URL-decoded).
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Checks a call as a seller receives it: `timeStamp` within [`TIME_STAMP_WINDOW_MS`] of `now`,
/// and `authToken` made with one of `keys` (compared in constant time).
pub fn verify(
    keys: &[&str],
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ts = params.get("timeStamp").ok_or(Error::StaleTimestamp)?;
    let at = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S%3f")
        .map_err(|_| Error::StaleTimestamp)?
        .and_utc();
    if ts.len() != 17 || (now - at).num_milliseconds().abs() > TIME_STAMP_WINDOW_MS {
        return Err(Error::StaleTimestamp);
    }
    let given = params
        .get("authToken")
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .ok_or(Error::BadSignature)?;
    let message = message(params);
    if keys
        .iter()
        .any(|k| bool::from(mac(k, ts, &message).as_slice().ct_eq(&given)))
    {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// Reads the activity of verified parameters, as a seller does; returns it with whether it is a
/// test call. `expireInstance` reads as a freeze, `upgrade` as a plan change.
pub fn parse(params: &BTreeMap<String, String>) -> Result<(Activity, bool), Error> {
    let get = |k: &str| -> Result<String, Error> {
        params
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| Error::InvalidParameter(k.to_owned()))
    };
    let opt = |k: &str| params.get(k).cloned().unwrap_or_default();
    let test = params.get("testFlag").is_some_and(|f| f == "1");
    let activity = match get("activity")?.as_str() {
        "newInstance" => Activity::NewInstance {
            order_id: get("orderId")?,
            order_line_id: opt("orderLineId"),
            business_id: get("businessId")?,
        },
        "queryInstance" => Activity::QueryInstance {
            instance_ids: crate::activity::instance_ids(&get("instanceId")?)?,
        },
        "refreshInstance" => Activity::RefreshInstance {
            instance_id: get("instanceId")?,
            order_id: get("orderId")?,
            order_line_id: opt("orderLineId"),
            product_id: opt("productId"),
            expire_time: get("expireTime")?,
            scene: if opt("trialToFormal") == "1" {
                RefreshScene::TrialToFormal
            } else {
                RefreshScene::Renewal
            },
        },
        "expireInstance" => Activity::UpdateInstanceStatus {
            instance_id: get("instanceId")?,
            status: StatusChange::Freeze,
        },
        "updateInstanceStatus" => Activity::UpdateInstanceStatus {
            instance_id: get("instanceId")?,
            status: match get("instanceStatus")?.as_str() {
                "UNFREEZE" => StatusChange::Unfreeze,
                "FREEZE" => StatusChange::Freeze,
                _ => return Err(Error::InvalidParameter("instanceStatus".into())),
            },
        },
        "releaseInstance" => Activity::ReleaseInstance {
            instance_id: get("instanceId")?,
            order_id: opt("orderId"),
            order_line_id: opt("orderLineId"),
        },
        "upgrade" => Activity::UpgradeInstance {
            instance_id: get("instanceId")?,
            order_id: get("orderId")?,
            order_line_id: opt("orderLineId"),
            product_id: opt("productId"),
        },
        _ => return Err(Error::InvalidParameter("activity".into())),
    };
    Ok((activity, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Vector {
        access_key: String,
        params: BTreeMap<String, String>,
        message: String,
        auth_token: String,
    }

    /// The JDK-computed vectors (protocol-vectors.json, `v1AuthToken`).
    #[test]
    fn auth_tokens_match_the_jdk() {
        let all: serde_json::Value =
            serde_json::from_str(include_str!("../tests/protocol-vectors.json")).unwrap();
        let vectors: Vec<Vector> = serde_json::from_value(all["v1AuthToken"].clone()).unwrap();
        assert_eq!(vectors.len(), 2);
        for v in vectors {
            assert_eq!(message(&v.params), v.message);
            assert_eq!(auth_token(&v.access_key, &v.params), v.auth_token);
            // As the seller receives it: through the URL and back, then verified.
            let query = signed_query(&v.access_key, &v.params);
            let got = parse_query(&query);
            let at = NaiveDateTime::parse_from_str(&v.params["timeStamp"], "%Y%m%d%H%M%S%3f")
                .unwrap()
                .and_utc();
            assert_eq!(verify(&["old", &v.access_key], &got, at), Ok(()));
            assert_eq!(verify(&["another"], &got, at), Err(Error::BadSignature));
            assert_eq!(
                verify(&[&v.access_key], &got, at + chrono::Duration::seconds(61)),
                Err(Error::StaleTimestamp)
            );
            let mut tampered = got.clone();
            tampered.insert("orderId".into(), "CS-other".into());
            assert_eq!(
                verify(&[&v.access_key], &tampered, at),
                Err(Error::BadSignature)
            );
        }
    }

    #[test]
    fn every_lifecycle_call_reads_back_as_sent() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T12:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time_stamp(at), "20261129120000123");
        let terms = Terms {
            customer_id: "acc_1".into(),
            customer_name: "Northwind Ltd & Co".into(),
            product_id: "prd_1".into(),
            sku_code: "pln_1".into(),
            period_type: "month".into(),
            period_number: "3".into(),
            trial: false,
            expire_time: "20270301000000".into(),
        };
        let calls = [
            Activity::NewInstance {
                order_id: "ord_1".into(),
                order_line_id: "ord_1-000001".into(),
                business_id: "ins_1".into(),
            },
            Activity::QueryInstance {
                instance_ids: vec!["s-1".into(), "s-2".into()],
            },
            Activity::RefreshInstance {
                instance_id: "s-1".into(),
                order_id: "ord_2".into(),
                order_line_id: "ord_2-000001".into(),
                product_id: "prd_1".into(),
                expire_time: "20270401000000".into(),
                scene: RefreshScene::TrialToFormal,
            },
            Activity::UpdateInstanceStatus {
                instance_id: "s-1".into(),
                status: StatusChange::Freeze,
            },
            Activity::UpdateInstanceStatus {
                instance_id: "s-1".into(),
                status: StatusChange::Unfreeze,
            },
            Activity::ReleaseInstance {
                instance_id: "s-1".into(),
                order_id: "ord_1".into(),
                order_line_id: "ord_1-000001".into(),
            },
            Activity::UpgradeInstance {
                instance_id: "s-1".into(),
                order_id: "ord_3".into(),
                order_line_id: "ord_3-000001".into(),
                product_id: "prd_1".into(),
            },
        ];
        for (i, call) in calls.iter().enumerate() {
            let p = params(call, i % 2 == 0, Some(&terms), &time_stamp(at));
            let received = parse_query(&signed_query("k", &p));
            assert_eq!(verify(&["k"], &received, at), Ok(()), "{call:?}");
            assert_eq!(parse(&received), Ok((call.clone(), i % 2 == 0)));
        }
        let new = params(&calls[0], false, Some(&terms), "20261129120000123");
        assert_eq!(new["customerName"], "Northwind Ltd & Co");
        assert_eq!(new["trialFlag"], "0");
        assert_eq!(
            params(&calls[3], false, None, "x")["activity"],
            "expireInstance"
        );
        assert_eq!(params(&calls[6], false, None, "x")["activity"], "upgrade");
    }
}
