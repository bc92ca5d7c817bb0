//! Demo data: a believable marketplace in an empty database, so a new user can log in, browse and
//! buy at once. Everything goes through the same use cases as the API.

use crate::app::accounts::{self, Decision, SignUp, VerificationInput};
use crate::app::ledger::{self, TopUp};
use crate::app::merchants::{self, ApplicationInput};
use crate::app::products::{self, ContentInput, DimensionInput, PlanInput, TierInput};
use crate::app::reviews::{self, ReviewDecision};
use crate::app::{Caller, Via};
use crate::demo_seller::DEMO_SIGNING_KEY;
use crate::error::{AppError, AppResult};
use crate::AppState;
use souk_core::accounts::AccountKind;

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

/// A plan's name, and its monthly, yearly and one-time price.
type DemoPlan = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

struct DemoProduct {
    merchant: usize,
    name: &'static str,
    summary: &'static str,
    category: &'static str,
    tags: &'static [&'static str],
    plans: &'static [DemoPlan],
}

/// The metered dimensions of a demo plan: Lotus OCR sells recognised pages as a package (10,000
/// a month, more at 0.03 each) and on demand (0.05 a page, 0.03 from 100,000 a month).
fn demo_meters(product: &str, plan: &str) -> Vec<DimensionInput> {
    let pages = |price: &str, included: Option<&str>, tiers: Vec<TierInput>| DimensionInput {
        key: "pages".into(),
        unit: "page".into(),
        price: price.into(),
        tiers,
        included: included.map(Into::into),
        overage: None,
    };
    match (product, plan) {
        ("Lotus OCR", "10k pages/month") => vec![pages("0.03", Some("10000"), vec![])],
        ("Lotus OCR", "Pay as you go") => vec![pages(
            "0.05",
            None,
            vec![TierInput {
                from: "100000".into(),
                price: "0.03".into(),
            }],
        )],
        _ => vec![],
    }
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
            ("Team (10 users)", Some("99.00"), Some("999.00"), None),
            ("Business (50 users)", Some("399.00"), Some("3990.00"), None),
            ("Self-hosted licence", None, None, Some("4990.00")),
        ],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme Meet",
        summary: "Video meetings up to 300 people, recorded to your storage",
        category: "collaboration",
        tags: &["video", "meetings"],
        plans: &[("Pro", Some("149.00"), Some("1490.00"), None)],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme CI",
        summary: "Hosted build pipelines with caching",
        category: "developer-tools",
        tags: &["ci", "builds"],
        plans: &[
            ("Starter", Some("59.00"), None, None),
            ("Scale", Some("499.00"), Some("4990.00"), None),
        ],
    },
    DemoProduct {
        merchant: 0,
        name: "Acme Status",
        summary: "Status pages and uptime checks",
        category: "it-operations",
        tags: &["monitoring", "uptime"],
        plans: &[("Basic", Some("29.00"), Some("290.00"), None)],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus BI",
        summary: "Dashboards over your databases in minutes",
        category: "data-analytics",
        tags: &["bi", "dashboards"],
        plans: &[
            ("Analyst", Some("199.00"), Some("1990.00"), None),
            ("Department", Some("899.00"), Some("8990.00"), None),
        ],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus OCR",
        summary: "Invoice and receipt recognition",
        category: "ai",
        tags: &["ocr", "documents"],
        plans: &[
            ("10k pages/month", Some("300.00"), None, None),
            ("Pay as you go", None, None, None),
        ],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Forecast",
        summary: "Demand forecasting for retail",
        category: "industry",
        tags: &["retail", "forecasting"],
        plans: &[("Store", Some("500.00"), Some("5000.00"), None)],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Ledger",
        summary: "Bookkeeping for small companies",
        category: "finance",
        tags: &["accounting"],
        plans: &[("Small business", Some("79.00"), Some("790.00"), None)],
    },
    DemoProduct {
        merchant: 1,
        name: "Lotus Mail Campaigns",
        summary: "E-mail campaigns with segmentation",
        category: "marketing",
        tags: &["email", "campaigns"],
        plans: &[("Growth", Some("129.00"), None, None)],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor WAF",
        summary: "Web application firewall with managed rules",
        category: "security",
        tags: &["waf", "firewall"],
        plans: &[("Site", Some("399.00"), Some("3990.00"), None)],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor Vault",
        summary: "Secrets management with audit trails",
        category: "security",
        tags: &["secrets", "kms"],
        plans: &[("Team", Some("199.00"), Some("1990.00"), None)],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor Scan",
        summary: "Vulnerability scanning for containers",
        category: "developer-tools",
        tags: &["containers", "scanning"],
        plans: &[
            ("Pipeline", Some("99.00"), None, None),
            ("Enterprise", None, Some("12000.00"), None),
        ],
    },
    DemoProduct {
        merchant: 2,
        name: "Harbor SIEM",
        summary: "Security events in one place, with alerting",
        category: "it-operations",
        tags: &["siem", "logs"],
        plans: &[("Standard", Some("999.00"), Some("9990.00"), None)],
    },
];

/// An account made through the same use cases a person goes through, verified by the system
/// operator the demo acts as.
async fn verified_account(
    state: &AppState,
    system: &Caller,
    kind: AccountKind,
    name: &str,
    email: &str,
    password: &str,
) -> AppResult<Caller> {
    let account = accounts::register(
        state,
        SignUp {
            kind: kind.as_str().to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
        },
    )
    .await?;
    let caller = Caller {
        account,
        via: Via::CommandLine,
    };
    let details = match kind {
        AccountKind::Individual => VerificationInput {
            legal_name: name.into(),
            id_number: Some("110101199001010000".into()),
            phone: "+86 138 0000 0000".into(),
            company_name: None,
            registration_number: None,
        },
        AccountKind::Enterprise => VerificationInput {
            legal_name: "Demo Representative".into(),
            company_name: Some(name.into()),
            registration_number: Some("91310000DEMO00000X".into()),
            phone: "+86 21 0000 0000".into(),
            id_number: None,
        },
    };
    accounts::submit_verification(state, &caller, details).await?;
    let account = accounts::decide_verification(state, system, caller.id(), approve()).await?;
    Ok(Caller {
        account,
        via: Via::CommandLine,
    })
}

fn approve() -> Decision {
    Decision {
        approve: true,
        reason: None,
    }
}

/// Fills an empty marketplace; `seller_endpoint` is where the demo seller answers. Returns
/// `false` (and changes nothing) when anybody has joined already (the account the command line
/// acts as, made by `souk serve` or an admin command, does not count). Everything goes through
/// the application layer, decided by the system operator `souk` acts as on the command line.
pub async fn fill(state: &AppState, seller_endpoint: &str) -> AppResult<bool> {
    if state
        .store
        .has_accounts_besides(accounts::SYSTEM_EMAIL)
        .await?
    {
        return Ok(false);
    }
    let system = accounts::command_line_caller(state).await?;
    let operator = accounts::create_operator(
        state,
        LOGINS[0].email,
        "Olivia Operator",
        LOGINS[0].password.to_owned(),
        &[],
    )
    .await?;
    let operator = Caller {
        account: operator,
        via: Via::CommandLine,
    };
    accounts::submit_verification(
        state,
        &operator,
        VerificationInput {
            legal_name: "Olivia Operator".into(),
            id_number: Some("110101199001010001".into()),
            phone: "+86 138 0000 0001".into(),
            company_name: None,
            registration_number: None,
        },
    )
    .await?;
    accounts::decide_verification(state, &system, operator.id(), approve()).await?;
    let mut sellers = Vec::new();
    for (company, email, support) in MERCHANTS {
        let seller = verified_account(
            state,
            &system,
            AccountKind::Enterprise,
            company,
            email,
            "seller-demo-password",
        )
        .await?;
        let application = merchants::apply(
            state,
            &seller,
            ApplicationInput {
                company_name: (*company).into(),
                support_email: (*support).into(),
                support_phone: "+86 400 000 0000".into(),
                business_licence_number: format!("BL-{}", &seller.id().as_str()[20..]),
                description: format!("{company} builds cloud software for teams."),
            },
        )
        .await?;
        merchants::decide(state, &system, &application.id, approve()).await?;
        sellers.push(seller);
    }
    for p in PRODUCTS {
        let content = ContentInput {
            name: p.name.into(),
            summary: p.summary.into(),
            description: format!("{}.\n\n{} is a demo listing on this souk marketplace: buying it provisions a tenant at the built-in demo seller.", p.summary, p.name),
            category: p.category.into(),
            tags: p.tags.iter().map(|t| (*t).to_owned()).collect(),
            logo_url: None,
            support_contact: MERCHANTS[p.merchant].2.into(),
            licence: "Standard SaaS terms: use within your organisation; no resale.".into(),
            endpoint_url: seller_endpoint.into(),
            signed_answers: false,
            protocol: None,
            plans: p
                .plans
                .iter()
                .enumerate()
                .map(|(i, (name, monthly, yearly, once))| PlanInput {
                    id: None,
                    name: (*name).into(),
                    description: String::new(),
                    currency: "CNY".into(),
                    monthly_price: monthly.map(Into::into),
                    yearly_price: yearly.map(Into::into),
                    one_time_price: once.map(Into::into),
                    // Every first plan can be tried for two weeks.
                    trial_days: (i == 0).then_some(14),
                    dimensions: demo_meters(p.name, name),
                })
                .collect(),
        };
        let seller = &sellers[p.merchant];
        let created =
            products::create(state, seller, content, Some(DEMO_SIGNING_KEY.to_owned())).await?;
        let submitted = products::submit_demo(state, seller, &created.product.id).await?;
        let revision = submitted
            .revisions
            .first()
            .ok_or(AppError::NotFound("revision".into()))?;
        reviews::decide(
            state,
            &system,
            &revision.id,
            ReviewDecision {
                approve: true,
                reasons: vec![],
            },
        )
        .await?;
        tracing::debug!(product = %created.product.id, "demo product listed");
    }
    for (kind, name, email, amount) in [
        (
            AccountKind::Individual,
            "Bao Buyer",
            LOGINS[1].email,
            "5000.00",
        ),
        (
            AccountKind::Enterprise,
            "Northwind Trading",
            LOGINS[2].email,
            "20000.00",
        ),
    ] {
        let buyer =
            verified_account(state, &system, kind, name, email, "buyer-demo-password").await?;
        ledger::top_up(
            state,
            &system,
            TopUp {
                account_id: Some(buyer.id().to_string()),
                email: None,
                amount: amount.into(),
                currency: "CNY".into(),
                reference: Some("demo".into()),
                memo: "demo top-up".into(),
            },
            None,
        )
        .await?;
    }
    state.catalog.invalidate().await;
    Ok(true)
}
