//! Becoming a merchant: the application and its decision, the seller centre's home.

use super::done;
use super::error_page;
use super::products::{product_row, ProductRow};
use super::FormErrors;
use super::Posted;
use super::Signed;
use crate::app::merchants;
use crate::app::merchants::ApplicationInput;
use crate::app::products;
use crate::error::AppError;
use crate::SharedState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

/// The merchants pages.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/seller", get(home))
        .route("/seller/apply", post(apply))
}

/// What the merchant application form sends.
#[derive(Debug, Default, Deserialize)]
pub struct ApplicationForm {
    #[serde(default)]
    pub company_name: String,
    #[serde(default)]
    pub support_email: String,
    #[serde(default)]
    pub support_phone: String,
    #[serde(default)]
    pub business_licence_number: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Template)]
#[template(path = "seller_home.html")]
struct SellerHome {
    ctx: super::Ctx,
    merchant_state: Option<String>,
    merchant_reason: Option<String>,
    company: String,
    can_apply: bool,
    form: ApplicationForm,
    errors: FormErrors,
    products: Vec<ProductRow>,
}

async fn seller_home(
    state: &SharedState,
    signed: &Signed,
    form: ApplicationForm,
    refused: Option<AppError>,
) -> Response {
    let page = &signed.page;
    let merchant = match merchants::mine(state, &signed.caller).await {
        Ok(m) => Some(m),
        Err(AppError::NotFound(_)) => None,
        Err(e) => return error_page(page, e),
    };
    let approved = merchant
        .as_ref()
        .is_some_and(|m| m.state == souk_core::merchants::MerchantState::Approved);
    let products = if approved {
        match products::list(state, &signed.caller).await {
            Ok(list) => list.iter().map(product_row).collect(),
            Err(e) => return error_page(page, e),
        }
    } else {
        vec![]
    };
    let errors = refused
        .as_ref()
        .map(FormErrors::from_error)
        .unwrap_or_default();
    let status = refused.as_ref().map_or(StatusCode::OK, |e| e.parts().0);
    page.render_status(
        status,
        &SellerHome {
            ctx: super::Ctx {
                title: "Seller centre · souk".into(),
                ..page.ctx.clone()
            },
            merchant_state: merchant.as_ref().map(|m| m.state.as_str().to_owned()),
            merchant_reason: merchant.as_ref().and_then(|m| m.reason.clone()),
            company: merchant
                .as_ref()
                .map(|m| m.application.company_name.clone())
                .unwrap_or_default(),
            can_apply: souk_core::merchants::MerchantState::apply(
                merchant.as_ref().map(|m| m.state),
            )
            .is_ok(),
            form,
            errors,
            products,
        },
    )
}

async fn home(State(state): State<SharedState>, signed: Signed) -> Response {
    seller_home(&state, &signed, ApplicationForm::default(), None).await
}

async fn apply(
    State(state): State<SharedState>,
    signed: Signed,
    Posted(form): Posted<ApplicationForm>,
) -> Response {
    let input = ApplicationInput {
        company_name: form.company_name.clone(),
        support_email: form.support_email.clone(),
        support_phone: form.support_phone.clone(),
        business_licence_number: form.business_licence_number.clone(),
        description: form.description.clone(),
    };
    match merchants::apply(&state, &signed.caller, input).await {
        Ok(_) => done("/seller", "applied"),
        Err(e) => seller_home(&state, &signed, form, Some(e)).await,
    }
}
