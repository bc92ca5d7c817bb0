//! The enumerations of the API as named OpenAPI schemas. Input and view fields stay strings (the
//! use cases parse them and name the field at fault); these schemas tell clients which values
//! exist. Each one lists the values from souk-core's own list of them, so the document cannot
//! drift from the code.

use souk_core::accounts::{AccountKind, Role, VerificationState};
use souk_core::ledger::EntryKind;
use souk_core::lifecycle::InstanceState;
use souk_core::merchants::MerchantState;
use souk_core::money;
use souk_core::orders::{OrderKind, OrderState};
use souk_core::plans;
use souk_core::review::{ProductState, ProductType, RevisionState, CATEGORIES};
use souk_store::jobs::JobState;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

/// A string schema that allows exactly `values`.
pub fn string_enum(
    description: &str,
    values: impl IntoIterator<Item = &'static str>,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

macro_rules! enum_schema {
    ($(#[$meta:meta])* $name:ident, $description:literal, $values:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_enum($description, $values)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

enum_schema!(
    /// Whether an account is a person or a company.
    Kind,
    "Whether an account is a person (`individual`) or a company (`enterprise`).",
    AccountKind::ALL.iter().map(|k| k.as_str())
);
enum_schema!(
    /// The protocol a product's endpoint speaks.
    Protocol,
    "The protocol a product's endpoint speaks: `v2` (signed JSON POSTs) or the older `v1` (GET with an `authToken`, answers always signed).",
    souk_core::review::SellerProtocol::ALL.iter().map(|p| p.as_str())
);

enum_schema!(
    /// What an IAM user's access keys may do.
    IamPolicy,
    "What an IAM user's access keys may do.",
    souk_core::iam::Policy::ALL.iter().map(|p| p.as_str())
);
enum_schema!(
    /// Whether an access key can sign requests.
    AccessKeyState,
    "Whether an access key can sign requests.",
    souk_core::iam::KeyState::ALL.iter().map(|p| p.as_str())
);
enum_schema!(
    /// An operator role.
    OperatorRole,
    "An operator role.",
    Role::ALL.iter().map(|r| r.as_str())
);
enum_schema!(
    /// Where real-name verification stands.
    Verification,
    "Where real-name verification stands.",
    VerificationState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// An ISO currency souk handles.
    Currency,
    "An ISO 4217 currency souk handles.",
    money::Currency::ALL.iter().map(|c| c.code())
);
enum_schema!(
    /// The unit a plan is bought in.
    Period,
    "The unit a plan is bought in: `month`, `year`, `once` (a one-time purchase that never expires) or `on_demand` (nothing up front; metered use is charged by the hour).",
    [plans::Period::Month, plans::Period::Year, plans::Period::Once, plans::Period::OnDemand]
        .into_iter()
        .map(plans::Period::as_str)
);
enum_schema!(
    /// What unsubscribing gives back.
    UnsubscribeScope,
    "What unsubscribing gives back: `everything` (the subscription ends and the instance is released) or `renewals` (renewed periods that have not begun).",
    ["everything", "renewals"]
);
enum_schema!(
    /// A category products are listed under.
    Category,
    "A category products are listed under.",
    CATEGORIES.iter().copied()
);
enum_schema!(
    /// What a product is.
    KindOfProduct,
    "What a product is.",
    ProductType::ALL.iter().map(|t| t.as_str())
);
enum_schema!(
    /// Whether buyers can find and buy a product.
    ListingState,
    "Whether buyers can find and buy a product: `draft` (never listed), `listed` or `delisted`.",
    ProductState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// Where a revision of a product stands.
    Revision,
    "Where a revision (a draft or an application) stands.",
    RevisionState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// Whether an application lists a product or changes a listed one.
    RevisionKind,
    "`new` for a first listing, `change` for a change to a listed product.",
    ["new", "change"]
);
enum_schema!(
    /// Why an order was placed.
    KindOfOrder,
    "Why an order was placed: a purchase (`new`) or a renewal (`renew`).",
    OrderKind::ALL.iter().map(|k| k.as_str())
);
enum_schema!(
    /// Where an order's money stands.
    Payment,
    "Where an order's money stands.",
    OrderState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// Where an instance is in its lifecycle.
    Lifecycle,
    "Where an instance is in its lifecycle.",
    InstanceState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// How an instance is paid for.
    BillingMode,
    "How an instance is paid for: `trial`, `monthly`, `yearly`, `one_time`, `on_demand` (use \
     charged by the hour) or `package` (a monthly or yearly price including a quota of use).",
    plans::Mode::ALL.iter().map(|m| m.as_str())
);
enum_schema!(
    /// Why a balance moved.
    Movement,
    "Why a balance moved.",
    EntryKind::ALL.iter().map(|k| k.as_str())
);
enum_schema!(
    /// Where a merchant application stands.
    MerchantStatus,
    "Where a merchant application stands.",
    MerchantState::ALL.iter().map(|s| s.as_str())
);
enum_schema!(
    /// Where a background job stands.
    JobStatus,
    "Where a background job stands.",
    JOB_STATES.iter().map(|s| s.as_str())
);

enum_schema!(
    /// How a node is.
    HealthStatus,
    "`ok`: the node and its database answer.",
    ["ok"]
);
enum_schema!(
    /// The database a node runs on.
    Database,
    "The database this node runs on.",
    ["sqlite", "postgres"]
);

/// Schema of a string of `min` to `max` characters (the array items `#[schema]` cannot bound).
macro_rules! text_schema {
    ($(#[$meta:meta])* $name:ident, $description:literal, $min:expr, $max:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .description(Some($description))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_schema!(
    /// One tag of a product.
    Tag,
    "A tag: 1 to 30 characters, kept in lower case.",
    1,
    30
);
text_schema!(
    /// One reason of a review decision.
    Reason,
    "What the merchant must fix: up to 1000 characters (blank ones are dropped).",
    0,
    1000
);

/// Every job state (souk-store keeps no list of them).
const JOB_STATES: [JobState; 4] = [
    JobState::Pending,
    JobState::Running,
    JobState::Done,
    JobState::Dead,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use utoipa::PartialSchema;

    fn values<S: PartialSchema>() -> Vec<String> {
        let RefOr::T(Schema::Object(o)) = S::schema() else {
            panic!("not an inline object schema")
        };
        o.enum_values
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Adding a job state or a period fails to compile here: add it to the lists above too.
    #[test]
    fn the_hand_made_lists_are_complete() {
        let listed = |s: JobState| match s {
            JobState::Pending | JobState::Running | JobState::Done | JobState::Dead => {
                JOB_STATES.contains(&s)
            }
        };
        assert!(JOB_STATES.into_iter().all(listed));
        match plans::Period::Month {
            plans::Period::Month
            | plans::Period::Year
            | plans::Period::Once
            | plans::Period::OnDemand => {}
        }
    }

    #[test]
    fn every_listed_value_parses_and_lists_are_complete() {
        for v in values::<JobStatus>() {
            assert!(JobState::from_str(&v).is_ok(), "{v}");
        }
        for v in values::<Period>() {
            assert!(plans::Period::from_str(&v).is_ok(), "{v}");
        }
        for v in values::<Currency>() {
            assert!(money::Currency::from_str(&v).is_ok(), "{v}");
        }
        assert_eq!(values::<Kind>(), ["individual", "enterprise"]);
        assert_eq!(values::<Period>(), ["month", "year", "once", "on_demand"]);
        assert_eq!(values::<Category>().len(), CATEGORIES.len());
    }
}
