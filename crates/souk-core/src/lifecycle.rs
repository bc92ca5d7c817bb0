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
    /// `refreshInstance` with scene `UNSUBSCRIBE_RENEWAL_PERIOD`: renewed periods that had not
    /// begun were given back, so the expiry moved earlier.
    RefreshUnsubscribed,
    /// `refreshInstance` with scene `TRIAL_TO_FORMAL`: a trial was paid for.
    RefreshTrialToFormal,
}

/// Something a transition makes happen besides the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A call to the seller, enqueued with the change.
    Seller(SellerCall),
    /// The order that bought the instance is refunded in full.
    RefundOrder,
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The seller created the instance.
    Provisioned,
    /// The seller refused, or never managed, to create the instance.
    ProvisioningFailed,
    /// The scheduler found the instance due: move it along its life as far as time says.
    Due,
    /// A renewal moved the expiry to this instant.
    Renewed { new_expiry: DateTime<Utc> },
    /// The buyer unsubscribed: the instance is released at once.
    Unsubscribed,
    /// A trial was paid for: the paid time runs from now to `new_expiry`.
    Converted { new_expiry: DateTime<Utc> },
    /// The buyer gave back renewed periods that had not begun: the expiry moves back to this
    /// instant, which is still in the future.
    RenewalsReturned { new_expiry: DateTime<Utc> },
    /// The buyer's account fell into arrears at `since`: a metered instance's paid time ends
    /// then (or when it already ended, if sooner), and it walks on through grace, frozen,
    /// retention and release as an expired one does.
    ArrearsBegan { since: DateTime<Utc> },
    /// The arrears were paid: the instance's paid time is `paid_expiry` again (what it was
    /// before the arrears), and a frozen instance is unfrozen. A released one stays released.
    ArrearsCleared { paid_expiry: DateTime<Utc> },
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Provisioned => "complete provisioning",
            Event::ProvisioningFailed => "fail provisioning",
            Event::Due => "move along its lifecycle",
            Event::Renewed { .. } => "renew",
            Event::Unsubscribed => "unsubscribe",
            Event::Converted { .. } => "convert a trial",
            Event::RenewalsReturned { .. } => "give back renewals",
            Event::ArrearsBegan { .. } => "fall into arrears",
            Event::ArrearsCleared { .. } => "clear arrears",
        }
    }
}

/// An instance as the lifecycle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub state: InstanceState,
    /// When the paid time ends.
    pub expiry: DateTime<Utc>,
}

/// The outcome of an event: the new state, its expiry, when the scheduler must look next, and the
/// effects to carry out in the same transaction (seller calls are enqueued, refunds booked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state to store.
    pub state: InstanceState,
    /// The expiry to store (moved only by a renewal).
    pub expiry: DateTime<Utc>,
    /// When the scheduler must look at the instance again; `None` when nothing is scheduled.
    pub next_at: Option<DateTime<Utc>>,
    /// What else happens, in order.
    pub effects: Vec<Effect>,
}

impl Transition {
    /// The seller calls among the effects, in order.
    pub fn seller_calls(&self) -> impl Iterator<Item = SellerCall> + '_ {
        self.effects.iter().filter_map(|e| match e {
            Effect::Seller(c) => Some(*c),
            Effect::RefundOrder => None,
        })
    }

    /// Whether the state changed (a `Due` event on an instance that is not due only reschedules).
    pub fn changes_state(&self, from: InstanceState) -> bool {
        self.state != from
    }
}

impl Policy {
    /// When the grace period of an instance expiring at `expiry` ends (never, for an instance
    /// that never expires: the date stays a date every client can read).
    pub fn grace_end(&self, expiry: DateTime<Utc>) -> DateTime<Utc> {
        if crate::plans::is_never(expiry) {
            return expiry;
        }
        crate::clock::add(expiry, self.grace)
    }

    /// When the retention period of an instance expiring at `expiry` ends.
    pub fn retention_end(&self, expiry: DateTime<Utc>) -> DateTime<Utc> {
        if crate::plans::is_never(expiry) {
            return expiry;
        }
        crate::clock::add(self.grace_end(expiry), self.retention)
    }
}

/// The state an instance that expires at `expiry` is in at `now`, and when that changes.
fn by_time(
    expiry: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: Policy,
) -> (InstanceState, Option<DateTime<Utc>>) {
    let grace_end = policy.grace_end(expiry);
    let retention_end = policy.retention_end(expiry);
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

/// How many days before expiry the buyer is reminded.
pub const REMINDER_DAYS: [i64; 2] = [7, 1];

/// The reminder due at `now` for an active instance expiring at `expiry`: 7 (days) within the
/// last week, 1 within the last day, none otherwise. Only the nearer one is due, so a clock that
/// jumps past the first never sends a stale "7 days left".
pub fn reminder_due(expiry: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    let left = expiry - now;
    if left <= Duration::zero() {
        None
    } else if left <= Duration::days(1) {
        Some(1)
    } else if left <= Duration::days(7) {
        Some(7)
    } else {
        None
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
        InstanceState::Grace => Some(policy.grace_end(expiry)),
        InstanceState::Frozen => Some(policy.retention_end(expiry)),
        InstanceState::Provisioning | InstanceState::Released | InstanceState::Failed => None,
    }
}

/// Decides what `event` does to an instance at `now`: every rule of the lifecycle is here.
pub fn transition(
    subject: Subject,
    event: Event,
    now: DateTime<Utc>,
    policy: Policy,
) -> Result<Transition, Error> {
    use InstanceState::*;
    let Subject { state, expiry } = subject;
    let to = |state, next_at, effects| Transition {
        state,
        expiry,
        next_at,
        effects,
    };
    match (state, event) {
        // Should the seller take longer than the whole subscription, the scheduler walks the
        // instance on from active at its next tick, since `next_at` is already due.
        (Provisioning, Event::Provisioned) => Ok(to(Active, Some(expiry), vec![])),
        (Provisioning, Event::ProvisioningFailed) => {
            Ok(to(Failed, None, vec![Effect::RefundOrder]))
        }
        (Active, Event::Due) if now >= expiry => {
            Ok(to(Grace, Some(policy.grace_end(expiry)), vec![]))
        }
        (Grace, Event::Due) if now >= policy.grace_end(expiry) => Ok(to(
            Frozen,
            Some(policy.retention_end(expiry)),
            vec![Effect::Seller(SellerCall::Freeze)],
        )),
        (Frozen, Event::Due) if now >= policy.retention_end(expiry) => Ok(to(
            Released,
            None,
            vec![Effect::Seller(SellerCall::Release)],
        )),
        // Not due after all (renewed since it was scheduled): only the schedule moves.
        (_, Event::Due) => Ok(to(state, reschedule(state, expiry, policy), vec![])),
        (Active | Grace | Frozen, Event::Renewed { new_expiry }) => {
            if new_expiry < expiry {
                return Err(Error::invalid(
                    "periods",
                    "a renewal cannot shorten the subscription",
                ));
            }
            let (target, next_at) = by_time(new_expiry, now, policy);
            // A renewal always reaches at least as far as the old expiry did, so an instance that
            // was not yet released cannot come out of this released.
            let target = if target == Released { Frozen } else { target };
            let mut effects = Vec::new();
            if state == Frozen && target != Frozen {
                effects.push(Effect::Seller(SellerCall::Unfreeze));
            }
            effects.push(Effect::Seller(SellerCall::RefreshRenewal));
            Ok(Transition {
                state: target,
                expiry: new_expiry,
                next_at,
                effects,
            })
        }
        (Active | Grace | Frozen, Event::Converted { new_expiry }) => {
            if new_expiry <= now {
                return Err(Error::invalid(
                    "periods",
                    "the paid time must end in the future",
                ));
            }
            let mut effects = Vec::new();
            if state == Frozen {
                effects.push(Effect::Seller(SellerCall::Unfreeze));
            }
            effects.push(Effect::Seller(SellerCall::RefreshTrialToFormal));
            Ok(Transition {
                state: Active,
                expiry: new_expiry,
                next_at: Some(new_expiry),
                effects,
            })
        }
        (Active | Grace | Frozen, Event::Unsubscribed) => Ok(to(
            Released,
            None,
            vec![Effect::Seller(SellerCall::Release)],
        )),
        (Active, Event::RenewalsReturned { new_expiry }) => {
            if new_expiry > expiry || new_expiry <= now {
                return Err(Error::invalid(
                    "scope",
                    "only renewed periods that have not begun can be given back",
                ));
            }
            Ok(Transition {
                state: Active,
                expiry: new_expiry,
                next_at: Some(new_expiry),
                effects: vec![Effect::Seller(SellerCall::RefreshUnsubscribed)],
            })
        }
        (Active | Grace | Frozen, Event::ArrearsBegan { since }) => {
            let expiry = expiry.min(since);
            let (target, next_at) = by_time(expiry, now, policy);
            let mut effects = Vec::new();
            if matches!(target, Frozen | Released) && state != Frozen {
                effects.push(Effect::Seller(SellerCall::Freeze));
            }
            if target == Released {
                effects.push(Effect::Seller(SellerCall::Release));
            }
            Ok(Transition {
                state: target,
                expiry,
                next_at,
                effects,
            })
        }
        (Active | Grace | Frozen, Event::ArrearsCleared { paid_expiry }) => {
            let (target, next_at) = by_time(paid_expiry, now, policy);
            // Paid time that ran out meanwhile walks on from frozen at the next tick; clearing
            // arrears never releases.
            let (target, next_at) = if target == Released {
                (Frozen, Some(now))
            } else {
                (target, next_at)
            };
            let effects = if state == Frozen && target != Frozen {
                vec![Effect::Seller(SellerCall::Unfreeze)]
            } else {
                vec![]
            };
            Ok(Transition {
                state: target,
                expiry: paid_expiry,
                next_at,
                effects,
            })
        }
        (other, event) => Err(Error::refused(other, event.name())),
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

    fn step(
        state: InstanceState,
        expiry: DateTime<Utc>,
        event: Event,
        now: DateTime<Utc>,
    ) -> Transition {
        transition(Subject { state, expiry }, event, now, Policy::default()).unwrap()
    }

    fn calls(t: &Transition) -> Vec<SellerCall> {
        t.seller_calls().collect()
    }

    #[test]
    fn walks_expiry_grace_frozen_released() {
        let expiry = t0();
        let early = step(Active, expiry, Event::Due, expiry - Duration::seconds(1));
        assert_eq!((early.state, early.next_at), (Active, Some(expiry)));
        let g = step(Active, expiry, Event::Due, expiry);
        assert_eq!(
            (g.state, g.next_at, calls(&g)),
            (Grace, Some(expiry + Duration::days(15)), vec![])
        );
        assert_eq!(
            step(Grace, expiry, Event::Due, expiry + Duration::days(14)).state,
            Grace
        );
        let f = step(Grace, expiry, Event::Due, expiry + Duration::days(15));
        assert_eq!((f.state, calls(&f)), (Frozen, vec![SellerCall::Freeze]));
        assert_eq!(f.next_at, Some(expiry + Duration::days(30)));
        let r = step(Frozen, expiry, Event::Due, expiry + Duration::days(30));
        assert_eq!(
            (r.state, r.next_at, calls(&r)),
            (Released, None, vec![SellerCall::Release])
        );
        let after = step(Released, expiry, Event::Due, expiry + Duration::days(900));
        assert_eq!(
            (after.state, after.next_at, after.effects),
            (Released, None, vec![])
        );
    }

    #[test]
    fn arrears_walk_a_metered_instance_and_paying_them_restores_it() {
        let never = crate::plans::never();
        let since = t0();
        let a = step(Active, never, Event::ArrearsBegan { since }, since);
        assert_eq!(
            (a.state, a.expiry, a.next_at, calls(&a)),
            (Grace, since, Some(since + Duration::days(15)), vec![])
        );
        let f = step(Grace, since, Event::Due, since + Duration::days(15));
        assert_eq!((f.state, calls(&f)), (Frozen, vec![SellerCall::Freeze]));
        let back = step(
            Frozen,
            since,
            Event::ArrearsCleared { paid_expiry: never },
            since + Duration::days(20),
        );
        assert_eq!(
            (back.state, back.expiry, calls(&back)),
            (Active, never, vec![SellerCall::Unfreeze])
        );
        // A package whose own paid time ended during the arrears goes on from frozen.
        let lapsed = step(
            Frozen,
            since,
            Event::ArrearsCleared {
                paid_expiry: since - Duration::days(40),
            },
            since + Duration::days(20),
        );
        assert_eq!((lapsed.state, calls(&lapsed)), (Frozen, vec![]));
        // An instance already released is not brought back.
        assert!(transition(
            Subject {
                state: Released,
                expiry: since
            },
            Event::ArrearsCleared { paid_expiry: never },
            since,
            Policy::default()
        )
        .is_err());
        // Arrears never extend paid time that already ended.
        let expired = step(
            Grace,
            since - Duration::days(3),
            Event::ArrearsBegan { since },
            since,
        );
        assert_eq!(expired.expiry, since - Duration::days(3));
    }

    #[test]
    fn renewal_during_retention_unfreezes_at_seller() {
        let new_expiry = t0() + Duration::days(31);
        let t = step(
            Frozen,
            t0(),
            Event::Renewed { new_expiry },
            t0() + Duration::days(20),
        );
        assert_eq!((t.state, t.expiry), (Active, new_expiry));
        assert_eq!(
            calls(&t),
            vec![SellerCall::Unfreeze, SellerCall::RefreshRenewal]
        );
        assert_eq!(t.next_at, Some(new_expiry));
    }

    #[test]
    fn renewal_during_grace_reactivates_without_unfreeze() {
        let t = step(
            Grace,
            t0(),
            Event::Renewed {
                new_expiry: t0() + Duration::days(30),
            },
            t0() + Duration::days(3),
        );
        assert_eq!(
            (t.state, calls(&t)),
            (Active, vec![SellerCall::RefreshRenewal])
        );
    }

    #[test]
    fn a_short_renewal_keeps_what_the_new_expiry_implies() {
        // Frozen 25 days after expiry; renewed by 12 days: the new expiry is 13 days ago, so the
        // instance is back in grace and must be unfrozen.
        let now = t0() + Duration::days(25);
        let t = step(
            Frozen,
            t0(),
            Event::Renewed {
                new_expiry: t0() + Duration::days(12),
            },
            now,
        );
        assert_eq!(t.state, Grace);
        assert_eq!(
            calls(&t),
            vec![SellerCall::Unfreeze, SellerCall::RefreshRenewal]
        );
        // Renewed by 1 day: still past the new grace end, stays frozen, nothing to unfreeze.
        let t = step(
            Frozen,
            t0(),
            Event::Renewed {
                new_expiry: t0() + Duration::days(1),
            },
            now,
        );
        assert_eq!(t.state, Frozen);
        assert_eq!(calls(&t), vec![SellerCall::RefreshRenewal]);
    }

    #[test]
    fn released_failed_and_provisioning_cannot_be_renewed() {
        for s in [Released, Failed, Provisioning] {
            assert!(matches!(
                transition(
                    Subject {
                        state: s,
                        expiry: t0()
                    },
                    Event::Renewed { new_expiry: t0() },
                    t0(),
                    Policy::default()
                ),
                Err(Error::Refused(_))
            ));
        }
    }

    #[test]
    fn unsubscribing_releases_and_giving_back_renewals_moves_the_expiry_back() {
        let now = t0() - Duration::days(40);
        for s in [Active, Grace, Frozen] {
            let t = step(s, t0(), Event::Unsubscribed, now);
            assert_eq!(
                (t.state, t.next_at, calls(&t)),
                (Released, None, vec![SellerCall::Release])
            );
        }
        for s in [Released, Failed, Provisioning] {
            let refused = transition(
                Subject {
                    state: s,
                    expiry: t0(),
                },
                Event::Unsubscribed,
                now,
                Policy::default(),
            );
            assert!(matches!(refused, Err(Error::Refused(_))));
        }
        let back = t0() - Duration::days(30);
        let t = step(
            Active,
            t0(),
            Event::RenewalsReturned { new_expiry: back },
            now,
        );
        assert_eq!(
            (t.state, t.expiry, t.next_at, calls(&t)),
            (
                Active,
                back,
                Some(back),
                vec![SellerCall::RefreshUnsubscribed]
            )
        );
        // Neither a later expiry nor one already past is a return of unbegun periods.
        for new_expiry in [t0() + Duration::days(1), now - Duration::days(1)] {
            let refused = transition(
                Subject {
                    state: Active,
                    expiry: t0(),
                },
                Event::RenewalsReturned { new_expiry },
                now,
                Policy::default(),
            );
            assert!(matches!(refused, Err(Error::Invalid { .. })));
        }
    }

    #[test]
    fn a_converted_trial_runs_from_now_and_a_frozen_one_is_unfrozen_first() {
        let now = t0() + Duration::days(20);
        let paid = now + Duration::days(30);
        let t = step(Frozen, t0(), Event::Converted { new_expiry: paid }, now);
        assert_eq!(
            (t.state, t.expiry, t.next_at, calls(&t)),
            (
                Active,
                paid,
                Some(paid),
                vec![SellerCall::Unfreeze, SellerCall::RefreshTrialToFormal]
            )
        );
        let t = step(Active, t0(), Event::Converted { new_expiry: paid }, t0());
        assert_eq!(calls(&t), vec![SellerCall::RefreshTrialToFormal]);
    }

    #[test]
    fn what_never_expires_never_lapses() {
        let never = crate::plans::never();
        let p = Policy::default();
        assert_eq!((p.grace_end(never), p.retention_end(never)), (never, never));
        let t = step(Active, never, Event::Due, t0());
        assert_eq!((t.state, t.next_at), (Active, Some(never)));
    }

    #[test]
    fn reminders_come_a_week_and_a_day_before_expiry() {
        let e = t0();
        assert_eq!(reminder_due(e, e - Duration::days(8)), None);
        assert_eq!(reminder_due(e, e - Duration::days(7)), Some(7));
        assert_eq!(reminder_due(e, e - Duration::hours(25)), Some(7));
        assert_eq!(reminder_due(e, e - Duration::days(1)), Some(1));
        assert_eq!(reminder_due(e, e - Duration::seconds(1)), Some(1));
        assert_eq!(reminder_due(e, e), None);
    }

    #[test]
    fn provisioning_completes_or_fails_once_and_a_failure_refunds() {
        let p = Policy::default();
        let s = |state| Subject {
            state,
            expiry: t0(),
        };
        assert_eq!(
            transition(s(Provisioning), Event::Provisioned, t0(), p)
                .unwrap()
                .state,
            Active
        );
        assert!(transition(s(Active), Event::Provisioned, t0(), p).is_err());
        let failed = transition(s(Provisioning), Event::ProvisioningFailed, t0(), p).unwrap();
        assert_eq!(
            (failed.state, failed.effects),
            (Failed, vec![Effect::RefundOrder])
        );
        assert!(transition(s(Active), Event::ProvisioningFailed, t0(), p).is_err());
        assert!(transition(s(Failed), Event::ProvisioningFailed, t0(), p).is_err());
    }

    #[test]
    fn reschedule_matches_the_walk() {
        let p = Policy::default();
        for s in [Active, Grace, Frozen] {
            let next = reschedule(s, t0(), p).unwrap();
            assert_ne!(step(s, t0(), Event::Due, next).state, s);
            assert_eq!(
                step(s, t0(), Event::Due, next - Duration::milliseconds(1)).state,
                s
            );
        }
        assert_eq!(reschedule(Released, t0(), p), None);
    }

    #[test]
    fn dates_near_the_end_of_time_saturate() {
        let end = DateTime::<Utc>::MAX_UTC - Duration::days(1);
        let p = Policy::default();
        // Past "never" nothing lapses further; just before it, adding saturates, never panics.
        assert_eq!(p.retention_end(end), end);
        let late = crate::plans::never() - Duration::days(1);
        assert!(p.retention_end(late) > late);
        let t = step(Active, end, Event::Due, end);
        assert_eq!(t.state, Grace);
    }
}
