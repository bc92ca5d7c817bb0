//! Which events people hear of, and who: each timeline event kind a person should know about
//! belongs to a topic (what a person turns e-mail on or off for) and goes to one audience.

use std::fmt;
use std::str::FromStr;

/// What a notification is about; e-mail preferences are kept per topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Real-name verification and merchant application decisions.
    Account,
    /// Review decisions on a product's revisions.
    Review,
    /// Orders paid, and subscriptions given back (unsubscribed, renewals returned).
    Order,
    /// Instances ready or failed.
    Provisioning,
    /// Expiry reminders and the grace period.
    Expiry,
    /// Arrears begun or cleared.
    Arrears,
    /// Instances frozen or released.
    Suspension,
    /// Calls to the seller's endpoint that souk gave up on.
    SellerCalls,
}

/// Who hears of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The account the event names (verification, merchant application).
    Account,
    /// The buyer of the instance.
    Buyer,
    /// The merchant selling the product.
    Merchant,
}

impl Topic {
    /// Every topic, in the order the preferences page lists them.
    pub const ALL: [Topic; 8] = [
        Topic::Account,
        Topic::Order,
        Topic::Provisioning,
        Topic::Expiry,
        Topic::Arrears,
        Topic::Suspension,
        Topic::Review,
        Topic::SellerCalls,
    ];

    /// The name stored and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Account => "account",
            Topic::Review => "review",
            Topic::Order => "order",
            Topic::Provisioning => "provisioning",
            Topic::Expiry => "expiry",
            Topic::Arrears => "arrears",
            Topic::Suspension => "suspension",
            Topic::SellerCalls => "seller_calls",
        }
    }

    /// What the topic covers, in words for the preferences page.
    pub fn describe(self) -> &'static str {
        match self {
            Topic::Account => "Verification and merchant application decisions",
            Topic::Review => "Review decisions on your products",
            Topic::Order => "Orders paid, unsubscribed or given back",
            Topic::Provisioning => "Subscriptions ready or failed",
            Topic::Expiry => "Expiry reminders and grace periods",
            Topic::Arrears => "Arrears begun or cleared",
            Topic::Suspension => "Subscriptions frozen or released",
            Topic::SellerCalls => "Calls to your endpoint that souk gave up on",
        }
    }

    /// Who hears of an event kind, each under a topic; empty for events nobody is told of.
    pub fn of_event(kind: &str) -> &'static [(Topic, Audience)] {
        use Audience::{Account, Buyer, Merchant};
        match kind {
            "verification.approved" | "verification.rejected" => &[(Topic::Account, Account)],
            "merchant.approved" | "merchant.rejected" => &[(Topic::Account, Account)],
            "product.approved" | "product.rejected" => &[(Topic::Review, Merchant)],
            "order.paid" | "plan.changed" => &[(Topic::Order, Buyer)],
            // What the buyer gave back, and what came back to its balance.
            "instance.unsubscribed" | "instance.renewals_returned" => &[(Topic::Order, Buyer)],
            "instance.active" => &[(Topic::Provisioning, Buyer)],
            // The buyer lost what it bought; the seller's endpoint refused or never answered.
            "instance.failed" => &[(Topic::Provisioning, Buyer), (Topic::SellerCalls, Merchant)],
            "instance.expiring" | "instance.grace" => &[(Topic::Expiry, Buyer)],
            "instance.arrears" | "instance.arrears_cleared" => &[(Topic::Arrears, Buyer)],
            "instance.frozen" | "instance.released" => &[(Topic::Suspension, Buyer)],
            "seller.call_failed" | "job.failed" => &[(Topic::SellerCalls, Merchant)],
            _ => &[],
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Topic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown topic {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_reads_back_from_its_name() {
        for t in Topic::ALL {
            assert_eq!(t.as_str().parse::<Topic>(), Ok(t));
        }
        assert!("orders".parse::<Topic>().is_err());
    }

    #[test]
    fn sellers_hear_of_reviews_and_given_up_calls_and_buyers_of_their_subscriptions() {
        assert_eq!(
            Topic::of_event("product.rejected"),
            [(Topic::Review, Audience::Merchant)]
        );
        assert_eq!(
            Topic::of_event("seller.call_failed"),
            [(Topic::SellerCalls, Audience::Merchant)]
        );
        assert_eq!(
            Topic::of_event("instance.failed"),
            [
                (Topic::Provisioning, Audience::Buyer),
                (Topic::SellerCalls, Audience::Merchant)
            ]
        );
        assert_eq!(
            Topic::of_event("instance.frozen"),
            [(Topic::Suspension, Audience::Buyer)]
        );
        assert!(Topic::of_event("seller.access_updated").is_empty());
        assert!(Topic::of_event("instance.provisioning").is_empty());
    }
}
