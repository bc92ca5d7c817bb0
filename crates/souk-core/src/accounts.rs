//! Accounts, their real-name verification, and operator roles.

use crate::validate;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::invalid(
                        stringify!($name),
                        format!("{s:?} is not one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// Whether an account is a person or a company.
    AccountKind { Individual = "individual", Enterprise = "enterprise" }
}

string_enum! {
    /// Where an account's real-name verification stands.
    VerificationState {
        Unverified = "unverified",
        Pending = "pending",
        Verified = "verified",
        Rejected = "rejected",
    }
}

string_enum! {
    /// What an operator may do; each operator endpoint names the role it needs.
    Role {
        /// Reviews real-name verifications and product listings.
        Reviewer = "reviewer",
        /// Reviews merchant applications and runs the marketplace.
        Operations = "operations",
        /// Records top-ups and handles money.
        Finance = "finance",
        /// Answers buyers and sellers.
        Support = "support",
    }
}

impl VerificationState {
    /// The account submits (or resubmits) its details.
    pub fn submit(self) -> Result<VerificationState, Error> {
        match self {
            VerificationState::Unverified | VerificationState::Rejected => {
                Ok(VerificationState::Pending)
            }
            other => Err(Error::refused(other, "submit verification")),
        }
    }

    /// A reviewer decides.
    pub fn decide(self, approve: bool) -> Result<VerificationState, Error> {
        match (self, approve) {
            (VerificationState::Pending, true) => Ok(VerificationState::Verified),
            (VerificationState::Pending, false) => Ok(VerificationState::Rejected),
            (other, _) => Err(Error::refused(other, "decide verification")),
        }
    }
}

/// Real-name details an account submits; which fields are required depends on its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VerificationDetails {
    /// The person's legal name (individual) or the legal representative's (enterprise).
    pub legal_name: String,
    /// Identity document number of the person (individual only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
    /// Registered company name (enterprise only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Unified social credit code or registration number (enterprise only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_number: Option<String>,
    /// A phone number to reach the account.
    pub phone: String,
}

impl VerificationDetails {
    /// Checks the details for an account of `kind`, trimming them.
    pub fn validated(&self, kind: AccountKind) -> Result<VerificationDetails, Error> {
        let phone = validate::text("phone", &self.phone, 32)?;
        if !phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'))
        {
            return Err(Error::invalid(
                "phone",
                "must be a phone number (digits, +, -, spaces)",
            ));
        }
        let legal_name = validate::text("legal_name", &self.legal_name, 100)?;
        let required =
            |field: &str, v: &Option<String>, max: usize| -> Result<Option<String>, Error> {
                let v = v.as_deref().ok_or_else(|| {
                    Error::invalid(field, format!("is required for {kind} accounts"))
                })?;
                Ok(Some(validate::text(field, v, max)?))
            };
        let forbidden = |field: &str, v: &Option<String>| -> Result<Option<String>, Error> {
            match v {
                Some(_) => Err(Error::invalid(
                    field,
                    format!("does not apply to {kind} accounts"),
                )),
                None => Ok(None),
            }
        };
        Ok(match kind {
            AccountKind::Individual => VerificationDetails {
                legal_name,
                id_number: required("id_number", &self.id_number, 40)?,
                company_name: forbidden("company_name", &self.company_name)?,
                registration_number: forbidden("registration_number", &self.registration_number)?,
                phone,
            },
            AccountKind::Enterprise => VerificationDetails {
                legal_name,
                id_number: forbidden("id_number", &self.id_number)?,
                company_name: required("company_name", &self.company_name, 200)?,
                registration_number: required(
                    "registration_number",
                    &self.registration_number,
                    40,
                )?,
                phone,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_walks_submit_then_decide() {
        use VerificationState::*;
        assert_eq!(Unverified.submit().unwrap(), Pending);
        assert_eq!(Rejected.submit().unwrap(), Pending);
        assert!(Pending.submit().is_err());
        assert!(Verified.submit().is_err());
        assert_eq!(Pending.decide(true).unwrap(), Verified);
        assert_eq!(Pending.decide(false).unwrap(), Rejected);
        assert!(Verified.decide(false).is_err());
        assert!(Unverified.decide(true).is_err());
    }

    #[test]
    fn details_depend_on_the_kind() {
        let ent = VerificationDetails {
            legal_name: "Li Wei".into(),
            company_name: Some("Acme Ltd".into()),
            registration_number: Some("91310000MA1FL0000X".into()),
            phone: "+86 138 0000 0000".into(),
            ..Default::default()
        };
        assert!(ent.validated(AccountKind::Enterprise).is_ok());
        assert!(
            matches!(ent.validated(AccountKind::Individual), Err(Error::Invalid { field, .. }) if field == "id_number")
        );
        let bad_phone = VerificationDetails {
            phone: "call me".into(),
            ..ent
        };
        assert!(
            matches!(bad_phone.validated(AccountKind::Enterprise), Err(Error::Invalid { field, .. }) if field == "phone")
        );
    }

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
