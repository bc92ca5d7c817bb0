//! The ledger's rules: what kinds of entries exist, and how low a balance may go.

use crate::accounts::string_enum;
use crate::money::Money;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum! {
    /// Why a balance moved.
    EntryKind {
        /// Money paid in (recorded by finance).
        TopUp = "top_up",
        /// An order paid from the balance.
        Charge = "charge",
        /// Money given back for an order.
        Refund = "refund",
        /// Metered use, charged by the hour. Use already happened, so it is charged even past
        /// the floor: that is how an account falls into arrears.
        Usage = "usage",
    }
}

/// The lowest balance a debit may leave, in minor units: zero unless the account has a credit
/// limit (then minus the limit). Every debit, on every path, is checked against this one value.
pub fn debit_floor(credit_limit_minor: i64) -> i64 {
    -credit_limit_minor.max(0)
}

/// Whether a balance is in arrears: below its floor (zero, or minus the credit limit).
pub fn in_arrears(balance_minor: i64, credit_limit_minor: i64) -> bool {
    balance_minor < debit_floor(credit_limit_minor)
}

/// The most one top-up may credit, in minor units (10,000,000,000.00 in a two-decimal currency).
pub const MAX_TOP_UP_MINOR: i64 = 1_000_000_000_000;

/// Checks an amount finance credits: positive and at most [`MAX_TOP_UP_MINOR`].
pub fn top_up_amount(amount: Money) -> Result<Money, Error> {
    if amount.minor <= 0 {
        return Err(Error::invalid("amount", "a top-up must be positive"));
    }
    if amount.minor > MAX_TOP_UP_MINOR {
        return Err(Error::invalid(
            "amount",
            "a single top-up is at most 10,000,000,000",
        ));
    }
    Ok(amount)
}

/// Checks a credit limit finance sets: zero (no credit) up to [`MAX_TOP_UP_MINOR`].
pub fn credit_limit(limit: Money) -> Result<Money, Error> {
    if limit.minor < 0 || limit.minor > MAX_TOP_UP_MINOR {
        return Err(Error::invalid(
            "limit",
            "a credit limit is from 0 (no credit) to 10,000,000,000",
        ));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn floors_and_top_up_bounds() {
        assert_eq!(debit_floor(0), 0);
        assert_eq!(debit_floor(5000), -5000);
        assert_eq!(debit_floor(-3), 0);
        assert!(in_arrears(-1, 0) && !in_arrears(0, 0));
        assert!(!in_arrears(-5000, 5000) && in_arrears(-5001, 5000));
        let m = |minor| Money::from_minor(minor, Currency::Cny);
        assert!(top_up_amount(m(0)).is_err());
        assert!(top_up_amount(m(MAX_TOP_UP_MINOR + 1)).is_err());
        assert_eq!(top_up_amount(m(100)).unwrap(), m(100));
        assert!(credit_limit(m(-1)).is_err());
        assert_eq!(credit_limit(m(0)).unwrap(), m(0));
        assert_eq!("top_up".parse::<EntryKind>().unwrap(), EntryKind::TopUp);
    }
}
