//! A merchant's products: drafts with their plans, submitting, delisting, and the signing key (shown once, rotatable).

use super::badge;
use super::done;
use super::error_page;
use super::when;
use super::when_text;
use super::FormErrors;
use super::Nothing;
use super::Posted;
use super::Signed;
use crate::app::products;
use crate::app::products::ContentInput;
use crate::app::products::PlanInput;
use crate::app::products::SellerProduct;
use crate::app::products::{DimensionInput, TierInput};
use crate::error::AppError;
use crate::extract::Path;
use crate::SharedState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use souk_core::metering::{DimensionDraft, Overage};
use souk_core::review::ProductContent;
use souk_core::review::CATEGORIES;
use std::collections::HashMap;

/// The products pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/seller/products/new", get(new_form))
        .route("/seller/products", post(create))
        .route("/seller/products/{id}", get(product_page))
        .route("/seller/products/{id}/edit", get(edit_form).post(edit))
        .route("/seller/products/{id}/submit", post(submit))
        .route("/seller/products/{id}/delist", post(delist))
        .route("/seller/products/{id}/signing-key", post(rotate_key))
        .route("/seller/products/{id}/check-endpoint", post(check_endpoint))
}

/// How many plan rows the product form offers.
const PLAN_ROWS: usize = 4;
/// Metered dimensions the form shows per plan; more (set through the API) ride along unchanged.
const DIMENSION_ROWS: usize = 2;

/// A product as the seller's list shows it.
pub struct ProductRow {
    pub id: String,
    pub name: String,
    pub state: String,
    pub badge: &'static str,
    /// The newest revision: its state, and what it is (a first listing or a change).
    pub revision: String,
    pub revision_badge: &'static str,
    pub revision_kind: &'static str,
    pub due: Option<String>,
    pub due_text: Option<String>,
    pub reasons: Vec<String>,
}

pub(crate) fn product_row(sp: &SellerProduct) -> ProductRow {
    let p = &sp.product;
    let current = sp.revisions.first();
    ProductRow {
        id: p.id.to_string(),
        name: p
            .listed
            .as_ref()
            .map(|c| c.name.clone())
            .or_else(|| current.map(|r| r.content.name.clone()))
            .unwrap_or_default(),
        state: p.state.as_str().to_owned(),
        badge: badge(p.state.as_str()),
        revision: current.map_or("-".into(), |r| r.state.as_str().to_owned()),
        revision_badge: current.map_or("grey", |r| badge(r.state.as_str())),
        revision_kind: current.map_or("", |r| {
            if r.number == 1 {
                "first listing"
            } else {
                "change"
            }
        }),
        due: current.and_then(|r| r.due_at.as_ref().map(when)),
        due_text: current.and_then(|r| r.due_at.as_ref().map(when_text)),
        reasons: current.map(|r| r.reasons.clone()).unwrap_or_default(),
    }
}

/// The product form's values, as typed (field names are the application layer's paths).
pub struct ProductForm {
    pub values: HashMap<String, String>,
}

impl ProductForm {
    /// The value typed for `field`, or empty.
    pub fn get(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }

    fn from_content(c: &ProductContent) -> ProductForm {
        let mut values = HashMap::new();
        for (k, v) in [
            ("name", c.name.clone()),
            ("summary", c.summary.clone()),
            ("description", c.description.clone()),
            ("category", c.category.clone()),
            ("tags", c.tags.join(", ")),
            ("logo_url", c.logo_url.clone().unwrap_or_default()),
            ("support_contact", c.support_contact.clone()),
            ("licence", c.licence.clone()),
            ("endpoint_url", c.endpoint_url.clone()),
            (
                "signed_answers",
                if c.signed_answers { "yes" } else { "" }.to_owned(),
            ),
            ("protocol", c.protocol.as_str().to_owned()),
        ] {
            values.insert(k.to_owned(), v);
        }
        for (i, p) in c.plans.iter().enumerate() {
            for (k, v) in [
                ("id", p.id.clone().unwrap_or_default()),
                ("name", p.name.clone()),
                ("description", p.description.clone()),
                ("currency", p.currency.clone()),
                ("monthly_price", p.monthly_price.clone().unwrap_or_default()),
                ("yearly_price", p.yearly_price.clone().unwrap_or_default()),
                (
                    "one_time_price",
                    p.one_time_price.clone().unwrap_or_default(),
                ),
                (
                    "trial_days",
                    p.trial_days.map(|d| d.to_string()).unwrap_or_default(),
                ),
            ] {
                values.insert(format!("plans[{i}].{k}"), v);
            }
            for (j, d) in p.dimensions.iter().take(DIMENSION_ROWS).enumerate() {
                let tiers = d
                    .tiers
                    .iter()
                    .map(|t| format!("{}:{}", t.from, t.price))
                    .collect::<Vec<_>>()
                    .join(", ");
                for (k, v) in [
                    ("key", d.key.clone()),
                    ("unit", d.unit.clone()),
                    ("price", d.price.clone()),
                    ("tiers", tiers),
                    ("included", d.included.clone().unwrap_or_default()),
                    (
                        "overage",
                        d.overage.map(|o| o.as_str().to_owned()).unwrap_or_default(),
                    ),
                ] {
                    values.insert(format!("plans[{i}].dimensions[{j}].{k}"), v);
                }
            }
            if p.dimensions.len() > DIMENSION_ROWS {
                let extra =
                    serde_json::to_string(&p.dimensions[DIMENSION_ROWS..]).unwrap_or_default();
                values.insert(format!("plans[{i}].extra_dimensions"), extra);
            }
        }
        ProductForm { values }
    }

    /// The metered dimensions of plan row `i`: the rows with a key, then any the form carries
    /// unshown. Tiers are typed `from:price` separated by commas; a malformed one is passed on
    /// as typed, for validation to refuse with its field.
    fn dimensions(&self, i: usize) -> Vec<DimensionInput> {
        let mut dims: Vec<DimensionInput> = (0..DIMENSION_ROWS)
            .filter_map(|j| {
                let f = |k: &str| {
                    self.get(&format!("plans[{i}].dimensions[{j}].{k}"))
                        .trim()
                        .to_owned()
                };
                let key = f("key");
                if key.is_empty() {
                    return None;
                }
                let tiers = f("tiers")
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        let (from, price) = t.split_once(':').unwrap_or((t, ""));
                        TierInput {
                            from: from.trim().to_owned(),
                            price: price.trim().to_owned(),
                        }
                    })
                    .collect();
                Some(DimensionInput {
                    key,
                    unit: f("unit"),
                    price: f("price"),
                    tiers,
                    included: Some(f("included")).filter(|v| !v.is_empty()),
                    // Anything but "refuse" is the default, charging.
                    overage: (f("overage") == "refuse").then_some(Overage::Refuse),
                })
            })
            .collect();
        if let Ok(extra) = serde_json::from_str::<Vec<DimensionDraft>>(
            self.get(&format!("plans[{i}].extra_dimensions")),
        ) {
            dims.extend(extra.into_iter().map(|d| {
                DimensionInput {
                    key: d.key,
                    unit: d.unit,
                    price: d.price,
                    tiers: d
                        .tiers
                        .into_iter()
                        .map(|t| TierInput {
                            from: t.from,
                            price: t.price,
                        })
                        .collect(),
                    included: d.included,
                    overage: d.overage,
                }
            }));
        }
        dims
    }

    /// The content the form describes; plan rows left empty are not plans.
    fn content(&self) -> ContentInput {
        let opt = |k: &str| Some(self.get(k).trim().to_owned()).filter(|v| !v.is_empty());
        let plans = (0..PLAN_ROWS)
            .filter(|i| {
                [
                    "name",
                    "monthly_price",
                    "yearly_price",
                    "one_time_price",
                    "dimensions[0].key",
                ]
                .iter()
                .any(|k| !self.get(&format!("plans[{i}].{k}")).trim().is_empty())
            })
            .map(|i| PlanInput {
                id: opt(&format!("plans[{i}].id")),
                name: self.get(&format!("plans[{i}].name")).to_owned(),
                description: self.get(&format!("plans[{i}].description")).to_owned(),
                currency: opt(&format!("plans[{i}].currency")).unwrap_or_else(|| "CNY".into()),
                monthly_price: opt(&format!("plans[{i}].monthly_price")),
                yearly_price: opt(&format!("plans[{i}].yearly_price")),
                one_time_price: opt(&format!("plans[{i}].one_time_price")),
                // Not a whole number: 0, which validation refuses with the allowed range.
                trial_days: opt(&format!("plans[{i}].trial_days")).map(|d| d.parse().unwrap_or(0)),
                dimensions: self.dimensions(i),
            })
            .collect();
        ContentInput {
            name: self.get("name").to_owned(),
            summary: self.get("summary").to_owned(),
            description: self.get("description").to_owned(),
            category: self.get("category").to_owned(),
            tags: self
                .get("tags")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            logo_url: opt("logo_url"),
            support_contact: self.get("support_contact").to_owned(),
            licence: self.get("licence").to_owned(),
            endpoint_url: self.get("endpoint_url").to_owned(),
            signed_answers: self.get("signed_answers") == "yes",
            protocol: Some(match self.get("protocol") {
                "v1" => souk_core::review::SellerProtocol::V1,
                _ => souk_core::review::SellerProtocol::V2,
            }),
            plans,
        }
    }
}

#[derive(Template)]
#[template(path = "seller_product_form.html")]
struct ProductFormPage {
    ctx: super::Ctx,
    heading: String,
    action: String,
    creating: bool,
    form: ProductForm,
    errors: FormErrors,
    categories: Vec<&'static str>,
    rows: Vec<usize>,
    dimension_rows: Vec<usize>,
}

impl ProductFormPage {
    fn plan_field(&self, i: &usize, field: &str) -> String {
        format!("plans[{i}].{field}")
    }

    fn plan_value(&self, i: &usize, field: &str) -> String {
        self.form.get(&self.plan_field(i, field)).to_owned()
    }

    fn dim_field(&self, i: &usize, j: &usize, field: &str) -> String {
        format!("plans[{i}].dimensions[{j}].{field}")
    }

    fn dim_value(&self, i: &usize, j: &usize, field: &str) -> String {
        self.form.get(&self.dim_field(i, j, field)).to_owned()
    }
}

fn product_form(
    signed: &Signed,
    heading: &str,
    action: String,
    creating: bool,
    form: ProductForm,
    refused: Option<&AppError>,
) -> Response {
    let page = &signed.page;
    let mut errors = refused.map(FormErrors::from_error).unwrap_or_default();
    // A refusal names its first fault; every other plan price at fault is listed with it, so
    // the seller fixes them in one go.
    if refused.is_some_and(|e| e.field().is_some_and(|f| f.starts_with("plans["))) {
        for e in form.content().price_problems() {
            if let Some(field) = e.field() {
                if errors.get(field).is_none() {
                    errors.items.push((field.to_owned(), e.detail()));
                }
            }
        }
    }
    let status = refused.map_or(StatusCode::OK, |e| e.parts().0);
    page.render_status(
        status,
        &ProductFormPage {
            ctx: super::Ctx {
                title: format!("{heading} · souk"),
                ..page.ctx.clone()
            },
            heading: heading.to_owned(),
            action,
            creating,
            form,
            errors,
            categories: CATEGORIES.to_vec(),
            rows: (0..PLAN_ROWS).collect(),
            dimension_rows: (0..DIMENSION_ROWS).collect(),
        },
    )
}

async fn new_form(State(state): State<SharedState>, signed: Signed) -> Response {
    // Only an approved merchant can save a product: say so now, not after the form is filled in.
    if let Err(e) = crate::app::merchants::approved(&state, &signed.caller).await {
        return error_page(&signed.page, e);
    }
    let mut values = HashMap::new();
    values.insert("plans[0].currency".to_owned(), "CNY".to_owned());
    product_form(
        &signed,
        "New product",
        "/seller/products".into(),
        true,
        ProductForm { values },
        None,
    )
}

#[derive(Template)]
#[template(path = "seller_product.html")]
struct ProductPage {
    ctx: super::Ctx,
    row: ProductRow,
    endpoint: Option<String>,
    /// Shown right after the key was made, and never again.
    key: Option<String>,
    check: Option<crate::conformance::Report>,
    /// When the endpoint, as the draft stands, passed the check: (datetime, in words).
    checked: Option<(String, String)>,
    /// Submitting needs a pass.
    needs_check: bool,
    can_edit: bool,
    can_submit: bool,
    can_delist: bool,
    revisions: Vec<RevisionRow>,
}

/// A revision as the product page lists it.
pub struct RevisionRow {
    pub number: i64,
    pub state: String,
    pub badge: &'static str,
    pub name: String,
    pub plans: String,
    pub reasons: Vec<String>,
}

fn product_view(
    signed: &Signed,
    sp: &SellerProduct,
    check: Option<crate::conformance::Report>,
) -> Response {
    let page = &signed.page;
    let current = sp.revisions.first();
    let p = &sp.product;
    page.render(&ProductPage {
        ctx: super::Ctx {
            title: "Product · souk".into(),
            ..page.ctx.clone()
        },
        row: product_row(sp),
        endpoint: p.endpoint_url.clone(),
        key: sp.signing_key.clone(),
        check,
        checked: sp
            .endpoint_checked_at
            .map(|at| (super::when(&at), super::when_text(&at))),
        needs_check: sp.submit_needs_check,
        can_edit: current.is_none_or(|r| {
            r.state.edit().is_ok() || r.state == souk_core::review::RevisionState::Approved
        }),
        can_submit: current.is_some_and(|r| r.state.submit().is_ok()),
        can_delist: p.state.delist().is_ok(),
        revisions: sp
            .revisions
            .iter()
            .map(|r| RevisionRow {
                number: r.number,
                state: r.state.as_str().to_owned(),
                badge: badge(r.state.as_str()),
                name: r.content.name.clone(),
                plans: r
                    .content
                    .plans
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                reasons: r.reasons.clone(),
            })
            .collect(),
    })
}

async fn create(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(values): Posted<HashMap<String, String>>,
) -> Response {
    let form = ProductForm { values };
    let key = Some(form.get("signing_key").trim().to_owned()).filter(|k| !k.is_empty());
    match products::create(&state, &signed.caller, form.content(), key).await {
        // The key is shown on this answer only: no redirect, so it is never in a URL or history.
        Ok(sp) => product_view(&signed, &sp, None),
        Err(e) => product_form(
            &signed,
            "New product",
            "/seller/products".into(),
            true,
            form,
            Some(&e),
        ),
    }
}

async fn product_page(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match products::get(&state, &signed.caller, &id.into()).await {
        Ok(sp) => product_view(&signed, &sp, None),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn edit_form(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match products::get(&state, &signed.caller, &id.as_str().into()).await {
        Ok(sp) => {
            let content = sp
                .revisions
                .first()
                .map(|r| r.content.clone())
                .or(sp.product.listed.clone());
            let form = content
                .as_ref()
                .map(ProductForm::from_content)
                .unwrap_or(ProductForm {
                    values: HashMap::new(),
                });
            product_form(
                &signed,
                "Edit the draft",
                format!("/seller/products/{id}/edit"),
                false,
                form,
                None,
            )
        }
        Err(e) => error_page(&signed.page, e),
    }
}

async fn edit(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(values): Posted<HashMap<String, String>>,
) -> Response {
    let form = ProductForm { values };
    match products::edit_draft(&state, &signed.caller, &id.as_str().into(), form.content()).await {
        Ok(_) => done(&format!("/seller/products/{id}"), "saved"),
        Err(e) => product_form(
            &signed,
            "Edit the draft",
            format!("/seller/products/{id}/edit"),
            false,
            form,
            Some(&e),
        ),
    }
}

async fn submit(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match products::submit(&state, &signed.caller, &id.as_str().into()).await {
        Ok(_) => done(&format!("/seller/products/{id}"), "submitted"),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn delist(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match products::delist(&state, &signed.caller, &id.as_str().into()).await {
        Ok(_) => done(&format!("/seller/products/{id}"), "delisted"),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn rotate_key(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    match products::rotate_key(&state, &signed.caller, &id.into()).await {
        Ok(sp) => product_view(&signed, &sp, None),
        Err(e) => error_page(&signed.page, e),
    }
}

async fn check_endpoint(
    State(state): State<SharedState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<Nothing>,
) -> Response {
    let id: souk_core::ids::ProductId = id.into();
    let call = match products::check_endpoint(&state, &signed.caller, &id).await {
        Ok(c) => c,
        Err(e) => return error_page(&signed.page, e),
    };
    match products::get(&state, &signed.caller, &id).await {
        Ok(sp) => product_view(&signed, &sp, Some(call)),
        Err(e) => error_page(&signed.page, e),
    }
}
