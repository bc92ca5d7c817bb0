//! Metered billing: the dimensions a plan charges by use (API calls, GB-hours), their volume
//! tiers and package quotas, the rules a usage record must meet, and what a period's usage costs.
//!
//! Charges are exact without per-record rounding: the rater keeps, per instance, dimension and
//! period, the total quantity and what it has charged so far; each new charge is
//! `round(cost(total after)) - charged so far`. The charges of a period therefore add up to the
//! rounded cost of its whole usage, however it was split into records and hours.

use crate::accounts::string_enum;
use crate::money::{parse_unit_price, plain_decimal, Currency, Money};
use crate::plans::{add_periods, never, Period};
use crate::Error;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most metered dimensions one plan may have.
pub const MAX_DIMENSIONS: usize = 10;
/// The most volume tiers one dimension may have, besides its base price.
pub const MAX_TIERS: usize = 10;
/// The most decimals a quantity may carry; quantities are stored as whole millionths.
pub const QUANTITY_DECIMALS: u32 = 6;
/// The most records one metering call may carry.
pub const MAX_BATCH: usize = 1000;

/// The largest quantity one record (or one quota, or one tier bound) may state: beyond it a
/// number is a bug in the seller's meter, not usage.
pub fn max_quantity() -> Decimal {
    Decimal::from(1_000_000_000i64)
}

string_enum! {
    /// What happens to usage past a package's quota.
    Overage {
        /// Charged at the dimension's on-demand price (and tiers).
        Charge = "charge",
        /// Refused when the seller reports it: the package is all the buyer bought.
        Refuse = "refuse",
    }
}

/// One volume tier as the merchant writes it: from `from` units on (within a period) each unit
/// costs `price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierDraft {
    pub from: String,
    pub price: String,
}

/// A metered dimension as the merchant writes it (strings, as stored in the product content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionDraft {
    /// The name the seller's meter reports, e.g. `api_calls`.
    pub key: String,
    /// The unit buyers see, e.g. `call` or `GB-hour`.
    pub unit: String,
    /// Price of one unit below the first tier, a decimal string.
    pub price: String,
    /// Cheaper (or dearer) prices from a quantity on, within a period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierDraft>,
    /// A package's quota per period (of a monthly or yearly plan): this much is paid for by the
    /// plan's price; usage resets each period and unused quota does not carry over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<String>,
    /// What happens past the quota (charged on demand unless the plan says refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage: Option<Overage>,
}

/// One volume tier, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub from: Decimal,
    pub price: Decimal,
}

/// A metered dimension, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    pub key: String,
    pub unit: String,
    pub price: Decimal,
    /// Strictly increasing `from`, all above zero.
    pub tiers: Vec<Tier>,
    /// The quota per period the plan's price pays for (zero when none).
    pub included: Decimal,
    pub overage: Overage,
}

/// Parses a quantity as a meter reports it: a plain decimal, not negative, at most
/// [`QUANTITY_DECIMALS`] decimals and at most [`max_quantity`].
pub fn parse_quantity(field: &str, text: &str) -> Result<Decimal, Error> {
    let text = text.trim();
    if !plain_decimal(text) {
        return Err(Error::invalid(
            field,
            format!("{text:?} is not a decimal quantity such as 12.5"),
        ));
    }
    let q = Decimal::from_str(text)
        .map_err(|_| Error::invalid(field, format!("{text:?} is not a decimal quantity")))?;
    check_quantity(field, q)
}

/// Checks a quantity's sign, size and decimals.
pub fn check_quantity(field: &str, q: Decimal) -> Result<Decimal, Error> {
    if q.is_sign_negative() && !q.is_zero() {
        return Err(Error::invalid(field, "a quantity cannot be negative"));
    }
    if q > max_quantity() {
        return Err(Error::invalid(
            field,
            "a quantity is at most 1,000,000,000 per record",
        ));
    }
    if q.normalize().scale() > QUANTITY_DECIMALS {
        return Err(Error::invalid(
            field,
            format!("a quantity has at most {QUANTITY_DECIMALS} decimals"),
        ));
    }
    Ok(q.normalize())
}

/// A quantity in whole millionths, as stored (exact: quantities have at most six decimals).
pub fn to_micros(q: Decimal) -> i64 {
    let scaled = q * Decimal::from(1_000_000i64);
    i64::try_from(scaled.trunc()).unwrap_or(i64::MAX)
}

/// A stored quantity back as a decimal.
pub fn from_micros(micros: i64) -> Decimal {
    Decimal::new(micros, QUANTITY_DECIMALS).normalize()
}

fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && key.len() <= 40
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A nonzero unit price must charge at least one minor unit for one unit: a price that rounds
/// to nothing per unit is better stated per thousand units.
fn chargeable(field: &str, price: Decimal, currency: Currency) -> Result<Decimal, Error> {
    if !price.is_zero() && Money::round(price, currency)?.minor == 0 {
        return Err(Error::invalid(
            field,
            format!(
                "{price} {currency} charges nothing for one unit; use 0 for free use, or a larger unit (per 1,000 calls)"
            ),
        ));
    }
    Ok(price)
}

impl Dimension {
    /// Checks a dimension as the merchant saves it; errors name the field
    /// (`plans[0].dimensions[1].tiers[0].from`). `periodic` says whether the plan has a monthly
    /// or yearly price, which a quota needs (it resets each period).
    pub fn parse(
        field: &str,
        d: &DimensionDraft,
        currency: Currency,
        periodic: bool,
    ) -> Result<Dimension, Error> {
        let key = d.key.trim();
        if !valid_key(key) {
            return Err(Error::invalid(
                format!("{field}.key"),
                "1 to 40 characters: a lowercase letter, then lowercase letters, digits or _",
            ));
        }
        let unit = crate::validate::text(&format!("{field}.unit"), &d.unit, 20)?;
        let price = chargeable(
            &format!("{field}.price"),
            parse_unit_price(&format!("{field}.price"), &d.price)?,
            currency,
        )?;
        if d.tiers.len() > MAX_TIERS {
            return Err(Error::invalid(
                format!("{field}.tiers"),
                format!("at most {MAX_TIERS} tiers"),
            ));
        }
        let mut tiers: Vec<Tier> = Vec::with_capacity(d.tiers.len());
        for (i, t) in d.tiers.iter().enumerate() {
            let f = format!("{field}.tiers[{i}]");
            let from = parse_quantity(&format!("{f}.from"), &t.from)?;
            if from.is_zero() || tiers.last().is_some_and(|prev| prev.from >= from) {
                return Err(Error::invalid(
                    format!("{f}.from"),
                    "tiers start above zero, each above the one before",
                ));
            }
            let price = chargeable(
                &format!("{f}.price"),
                parse_unit_price(&format!("{f}.price"), &t.price)?,
                currency,
            )?;
            tiers.push(Tier { from, price });
        }
        let included = match d.included.as_deref().map(str::trim) {
            None | Some("") => Decimal::ZERO,
            Some(q) => {
                let q = parse_quantity(&format!("{field}.included"), q)?;
                if !q.is_zero() && !periodic {
                    return Err(Error::invalid(
                        format!("{field}.included"),
                        "a quota comes with a monthly or yearly price, which pays for it each period",
                    ));
                }
                q
            }
        };
        let overage = d.overage.unwrap_or(Overage::Charge);
        if overage == Overage::Refuse && included.is_zero() {
            return Err(Error::invalid(
                format!("{field}.overage"),
                "\"refuse\" needs a quota to refuse usage beyond",
            ));
        }
        Ok(Dimension {
            key: key.to_owned(),
            unit,
            price,
            tiers,
            included,
            overage,
        })
    }

    /// The dimension written back as a draft, normalized (what is stored and shown).
    pub fn draft(&self) -> DimensionDraft {
        DimensionDraft {
            key: self.key.clone(),
            unit: self.unit.clone(),
            price: self.price.to_string(),
            tiers: self
                .tiers
                .iter()
                .map(|t| TierDraft {
                    from: t.from.to_string(),
                    price: t.price.to_string(),
                })
                .collect(),
            included: (!self.included.is_zero()).then(|| self.included.to_string()),
            overage: (self.overage != Overage::Charge).then_some(self.overage),
        }
    }

    /// What `total` units used within one period cost before rounding: the quota is free, the
    /// rest is priced tier by tier (each unit at the price of the tier it falls in).
    pub fn cost(&self, total: Decimal) -> Decimal {
        let billable = (total - self.included).max(Decimal::ZERO);
        let mut cost = Decimal::ZERO;
        let mut bands = std::iter::once((Decimal::ZERO, self.price))
            .chain(self.tiers.iter().map(|t| (t.from, t.price)))
            .peekable();
        while let Some((from, price)) = bands.next() {
            if billable <= from {
                break;
            }
            let to = bands
                .peek()
                .map_or(billable, |(next, _)| (*next).min(billable));
            cost += (to - from) * price;
        }
        cost
    }

    /// What `total` units used within one period cost, rounded half-up once to the minor unit.
    pub fn charge_for(&self, total: Decimal, currency: Currency) -> Result<Money, Error> {
        Money::round(self.cost(total), currency)
    }

    /// Whether `total` units in one period go past a quota the plan refuses to exceed.
    pub fn refuses(&self, total: Decimal) -> bool {
        self.overage == Overage::Refuse && total > self.included
    }
}

/// The window of time whose usage is rated together (quota and tiers reset at its end): for a
/// monthly or yearly package the periods counted from `anchor` (when the instance started); for
/// on-demand use the calendar month (UTC); for a one-time purchase its whole life.
pub fn usage_window(
    anchor: DateTime<Utc>,
    period: Period,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    match period {
        Period::Once => (anchor, never()),
        Period::OnDemand => {
            let start = Utc
                .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(at);
            (start, add_periods(start, Period::Month, 1))
        }
        Period::Month | Period::Year if at < anchor => (anchor, add_periods(anchor, period, 1)),
        Period::Month | Period::Year => {
            let months_per = if period == Period::Year { 12 } else { 1 };
            let months =
                (at.year() - anchor.year()) * 12 + at.month() as i32 - anchor.month() as i32;
            // An estimate one period early at most (month ends clamp); step forward from there.
            let mut k = u32::try_from((months / months_per - 1).max(0)).unwrap_or(0);
            loop {
                let start = add_periods(anchor, period, k);
                let end = add_periods(anchor, period, k + 1);
                if at < end || end <= start {
                    return (start, end);
                }
                k += 1;
            }
        }
    }
}

/// The start of the hour `t` falls in: usage is charged by the hour.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(t)
}

/// Why a usage record was not accepted. Each has a stable code for the seller's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A field is missing or malformed (the message says which).
    Invalid(String),
    /// No such instance, or another seller's (the answer does not tell them apart).
    UnknownInstance,
    /// The instance was released (or never provisioned): nothing runs to be used.
    InstanceEnded,
    /// The use ended before the instance was bought (beyond the clocks' allowed skew).
    BeforeInstance,
    UnknownDimension,
    StartAfterEnd,
    TooOld,
    InFuture,
    /// The package's quota for the period is used up and the plan refuses usage beyond it.
    OverQuota,
}

impl Rejection {
    /// The code in the API answer.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Invalid(_) => "invalid",
            Rejection::UnknownInstance => "unknown_instance",
            Rejection::InstanceEnded => "instance_released",
            Rejection::BeforeInstance => "before_instance",
            Rejection::UnknownDimension => "unknown_dimension",
            Rejection::StartAfterEnd => "start_after_end",
            Rejection::TooOld => "too_old",
            Rejection::InFuture => "in_future",
            Rejection::OverQuota => "over_quota",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid(m) => f.write_str(m),
            Rejection::UnknownInstance => f.write_str("no such instance"),
            Rejection::InstanceEnded => {
                f.write_str("the instance failed, or was released before this use ended")
            }
            Rejection::BeforeInstance => f.write_str("usage ended before the instance was bought"),
            Rejection::UnknownDimension => f.write_str("the instance's plan has no such dimension"),
            Rejection::StartAfterEnd => f.write_str("usage starts after it ends"),
            Rejection::TooOld => f.write_str("usage ended before the reporting window"),
            Rejection::InFuture => f.write_str("usage ends in the future"),
            Rejection::OverQuota => f.write_str("the package's quota for this period is used up"),
        }
    }
}

/// How late usage may be reported, and how far a meter's clock may run ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Usage that ended longer ago than this is refused (default 6 hours).
    pub late: Duration,
    /// Usage may end this far after souk's clock (default 5 minutes).
    pub skew: Duration,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            late: Duration::hours(6),
            skew: Duration::minutes(5),
        }
    }
}

impl Window {
    /// Checks a record's times against the clock.
    pub fn check(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        if start > end {
            Err(Rejection::StartAfterEnd)
        } else if end > now + self.skew {
            Err(Rejection::InFuture)
        } else if end < now - self.late {
            Err(Rejection::TooOld)
        } else {
            Ok(())
        }
    }
}

/// Checks a seller's record id: 1 to 64 printable ASCII characters.
pub fn record_id(value: &str) -> Result<&str, Rejection> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Rejection::Invalid(
            "record_id must be 1 to 64 printable ASCII characters".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn draft(price: &str) -> DimensionDraft {
        DimensionDraft {
            key: "api_calls".into(),
            unit: "1,000 calls".into(),
            price: price.into(),
            tiers: vec![],
            included: None,
            overage: None,
        }
    }

    fn tiered() -> Dimension {
        let mut t = draft("0.50");
        t.tiers = vec![
            TierDraft {
                from: "100".into(),
                price: "0.40".into(),
            },
            TierDraft {
                from: "1000".into(),
                price: "0.25".into(),
            },
        ];
        Dimension::parse("d", &t, Currency::Cny, false).unwrap()
    }

    #[test]
    fn tiers_price_each_unit_in_the_band_it_falls_in() {
        let t = tiered();
        assert_eq!(t.cost(d("0")), d("0"));
        assert_eq!(t.cost(d("100")), d("50.00"));
        assert_eq!(t.cost(d("150")), d("70.00"));
        assert_eq!(t.cost(d("2000")), d("50") + d("360") + d("250"));
    }

    #[test]
    fn a_quota_is_free_and_refusal_starts_past_it() {
        let mut p = draft("0.02");
        p.included = Some("1000".into());
        p.overage = Some(Overage::Refuse);
        assert!(Dimension::parse("d", &p, Currency::Cny, false).is_err());
        let p = Dimension::parse("d", &p, Currency::Cny, true).unwrap();
        assert_eq!(p.cost(d("1000")), Decimal::ZERO);
        assert!(!p.refuses(d("1000")));
        assert!(p.refuses(d("1000.5")));
        assert_eq!(p.cost(d("1500")), d("10"));
        let mut no_quota = draft("1");
        no_quota.overage = Some(Overage::Refuse);
        assert!(Dimension::parse("d", &no_quota, Currency::Cny, true).is_err());
    }

    #[test]
    fn bad_dimensions_are_refused_with_their_field() {
        let field = |draft: DimensionDraft| match Dimension::parse(
            "plans[0].dimensions[0]",
            &draft,
            Currency::Cny,
            true,
        ) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut bad_key = draft("1");
        bad_key.key = "API calls".into();
        assert_eq!(field(bad_key), "plans[0].dimensions[0].key");
        assert_eq!(field(draft("0.001")), "plans[0].dimensions[0].price");
        let mut unordered = draft("1");
        unordered.tiers = vec![
            TierDraft {
                from: "10".into(),
                price: "1".into(),
            },
            TierDraft {
                from: "10".into(),
                price: "1".into(),
            },
        ];
        assert_eq!(field(unordered), "plans[0].dimensions[0].tiers[1].from");
        assert!(Dimension::parse("d", &draft("0"), Currency::Cny, false).is_ok());
    }

    #[test]
    fn quantities_are_plain_bounded_and_exact() {
        assert_eq!(parse_quantity("q", "12.5").unwrap(), d("12.5"));
        for bad in ["-1", "1e3", "0.0000001", "1000000001", "", "NaN"] {
            assert!(parse_quantity("q", bad).is_err(), "{bad}");
        }
        assert_eq!(to_micros(d("1.000001")), 1_000_001);
        assert_eq!(from_micros(2_500_000), d("2.5"));
    }

    #[test]
    fn windows_follow_the_plan() {
        let anchor = Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap();
        let at = Utc.with_ymd_and_hms(2027, 3, 30, 0, 0, 0).unwrap();
        let (s, e) = usage_window(anchor, Period::Month, at);
        assert_eq!(s, Utc.with_ymd_and_hms(2027, 2, 28, 10, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 3, 31, 10, 0, 0).unwrap());
        let (s, e) = usage_window(anchor, Period::OnDemand, at);
        assert_eq!(s, Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 4, 1, 0, 0, 0).unwrap());
        let (s, e) = usage_window(anchor, Period::Year, at);
        assert_eq!((s, e.year()), (anchor, 2028));
    }

    #[test]
    fn record_times_are_checked_against_the_clock() {
        let now = Utc.with_ymd_and_hms(2027, 3, 30, 12, 0, 0).unwrap();
        let w = Window::default();
        let h = Duration::hours;
        assert_eq!(w.check(now - h(1), now, now), Ok(()));
        assert_eq!(w.check(now, now - h(1), now), Err(Rejection::StartAfterEnd));
        assert_eq!(w.check(now, now + h(1), now), Err(Rejection::InFuture));
        assert_eq!(w.check(now - h(8), now - h(7), now), Err(Rejection::TooOld));
        assert!(record_id("").is_err() && record_id("a b").is_err() && record_id("r-1").is_ok());
    }

    proptest! {
        /// However a period's usage is split into charges, they add up to the rounded cost of the
        /// whole, and no charge is negative.
        #[test]
        fn charges_telescope_to_the_rounded_total(parts in proptest::collection::vec(0i64..5_000_000_000, 1..30), included in 0i64..2_000) {
            let mut dim = tiered();
            dim.included = Decimal::from(included);
            let mut total = Decimal::ZERO;
            let mut charged = 0i64;
            for micros in parts {
                total += from_micros(micros);
                let now = dim.charge_for(total, Currency::Cny).unwrap().minor;
                prop_assert!(now >= charged);
                charged = now;
            }
            prop_assert_eq!(charged, Money::round(dim.cost(total), Currency::Cny).unwrap().minor);
        }

        /// The window containing an instant does contain it, for every anchor and instant.
        #[test]
        fn a_window_contains_its_instant(anchor_s in 1_700_000_000i64..1_900_000_000, later in 0i64..300_000_000, yearly in any::<bool>()) {
            let anchor = DateTime::from_timestamp(anchor_s, 0).unwrap();
            let at = DateTime::from_timestamp(anchor_s + later, 0).unwrap();
            let period = if yearly { Period::Year } else { Period::Month };
            let (s, e) = usage_window(anchor, period, at);
            prop_assert!(s <= at && at < e);
        }
    }
}
