//! Exact money: decimal amounts in an ISO 4217 currency, converted to whole minor units (cents)
//! whenever an amount is charged, so ledgers and balances are integers that always add up.

use crate::Error;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most decimals a unit price may carry.
pub const MAX_PRICE_DECIMALS: u32 = 8;

/// A currency souk accepts, with the number of decimals of its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    Cny,
    Usd,
    Eur,
    Gbp,
    Jpy,
    Hkd,
    Sgd,
}

impl Currency {
    /// Every supported currency.
    pub const ALL: [Currency; 7] = [
        Currency::Cny,
        Currency::Usd,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
        Currency::Hkd,
        Currency::Sgd,
    ];

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Hkd => "HKD",
            Currency::Sgd => "SGD",
        }
    }

    /// Decimals of the minor unit (2 for cents, 0 for yen).
    pub fn minor_digits(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "currency",
                    format!(
                        "unsupported currency {s:?}; use one of CNY, USD, EUR, GBP, JPY, HKD, SGD"
                    ),
                )
            })
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

/// An amount charged or held, in whole minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Money {
    /// Whole minor units (cents for CNY); negative for debits.
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// An amount from minor units.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Rounds a decimal amount half-up to the currency's minor unit: the rule at every charge.
    pub fn round(amount: Decimal, currency: Currency) -> Result<Self, Error> {
        let rounded = amount.round_dp_with_strategy(
            currency.minor_digits(),
            RoundingStrategy::MidpointAwayFromZero,
        );
        // Checked: near Decimal's maximum the scaling overflows, and that must be an answer, not
        // a panic.
        let scaled = rounded
            .checked_mul(Decimal::from(10i64.pow(currency.minor_digits())))
            .ok_or_else(|| Error::invalid("amount", "amount is too large"))?;
        let minor = i64::try_from(scaled.trunc())
            .map_err(|_| Error::invalid("amount", "amount is too large"))?;
        Ok(Money { minor, currency })
    }

    /// Parses an amount the way a person writes it (`"12.50"`), refusing more decimals than the
    /// currency's minor unit: balances and top-ups are whole minor units.
    pub fn parse(field: &str, text: &str, currency: Currency) -> Result<Self, Error> {
        if !plain_decimal(text.trim()) {
            return Err(Error::invalid(
                field,
                format!("{text:?} is not a decimal amount such as 12.50"),
            ));
        }
        let amount = Decimal::from_str(text.trim())
            .map_err(|_| Error::invalid(field, format!("{text:?} is not a decimal amount")))?;
        if amount.normalize().scale() > currency.minor_digits() {
            return Err(Error::invalid(
                field,
                format!(
                    "{currency} amounts have at most {} decimals",
                    currency.minor_digits()
                ),
            ));
        }
        Money::round(amount, currency).map_err(|_| Error::invalid(field, "amount is too large"))
    }

    /// The amount as a decimal, e.g. 1250 cents -> 12.50.
    pub fn amount(self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_digits())
    }

    /// The amount written with exactly the currency's decimals, e.g. `"12.50"`.
    pub fn amount_string(self) -> String {
        format!(
            "{:.*}",
            self.currency.minor_digits() as usize,
            self.amount()
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency)
    }
}

/// Whether `text` is a decimal as people write amounts: digits, at most one point with digits
/// after it, and an optional leading minus; no exponent, sign `+`, separators or spaces inside
/// (which `Decimal` would otherwise read, turning a typo like `1e9` into a billion).
pub(crate) fn plain_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a unit price: non-negative, at most [`MAX_PRICE_DECIMALS`] decimals, below a sane cap.
pub fn parse_unit_price(field: &str, text: &str) -> Result<Decimal, Error> {
    if !plain_decimal(text.trim()) {
        return Err(Error::invalid(
            field,
            format!("{text:?} is not a decimal price such as 49.00"),
        ));
    }
    let price = Decimal::from_str(text.trim())
        .map_err(|_| Error::invalid(field, format!("{text:?} is not a decimal price")))?;
    if price.is_sign_negative() {
        return Err(Error::invalid(field, "a price cannot be negative"));
    }
    if price.normalize().scale() > MAX_PRICE_DECIMALS {
        return Err(Error::invalid(
            field,
            format!("a price has at most {MAX_PRICE_DECIMALS} decimals"),
        ));
    }
    if price > Decimal::from(1_000_000_000i64) {
        return Err(Error::invalid(field, "a price must be below 1,000,000,000"));
    }
    Ok(price.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounding_is_half_up_at_the_minor_unit() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(Money::round(d("1.005"), Currency::Cny).unwrap().minor, 101);
        assert_eq!(
            Money::round(d("1.00499999"), Currency::Cny).unwrap().minor,
            100
        );
        assert_eq!(Money::round(d("99.5"), Currency::Jpy).unwrap().minor, 100);
        assert_eq!(
            Money::from_minor(1250, Currency::Cny).amount_string(),
            "12.50"
        );
        assert_eq!(Money::from_minor(7, Currency::Jpy).amount_string(), "7");
    }

    #[test]
    fn parsing_refuses_sub_minor_amounts_and_junk() {
        assert_eq!(
            Money::parse("amount", "12.5", Currency::Cny).unwrap().minor,
            1250
        );
        assert!(Money::parse("amount", "12.505", Currency::Cny).is_err());
        assert!(Money::parse("amount", "1.5", Currency::Jpy).is_err());
        assert!(Money::parse("amount", "abc", Currency::Cny).is_err());
        assert!(Money::parse("amount", "1e400", Currency::Cny).is_err());
        for typo in ["1e9", "1_000", "+5", "5.", ".5", "1 000", "0x10"] {
            assert!(
                Money::parse("amount", typo, Currency::Cny).is_err(),
                "{typo}"
            );
            assert!(parse_unit_price("p", typo).is_err(), "{typo}");
        }
        assert_eq!(
            Money::parse("amount", " 5 ", Currency::Cny).unwrap().minor,
            500
        );
        assert!("XYZ".parse::<Currency>().is_err());
    }

    #[test]
    fn unit_prices_allow_eight_decimals_only() {
        assert!(parse_unit_price("p", "0.00000001").is_ok());
        assert!(parse_unit_price("p", "0.000000001").is_err());
        assert!(parse_unit_price("p", "-1").is_err());
    }

    proptest! {
        #[test]
        fn minor_units_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000i64) {
            let m = Money::from_minor(minor, Currency::Cny);
            prop_assert_eq!(Money::parse("a", &m.amount_string(), Currency::Cny).unwrap(), m);
        }
    }
}
