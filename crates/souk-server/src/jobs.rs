//! The background jobs use cases enqueue, by kind and payload: what the application layer writes
//! beside a change, and what the workers' handlers read back.

use souk_core::ids::OrderId;
use souk_core::lifecycle::SellerCall;
use souk_store::jobs::JobSpec;

/// The seller calls the job queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellerJob {
    /// `newInstance`, then the instance is active (or failed and refunded).
    NewInstance,
    /// `updateInstanceStatus` FREEZE.
    Freeze,
    /// `updateInstanceStatus` UNFREEZE.
    Unfreeze,
    /// `releaseInstance`.
    Release,
    /// `refreshInstance` RENEWAL with the new expiry.
    Refresh,
    /// `refreshInstance` UNSUBSCRIBE_RENEWAL_PERIOD with the earlier expiry.
    RefreshUnsubscribed,
    /// `refreshInstance` TRIAL_TO_FORMAL with the paid expiry.
    RefreshTrial,
    /// `queryInstance` until the seller has the access data (it may create asynchronously).
    QueryAccess,
    /// `upgradeInstance`: the instance moved to another plan of the product.
    Upgrade,
}

/// What a seller job carries: the order that caused it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SellerPayload {
    pub order_id: OrderId,
}

impl SellerJob {
    /// Every seller job kind.
    pub const ALL: [SellerJob; 9] = [
        SellerJob::NewInstance,
        SellerJob::Freeze,
        SellerJob::Unfreeze,
        SellerJob::Release,
        SellerJob::Refresh,
        SellerJob::RefreshUnsubscribed,
        SellerJob::RefreshTrial,
        SellerJob::QueryAccess,
        SellerJob::Upgrade,
    ];

    /// The job kind stored in the queue.
    pub fn kind(self) -> &'static str {
        match self {
            SellerJob::NewInstance => "seller.new_instance",
            SellerJob::Freeze => "seller.freeze",
            SellerJob::Unfreeze => "seller.unfreeze",
            SellerJob::Release => "seller.release",
            SellerJob::Refresh => "seller.refresh",
            SellerJob::RefreshUnsubscribed => "seller.refresh_unsubscribed",
            SellerJob::RefreshTrial => "seller.refresh_trial",
            SellerJob::QueryAccess => "seller.query_instance",
            SellerJob::Upgrade => "seller.upgrade",
        }
    }

    /// The kind named `kind`, if it is a seller job.
    pub fn from_kind(kind: &str) -> Option<SellerJob> {
        SellerJob::ALL.into_iter().find(|k| k.kind() == kind)
    }

    /// The job for a call core asked for.
    pub fn from_call(call: SellerCall) -> Self {
        match call {
            SellerCall::Freeze => SellerJob::Freeze,
            SellerCall::Unfreeze => SellerJob::Unfreeze,
            SellerCall::Release => SellerJob::Release,
            SellerCall::RefreshRenewal => SellerJob::Refresh,
            SellerCall::RefreshUnsubscribed => SellerJob::RefreshUnsubscribed,
            SellerCall::RefreshTrialToFormal => SellerJob::RefreshTrial,
        }
    }

    /// The job to enqueue; `order_id` is the order that caused it.
    pub fn spec(self, order_id: &OrderId) -> JobSpec {
        JobSpec {
            kind: self.kind(),
            payload: serde_json::json!({ "order_id": order_id }).to_string(),
        }
    }
}
