//! The life of a subscribed instance: provisioning, active until expiry, a grace period in which
//! it still runs, a retention period in which the seller keeps it frozen, then release. A renewal
//! before release restores it.
//!
//! Every function returns the new state, when the scheduler must look at the instance next, and
//! the calls souk must make to the seller; the server stores all three in one transaction.

use crate::Error;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Paid; the seller is being asked to create it.
    Provisioning,
    /// Running and paid up.
    Active,
    /// Expired but still running, waiting for a renewal.
    Grace,
    /// Frozen at the seller; data retained until the retention period ends.
    Frozen,
    /// Released at the seller; final.
    Released,
    /// The seller could not create it; the order was refunded; final.
    Failed,
}

impl InstanceState {
    /// Every state, for parsing and documentation.
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Provisioning,
        InstanceState::Active,
        InstanceState::Grace,
        InstanceState::Frozen,
        InstanceState::Released,
        InstanceState::Failed,
    ];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Provisioning => "provisioning",
            InstanceState::Active => "active",
            InstanceState::Grace => "grace",
            InstanceState::Frozen => "frozen",
            InstanceState::Released => "released",
            InstanceState::Failed => "failed",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        InstanceState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid("state", format!("unknown instance state {s:?}")))
    }
}

/// How long an expired instance keeps running, and how long a frozen one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Grace period after expiry (default 15 days).
    pub grace: Duration,
    /// Retention period after grace (default 15 days).
    pub retention: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            grace: Duration::days(15),
            retention: Duration::days(15),
        }
    }
}

/// A call souk must make to the seller because of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SellerCall {
    /// `updateInstanceStatus` with `FREEZE`.
    Freeze,
    /// `updateInstanceStatus` with `UNFREEZE`.
    Unfreeze,
    /// `releaseInstance`.
    Release,
    /// `refreshInstance` with scene `RENEWAL`: the expiry moved.
    RefreshRenewal,
}

/// The outcome of an event: the new state, the next instant the scheduler must look, the calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state to store.
    pub state: InstanceState,
    /// When the scheduler must look at the instance again; `None` when nothing is scheduled.
    pub next_at: Option<DateTime<Utc>>,
    /// Seller calls to enqueue, in order.
    pub calls: Vec<SellerCall>,
}

/// The state an instance that expires at `expiry` is in at `now`, and when that changes.
fn by_time(
    expiry: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: Policy,
) -> (InstanceState, Option<DateTime<Utc>>) {
    let grace_end = crate::clock::add(expiry, policy.grace);
    let retention_end = crate::clock::add(grace_end, policy.retention);
    if now < expiry {
        (InstanceState::Active, Some(expiry))
    } else if now < grace_end {
        (InstanceState::Grace, Some(grace_end))
    } else if now < retention_end {
        (InstanceState::Frozen, Some(retention_end))
    } else {
        (InstanceState::Released, None)
    }
}

/// The seller created the instance.
pub fn provisioned(state: InstanceState, expiry: DateTime<Utc>) -> Result<Transition, Error> {
    match state {
        // Should the seller take longer than the whole subscription, the scheduler walks the
        // instance on from active at its next tick, since `next_at` is already due.
        InstanceState::Provisioning => Ok(Transition {
            state: InstanceState::Active,
            next_at: Some(expiry),
            calls: vec![],
        }),
        other => Err(Error::refused(other, "complete provisioning")),
    }
}

/// The seller refused or never managed to create the instance.
pub fn provisioning_failed(state: InstanceState) -> Result<Transition, Error> {
    match state {
        InstanceState::Provisioning => Ok(Transition {
            state: InstanceState::Failed,
            next_at: None,
            calls: vec![],
        }),
        other => Err(Error::refused(other, "fail provisioning")),
    }
}

/// The scheduler found the instance due at `now`: move it one step along its life.
///
/// Returns `None` when the instance is not due after all (for example renewed since it was
/// read); the caller then only reschedules it at `next_at` of [`reschedule`].
pub fn due(
    state: InstanceState,
    expiry: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: Policy,
) -> Option<Transition> {
    let grace_end = crate::clock::add(expiry, policy.grace);
    let retention_end = crate::clock::add(grace_end, policy.retention);
    match state {
        InstanceState::Active if now >= expiry => Some(Transition {
            state: InstanceState::Grace,
            next_at: Some(grace_end),
            calls: vec![],
        }),
        InstanceState::Grace if now >= grace_end => Some(Transition {
            state: InstanceState::Frozen,
            next_at: Some(retention_end),
            calls: vec![SellerCall::Freeze],
        }),
        InstanceState::Frozen if now >= retention_end => Some(Transition {
            state: InstanceState::Released,
            next_at: None,
            calls: vec![SellerCall::Release],
        }),
        _ => None,
    }
}

/// When the scheduler must next look at an instance in `state` that expires at `expiry`.
pub fn reschedule(
    state: InstanceState,
    expiry: DateTime<Utc>,
    policy: Policy,
) -> Option<DateTime<Utc>> {
    match state {
        InstanceState::Active => Some(expiry),
        InstanceState::Grace => Some(crate::clock::add(expiry, policy.grace)),
        InstanceState::Frozen => Some(crate::clock::add(
            crate::clock::add(expiry, policy.grace),
            policy.retention,
        )),
        InstanceState::Provisioning | InstanceState::Released | InstanceState::Failed => None,
    }
}

/// A renewal moved the expiry to `new_expiry`: restore the instance as far as the new expiry
/// allows, unfreezing it at the seller when it was frozen.
pub fn renewed(
    state: InstanceState,
    new_expiry: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: Policy,
) -> Result<Transition, Error> {
    match state {
        InstanceState::Active | InstanceState::Grace | InstanceState::Frozen => {
            let (target, next_at) = by_time(new_expiry, now, policy);
            // A renewal always reaches at least as far as the old expiry did, so an instance that
            // was not yet released cannot come out of this released.
            let target = if target == InstanceState::Released {
                InstanceState::Frozen
            } else {
                target
            };
            let mut calls = Vec::new();
            if state == InstanceState::Frozen && target != InstanceState::Frozen {
                calls.push(SellerCall::Unfreeze);
            }
            calls.push(SellerCall::RefreshRenewal);
            Ok(Transition {
                state: target,
                next_at,
                calls,
            })
        }
        other => Err(Error::refused(other, "renew")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use InstanceState::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn walks_expiry_grace_frozen_released() {
        let p = Policy::default();
        let expiry = t0();
        assert_eq!(due(Active, expiry, expiry - Duration::seconds(1), p), None);
        let g = due(Active, expiry, expiry, p).unwrap();
        assert_eq!(
            (g.state, g.next_at, g.calls.clone()),
            (Grace, Some(expiry + Duration::days(15)), vec![])
        );
        assert_eq!(due(Grace, expiry, expiry + Duration::days(14), p), None);
        let f = due(Grace, expiry, expiry + Duration::days(15), p).unwrap();
        assert_eq!(
            (f.state, f.calls.clone()),
            (Frozen, vec![SellerCall::Freeze])
        );
        assert_eq!(f.next_at, Some(expiry + Duration::days(30)));
        let r = due(Frozen, expiry, expiry + Duration::days(30), p).unwrap();
        assert_eq!(
            (r.state, r.next_at, r.calls),
            (Released, None, vec![SellerCall::Release])
        );
        assert_eq!(due(Released, expiry, expiry + Duration::days(900), p), None);
    }

    #[test]
    fn renewal_during_retention_unfreezes_at_seller() {
        let p = Policy::default();
        let now = t0() + Duration::days(20);
        let t = renewed(Frozen, t0() + Duration::days(31), now, p).unwrap();
        assert_eq!(t.state, Active);
        assert_eq!(
            t.calls,
            vec![SellerCall::Unfreeze, SellerCall::RefreshRenewal]
        );
        assert_eq!(t.next_at, Some(t0() + Duration::days(31)));
    }

    #[test]
    fn renewal_during_grace_reactivates_without_unfreeze() {
        let t = renewed(
            Grace,
            t0() + Duration::days(30),
            t0() + Duration::days(3),
            Policy::default(),
        )
        .unwrap();
        assert_eq!(
            (t.state, t.calls),
            (Active, vec![SellerCall::RefreshRenewal])
        );
    }

    #[test]
    fn a_short_renewal_keeps_what_the_new_expiry_implies() {
        let p = Policy::default();
        // Frozen 25 days after expiry; renewed by 12 days: the new expiry is 13 days ago, so the
        // instance is back in grace and must be unfrozen.
        let t = renewed(
            Frozen,
            t0() + Duration::days(12),
            t0() + Duration::days(25),
            p,
        )
        .unwrap();
        assert_eq!(t.state, Grace);
        assert_eq!(
            t.calls,
            vec![SellerCall::Unfreeze, SellerCall::RefreshRenewal]
        );
        // Renewed by 1 day: still past the new grace end, stays frozen, nothing to unfreeze.
        let t = renewed(
            Frozen,
            t0() + Duration::days(1),
            t0() + Duration::days(25),
            p,
        )
        .unwrap();
        assert_eq!(t.state, Frozen);
        assert_eq!(t.calls, vec![SellerCall::RefreshRenewal]);
    }

    #[test]
    fn released_failed_and_provisioning_cannot_be_renewed() {
        for s in [Released, Failed, Provisioning] {
            assert!(matches!(
                renewed(s, t0(), t0(), Policy::default()),
                Err(Error::Refused(_))
            ));
        }
    }

    #[test]
    fn provisioning_completes_once() {
        assert_eq!(provisioned(Provisioning, t0()).unwrap().state, Active);
        assert!(provisioned(Active, t0()).is_err());
        assert_eq!(provisioning_failed(Provisioning).unwrap().state, Failed);
        assert!(provisioning_failed(Active).is_err());
    }

    #[test]
    fn reschedule_matches_the_walk() {
        let p = Policy::default();
        for s in [Active, Grace, Frozen] {
            let next = reschedule(s, t0(), p).unwrap();
            assert!(due(s, t0(), next, p).is_some());
            assert!(due(s, t0(), next - Duration::milliseconds(1), p).is_none());
        }
        assert_eq!(reschedule(Released, t0(), p), None);
    }
}
