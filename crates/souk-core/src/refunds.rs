//! Unsubscribing: what a buyer gets back for each order of an instance.
//!
//! An instance's orders pay for consecutive spans of time: the purchase from when it was placed,
//! each renewal from where the one before ended. Unsubscribing gives back, per order:
//! - everything, for a span that has not begun (a renewal bought ahead);
//! - everything, for an order placed within the full-refund window (default 5 days);
//! - the unused share of the span, rounded down to the minor unit, for the span running now;
//! - nothing, for a span that is over.
//!
//! Giving back only the renewals returns the spans that have not begun and keeps the rest.
//!
//! A plan change (see [`crate::plan_changes`]) buys no time: it re-prices the time left.
//! Unsubscribing gives back what of a change's charge the time still to run is worth, and takes
//! back what of a change's credit it is worth (the credit already returned that money), span by
//! span as the change priced it; the full-refund window is for purchases.

use crate::plans::{add_periods, Period};
use chrono::{DateTime, Duration, Utc};

/// The refund rules, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPolicy {
    /// An order placed less than this long ago is refunded in full.
    pub full_refund_window: Duration,
}

impl Default for RefundPolicy {
    fn default() -> Self {
        RefundPolicy {
            full_refund_window: Duration::days(5),
        }
    }
}

/// What the buyer gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole subscription: the instance is released.
    Everything,
    /// Only renewed periods that have not begun: the instance runs on to the end of the rest.
    RenewalsOnly,
}

/// How an order's money relates to its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terms {
    /// Months or years: prorated when given back.
    Periodic,
    /// A one-time purchase: nothing goes back once it is provisioned.
    OneTime,
    /// A plan change: its charge (positive) or credit (negative) covers the time it re-priced;
    /// `left_minor` is what of it the time still to run is worth now
    /// ([`crate::plan_changes::change_left`]).
    Change { left_minor: i64 },
}

/// One order of an instance, with the span of time it paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidSpan {
    /// What the order charged, less what was already refunded, in minor units; negative for a
    /// plan change that gave money back.
    pub paid_minor: i64,
    pub ordered_at: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub terms: Terms,
}

/// Where an order's time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starts {
    /// When it was placed: a purchase, a trial, a trial converted to paid.
    Placed(DateTime<Utc>),
    /// Where the time before it ended: a renewal.
    AfterPrevious,
    /// A plan change placed then: it covers the time from then to where the time before ended,
    /// and adds none.
    Change(DateTime<Utc>),
}

/// One order as the spans see it: what it bought and where its time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bought {
    pub period: Period,
    /// How many periods; 0 for a trial, which pays for nothing, and for a plan change.
    pub periods: u32,
    pub starts: Starts,
}

/// The spans the orders of an instance paid for, in order: each from its own start when it has
/// one, else from where the previous ended, as renewals extend an expiry; a plan change's from
/// when it was placed to where the time before it ended.
pub fn spans(orders: &[Bought]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut end: Option<DateTime<Utc>> = None;
    orders
        .iter()
        .map(|b| {
            let start = match b.starts {
                Starts::Placed(at) => at,
                Starts::AfterPrevious => end.unwrap_or(DateTime::<Utc>::MIN_UTC),
                Starts::Change(at) => return (at, end.unwrap_or(at).max(at)),
            };
            let span = (start, add_periods(start, b.period, b.periods));
            end = Some(span.1);
            span
        })
        .collect()
}

/// What unsubscribing at `now` gives back for one order, in minor units: never more than it paid,
/// and negative only for a plan change's credit, whose unused share is taken back.
pub fn refund(span: &PaidSpan, now: DateTime<Utc>, policy: RefundPolicy, scope: Scope) -> i64 {
    if let Terms::Change { left_minor } = span.terms {
        // Giving back renewals alone is refused when a change re-priced them.
        return if scope == Scope::Everything && now < span.ends_at {
            left_minor
        } else {
            0
        };
    }
    let paid = span.paid_minor.max(0);
    if span.terms == Terms::OneTime {
        return 0;
    }
    if now < span.starts_at {
        return paid;
    }
    if scope == Scope::RenewalsOnly || now >= span.ends_at {
        return 0;
    }
    if now < crate::clock::add(span.ordered_at, policy.full_refund_window) {
        return paid;
    }
    let total = (span.ends_at - span.starts_at).num_milliseconds();
    let unused = (span.ends_at - now).num_milliseconds();
    if total <= 0 {
        return 0;
    }
    // i128: a paid amount times a span in milliseconds can pass i64.
    i64::try_from(i128::from(paid) * i128::from(unused) / i128::from(total)).unwrap_or(paid)
}

/// What unsubscribing at `now` gives back for each of `spans`, in their order: each order's own
/// share ([`refund`]) with what plan-change credits already gave back taken off the earliest
/// orders first. The total is never below zero nor above what the orders paid in all, and no
/// order gets more than its own share or less than nothing.
pub fn give_back(
    spans: &[PaidSpan],
    now: DateTime<Utc>,
    policy: RefundPolicy,
    scope: Scope,
) -> Vec<i64> {
    let shares: Vec<i64> = spans
        .iter()
        .map(|s| refund(s, now, policy, scope))
        .collect();
    let paid: i64 = spans.iter().map(|s| s.paid_minor).sum();
    let mut left = shares.iter().sum::<i64>().clamp(0, paid.max(0));
    shares
        .into_iter()
        .map(|share| {
            let back = share.clamp(0, left);
            left -= back;
            back
        })
        .collect()
}

/// The expiry after giving back the renewals that have not begun at `now`: the start of the
/// first of them, or `None` when there is none to give back.
pub fn expiry_without_unbegun(spans: &[PaidSpan], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    spans
        .iter()
        .filter(|s| now < s.starts_at)
        .map(|s| s.starts_at)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 31, 8, 0, 0).unwrap()
    }

    fn month(paid_minor: i64, ordered_at: DateTime<Utc>, starts_at: DateTime<Utc>) -> PaidSpan {
        PaidSpan {
            paid_minor,
            ordered_at,
            starts_at,
            ends_at: add_periods(starts_at, Period::Month, 1),
            terms: Terms::Periodic,
        }
    }

    #[test]
    fn spans_chain_like_renewals() {
        let bought = |periods, starts_at: Option<DateTime<Utc>>| Bought {
            period: Period::Month,
            periods,
            starts: starts_at.map_or(Starts::AfterPrevious, Starts::Placed),
        };
        let s = spans(&[bought(1, Some(t0())), bought(2, None)]);
        assert_eq!(
            s[0],
            (t0(), Utc.with_ymd_and_hms(2027, 2, 28, 8, 0, 0).unwrap())
        );
        assert_eq!(s[1].0, s[0].1);
        assert_eq!(s[1].1, Utc.with_ymd_and_hms(2027, 4, 28, 8, 0, 0).unwrap());
        // A trial pays for no time; the conversion starts when it was placed.
        let later = t0() + Duration::days(3);
        let s = spans(&[
            bought(0, Some(t0())),
            bought(1, Some(later)),
            bought(1, None),
        ]);
        assert_eq!(s[0], (t0(), t0()));
        assert_eq!(s[1].0, later);
        assert_eq!(s[2].0, s[1].1);
    }

    #[test]
    fn a_plan_change_covers_the_time_left_and_adds_none() {
        let b = |periods, starts| Bought {
            period: Period::Month,
            periods,
            starts,
        };
        let at = t0() + Duration::days(10);
        let s = spans(&[
            b(1, Starts::Placed(t0())),
            b(0, Starts::Change(at)),
            b(1, Starts::AfterPrevious),
        ]);
        assert_eq!(s[1], (at, s[0].1));
        assert_eq!(
            s[2].0, s[0].1,
            "a renewal after a change follows the old expiry"
        );
    }

    #[test]
    fn a_change_credit_is_taken_back_from_what_unsubscribing_returns() {
        // 30 days bought for 3000; on day 10 a downgrade to a plan half the price credited 1000
        // for the 20 days left; on day 20 the buyer leaves, and the credit's 10 days still to run
        // are worth 500 of it. Fair: 10 unused days at the lower plan, 500.
        let p = RefundPolicy::default();
        let bought = PaidSpan {
            paid_minor: 3000,
            ordered_at: t0(),
            starts_at: t0(),
            ends_at: t0() + Duration::days(30),
            terms: Terms::Periodic,
        };
        let change = |paid_minor, left_minor| PaidSpan {
            paid_minor,
            ordered_at: t0() + Duration::days(10),
            starts_at: t0() + Duration::days(10),
            ends_at: t0() + Duration::days(30),
            terms: Terms::Change { left_minor },
        };
        let day = |d| t0() + Duration::days(d);
        let all = Scope::Everything;
        assert_eq!(
            give_back(&[bought, change(-1000, -500)], day(20), p, all),
            [500, 0]
        );
        // An upgrade to twice the price charged 2000: 10 unused days at it are worth 2000.
        assert_eq!(
            give_back(&[bought, change(2000, 1000)], day(20), p, all),
            [1000, 1000]
        );
        // Within the full-refund window everything paid goes back, and never more: the purchase
        // alone would return 3000, and the credit's share takes back only 1931 of the 2000 given.
        let early = PaidSpan {
            ordered_at: day(1),
            starts_at: day(1),
            ..change(-2000, -1931)
        };
        assert_eq!(give_back(&[bought, early], day(2), p, all), [1000, 0]);
        // Renewals-only returns never touch a change, nor does one whose time is over.
        assert_eq!(
            refund(&change(2000, 1000), day(20), p, Scope::RenewalsOnly),
            0
        );
        assert_eq!(refund(&change(2000, 0), day(30), p, all), 0);
    }

    #[test]
    fn full_within_the_window_prorated_after_nothing_once_over() {
        let p = RefundPolicy::default();
        let span = PaidSpan {
            paid_minor: 3000,
            ordered_at: t0(),
            starts_at: t0(),
            ends_at: t0() + Duration::days(30),
            terms: Terms::Periodic,
        };
        let all = Scope::Everything;
        assert_eq!(refund(&span, t0() + Duration::days(4), p, all), 3000);
        assert_eq!(refund(&span, t0() + Duration::days(10), p, all), 2000);
        assert_eq!(refund(&span, t0() + Duration::days(29), p, all), 100);
        assert_eq!(refund(&span, t0() + Duration::days(30), p, all), 0);
        // The current span is never given back by returning renewals only.
        assert_eq!(
            refund(&span, t0() + Duration::days(1), p, Scope::RenewalsOnly),
            0
        );
        // A renewal bought ahead is returned in full, whatever the scope.
        let ahead = month(999, t0() - Duration::days(20), t0() + Duration::days(30));
        assert_eq!(refund(&ahead, t0(), p, Scope::RenewalsOnly), 999);
        assert_eq!(refund(&ahead, t0(), p, all), 999);
        assert_eq!(
            expiry_without_unbegun(&[span, ahead], t0()),
            Some(ahead.starts_at)
        );
        assert_eq!(expiry_without_unbegun(&[span], t0()), None);
        // A one-time purchase gives nothing back, even on its first day.
        let once = PaidSpan {
            terms: Terms::OneTime,
            ..span
        };
        assert_eq!(refund(&once, t0() + Duration::days(1), p, all), 0);
    }

    #[test]
    fn a_renewal_bought_in_grace_is_prorated_from_the_old_expiry() {
        // Renewed 10 days into grace for the month that began at the old expiry: past the
        // window, 20 of about 30 days unused.
        let p = RefundPolicy::default();
        let old_expiry = t0();
        let span = PaidSpan {
            paid_minor: 3000,
            ordered_at: old_expiry + Duration::days(10),
            starts_at: old_expiry,
            ends_at: old_expiry + Duration::days(30),
            terms: Terms::Periodic,
        };
        assert_eq!(
            refund(&span, old_expiry + Duration::days(14), p, Scope::Everything),
            3000
        );
        assert_eq!(
            refund(&span, old_expiry + Duration::days(15), p, Scope::Everything),
            1500
        );
    }

    proptest! {
        #[test]
        fn a_refund_never_exceeds_what_was_paid_and_shrinks_with_time(
            paid in 0i64..1_000_000_000_000,
            ordered in 0i64..400,
            len in 1i64..2_000,
            a in 0i64..3_000,
            b in 0i64..3_000,
        ) {
            let p = RefundPolicy::default();
            let start = t0() + Duration::days(ordered);
            let span = PaidSpan { paid_minor: paid, ordered_at: t0(), starts_at: start, ends_at: start + Duration::hours(len), terms: Terms::Periodic };
            let (early, late) = (t0() + Duration::hours(a.min(b)), t0() + Duration::hours(a.max(b)));
            for scope in [Scope::Everything, Scope::RenewalsOnly] {
                let (r1, r2) = (refund(&span, early, p, scope), refund(&span, late, p, scope));
                prop_assert!((0..=paid).contains(&r1));
                prop_assert!((0..=paid).contains(&r2));
                prop_assert!(r2 <= r1);
            }
        }

        #[test]
        fn giving_back_never_exceeds_what_was_paid_nor_any_order_its_share(
            paid in 0i64..1_000_000_000,
            credit in 0i64..1_000_000_000,
            at in 0i64..720,
            now in 0i64..1_000,
        ) {
            let p = RefundPolicy::default();
            let bought = PaidSpan { paid_minor: paid, ordered_at: t0(), starts_at: t0(), ends_at: t0() + Duration::hours(720), terms: Terms::Periodic };
            let credit = credit.min(paid);
            let left = -(credit * (720 - at.min(now)).max(0) / 720).min(credit);
            let change = PaidSpan { paid_minor: -credit, ordered_at: t0() + Duration::hours(at), starts_at: t0() + Duration::hours(at), ends_at: bought.ends_at, terms: Terms::Change { left_minor: left } };
            let now = t0() + Duration::hours(now);
            let back = give_back(&[bought, change], now, p, Scope::Everything);
            prop_assert!(back.iter().all(|b| *b >= 0));
            prop_assert!(back.iter().sum::<i64>() <= paid - credit);
            prop_assert!(back[0] <= refund(&bought, now, p, Scope::Everything));
            prop_assert_eq!(back[1], 0);
        }
    }
}
