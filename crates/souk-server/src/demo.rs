//! Demo data: a believable marketplace in an empty database, so a new user can log in, browse and
//! buy at once. Everything goes through the same validation and storage as the API.

use crate::auth::hash_password;
use crate::demo_seller::DEMO_SIGNING_KEY;
use crate::error::ApiError;
use crate::SharedState;
use souk_core::accounts::{AccountKind, Role, VerificationDetails};
use souk_core::merchants::MerchantApplication;
use souk_core::review::{EndpointRules, PlanDraft, ProductContent};
use souk_store::accounts::NewAccount;
use souk_store::ledger::Movement;
use souk_store::products::PlanWrite;

/// A login the demo prints.
pub struct DemoLogin {
    pub role: &'static str,
    pub email: &'static str,
    pub password: &'static str,
}

/// The demo's logins.
pub const LOGINS: &[DemoLogin] = &[
    DemoLogin {
        role: "operator (all roles)",
        email: "operator@souk.demo",
        password: "operator-demo-password",
    },
    DemoLogin {
        role: "buyer (verified, 5,000.00 CNY)",
        email: "buyer@souk.demo",
        password: "buyer-demo-password",
    },
    DemoLogin {
        role: "buyer (enterprise, 20,000.00 CNY)",
        email: "it@northwind.demo",
        password: "buyer-demo-password",
    },
    DemoLogin {
        role: "seller (Acme Cloud Software)",
        email: "seller@acme.demo",
        password: "seller-demo-password",
    },
];

struct DemoProduct {
    merchant: usize,
    name: &'static str,
    summary: &'static str,
    category: &'static str,
    tags: &'static [&'static str],
    plans: &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
}

const MERCHANTS: &[(&str, &str, &str)] = &[
    (
        "Acme Cloud Software",
        "seller@acme.demo",
        "support@acme.demo",
    ),
    ("Lotus Data Labs", "seller@lotus.demo", "help@lotus.demo"),
    ("Harbor Security", "seller@harbor.demo", "soc@harbor.demo"),
];

const PRODUCTS: &[DemoProduct] = &[
    DemoProduct {
        merchant: 0,
        name: "Acme Notes",
        summary: "Shared notebooks for teams, with offline sync",
        category: "collaboration",
        tags: &["notes", "wiki"],
        plans: &[
            ("Team (10 users)", Some("99.00"), Some("999.00")),
            ("Business (50 users)", Some("399.00"), Some("3990.00")),
        ],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme Meet",
        summary: "Video meetings up to 300 people, recorded to your storage",
        category: "collaboration",
        tags: &["video", "meetings"],
        plans: &[("Pro", Some("149.00"), Some("1490.00"))],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme CI",
        summary: "Hosted build pipelines with caching",
        category: "developer-tools",
        tags: &["ci", "builds"],
        plans: &[
            ("Starter", Some("59.00"), None),
            ("Scale", Some("499.00"), Some("4990.00")),
        ],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme Status",
        summary: "Status pages and uptime checks",
        category: "it-operations",
        tags: &["monitoring", "uptime"],
        plans: &[("Basic", Some("29.00"), Some("290.00"))],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus BI",
        summary: "Dashboards over your databases in minutes",
        category: "data-analytics",
        tags: &["bi", "dashboards"],
        plans: &[
            ("Analyst", Some("199.00"), Some("1990.00")),
            ("Department", Some("899.00"), Some("8990.00")),
        ],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus OCR",
        summary: "Invoice and receipt recognition",
        category: "ai",
        tags: &["ocr", "documents"],
        plans: &[("10k pages/month", Some("300.00"), None)],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Forecast",
        summary: "Demand forecasting for retail",
        category: "industry",
        tags: &["retail", "forecasting"],
        plans: &[("Store", Some("500.00"), Some("5000.00"))],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Ledger",
        summary: "Bookkeeping for small companies",
        category: "finance",
        tags: &["accounting"],
        plans: &[("Small business", Some("79.00"), Some("790.00"))],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Mail Campaigns",
        summary: "E-mail campaigns with segmentation",
        category: "marketing",
        tags: &["email", "campaigns"],
        plans: &[("Growth", Some("129.00"), None)],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor WAF",
        summary: "Web application firewall with managed rules",
        category: "security",
        tags: &["waf", "firewall"],
        plans: &[("Site", Some("399.00"), Some("3990.00"))],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor Vault",
        summary: "Secrets management with audit trails",
        category: "security",
        tags: &["secrets", "kms"],
        plans: &[("Team", Some("199.00"), Some("1990.00"))],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor Scan",
        summary: "Vulnerability scanning for containers",
        category: "developer-tools",
        tags: &["containers", "scanning"],
        plans: &[
            ("Pipeline", Some("99.00"), None),
            ("Enterprise", None, Some("12000.00")),
        ],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor SIEM",
        summary: "Security events in one place, with alerting",
        category: "it-operations",
        tags: &["siem", "logs"],
        plans: &[("Standard", Some("999.00"), Some("9990.00"))],
    },
];

fn err(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

async fn verified_account(
    state: &SharedState,
    kind: AccountKind,
    name: &str,
    email: &str,
    password: &str,
    roles: &str,
) -> Result<String, ApiError> {
    let now = state.now();
    let hash = hash_password(password.to_owned()).await?;
    let a = state
        .store
        .create_account(
            NewAccount {
                kind: kind.as_str(),
                name,
                email,
                password_hash: &hash,
                roles,
            },
            now,
        )
        .await?;
    let details = match kind {
        AccountKind::Individual => VerificationDetails {
            legal_name: name.into(),
            id_number: Some("110101199001010000".into()),
            phone: "+86 138 0000 0000".into(),
            ..Default::default()
        },
        AccountKind::Enterprise => VerificationDetails {
            legal_name: "Demo Representative".into(),
            company_name: Some(name.into()),
            registration_number: Some("91310000DEMO00000X".into()),
            phone: "+86 21 0000 0000".into(),
            ..Default::default()
        },
    }
    .validated(kind)?;
    state
        .store
        .submit_verification(
            &a.id,
            "unverified",
            "pending",
            &serde_json::to_string(&details).map_err(err)?,
            now,
        )
        .await?;
    state
        .store
        .decide_verification(&a.id, "verified", None, "demo", now)
        .await?;
    Ok(a.id)
}

/// Fills an empty marketplace; `seller_endpoint` is where the demo seller answers. Returns
/// `false` (and changes nothing) when the database already has accounts.
pub async fn fill(state: &SharedState, seller_endpoint: &str) -> Result<bool, ApiError> {
    if state.store.has_accounts().await? {
        return Ok(false);
    }
    let now = state.now();
    let all_roles = Role::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let operator = verified_account(
        state,
        AccountKind::Individual,
        "Olivia Operator",
        LOGINS[0].email,
        LOGINS[0].password,
        &all_roles,
    )
    .await?;
    let mut merchants = Vec::new();
    for (company, email, support) in MERCHANTS {
        let account = verified_account(
            state,
            AccountKind::Enterprise,
            company,
            email,
            "seller-demo-password",
            "",
        )
        .await?;
        let app = MerchantApplication {
            company_name: (*company).into(),
            support_email: (*support).into(),
            support_phone: "+86 400 000 0000".into(),
            business_licence_number: format!("BL-{}", &account[account.len() - 8..]),
            description: format!("{company} builds cloud software for teams."),
        }
        .validated()?;
        let m = state
            .store
            .apply_merchant(&account, None, &app, now)
            .await?;
        state
            .store
            .decide_merchant(&m.id, "approved", None, &operator, now)
            .await?;
        merchants.push(m.id);
    }
    for p in PRODUCTS {
        let content = ProductContent {
            name: p.name.into(),
            summary: p.summary.into(),
            description: format!("{}.\n\n{} is a demo listing on this souk marketplace: buying it provisions a tenant at the built-in demo seller.", p.summary, p.name),
            category: p.category.into(),
            tags: p.tags.iter().map(|t| (*t).to_owned()).collect(),
            logo_url: None,
            support_contact: MERCHANTS[p.merchant].2.into(),
            licence: "Standard SaaS terms: use within your organisation; no resale.".into(),
            endpoint_url: seller_endpoint.into(),
            plans: p
                .plans
                .iter()
                .map(|(name, monthly, yearly)| PlanDraft {
                    id: None,
                    name: (*name).into(),
                    description: String::new(),
                    currency: "CNY".into(),
                    monthly_price: monthly.map(Into::into),
                    yearly_price: yearly.map(Into::into),
                })
                .collect(),
        }
        .validated(demo_rules(seller_endpoint))?;
        let json = serde_json::to_string(&content).map_err(err)?;
        let (product, revision) = state
            .store
            .create_product(
                &merchants[p.merchant],
                "saas",
                |id| {
                    state
                        .secrets
                        .seal(&crate::crypto::product_key_aad(id), DEMO_SIGNING_KEY)
                },
                &json,
                now,
            )
            .await?;
        state
            .store
            .submit_revision(&revision.id, "draft", now, now)
            .await?;
        let revision = state.store.revision(&revision.id).await?;
        let plans: Vec<PlanWrite> = content
            .plans
            .iter()
            .map(|pl| PlanWrite {
                id: None,
                name: pl.name.clone(),
                description: pl.description.clone(),
                currency: pl.currency.clone(),
                monthly_price: pl.monthly_price.clone(),
                yearly_price: pl.yearly_price.clone(),
            })
            .collect();
        state
            .store
            .approve_revision(&revision, &content.endpoint_url, &plans, &operator, now)
            .await?;
        tracing::debug!(product = %product.id, "demo product listed");
    }
    for (kind, name, email, cents) in [
        (
            AccountKind::Individual,
            "Bao Buyer",
            LOGINS[1].email,
            500_000i64,
        ),
        (
            AccountKind::Enterprise,
            "Northwind Trading",
            LOGINS[2].email,
            2_000_000i64,
        ),
    ] {
        let id = verified_account(state, kind, name, email, "buyer-demo-password", "").await?;
        state
            .store
            .record_movement(
                &Movement {
                    account_id: &id,
                    currency: "CNY",
                    amount_minor: cents,
                    kind: "top_up",
                    order_id: None,
                    reference: Some("demo"),
                    memo: "demo top-up",
                    created_by: Some(&operator),
                    idempotency_key: None,
                },
                now,
            )
            .await?;
    }
    state.catalog.invalidate().await;
    Ok(true)
}

/// The demo's products point at the demo seller the operator named; its own literal address is
/// allowed, nothing else.
fn demo_rules(seller_endpoint: &str) -> EndpointRules {
    let allowed = match souk_core::net::url_host(seller_endpoint) {
        Some(souk_core::net::Host::Ip(ip)) => vec![ipnet::IpNet::from(ip)],
        _ => Vec::new(),
    };
    EndpointRules {
        allow_loopback_http: true,
        networks: souk_core::net::SellerNetworks { allowed },
    }
}
