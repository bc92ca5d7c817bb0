//! Machine identity: the IAM users of an account and what their access keys may do.

use crate::accounts::string_enum;
use crate::validate;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How many access keys one IAM user may hold at once.
pub const MAX_KEYS_PER_USER: i64 = 2;

/// How far a signed request's time may be from souk's, either way.
pub const SIGNATURE_WINDOW_SECS: i64 = 15 * 60;

string_enum! {
    /// What an IAM user's access keys may do.
    Policy {
        /// Everything the account may do.
        FullAccess = "full_access",
        /// Read, never change.
        ReadOnly = "read_only",
        /// Read the balance, ledger, orders and subscriptions; buy and renew.
        Billing = "billing",
        /// The seller's side: its products and sales, usage reports, the order query.
        SellerOperations = "seller_operations",
    }
}

string_enum! {
    /// Whether an access key can sign requests.
    KeyState { Active = "active", Disabled = "disabled" }
}

impl Policy {
    /// Whether a key or a console session under this policy may make `method` on `path` (the
    /// API's paths and the web console's pages alike).
    pub fn allows(self, method: &str, path: &str) -> bool {
        let read = matches!(method, "GET" | "HEAD");
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        // Whatever the policy, a signed-in user may leave, and load the pages' assets.
        if (method == "POST" && path == "/logout")
            || (method == "DELETE" && path == "/v1/sessions")
            || (read && under("/static"))
        {
            return true;
        }
        // What every user may read: the catalogue, who they are, what they were told.
        let common_read = read
            && (path == "/"
                || under("/search")
                || under("/v1/products")
                || under("/v1/me")
                || under("/v1/notifications")
                || under("/notifications"));
        match self {
            Policy::FullAccess => true,
            Policy::ReadOnly => read,
            Policy::Billing => {
                common_read
                    || (read && (under("/v1/balance") || under("/v1/ledger") || under("/balance")))
                    || under("/v1/orders")
                    || under("/v1/trials")
                    || under("/v1/instances")
                    || under("/orders")
                    || under("/instances")
                    // Product pages, and buying or trying from them.
                    || under("/products")
            }
            Policy::SellerOperations => {
                common_read
                    || under("/v1/seller")
                    || under("/v1/metering")
                    || under("/api/mkp-openapi-public")
                    || under("/seller")
                    // Applying to sell, as the seller centre's page does.
                    || under("/v1/merchant")
                    || (read && under("/products"))
            }
        }
    }
}

/// A new IAM user as the account enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub console_access: bool,
    pub programmatic_access: bool,
    pub policy: Policy,
}

impl NewUser {
    /// Checks the name (1 to 64 letters, digits, `-`, `_`, `.`) and that the user can do
    /// something.
    pub fn validated(self) -> Result<NewUser, Error> {
        let name = validate::text("name", &self.name, 64)?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                "name",
                "use letters, digits, '-', '_' and '.' only",
            ));
        }
        if !self.console_access && !self.programmatic_access {
            return Err(Error::invalid(
                "programmatic_access",
                "a user needs console or programmatic access",
            ));
        }
        Ok(NewUser { name, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_allow_what_they_name() {
        assert!(Policy::FullAccess.allows("POST", "/v1/orders"));
        assert!(Policy::ReadOnly.allows("GET", "/v1/orders"));
        assert!(!Policy::ReadOnly.allows("POST", "/v1/orders"));
        assert!(Policy::Billing.allows("POST", "/v1/orders"));
        assert!(!Policy::Billing.allows("POST", "/v1/seller/products"));
        // The API allows what the pages do: a trial is bought from a product page, and the
        // seller centre's page applies to sell.
        assert!(Policy::Billing.allows("POST", "/v1/trials"));
        assert!(Policy::Billing.allows("POST", "/products/prd_x/try"));
        assert!(Policy::SellerOperations.allows("POST", "/v1/merchant"));
        assert!(Policy::SellerOperations.allows("POST", "/seller/apply"));
        assert!(!Policy::SellerOperations.allows("POST", "/v1/orders"));
        assert!(
            Policy::SellerOperations.allows("GET", "/api/mkp-openapi-public/global/v1/order/query")
        );
        assert!(Policy::SellerOperations.allows("POST", "/v1/seller/products"));
        assert!(!Policy::SellerOperations.allows("POST", "/v1/orders"));
        assert!(!Policy::SellerOperations.allows("GET", "/v1/sellerx"));
        // The console's pages, as a signed-in IAM user reaches them.
        assert!(Policy::Billing.allows("POST", "/products/prd_1/buy"));
        assert!(Policy::Billing.allows("GET", "/balance"));
        assert!(!Policy::Billing.allows("GET", "/seller"));
        assert!(!Policy::Billing.allows("GET", "/access-keys"));
        assert!(!Policy::Billing.allows("POST", "/notifications/read-all"));
        assert!(Policy::SellerOperations.allows("POST", "/seller/products"));
        assert!(!Policy::SellerOperations.allows("GET", "/balance"));
        assert!(!Policy::SellerOperations.allows("GET", "/console"));
        assert!(!Policy::ReadOnly.allows("POST", "/access-keys/users"));
        for p in Policy::ALL {
            assert!(p.allows("POST", "/logout") && p.allows("GET", "/static/souk.css"));
            assert!(p.allows("GET", "/notifications") && p.allows("GET", "/"));
        }
    }

    #[test]
    fn users_need_a_clean_name_and_some_access() {
        let u = NewUser {
            name: " deploy-bot ".into(),
            console_access: false,
            programmatic_access: true,
            policy: Policy::ReadOnly,
        };
        assert_eq!(u.clone().validated().unwrap().name, "deploy-bot");
        assert!(NewUser {
            name: "a b".into(),
            ..u.clone()
        }
        .validated()
        .is_err());
        assert!(NewUser {
            programmatic_access: false,
            ..u
        }
        .validated()
        .is_err());
    }
}
