//! souk's domain, free of I/O: money, plans and pricing, the instance lifecycle, review and
//! verification state machines, the working-day calendar and the injected clock.
//!
//! Everything here is a plain function of its inputs, so the server can store what core decided
//! and enqueue the effects in one transaction, and tests can walk months in microseconds.

pub mod accounts;
pub mod calendar;
pub mod clock;
pub mod error;
pub mod iam;
pub mod ids;
pub mod ledger;
pub mod lifecycle;
pub mod merchants;
pub mod metering;
pub mod money;
pub mod net;
pub mod notices;
pub mod orders;
pub mod plan_changes;
pub mod plans;
pub mod promotions;
pub mod refunds;
pub mod review;
pub mod validate;

pub use error::{Error, Refused};
