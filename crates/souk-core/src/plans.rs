//! Plans and their prices: what a buyer pays for N months or N years of a plan, or once for good.

use crate::metering::{Dimension, DimensionDraft, MAX_DIMENSIONS};
use crate::money::{parse_unit_price, Currency, Money};
use crate::Error;
use chrono::{DateTime, Months, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most months one order may buy.
pub const MAX_MONTHS: u32 = 36;
/// The most years one order may buy.
pub const MAX_YEARS: u32 = 5;

/// The longest free trial a plan may offer, in days.
pub const MAX_TRIAL_DAYS: u32 = 90;

/// Checks a plan's free-trial length: none, or 1 to [`MAX_TRIAL_DAYS`] days.
pub fn trial_days(field: &str, days: Option<u32>) -> Result<Option<u32>, Error> {
    match days {
        Some(d) if d == 0 || d > MAX_TRIAL_DAYS => Err(Error::invalid(
            field,
            format!("a trial lasts 1 to {MAX_TRIAL_DAYS} days; leave it out for no trial"),
        )),
        other => Ok(other),
    }
}

/// The unit a plan is bought in: a month, a year, once (a one-time purchase that never
/// expires), or on demand (nothing up front; use is charged as it is reported, and it never
/// expires while the account pays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Month,
    Year,
    Once,
    OnDemand,
}

impl Period {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Year => "year",
            Period::Once => "once",
            Period::OnDemand => "on_demand",
        }
    }

    /// How many of this period one order may buy.
    pub fn max_count(self) -> u32 {
        match self {
            Period::Month => MAX_MONTHS,
            Period::Year => MAX_YEARS,
            Period::Once | Period::OnDemand => 1,
        }
    }

    /// `count` of this period in words: "1 month", "3 years", "one-time", "pay as you go".
    pub fn words(self, count: u32) -> String {
        let plural = if count == 1 { "" } else { "s" };
        match self {
            Period::Month => format!("{count} month{plural}"),
            Period::Year => format!("{count} year{plural}"),
            Period::Once => "one-time".to_owned(),
            Period::OnDemand => "pay as you go".to_owned(),
        }
    }

    /// The refusal of a plan not sold this way: "this plan is not sold by the month".
    pub fn not_sold(self) -> &'static str {
        match self {
            Period::Month => "this plan is not sold by the month",
            Period::Year => "this plan is not sold by the year",
            Period::Once => "this plan is not sold for a one-time price",
            Period::OnDemand => "this plan is not sold on demand",
        }
    }

    /// How many of this period one order may buy, in words: "buy between 1 and 120 months".
    pub fn count_rule(self) -> String {
        match self {
            Period::Month | Period::Year => {
                format!("buy between 1 and {} {}s", self.max_count(), self)
            }
            Period::Once => "a one-time purchase is bought once (periods: 1)".to_owned(),
            Period::OnDemand => "an on-demand plan is bought once (periods: 1)".to_owned(),
        }
    }

    /// Whether the instance bought this way never expires (a one-time or on-demand purchase).
    pub fn is_open_ended(self) -> bool {
        matches!(self, Period::Once | Period::OnDemand)
    }
}

/// How an instance is paid for, as its buyer reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A free trial, until converted.
    Trial,
    Monthly,
    Yearly,
    OneTime,
    /// Nothing up front; use is charged by the hour.
    OnDemand,
    /// A monthly or yearly price that includes a quota of metered use per period.
    Package,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Trial,
        Mode::Monthly,
        Mode::Yearly,
        Mode::OneTime,
        Mode::OnDemand,
        Mode::Package,
    ];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Trial => "trial",
            Mode::Monthly => "monthly",
            Mode::Yearly => "yearly",
            Mode::OneTime => "one_time",
            Mode::OnDemand => "on_demand",
            Mode::Package => "package",
        }
    }

    /// In words, for pages: "pay as you go".
    pub fn words(self) -> &'static str {
        match self {
            Mode::Trial => "free trial",
            Mode::Monthly => "monthly",
            Mode::Yearly => "yearly",
            Mode::OneTime => "one-time",
            Mode::OnDemand => "pay as you go",
            Mode::Package => "package",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "month" => Ok(Period::Month),
            "year" => Ok(Period::Year),
            "once" => Ok(Period::Once),
            "on_demand" => Ok(Period::OnDemand),
            _ => Err(Error::invalid(
                "period",
                "must be \"month\", \"year\", \"once\" or \"on_demand\"",
            )),
        }
    }
}

/// The prices of one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPrices {
    /// The currency every price of the plan is in.
    pub currency: Currency,
    /// Price of one month, if the plan is sold by the month.
    pub monthly: Option<Decimal>,
    /// Price of one year, if the plan is sold by the year.
    pub yearly: Option<Decimal>,
    /// Price of a one-time purchase that never expires, if the plan is sold so.
    pub one_time: Option<Decimal>,
    /// What the plan charges by use. With no price above the plan is on demand; with a monthly
    /// or yearly price and quotas it is a package.
    pub metered: Vec<Dimension>,
}

impl PlanPrices {
    /// Validates prices as a merchant enters them: exact decimals. [`PlanPrices::with_metered`]
    /// adds the metered dimensions and checks that there is a way to buy.
    pub fn parse(
        field: &str,
        currency: &str,
        monthly: Option<&str>,
        yearly: Option<&str>,
        one_time: Option<&str>,
    ) -> Result<Self, Error> {
        let currency: Currency = currency
            .parse()
            .map_err(|e: Error| relabel(e, &format!("{field}.currency")))?;
        let monthly = monthly
            .map(|p| parse_unit_price(&format!("{field}.monthly_price"), p))
            .transpose()?;
        let yearly = yearly
            .map(|p| parse_unit_price(&format!("{field}.yearly_price"), p))
            .transpose()?;
        let one_time = one_time
            .map(|p| parse_unit_price(&format!("{field}.one_time_price"), p))
            .transpose()?;
        Ok(PlanPrices {
            currency,
            monthly,
            yearly,
            one_time,
            metered: Vec::new(),
        })
    }

    /// Adds the plan's metered dimensions (at most [`MAX_DIMENSIONS`], keys unique) and checks
    /// that the plan can be bought: a monthly, yearly or one-time price, or use on demand.
    pub fn with_metered(mut self, field: &str, drafts: &[DimensionDraft]) -> Result<Self, Error> {
        if drafts.len() > MAX_DIMENSIONS {
            return Err(Error::invalid(
                format!("{field}.dimensions"),
                format!("at most {MAX_DIMENSIONS} metered dimensions"),
            ));
        }
        let periodic = self.monthly.is_some() || self.yearly.is_some();
        for (i, d) in drafts.iter().enumerate() {
            let f = format!("{field}.dimensions[{i}]");
            let dim = Dimension::parse(&f, d, self.currency, periodic)?;
            if self.metered.iter().any(|m| m.key == dim.key) {
                return Err(Error::invalid(
                    format!("{f}.key"),
                    format!("{:?} appears twice", dim.key),
                ));
            }
            self.metered.push(dim);
        }
        if self.monthly.is_none()
            && self.yearly.is_none()
            && self.one_time.is_none()
            && self.metered.is_empty()
        {
            return Err(Error::invalid(
                format!("{field}.monthly_price"),
                "a plan needs a monthly, a yearly or a one-time price, or metered dimensions to sell on demand",
            ));
        }
        Ok(self)
    }

    /// Whether the plan is sold on demand only: no price up front, use charged as reported.
    pub fn on_demand(&self) -> bool {
        self.monthly.is_none() && self.yearly.is_none() && self.one_time.is_none()
    }

    /// How an instance bought by `period` under these prices is paid for.
    pub fn mode(&self, period: Period, trial: bool) -> Mode {
        match period {
            _ if trial => Mode::Trial,
            // A periodic price with metered use but no quota is that price plus use.
            Period::Month | Period::Year if self.metered.iter().any(|d| !d.included.is_zero()) => {
                Mode::Package
            }
            Period::Month => Mode::Monthly,
            Period::Year => Mode::Yearly,
            Period::Once => Mode::OneTime,
            Period::OnDemand => Mode::OnDemand,
        }
    }

    /// The metered dimension named `key`, if the plan has it.
    pub fn dimension(&self, key: &str) -> Option<&Dimension> {
        self.metered.iter().find(|d| d.key == key)
    }

    /// The period a plan is sold in by default: by the month when it is, else by the year, else
    /// once, else on demand.
    pub fn default_period(&self) -> Period {
        if self.monthly.is_some() {
            Period::Month
        } else if self.yearly.is_some() {
            Period::Year
        } else if self.one_time.is_some() {
            Period::Once
        } else {
            Period::OnDemand
        }
    }

    /// Refuses, as a merchant saves a plan, a price that charges nothing for one month (or one
    /// year): such a plan would be free bought one period at a time and not free bought many at
    /// once. A free plan is priced 0 exactly. Plans stored before this rule still load and sell.
    pub fn check_chargeable(&self, field: &str) -> Result<(), Error> {
        for (name, unit, price) in [
            ("monthly_price", "month", self.monthly),
            ("yearly_price", "year", self.yearly),
            ("one_time_price", "purchase", self.one_time),
        ] {
            if let Some(p) = price.filter(|p| !p.is_zero()) {
                if Money::round(p, self.currency)?.minor == 0 {
                    return Err(Error::invalid(
                        format!("{field}.{name}"),
                        format!(
                            "{p} {} charges nothing for one {unit}; use 0 for a free plan or at least one minor unit",
                            self.currency
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The unit price for `period`, if the plan is sold that way.
    pub fn unit_price(&self, period: Period) -> Option<Decimal> {
        match period {
            Period::Month => self.monthly,
            Period::Year => self.yearly,
            Period::Once => self.one_time,
            // Nothing up front: the use is charged.
            Period::OnDemand => self.on_demand().then_some(Decimal::ZERO),
        }
    }

    /// What `count` periods cost, rounded half-up to the minor unit once, at the charge.
    pub fn price(&self, period: Period, count: u32) -> Result<Money, Error> {
        if count == 0 || count > period.max_count() {
            return Err(Error::invalid("periods", period.count_rule()));
        }
        let unit = self
            .unit_price(period)
            .ok_or_else(|| Error::invalid("period", period.not_sold()))?;
        let total = unit
            .checked_mul(Decimal::from(count))
            .ok_or_else(|| Error::invalid("periods", "the price is too large"))?;
        Money::round(total, self.currency)
    }

    /// The lowest price of one month of this plan (a yearly price, and a one-time price, count
    /// as a twelfth), for sorting and price-range filters in the catalog.
    pub fn monthly_equivalent(&self) -> Decimal {
        let twelfth = |p: Decimal| p / Decimal::from(12);
        [
            self.monthly,
            self.yearly.map(twelfth),
            self.one_time.map(twelfth),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Decimal::ZERO)
    }
}

fn relabel(e: Error, field: &str) -> Error {
    match e {
        Error::Invalid { message, .. } => Error::invalid(field, message),
        other => other,
    }
}

/// The expiry of a one-time purchase: it never comes.
pub fn never() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether an expiry is [`never`].
pub fn is_never(t: DateTime<Utc>) -> bool {
    t >= never()
}

/// The instant `count` periods after `from`; month ends clamp (31 Jan + 1 month = 28/29 Feb). A
/// one-time purchase runs until [`never`].
pub fn add_periods(from: DateTime<Utc>, period: Period, count: u32) -> DateTime<Utc> {
    let months = match period {
        Period::Month => count,
        Period::Year => count.saturating_mul(12),
        Period::Once | Period::OnDemand => return never(),
    };
    from.checked_add_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn prices() -> PlanPrices {
        PlanPrices::parse("plans[0]", "CNY", Some("99.995"), Some("999"), None).unwrap()
    }

    #[test]
    fn price_rounds_once_at_the_charge() {
        assert_eq!(prices().price(Period::Month, 1).unwrap().minor, 10000);
        assert_eq!(prices().price(Period::Month, 3).unwrap().minor, 29999);
        assert_eq!(prices().price(Period::Year, 2).unwrap().minor, 199800);
    }

    #[test]
    fn refuses_unsold_periods_and_bad_counts() {
        let monthly_only = PlanPrices::parse("p", "CNY", Some("10"), None, None).unwrap();
        assert!(
            matches!(monthly_only.price(Period::Year, 1), Err(Error::Invalid { field, .. }) if field == "period")
        );
        assert!(
            matches!(prices().price(Period::Month, 0), Err(Error::Invalid { field, .. }) if field == "periods")
        );
        assert!(prices().price(Period::Month, MAX_MONTHS + 1).is_err());
        assert!(PlanPrices::parse("p", "CNY", None, None, None)
            .unwrap()
            .with_metered("p", &[])
            .is_err());
        assert!(
            matches!(PlanPrices::parse("plans[1]", "XXX", Some("1"), None, None), Err(Error::Invalid { field, .. }) if field == "plans[1].currency")
        );
    }

    #[test]
    fn a_price_that_charges_nothing_for_one_period_is_refused_and_zero_is_free() {
        let check = |currency, monthly, yearly| {
            PlanPrices::parse("plans[0]", currency, monthly, yearly, None)
                .unwrap()
                .check_chargeable("plans[0]")
        };
        let refused = check("CNY", Some("0.004"), None);
        assert!(
            matches!(&refused, Err(Error::Invalid { field, .. }) if field == "plans[0].monthly_price"),
            "{refused:?}"
        );
        let refused = check("JPY", None, Some("0.4"));
        assert!(
            matches!(&refused, Err(Error::Invalid { field, .. }) if field == "plans[0].yearly_price"),
            "{refused:?}"
        );
        assert!(check("CNY", Some("0"), Some("0.01")).is_ok());
        let free = PlanPrices::parse("p", "CNY", Some("0"), None, None).unwrap();
        assert_eq!(free.price(Period::Month, 3).unwrap().minor, 0);
        let smallest = PlanPrices::parse("p", "CNY", Some("0.005"), None, None).unwrap();
        assert_eq!(smallest.price(Period::Month, 1).unwrap().minor, 1);
    }

    #[test]
    fn the_mode_says_how_an_instance_is_paid_for() {
        let calls = crate::metering::DimensionDraft {
            key: "calls".into(),
            unit: "call".into(),
            price: "0.01".into(),
            tiers: vec![],
            included: Some("1000".into()),
            overage: None,
        };
        let package = PlanPrices::parse("p", "CNY", Some("30"), Some("300"), None)
            .unwrap()
            .with_metered("p", std::slice::from_ref(&calls))
            .unwrap();
        assert_eq!(package.mode(Period::Month, false), Mode::Package);
        assert_eq!(package.mode(Period::Year, false), Mode::Package);
        assert_eq!(package.mode(Period::Month, true), Mode::Trial);
        let no_quota = crate::metering::DimensionDraft {
            included: None,
            ..calls
        };
        let fee_and_use = PlanPrices::parse("p", "CNY", Some("30"), None, None)
            .unwrap()
            .with_metered("p", std::slice::from_ref(&no_quota))
            .unwrap();
        assert_eq!(fee_and_use.mode(Period::Month, false), Mode::Monthly);
        let metered = PlanPrices::parse("p", "CNY", None, None, None)
            .unwrap()
            .with_metered("p", &[no_quota])
            .unwrap();
        assert_eq!(metered.mode(Period::OnDemand, false).as_str(), "on_demand");
        assert_eq!(prices().mode(Period::Month, false), Mode::Monthly);
        assert_eq!(prices().mode(Period::Year, false).words(), "yearly");
        let once = PlanPrices::parse("p", "CNY", None, None, Some("499")).unwrap();
        assert_eq!(once.mode(Period::Once, false).words(), "one-time");
    }

    #[test]
    fn a_one_time_purchase_is_bought_once_and_never_expires() {
        let once = PlanPrices::parse("p", "CNY", None, None, Some("499")).unwrap();
        assert_eq!(once.default_period(), Period::Once);
        assert_eq!(once.price(Period::Once, 1).unwrap().minor, 49900);
        assert!(once.price(Period::Once, 2).is_err());
        assert!(once.price(Period::Month, 1).is_err());
        let t = Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap();
        assert!(is_never(add_periods(t, Period::Once, 1)));
        assert!(!is_never(add_periods(t, Period::Year, 5)));
        assert_eq!(
            once.monthly_equivalent(),
            Decimal::new(499, 0) / Decimal::from(12)
        );
    }

    #[test]
    fn a_plan_of_metered_dimensions_alone_is_sold_on_demand() {
        let meter = |key: &str, included: Option<&str>| DimensionDraft {
            key: key.into(),
            unit: "GB-hour".into(),
            price: "0.05".into(),
            tiers: vec![],
            included: included.map(Into::into),
            overage: None,
        };
        let on_demand = PlanPrices::parse("p", "CNY", None, None, None)
            .unwrap()
            .with_metered("p", &[meter("storage", None)])
            .unwrap();
        assert!(on_demand.on_demand());
        assert_eq!(on_demand.default_period(), Period::OnDemand);
        assert_eq!(on_demand.price(Period::OnDemand, 1).unwrap().minor, 0);
        assert!(is_never(add_periods(Utc::now(), Period::OnDemand, 1)));
        let twice = PlanPrices::parse("p", "CNY", None, None, None)
            .unwrap()
            .with_metered("p", &[meter("storage", None), meter("storage", None)]);
        assert!(
            matches!(&twice, Err(Error::Invalid { field, .. }) if field == "p.dimensions[1].key")
        );
        // A package: a monthly price pays for a quota; buying it on demand is not a way round it.
        let package = PlanPrices::parse("p", "CNY", Some("30"), None, None)
            .unwrap()
            .with_metered("p", &[meter("storage", Some("1000"))])
            .unwrap();
        assert!(!package.on_demand());
        assert!(package.price(Period::OnDemand, 1).is_err());
        assert_eq!(
            package.dimension("storage").unwrap().included,
            Decimal::from(1000)
        );
    }

    #[test]
    fn month_ends_clamp() {
        let jan31 = Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(
            add_periods(jan31, Period::Month, 1),
            Utc.with_ymd_and_hms(2027, 2, 28, 12, 0, 0).unwrap()
        );
        assert_eq!(
            add_periods(jan31, Period::Year, 1),
            Utc.with_ymd_and_hms(2028, 1, 31, 12, 0, 0).unwrap()
        );
    }

    proptest! {
        #[test]
        fn more_periods_never_cost_less_and_never_end_sooner(n in 1u32..MAX_MONTHS, cents in 0i64..10_000_000) {
            let p = PlanPrices { currency: crate::money::Currency::Cny, monthly: Some(Decimal::new(cents, 2)), yearly: None, one_time: None, metered: vec![] };
            prop_assert!(p.price(Period::Month, n + 1).unwrap().minor >= p.price(Period::Month, n).unwrap().minor);
            let t = Utc.with_ymd_and_hms(2027, 1, 31, 0, 0, 0).unwrap();
            prop_assert!(add_periods(t, Period::Month, n) > t);
        }
    }
}
