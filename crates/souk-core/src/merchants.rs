//! Becoming a merchant: an enterprise-verified account applies, an operator decides.

use crate::accounts::{string_enum, AccountKind, VerificationState};
use crate::validate;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_enum! {
    /// Where a merchant application stands.
    MerchantState { Pending = "pending", Approved = "approved", Rejected = "rejected" }
}

impl MerchantState {
    /// A reviewer decides on a pending application.
    pub fn decide(self, approve: bool) -> Result<MerchantState, Error> {
        match (self, approve) {
            (MerchantState::Pending, true) => Ok(MerchantState::Approved),
            (MerchantState::Pending, false) => Ok(MerchantState::Rejected),
            (other, _) => Err(Error::refused(other, "decide the merchant application")),
        }
    }

    /// The merchant applies again after a rejection (or for the first time, from `None`).
    pub fn apply(current: Option<MerchantState>) -> Result<MerchantState, Error> {
        match current {
            None | Some(MerchantState::Rejected) => Ok(MerchantState::Pending),
            Some(other) => Err(Error::refused(other, "apply to become a merchant")),
        }
    }
}

/// Only accounts whose enterprise verification passed may apply.
pub fn may_apply(kind: AccountKind, verification: VerificationState) -> Result<(), Error> {
    if kind != AccountKind::Enterprise {
        return Err(Error::refused(
            "an individual account",
            "apply to become a merchant (enterprise accounts only)",
        ));
    }
    if verification != VerificationState::Verified {
        return Err(Error::refused(
            format!("verification {verification}"),
            "apply to become a merchant before enterprise verification passes",
        ));
    }
    Ok(())
}

/// What a merchant tells the marketplace about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantApplication {
    /// The company name shown to buyers.
    pub company_name: String,
    /// Where buyers get after-sales support (e-mail).
    pub support_email: String,
    /// Support phone number.
    pub support_phone: String,
    /// The business-information certification: licence number of the registered business.
    pub business_licence_number: String,
    /// What the company does, in a few sentences.
    #[serde(default)]
    pub description: String,
}

impl MerchantApplication {
    /// Checks and trims the application.
    pub fn validated(&self) -> Result<MerchantApplication, Error> {
        Ok(MerchantApplication {
            company_name: validate::text("company_name", &self.company_name, 200)?,
            support_email: validate::email("support_email", &self.support_email)?,
            support_phone: validate::text("support_phone", &self.support_phone, 32)?,
            business_licence_number: validate::text(
                "business_licence_number",
                &self.business_licence_number,
                64,
            )?,
            description: validate::optional_text("description", &self.description, 2000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_enterprises_apply_and_decisions_are_final() {
        assert!(may_apply(AccountKind::Enterprise, VerificationState::Verified).is_ok());
        assert!(may_apply(AccountKind::Individual, VerificationState::Verified).is_err());
        assert!(may_apply(AccountKind::Enterprise, VerificationState::Pending).is_err());
        assert_eq!(MerchantState::apply(None).unwrap(), MerchantState::Pending);
        assert_eq!(
            MerchantState::apply(Some(MerchantState::Rejected)).unwrap(),
            MerchantState::Pending
        );
        assert!(MerchantState::apply(Some(MerchantState::Approved)).is_err());
        assert_eq!(
            MerchantState::Pending.decide(true).unwrap(),
            MerchantState::Approved
        );
        assert!(MerchantState::Approved.decide(false).is_err());
    }
}
