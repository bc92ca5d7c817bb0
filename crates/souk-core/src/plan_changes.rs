//! Changing plan within a product: the time left is re-priced at the new plan, and the buyer pays
//! the difference (an upgrade) or gets it back (a downgrade).
//!
//! Each paid span still to run is worth, on a plan priced `u` a period, `u` x its periods x the
//! share of the span left, scaled by what its order actually paid against its list price (so a
//! promotion the buyer had keeps counting), rounded down to the minor unit. A span is priced at the
//! plan it is on now: its own order's unit price, or that of the latest change after it. The
//! difference is the time left's worth at the new plan less its worth at the plans it is on.
//!
//! Because both sides are one function of the same spans and instant, changing from A to B and
//! straight back costs exactly nothing. A change is not discounted by promotions running at the
//! time (that would make the way there and the way back cost different amounts).

use crate::money::Currency;
use crate::Error;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// One paid order of an instance, oldest first, as a plan change reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The time it paid for, from [`crate::refunds::spans`]; a change's covers the time it
    /// re-priced.
    pub span: (DateTime<Utc>, DateTime<Utc>),
    /// A plan change: it moves the spans before it to its plan, and buys no time itself.
    pub change: bool,
    pub periods: u32,
    /// Price of one period of the order's plan when it was placed.
    pub unit_price: Decimal,
    /// The order's list price and what it charged, in minor units.
    pub list_minor: i64,
    pub paid_minor: i64,
}

/// The share of `span` not used at `at`, as milliseconds left over milliseconds in all: the whole
/// span before it begins, `None` once it is over (or empty).
fn unused(span: (DateTime<Utc>, DateTime<Utc>), at: DateTime<Utc>) -> Option<(i128, i128)> {
    let total = (span.1 - span.0).num_milliseconds();
    if total <= 0 || at >= span.1 {
        return None;
    }
    let left = (span.1 - at.max(span.0)).num_milliseconds();
    Some((i128::from(left), i128::from(total)))
}

fn too_large() -> Error {
    Error::invalid("plan_id", "the price difference is too large")
}

/// What the `left / total` share of `h`'s periods is worth at `unit` a period, in minor units,
/// rounded down: `unit x periods x 10^minor x paid / list x left / total`.
fn worth(
    unit: Decimal,
    h: &Held,
    (left, total): (i128, i128),
    currency: Currency,
) -> Result<i64, Error> {
    let (paid, list) = if h.list_minor > 0 {
        (i128::from(h.paid_minor), i128::from(h.list_minor))
    } else {
        (1, 1)
    };
    let exact = || {
        let num = unit
            .mantissa()
            .checked_mul(i128::from(h.periods))?
            .checked_mul(10i128.pow(currency.minor_digits()))?
            .checked_mul(paid)?
            .checked_mul(left)?;
        let den = 10i128
            .checked_pow(unit.scale())?
            .checked_mul(list)?
            .checked_mul(total)?;
        i64::try_from(num.div_euclid(den)).ok()
    };
    // Amounts too large for exact integers take Decimal's 28 digits; the same inputs always take
    // the same path, so a change and its reverse still cancel.
    let approximate = || {
        unit.checked_mul(Decimal::from(h.periods))?
            .checked_mul(Decimal::from(10i64.pow(currency.minor_digits())))?
            .checked_mul(Decimal::from_i128_with_scale(paid, 0))?
            .checked_div(Decimal::from_i128_with_scale(list, 0))?
            .checked_mul(Decimal::from_i128_with_scale(left, 0))?
            .checked_div(Decimal::from_i128_with_scale(total, 0))?
            .floor()
            .to_i64()
    };
    exact().or_else(approximate).ok_or_else(too_large)
}

/// What moving the time left at `at` to a plan priced `to_unit` a period costs, in minor units:
/// positive for an upgrade (charged), negative for a downgrade (given back), zero when no paid
/// time is left.
pub fn difference(
    held: &[Held],
    at: DateTime<Utc>,
    to_unit: Decimal,
    currency: Currency,
) -> Result<i64, Error> {
    repriced(held, at, to_unit, currency)
}

/// What the change `held[c]` is still worth at `at` (what unsubscribing gives back of its charge,
/// or takes back of its credit): its difference over the time still to run, span by span as it
/// priced them, never more in size than the change itself.
pub fn change_left(
    held: &[Held],
    c: usize,
    at: DateTime<Utc>,
    currency: Currency,
) -> Result<i64, Error> {
    let change = &held[c];
    let left = repriced(&held[..c], at, change.unit_price, currency)?;
    Ok(left.clamp(change.paid_minor.min(0), change.paid_minor.max(0)))
}

/// The time left at `at` of the paid spans in `held`, at `to_unit` a period, less the same time
/// at the plans it is on (each span's own order's unit price, or the latest change's after it).
fn repriced(
    held: &[Held],
    at: DateTime<Utc>,
    to_unit: Decimal,
    currency: Currency,
) -> Result<i64, Error> {
    let mut total = 0i64;
    for (i, h) in held.iter().enumerate() {
        if h.change {
            continue;
        }
        let Some(share) = unused(h.span, at) else {
            continue;
        };
        let on_now = held[i + 1..]
            .iter()
            .rev()
            .find(|c| c.change)
            .map_or(h.unit_price, |c| c.unit_price);
        let step = worth(to_unit, h, share, currency)? - worth(on_now, h, share, currency)?;
        total = total.checked_add(step).ok_or_else(too_large)?;
    }
    Ok(total)
}

/// The paid time left at `at`: until the latest end of a span, `None` when it is all used.
pub fn time_left_until(held: &[Held], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    held.iter()
        .filter(|h| !h.change && unused(h.span, at).is_some())
        .map(|h| h.span.1)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::{add_periods, Period};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()
    }

    fn month(start: DateTime<Utc>, periods: u32, unit: &str, paid_minor: i64) -> Held {
        let unit: Decimal = unit.parse().unwrap();
        Held {
            span: (start, add_periods(start, Period::Month, periods)),
            change: false,
            periods,
            unit_price: unit,
            list_minor: (unit * Decimal::from(periods) * Decimal::from(100))
                .to_i64()
                .unwrap(),
            paid_minor,
        }
    }

    fn change(at: DateTime<Utc>, end: DateTime<Utc>, unit: &str, delta: i64) -> Held {
        Held {
            span: (at, end),
            change: true,
            periods: 0,
            unit_price: unit.parse().unwrap(),
            list_minor: delta,
            paid_minor: delta,
        }
    }

    #[test]
    fn the_time_left_is_repriced_at_the_new_plan() {
        // March (31 days) at 31.00; on the 11th, 21 days are left.
        let held = [month(t0(), 1, "31", 3100)];
        let at = t0() + Duration::days(10);
        assert_eq!(
            difference(&held, at, "62".parse().unwrap(), Currency::Cny),
            Ok(2100)
        );
        assert_eq!(
            difference(&held, at, "15.5".parse().unwrap(), Currency::Cny),
            Ok(-1050)
        );
        assert_eq!(
            difference(&held, at, "31".parse().unwrap(), Currency::Cny),
            Ok(0)
        );
        // A renewal not begun yet is re-priced in full.
        let renewed = [held[0], month(held[0].span.1, 1, "31", 3100)];
        assert_eq!(
            difference(&renewed, at, "62".parse().unwrap(), Currency::Cny),
            Ok(2100 + 3100)
        );
        assert_eq!(time_left_until(&renewed, at), Some(renewed[1].span.1));
        // Nothing is left once the time is over.
        let over = held[0].span.1;
        assert_eq!(
            difference(&held, over, "62".parse().unwrap(), Currency::Cny),
            Ok(0)
        );
        assert_eq!(time_left_until(&held, over), None);
    }

    #[test]
    fn a_discount_the_buyer_had_keeps_counting() {
        // Bought at 20% off: the time left is worth 80% of either plan's price.
        let held = [month(t0(), 1, "31", 2480)];
        let at = t0() + Duration::days(10);
        assert_eq!(
            difference(&held, at, "62".parse().unwrap(), Currency::Cny),
            Ok(1680)
        );
    }

    #[test]
    fn after_a_change_the_time_is_on_the_new_plan() {
        let bought = month(t0(), 1, "31", 3100);
        let at = t0() + Duration::days(10);
        let up = difference(&[bought], at, "62".parse().unwrap(), Currency::Cny).unwrap();
        let held = [bought, change(at, bought.span.1, "62", up)];
        let later = t0() + Duration::days(20);
        // Ten days later, 11 days are left at 62.00 a month; moving them to 93.00 costs 11.00.
        assert_eq!(
            difference(&held, later, "93".parse().unwrap(), Currency::Cny),
            Ok(1100)
        );
    }

    #[test]
    fn a_change_is_worth_what_its_spans_have_left_at_the_price_it_gave_them() {
        // March at 31.00, and April bought ahead at 90% off (3.00 of 30.00). On the 11th the plan
        // moves to one at 62.00: 21 days of March (21.00 more) and all of April (6.20 at 90% off,
        // 3.20 more) are re-priced.
        let march = month(t0(), 1, "31", 3100);
        let april = Held {
            list_minor: 3000,
            paid_minor: 300,
            ..month(march.span.1, 1, "30", 300)
        };
        let at = t0() + Duration::days(10);
        let up = difference(&[march, april], at, "62".parse().unwrap(), Currency::Cny).unwrap();
        assert_eq!(up, 2100 + 320);
        let held = [march, april, change(at, april.span.1, "62", up)];
        assert_eq!(change_left(&held, 2, at, Currency::Cny), Ok(up));
        // On the 29th: 2 days of March (2.00 of the difference) and April's 3.20 are left, not
        // the 15.18 that the change's share of the time alone would say.
        let late = t0() + Duration::days(29);
        assert_eq!(change_left(&held, 2, late, Currency::Cny), Ok(200 + 320));
        assert_eq!(change_left(&held, 2, april.span.1, Currency::Cny), Ok(0));
    }

    proptest! {
        #[test]
        fn upgrading_then_downgrading_at_the_same_instant_costs_nothing(
            months in 1u32..=36,
            renewals in 0u32..=3,
            a in 0i64..100_000_000,
            b in 0i64..100_000_000,
            discount in 0i64..=100,
            hours in 0i64..30_000,
        ) {
            let (ua, ub) = (Decimal::new(a, 4), Decimal::new(b, 4));
            let list = (ua * Decimal::from(months) * Decimal::from(100)).round().to_i64().unwrap();
            let first = Held {
                span: (t0(), add_periods(t0(), Period::Month, months)),
                change: false,
                periods: months,
                unit_price: ua,
                list_minor: list,
                paid_minor: list * (100 - discount) / 100,
            };
            let mut held = vec![first];
            for _ in 0..renewals {
                let start = held.last().unwrap().span.1;
                held.push(Held { span: (start, add_periods(start, Period::Month, months)), ..first });
            }
            let at = t0() + Duration::hours(hours);
            let up = difference(&held, at, ub, Currency::Cny).unwrap();
            if let Some(end) = time_left_until(&held, at) {
                held.push(Held { span: (at, end), change: true, periods: 0, unit_price: ub, list_minor: up, paid_minor: up });
            }
            let down = difference(&held, at, ua, Currency::Cny).unwrap();
            prop_assert_eq!(up + down, 0);
            prop_assert_eq!(up >= 0, ub >= ua || up == 0);
        }
    }
}
