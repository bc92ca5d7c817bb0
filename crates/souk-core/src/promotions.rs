//! Operator promotions: a percentage off a product's orders, for one period unit or all, between
//! a start and an end. An order pays its list price less the best promotion running when it is
//! placed; the discount is rounded down to the minor unit, so the marketplace never gives away
//! more than the percentage says.

use crate::money::Money;
use crate::plans::Period;
use crate::Error;
use chrono::{DateTime, Utc};

/// The largest discount an operator may give, in percent.
pub const MAX_PERCENT_OFF: u32 = 90;

/// A promotion as core needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// 1 to [`MAX_PERCENT_OFF`].
    pub percent_off: u32,
    /// Only orders bought by this unit; every order when `None`.
    pub period: Option<Period>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl Promotion {
    /// Checks a promotion as an operator enters it.
    pub fn validated(self) -> Result<Promotion, Error> {
        if self.percent_off == 0 || self.percent_off > MAX_PERCENT_OFF {
            return Err(Error::invalid(
                "percent_off",
                format!("a promotion takes 1 to {MAX_PERCENT_OFF} percent off"),
            ));
        }
        if self.ends_at <= self.starts_at {
            return Err(Error::invalid("ends_at", "must be after starts_at"));
        }
        Ok(self)
    }

    /// Whether an order by `period` placed at `now` gets this promotion.
    pub fn applies(&self, period: Period, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at && self.period.is_none_or(|p| p == period)
    }

    /// What this promotion takes off `list`, rounded down to the minor unit.
    pub fn discount(&self, list: Money) -> Money {
        let off = i128::from(list.minor.max(0)) * i128::from(self.percent_off) / 100;
        Money::from_minor(i64::try_from(off).unwrap_or(0), list.currency)
    }
}

/// A price with its discount: list - discount = paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    pub list: Money,
    pub discount: Money,
    /// The promotion's percentage, when one applied.
    pub percent_off: Option<u32>,
}

impl Priced {
    /// What the order charges.
    pub fn paid(&self) -> Money {
        Money::from_minor(self.list.minor - self.discount.minor, self.list.currency)
    }
}

/// Prices an order of `list` by `period` at `now`: the largest discount of the promotions that
/// apply wins (promotions never stack).
pub fn price(list: Money, period: Period, now: DateTime<Utc>, promotions: &[Promotion]) -> Priced {
    let best = promotions
        .iter()
        .filter(|p| p.applies(period, now))
        .max_by_key(|p| p.percent_off);
    Priced {
        list,
        discount: best.map_or(Money::from_minor(0, list.currency), |p| p.discount(list)),
        percent_off: best.map(|p| p.percent_off),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()
    }

    fn promo(percent_off: u32, period: Option<Period>) -> Promotion {
        Promotion {
            percent_off,
            period,
            starts_at: t0(),
            ends_at: t0() + Duration::days(7),
        }
    }

    #[test]
    fn the_best_running_promotion_for_the_period_wins() {
        let list = Money::from_minor(9999, Currency::Cny);
        let promos = [promo(10, None), promo(25, Some(Period::Year))];
        let monthly = price(list, Period::Month, t0(), &promos);
        assert_eq!((monthly.discount.minor, monthly.paid().minor), (999, 9000));
        assert_eq!(
            price(list, Period::Year, t0(), &promos).percent_off,
            Some(25)
        );
        // Before the start and from the end on, nothing is taken off.
        for at in [t0() - Duration::seconds(1), t0() + Duration::days(7)] {
            let p = price(list, Period::Month, at, &promos);
            assert_eq!((p.discount.minor, p.percent_off), (0, None));
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert!(promo(0, None).validated().is_err());
        assert!(promo(91, None).validated().is_err());
        let backwards = Promotion {
            ends_at: t0(),
            ..promo(10, None)
        };
        assert!(
            matches!(backwards.validated(), Err(Error::Invalid { field, .. }) if field == "ends_at")
        );
        assert!(promo(90, None).validated().is_ok());
    }

    proptest! {
        #[test]
        fn a_discount_never_exceeds_its_percentage_and_never_makes_a_price_negative(minor in 0i64..1_000_000_000_000, pct in 1u32..=90) {
            let list = Money::from_minor(minor, Currency::Cny);
            let p = price(list, Period::Month, t0(), &[promo(pct, None)]);
            prop_assert!(p.discount.minor * 100 <= minor * i64::from(pct));
            prop_assert!(p.paid().minor >= 0 && p.paid().minor <= minor);
        }
    }
}
