//! Becoming a merchant: an enterprise-verified account applies, an operator decides.

use super::accounts::Decision;
use super::Caller;
use crate::error::{AppError, AppResult};
use crate::AppState;
use serde::Deserialize;
use souk_core::accounts::Role;
use souk_core::ids::MerchantId;
use souk_core::merchants::{self, MerchantApplication, MerchantState};
use souk_store::merchants::Merchant;
use utoipa::ToSchema;

/// What a company tells the marketplace to become a merchant.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ApplicationInput {
    #[schema(min_length = 1, max_length = 200)]
    pub company_name: String,
    #[schema(format = "email", max_length = 254)]
    pub support_email: String,
    #[schema(min_length = 1, max_length = 32)]
    pub support_phone: String,
    /// Business-information certification: the registered business licence number.
    #[schema(min_length = 1, max_length = 64)]
    pub business_licence_number: String,
    /// What the company does, in a few sentences.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
}

/// Applies to become a merchant (enterprise-verified accounts), or applies again after a
/// rejection.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    input: ApplicationInput,
) -> AppResult<Merchant> {
    merchants::may_apply(caller.account.kind, caller.account.verification.state)?;
    let app = MerchantApplication {
        company_name: input.company_name,
        support_email: input.support_email,
        support_phone: input.support_phone,
        business_licence_number: input.business_licence_number,
        description: input.description,
    }
    .validated()?;
    let current = state.store.merchant_of(caller.id()).await?.map(|m| m.state);
    let next = MerchantState::apply(current)?;
    Ok(state
        .store
        .apply_merchant(caller.id(), current, next, &app, state.now())
        .await?)
}

/// The caller's merchant record.
pub async fn mine(state: &AppState, caller: &Caller) -> AppResult<Merchant> {
    state
        .store
        .merchant_of(caller.id())
        .await?
        .ok_or(AppError::NotFound("merchant application".into()))
}

/// Merchant applications waiting for a decision, oldest first (role `operations`).
pub async fn queue(state: &AppState, caller: &Caller) -> AppResult<Vec<Merchant>> {
    caller.require(Role::Operations)?;
    Ok(state.store.pending_merchants(200).await?)
}

/// Approves or rejects a merchant application (role `operations`, never the operator's own).
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    merchant_id: &MerchantId,
    decision: Decision,
) -> AppResult<Merchant> {
    caller.require(Role::Operations)?;
    let reason = decision.reason()?;
    let merchant = state.store.merchant(merchant_id).await?;
    caller.not_own(&merchant.account_id, "decide the merchant application")?;
    let next = merchant.state.decide(decision.approve)?;
    Ok(state
        .store
        .decide_merchant(
            merchant_id,
            merchant.state,
            next,
            reason.as_deref(),
            caller.id(),
            state.now(),
        )
        .await?)
}

/// The caller's merchant, if approved; every selling use case starts here.
pub async fn approved(state: &AppState, caller: &Caller) -> AppResult<Merchant> {
    match state.store.merchant_of(caller.id()).await? {
        Some(m) if m.state == MerchantState::Approved => Ok(m),
        Some(m) => Err(AppError::Forbidden(format!(
            "the merchant application is {}; only approved merchants can sell",
            m.state
        ))),
        None => Err(AppError::Forbidden(
            "apply to become a merchant first".into(),
        )),
    }
}
