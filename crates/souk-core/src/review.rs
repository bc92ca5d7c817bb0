//! Publishing: a product's content is edited in a revision (a draft, then an application under
//! review); an approved revision becomes the listed version. While a change to a listed product is
//! reviewed, the listed version stays what buyers see.

use crate::accounts::string_enum;
use crate::plans::PlanPrices;
use crate::validate;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Working days a reviewer has for an application.
pub const REVIEW_WORKING_DAYS: u32 = 3;

/// Categories a product can be listed under.
pub const CATEGORIES: &[&str] = &[
    "collaboration",
    "security",
    "developer-tools",
    "data-analytics",
    "ai",
    "industry",
    "finance",
    "marketing",
    "it-operations",
];

string_enum! {
    /// Whether buyers can find and buy a product.
    ProductState {
        /// Never listed yet.
        Draft = "draft",
        /// Listed: buyers can find and buy it.
        Listed = "listed",
        /// Delisted by its merchant: no new purchases; running instances go on.
        Delisted = "delisted",
    }
}

string_enum! {
    /// Where one revision (draft or application) of a product stands.
    RevisionState { Draft = "draft", InReview = "in_review", Approved = "approved", Rejected = "rejected" }
}

string_enum! {
    /// The protocol a product's endpoint speaks: V2 (POST, JSON body, `signature`/`timestamp`/
    /// `nonce`) or the older V1 (GET, parameters signed by `authToken`, answers always signed).
    #[derive(Default)]
    SellerProtocol { #[default] V2 = "v2", V1 = "v1" }
}

impl SellerProtocol {
    /// Whether it is the current protocol (not written into stored content).
    pub fn is_v2(&self) -> bool {
        *self == SellerProtocol::V2
    }
}

string_enum! {
    /// What a product is; this version of souk sells SaaS.
    ProductType { Saas = "saas" }
}

impl RevisionState {
    /// The merchant edits the revision; a rejected one becomes a draft again.
    pub fn edit(self) -> Result<RevisionState, Error> {
        match self {
            RevisionState::Draft | RevisionState::Rejected => Ok(RevisionState::Draft),
            other => Err(Error::refused(other, "edit")),
        }
    }

    /// The merchant submits the revision for review.
    pub fn submit(self) -> Result<RevisionState, Error> {
        match self {
            RevisionState::Draft | RevisionState::Rejected => Ok(RevisionState::InReview),
            other => Err(Error::refused(other, "submit")),
        }
    }

    /// A reviewer decides; a rejection must say why.
    pub fn decide(self, approve: bool, reasons: &[String]) -> Result<RevisionState, Error> {
        if self != RevisionState::InReview {
            return Err(Error::refused(self, "review"));
        }
        if approve {
            Ok(RevisionState::Approved)
        } else if reasons.iter().all(|r| r.trim().is_empty()) {
            Err(Error::invalid(
                "reasons",
                "a rejection needs at least one reason",
            ))
        } else {
            Ok(RevisionState::Rejected)
        }
    }
}

impl ProductState {
    /// The merchant delists the product.
    pub fn delist(self) -> Result<ProductState, Error> {
        match self {
            ProductState::Listed => Ok(ProductState::Delisted),
            other => Err(Error::refused(other, "delist")),
        }
    }
}

/// One plan as the merchant writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDraft {
    /// The plan's id when it already exists (kept across revisions so orders keep pointing at it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The plan's name, e.g. "Team, 20 users".
    pub name: String,
    /// What the plan includes.
    #[serde(default)]
    pub description: String,
    /// ISO currency of the prices.
    pub currency: String,
    /// Price per month, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_price: Option<String>,
    /// Price per year, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly_price: Option<String>,
    /// Price of a one-time purchase that never expires, a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_price: Option<String>,
    /// Days of free trial a verified buyer may take once per product, 1 to
    /// [`crate::plans::MAX_TRIAL_DAYS`]; none when the plan has no trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
    /// What the plan charges by use: alone, the plan is sold on demand; with a monthly or
    /// yearly price and quotas, it is a package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<crate::metering::DimensionDraft>,
}

impl PlanDraft {
    /// Everything the plan sells, in words, as a reviewer reads it: "49.00 CNY / month,
    /// 490.00 CNY / year; 7-day free trial; api_calls: 0.80 CNY per 1,000 calls (from 100: 0.50),
    /// 50 included a period, refused past it".
    pub fn terms(&self) -> String {
        let c = &self.currency;
        let mut prices: Vec<String> = [
            (&self.monthly_price, "/ month"),
            (&self.yearly_price, "/ year"),
            (&self.one_time_price, "once"),
        ]
        .into_iter()
        .filter_map(|(p, per)| p.as_ref().map(|p| format!("{p} {c} {per}")))
        .collect();
        if let Some(days) = self.trial_days {
            prices.push(format!("{days}-day free trial"));
        }
        for d in &self.dimensions {
            let mut meter = format!("{}: {} {c} per {}", d.key, d.price, d.unit);
            if !d.tiers.is_empty() {
                let tiers: Vec<String> = d
                    .tiers
                    .iter()
                    .map(|t| format!("from {}: {}", t.from, t.price))
                    .collect();
                meter.push_str(&format!(" ({})", tiers.join(", ")));
            }
            if let Some(included) = &d.included {
                let past = match d.overage {
                    Some(crate::metering::Overage::Refuse) => "refused past it",
                    _ => "charged past it",
                };
                meter.push_str(&format!(", {included} included a period, {past}"));
            }
            prices.push(meter);
        }
        if prices.is_empty() {
            "free".to_owned()
        } else {
            prices.join("; ")
        }
    }

    /// The plan's pricing, checked; errors name fields under `field` (`plans[1]`).
    pub fn prices(&self, field: &str) -> Result<PlanPrices, Error> {
        PlanPrices::parse(
            field,
            &self.currency,
            self.monthly_price.as_deref(),
            self.yearly_price.as_deref(),
            self.one_time_price.as_deref(),
        )?
        .with_metered(field, &self.dimensions)
    }
}

/// Everything a merchant edits about a product, reviewed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductContent {
    /// The product's name.
    pub name: String,
    /// One line shown in lists.
    pub summary: String,
    /// The full description.
    #[serde(default)]
    pub description: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// Search tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// URL of the product's logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// How buyers reach support for this product.
    pub support_contact: String,
    /// The licence the buyer accepts.
    #[serde(default)]
    pub licence: String,
    /// The seller's production endpoint that souk calls to provision.
    pub endpoint_url: String,
    /// The seller signs its answers (`Body-Sign`) and souk refuses an answer whose signature is
    /// missing or wrong, as a failed attempt. Off by default: most sellers do not sign.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_answers: bool,
    /// The protocol the endpoint speaks.
    #[serde(default, skip_serializing_if = "SellerProtocol::is_v2")]
    pub protocol: SellerProtocol,
    /// The plans; at least one.
    pub plans: Vec<PlanDraft>,
}

/// Where the content may point its endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointRules {
    /// Plain HTTP is allowed to literal loopback addresses (development and tests).
    pub allow_loopback_http: bool,
    /// Non-public networks an operator allows endpoints in. A literal address outside them is
    /// refused here; host names are checked when souk calls them, since DNS can change.
    pub networks: crate::net::SellerNetworks,
}

impl EndpointRules {
    /// Checks a seller endpoint: https, except plain http to a literal address in an allowed
    /// network (or to loopback when `allow_loopback_http`); never a literal non-public address
    /// outside the allowed networks.
    pub fn endpoint(&self, field: &str, value: &str) -> Result<String, Error> {
        use crate::net::{url_host, Host};
        let host = url_host(value.trim());
        let http_ok = match host {
            Some(Host::Ip(ip)) => self.networks.explicitly_allowed(ip),
            _ => false,
        };
        let url = validate::url(field, value, !http_ok, self.allow_loopback_http)?;
        if let Some(Host::Ip(ip)) = host {
            self.networks
                .check(ip)
                .map_err(|message| Error::invalid(field, message))?;
        }
        Ok(url)
    }
}

impl ProductContent {
    /// Every plan's pricing fault at once (where [`ProductContent::validated`] stops at the
    /// first), so a form can show them all together.
    pub fn price_problems(&self) -> Vec<Error> {
        self.plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let f = format!("plans[{i}]");
                p.prices(&f)
                    .and_then(|prices| prices.check_chargeable(&f))
                    .err()
            })
            .collect()
    }

    /// Checks and trims everything; errors name the field (`plans[1].monthly_price`).
    pub fn validated(&self, rules: EndpointRules) -> Result<ProductContent, Error> {
        let category = self.category.trim().to_owned();
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(Error::invalid(
                "category",
                format!("must be one of: {}", CATEGORIES.join(", ")),
            ));
        }
        if self.tags.len() > 10 {
            return Err(Error::invalid("tags", "at most 10 tags"));
        }
        let mut tags = Vec::new();
        for (i, t) in self.tags.iter().enumerate() {
            let t = validate::text(&format!("tags[{i}]"), t, 30)?.to_lowercase();
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        if self.plans.is_empty() {
            return Err(Error::invalid("plans", "a product needs at least one plan"));
        }
        if self.plans.len() > 20 {
            return Err(Error::invalid("plans", "at most 20 plans"));
        }
        let mut plans = Vec::with_capacity(self.plans.len());
        for (i, p) in self.plans.iter().enumerate() {
            let f = format!("plans[{i}]");
            // Two entries for one listed plan would leave one of them silently unlisted.
            if let Some(id) = &p.id {
                if let Some(first) = self.plans[..i]
                    .iter()
                    .position(|q| q.id.as_ref() == Some(id))
                {
                    return Err(Error::invalid(
                        format!("{f}.id"),
                        format!("is plans[{first}] again; a plan is listed once"),
                    ));
                }
            }
            let prices = p.prices(&f)?;
            prices.check_chargeable(&f)?;
            let trial_days = crate::plans::trial_days(&format!("{f}.trial_days"), p.trial_days)?;
            if trial_days.is_some() && prices.on_demand() {
                return Err(Error::invalid(
                    format!("{f}.trial_days"),
                    "an on-demand plan costs nothing until it is used; it has no trial",
                ));
            }
            plans.push(PlanDraft {
                id: p.id.clone(),
                name: validate::line(&format!("{f}.name"), &p.name, 100)?,
                description: validate::optional_text(
                    &format!("{f}.description"),
                    &p.description,
                    1000,
                )?,
                currency: prices.currency.code().to_owned(),
                monthly_price: prices.monthly.map(|d| d.to_string()),
                yearly_price: prices.yearly.map(|d| d.to_string()),
                one_time_price: prices.one_time.map(|d| d.to_string()),
                trial_days,
                dimensions: prices.metered.iter().map(|d| d.draft()).collect(),
            });
        }
        Ok(ProductContent {
            name: validate::line("name", &self.name, 100)?,
            summary: validate::line("summary", &self.summary, 200)?,
            description: validate::optional_text("description", &self.description, 20_000)?,
            category,
            tags,
            logo_url: match self.logo_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(u) => Some(validate::url("logo_url", u, false, true)?),
            },
            support_contact: validate::text("support_contact", &self.support_contact, 200)?,
            licence: validate::optional_text("licence", &self.licence, 50_000)?,
            endpoint_url: rules.endpoint("endpoint_url", &self.endpoint_url)?,
            signed_answers: self.signed_answers,
            protocol: self.protocol,
            plans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn content() -> ProductContent {
        ProductContent {
            name: "Acme Notes".into(),
            summary: "Notes for teams".into(),
            description: String::new(),
            category: "collaboration".into(),
            tags: vec!["Notes".into(), "notes".into()],
            logo_url: None,
            support_contact: "support@acme.example".into(),
            licence: "Use it well.".into(),
            endpoint_url: "https://acme.example/souk".into(),
            signed_answers: false,
            protocol: SellerProtocol::V2,
            plans: vec![PlanDraft {
                id: None,
                name: "Team".into(),
                description: String::new(),
                currency: "CNY".into(),
                monthly_price: Some("99.00".into()),
                yearly_price: None,
                one_time_price: None,
                trial_days: None,
                dimensions: vec![],
            }],
        }
    }

    #[test]
    fn a_plan_reads_as_everything_it_sells() {
        let mut plan = content().plans.remove(0);
        assert_eq!(plan.terms(), "99.00 CNY / month");
        plan.yearly_price = Some("990.00".into());
        plan.trial_days = Some(7);
        plan.dimensions = vec![crate::metering::DimensionDraft {
            key: "api_calls".into(),
            unit: "1,000 calls".into(),
            price: "0.80".into(),
            tiers: vec![crate::metering::TierDraft {
                from: "100".into(),
                price: "0.50".into(),
            }],
            included: Some("50".into()),
            overage: Some(crate::metering::Overage::Refuse),
        }];
        assert_eq!(
            plan.terms(),
            "99.00 CNY / month; 990.00 CNY / year; 7-day free trial; api_calls: 0.80 CNY per 1,000 calls (from 100: 0.50), 50 included a period, refused past it"
        );
        let once = PlanDraft {
            monthly_price: None,
            yearly_price: None,
            one_time_price: Some("300".into()),
            trial_days: None,
            dimensions: vec![],
            ..plan
        };
        assert_eq!(once.terms(), "300 CNY once");
    }

    #[test]
    fn validation_names_the_field() {
        let ok = content().validated(EndpointRules::default()).unwrap();
        assert_eq!(ok.tags, vec!["notes"]);
        assert_eq!(ok.plans[0].monthly_price.as_deref(), Some("99"));
        let mut c = content();
        c.plans[0].monthly_price = Some("x".into());
        assert!(
            matches!(c.validated(EndpointRules::default()), Err(Error::Invalid { field, .. }) if field == "plans[0].monthly_price")
        );
        let mut c = content();
        c.plans[0].trial_days = Some(0);
        assert!(
            matches!(c.validated(EndpointRules::default()), Err(Error::Invalid { field, .. }) if field == "plans[0].trial_days")
        );
        c.plans[0].trial_days = Some(14);
        assert_eq!(
            c.validated(EndpointRules::default()).unwrap().plans[0].trial_days,
            Some(14)
        );
        let mut c = content();
        c.category = "toys".into();
        assert!(
            matches!(c.validated(EndpointRules::default()), Err(Error::Invalid { field, .. }) if field == "category")
        );
        let mut c = content();
        c.endpoint_url = "http://127.0.0.1:9/x".into();
        assert!(c.validated(EndpointRules::default()).is_err());
        let loopback = EndpointRules {
            allow_loopback_http: true,
            networks: crate::net::SellerNetworks {
                allowed: vec!["127.0.0.0/8".parse().unwrap()],
            },
        };
        assert!(c.validated(loopback.clone()).is_ok());
        // Plain http to loopback alone is not enough: the network must be allowed too.
        let http_only = EndpointRules {
            allow_loopback_http: true,
            ..Default::default()
        };
        assert!(c.validated(http_only).is_err());
        for refused in [
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00:ec2::254]/",
            "https://10.0.0.8/souk",
            "http://127.attacker.example/souk",
        ] {
            c.endpoint_url = refused.into();
            assert!(
                matches!(c.validated(loopback.clone()), Err(Error::Invalid { field, .. }) if field == "endpoint_url"),
                "{refused}"
            );
        }
    }

    #[test]
    fn revisions_walk_draft_review_decision() {
        use RevisionState::*;
        assert_eq!(Draft.submit().unwrap(), InReview);
        assert!(InReview.edit().is_err());
        assert!(InReview.submit().is_err());
        assert_eq!(InReview.decide(true, &[]).unwrap(), Approved);
        assert!(InReview.decide(false, &[" ".into()]).is_err());
        assert_eq!(
            InReview.decide(false, &["logo missing".into()]).unwrap(),
            Rejected
        );
        assert_eq!(Rejected.edit().unwrap(), Draft);
        assert!(Approved.edit().is_err());
        assert!(Draft.decide(true, &[]).is_err());
        assert_eq!(
            ProductState::Listed.delist().unwrap(),
            ProductState::Delisted
        );
        assert!(ProductState::Draft.delist().is_err());
    }
}
