//! A built-in demo seller, mounted at `/demo-seller` by `souk serve --demo`, so the demo
//! marketplace provisions purchases without any other program running. It keeps its tenants in
//! memory and answers every lifecycle call through the seller kit, exactly as a real seller would.

use souk_seller::{
    access_crypto, random_iv, AppInfo, EncryptType, InstanceInfo, Keys, NewInstance, Refresh,
    ResultCode, Seller, SellerAnswer, StatusChange,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The signing key of every demo product.
pub const DEMO_SIGNING_KEY: &str = "souk-demo-signing-key-0001";

#[derive(Clone)]
struct Tenant {
    instance_id: String,
    user_name: String,
    password: String,
    status: &'static str,
}

#[derive(Default)]
struct DemoSeller {
    /// By business id, so a repeated `newInstance` answers the same tenant.
    tenants: Mutex<HashMap<String, Tenant>>,
}

impl DemoSeller {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Tenant>) -> R) -> R {
        f(&mut self.tenants.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_status(&self, instance_id: &str, status: &'static str) -> SellerAnswer {
        self.with(
            |t| match t.values_mut().find(|t| t.instance_id == instance_id) {
                Some(t) => {
                    t.status = status;
                    SellerAnswer::code(ResultCode::Success, "ok")
                }
                None => SellerAnswer::code(ResultCode::InstanceNotFound, "no such instance"),
            },
        )
    }

    fn app_info(t: &Tenant) -> AppInfo {
        AppInfo {
            front_end_url: Some(format!("https://demo.souk.invalid/{}", t.instance_id)),
            admin_url: Some(format!("https://demo.souk.invalid/{}/admin", t.instance_id)),
            user_name: Some(t.user_name.clone()),
            password: access_crypto::encrypt(
                DEMO_SIGNING_KEY,
                EncryptType::Aes256,
                &random_iv(),
                &t.password,
            )
            .ok(),
            memo: Some(format!("demo tenant, {}", t.status)),
        }
    }
}

impl Seller for DemoSeller {
    async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
        let tenant = self.with(|tenants| {
            tenants
                .entry(req.business_id.clone())
                .or_insert_with(|| {
                    let n = tenants_len_hint(&req.business_id);
                    Tenant {
                        instance_id: format!("demo-{n}"),
                        user_name: format!("admin-{n}"),
                        password: hex::encode(rand::random::<[u8; 8]>()),
                        status: "active",
                    }
                })
                .clone()
        });
        SellerAnswer {
            instance_id: Some(tenant.instance_id.clone()),
            encrypt_type: Some(EncryptType::Aes256.wire().to_owned()),
            app_info: Some(Self::app_info(&tenant)),
            ..SellerAnswer::code(ResultCode::Success, "created")
        }
    }

    async fn query_instance(&self, ids: Vec<String>) -> SellerAnswer {
        let info = self.with(|t| {
            t.values()
                .filter(|t| ids.contains(&t.instance_id))
                .map(|t| InstanceInfo {
                    instance_id: t.instance_id.clone(),
                    app_info: Some(Self::app_info(t)),
                })
                .collect()
        });
        SellerAnswer {
            info: Some(info),
            encrypt_type: Some(EncryptType::Aes256.wire().to_owned()),
            ..SellerAnswer::code(ResultCode::Success, "ok")
        }
    }

    async fn refresh_instance(&self, req: Refresh) -> SellerAnswer {
        self.set_status(&req.instance_id, "active")
    }

    async fn update_instance_status(
        &self,
        instance_id: String,
        status: StatusChange,
    ) -> SellerAnswer {
        self.set_status(
            &instance_id,
            if status == StatusChange::Freeze {
                "frozen"
            } else {
                "active"
            },
        )
    }

    async fn release_instance(&self, instance_id: String, _order_id: String) -> SellerAnswer {
        self.with(|t| t.retain(|_, t| t.instance_id != instance_id));
        SellerAnswer::code(ResultCode::Success, "released")
    }

    /// A demo tenant has no limits to change: a known one takes any plan.
    async fn upgrade_instance(
        &self,
        instance_id: String,
        _order_id: String,
        _product_id: String,
    ) -> SellerAnswer {
        self.set_status(&instance_id, "active")
    }
}

/// A short, stable tenant number derived from the business id.
fn tenants_len_hint(business_id: &str) -> String {
    business_id
        .chars()
        .rev()
        .take(8)
        .collect::<String>()
        .chars()
        .rev()
        .collect()
}

/// The demo seller's endpoint.
pub fn router() -> axum::Router {
    souk_seller::router(
        Arc::new(DemoSeller::default()),
        Keys::new([DEMO_SIGNING_KEY]),
    )
}
