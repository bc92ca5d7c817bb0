//! The calls souk makes to a seller's endpoint and the answers it accepts.
//!
//! Bodies are compact JSON objects whose keys are sorted and whose values are all strings, so a
//! seller that hashes the bytes as received and one that re-serialises the parsed body with sorted
//! keys compute the same signature.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `updateInstanceStatus`'s `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// `FREEZE`: stop serving the buyer, keep the data.
    Freeze,
    /// `UNFREEZE`: serve the buyer again.
    Unfreeze,
}

impl StatusChange {
    fn wire(self) -> &'static str {
        match self {
            StatusChange::Freeze => "FREEZE",
            StatusChange::Unfreeze => "UNFREEZE",
        }
    }
}

/// `refreshInstance`'s `scene`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshScene {
    /// A trial became a paid subscription.
    TrialToFormal,
    /// The subscription was renewed.
    Renewal,
    /// Renewal periods were unsubscribed.
    UnsubscribeRenewalPeriod,
}

impl RefreshScene {
    fn wire(self) -> &'static str {
        match self {
            RefreshScene::TrialToFormal => "TRIAL_TO_FORMAL",
            RefreshScene::Renewal => "RENEWAL",
            RefreshScene::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
        }
    }
}

/// One call to a seller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// Create an instance for a paid order; `business_id` makes a repeat harmless.
    NewInstance {
        order_id: String,
        order_line_id: String,
        business_id: String,
    },
    /// Ask for the access data of up to 100 instances.
    QueryInstance { instance_ids: Vec<String> },
    /// The expiry changed.
    RefreshInstance {
        instance_id: String,
        order_id: String,
        order_line_id: String,
        product_id: String,
        /// `yyyyMMddHHmmss`, UTC.
        expire_time: String,
        scene: RefreshScene,
    },
    /// Freeze or unfreeze.
    UpdateInstanceStatus {
        instance_id: String,
        status: StatusChange,
    },
    /// Release for good.
    ReleaseInstance {
        instance_id: String,
        order_id: String,
        order_line_id: String,
    },
    /// The plan changed within the product.
    UpgradeInstance {
        instance_id: String,
        order_id: String,
        order_line_id: String,
        product_id: String,
    },
}

impl Activity {
    /// The `activity` value.
    pub fn name(&self) -> &'static str {
        match self {
            Activity::NewInstance { .. } => "newInstance",
            Activity::QueryInstance { .. } => "queryInstance",
            Activity::RefreshInstance { .. } => "refreshInstance",
            Activity::UpdateInstanceStatus { .. } => "updateInstanceStatus",
            Activity::ReleaseInstance { .. } => "releaseInstance",
            Activity::UpgradeInstance { .. } => "upgradeInstance",
        }
    }

    /// The fields of the body, sorted; `test` sets `testFlag` to `"1"`.
    pub fn fields(&self, test: bool) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("activity", self.name().to_owned());
        m.insert("testFlag", if test { "1" } else { "0" }.to_owned());
        match self {
            Activity::NewInstance {
                order_id,
                order_line_id,
                business_id,
            } => {
                m.insert("orderId", order_id.clone());
                m.insert("orderLineId", order_line_id.clone());
                m.insert("businessId", business_id.clone());
            }
            Activity::QueryInstance { instance_ids } => {
                m.insert("instanceId", instance_ids.join(","));
            }
            Activity::RefreshInstance {
                instance_id,
                order_id,
                order_line_id,
                product_id,
                expire_time,
                scene,
            } => {
                m.insert("instanceId", instance_id.clone());
                m.insert("orderId", order_id.clone());
                m.insert("orderLineId", order_line_id.clone());
                m.insert("productId", product_id.clone());
                m.insert("expireTime", expire_time.clone());
                m.insert("scene", scene.wire().to_owned());
            }
            Activity::UpdateInstanceStatus {
                instance_id,
                status,
            } => {
                m.insert("instanceId", instance_id.clone());
                m.insert("status", status.wire().to_owned());
            }
            Activity::ReleaseInstance {
                instance_id,
                order_id,
                order_line_id,
            } => {
                m.insert("instanceId", instance_id.clone());
                m.insert("orderId", order_id.clone());
                m.insert("orderLineId", order_line_id.clone());
            }
            Activity::UpgradeInstance {
                instance_id,
                order_id,
                order_line_id,
                product_id,
            } => {
                m.insert("instanceId", instance_id.clone());
                m.insert("orderId", order_id.clone());
                m.insert("orderLineId", order_line_id.clone());
                m.insert("productId", product_id.clone());
            }
        }
        m
    }

    /// The exact body bytes souk sends: compact, sorted keys, string values.
    pub fn body(&self, test: bool) -> Vec<u8> {
        serde_json::to_vec(&self.fields(test)).expect("a map of strings always serialises")
    }

    /// Reads a body as a seller receives it; returns the activity and whether it is a test call.
    pub fn parse(body: &[u8]) -> Result<(Activity, bool), Error> {
        let map: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|_| Error::InvalidParameter("body".into()))?;
        let get = |k: &str| -> Result<String, Error> {
            match map.get(k) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(Error::InvalidParameter(k.to_owned())),
            }
        };
        let test = matches!(map.get("testFlag"), Some(serde_json::Value::String(s)) if s == "1");
        let activity = match get("activity")?.as_str() {
            "newInstance" => Activity::NewInstance {
                order_id: get("orderId")?,
                order_line_id: get("orderLineId")?,
                business_id: get("businessId")?,
            },
            "queryInstance" => Activity::QueryInstance {
                instance_ids: instance_ids(&get("instanceId")?)?,
            },
            "refreshInstance" => Activity::RefreshInstance {
                instance_id: get("instanceId")?,
                order_id: get("orderId")?,
                order_line_id: get("orderLineId")?,
                product_id: get("productId")?,
                expire_time: get("expireTime")?,
                scene: match get("scene")?.as_str() {
                    "TRIAL_TO_FORMAL" => RefreshScene::TrialToFormal,
                    "RENEWAL" => RefreshScene::Renewal,
                    "UNSUBSCRIBE_RENEWAL_PERIOD" => RefreshScene::UnsubscribeRenewalPeriod,
                    _ => return Err(Error::InvalidParameter("scene".into())),
                },
            },
            "updateInstanceStatus" => Activity::UpdateInstanceStatus {
                instance_id: get("instanceId")?,
                status: match get("status")?.as_str() {
                    "FREEZE" => StatusChange::Freeze,
                    "UNFREEZE" => StatusChange::Unfreeze,
                    _ => return Err(Error::InvalidParameter("status".into())),
                },
            },
            "releaseInstance" => Activity::ReleaseInstance {
                instance_id: get("instanceId")?,
                order_id: get("orderId")?,
                order_line_id: get("orderLineId")?,
            },
            "upgradeInstance" | "upgrade" => Activity::UpgradeInstance {
                instance_id: get("instanceId")?,
                order_id: get("orderId")?,
                order_line_id: get("orderLineId")?,
                product_id: get("productId")?,
            },
            _ => return Err(Error::InvalidParameter("activity".into())),
        };
        Ok((activity, test))
    }
}

/// `queryInstance`'s `instanceId`: 1 to 100 ids, comma-separated.
pub(crate) fn instance_ids(list: &str) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > 100 {
        return Err(Error::InvalidParameter("instanceId".into()));
    }
    Ok(ids)
}

/// What a buyer needs to reach the instance; `password` (and `userName`) may be encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// Where users sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_end_url: Option<String>,
    /// Where the buyer administers the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// The first user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The first user's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Anything else the seller wants the buyer to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// One instance in a `queryInstance` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// The seller's instance id.
    pub instance_id: String,
    /// Its access data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
}

/// A seller's answer to any call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SellerAnswer {
    /// Six-digit result code, `000000` for success.
    pub result_code: String,
    /// A message for people.
    #[serde(default)]
    pub result_msg: String,
    /// `newInstance`: the seller's instance id (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `"1"` AES-256, `"2"` AES-128; absent for plain access data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<String>,
    /// `newInstance`: access data, when the seller returns it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    /// `queryInstance`: one entry per instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<InstanceInfo>>,
}

impl SellerAnswer {
    /// An answer with only a code and message.
    pub fn code(code: crate::ResultCode, msg: impl Into<String>) -> Self {
        SellerAnswer {
            result_code: code.wire().to_owned(),
            result_msg: msg.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_sorted_compact_and_matches_the_guide_vector() {
        let a = Activity::NewInstance {
            order_id: "CS1906666688ABCDE".into(),
            order_line_id: "CS1906666688ABCDE-000001".into(),
            business_id: "61e834ba-7b97-4418-b8f7-e5345137278c".into(),
        };
        assert_eq!(
            String::from_utf8(a.body(false)).unwrap(),
            r#"{"activity":"newInstance","businessId":"61e834ba-7b97-4418-b8f7-e5345137278c","orderId":"CS1906666688ABCDE","orderLineId":"CS1906666688ABCDE-000001","testFlag":"0"}"#
        );
        assert_eq!(Activity::parse(&a.body(true)).unwrap(), (a, true));
    }

    #[test]
    fn every_activity_round_trips() {
        let all = vec![
            Activity::QueryInstance {
                instance_ids: vec!["a".into(), "b".into()],
            },
            Activity::RefreshInstance {
                instance_id: "i".into(),
                order_id: "o".into(),
                order_line_id: "l".into(),
                product_id: "p".into(),
                expire_time: "20270101000000".into(),
                scene: RefreshScene::Renewal,
            },
            Activity::UpdateInstanceStatus {
                instance_id: "i".into(),
                status: StatusChange::Unfreeze,
            },
            Activity::ReleaseInstance {
                instance_id: "i".into(),
                order_id: "o".into(),
                order_line_id: "l".into(),
            },
            Activity::UpgradeInstance {
                instance_id: "i".into(),
                order_id: "o".into(),
                order_line_id: "l".into(),
                product_id: "p".into(),
            },
        ];
        for a in all {
            assert_eq!(Activity::parse(&a.body(false)).unwrap(), (a, false));
        }
    }

    #[test]
    fn malformed_bodies_name_the_parameter() {
        assert_eq!(
            Activity::parse(b"nope"),
            Err(Error::InvalidParameter("body".into()))
        );
        assert_eq!(
            Activity::parse(br#"{"activity":"dance"}"#),
            Err(Error::InvalidParameter("activity".into()))
        );
        assert_eq!(
            Activity::parse(
                br#"{"activity":"updateInstanceStatus","instanceId":"i","status":"MELT"}"#
            ),
            Err(Error::InvalidParameter("status".into()))
        );
    }
}
