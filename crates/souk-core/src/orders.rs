//! Orders: what a buyer paid for, and what happened to it.

use crate::accounts::string_enum;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum! {
    /// Why an order was placed.
    OrderKind {
        New = "new",
        Renew = "renew",
        /// A free trial: nothing charged, at most one per buyer and product.
        Trial = "trial",
        /// A trial turned into a paid subscription, keeping its instance.
        Convert = "convert",
        /// Another plan of the product for the time left: the difference charged (an upgrade)
        /// or given back (a downgrade, a negative amount).
        Change = "change",
    }
}

string_enum! {
    /// Where an order's money stands.
    OrderState {
        /// Paid from the balance.
        Paid = "paid",
        /// Refunded in full (provisioning failed).
        Refunded = "refunded",
        /// The buyer unsubscribed; what the refund rules allowed went back.
        Unsubscribed = "unsubscribed",
    }
}

impl OrderState {
    /// The order's money goes back to the buyer.
    pub fn refund(self) -> Result<OrderState, Error> {
        match self {
            OrderState::Paid => Ok(OrderState::Refunded),
            other => Err(Error::refused(other, "refund")),
        }
    }

    /// The buyer gives the order back by unsubscribing.
    pub fn unsubscribe(self) -> Result<OrderState, Error> {
        match self {
            OrderState::Paid => Ok(OrderState::Unsubscribed),
            other => Err(Error::refused(other, "unsubscribe")),
        }
    }
}

/// Whether an order counts (in sales figures and settlement): it has been neither refunded nor
/// unsubscribed, and it was paid for (more than zero) or is on demand, where the use is what is
/// paid (any use, zero included, counts).
pub fn is_valid(state: OrderState, paid_minor: i64, period: crate::plans::Period) -> bool {
    state == OrderState::Paid && (paid_minor > 0 || period == crate::plans::Period::OnDemand)
}

/// The longest `Idempotency-Key` souk keeps.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Checks an `Idempotency-Key` header value: printable ASCII, 1 to 128 characters.
pub fn idempotency_key(value: &str) -> Result<String, Error> {
    if value.is_empty()
        || value.len() > MAX_IDEMPOTENCY_KEY
        || !value.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(Error::invalid(
            "Idempotency-Key",
            "must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_happen_once() {
        assert_eq!(OrderState::Paid.refund().unwrap(), OrderState::Refunded);
        assert!(OrderState::Refunded.refund().is_err());
        assert_eq!(
            OrderState::Paid.unsubscribe().unwrap(),
            OrderState::Unsubscribed
        );
        assert!(OrderState::Unsubscribed.unsubscribe().is_err());
        assert!(OrderState::Unsubscribed.refund().is_err());
        use crate::plans::Period;
        assert!(is_valid(OrderState::Paid, 1, Period::Month));
        assert!(
            !is_valid(OrderState::Paid, 0, Period::Month),
            "a free trial does not count"
        );
        assert!(is_valid(OrderState::Paid, 0, Period::OnDemand));
        assert!(!is_valid(OrderState::Unsubscribed, 100, Period::Year));
        assert!(!is_valid(OrderState::Refunded, 100, Period::Once));
        assert!(!is_valid(OrderState::Unsubscribed, 0, Period::OnDemand));
        assert!(idempotency_key("a b").is_err());
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key("retry-7f3a").is_ok());
    }
}
