//! Acme Notes: a small SaaS that sells through souk. It keeps its tenants in its own SQLite file
//! and answers souk's lifecycle calls through the `souk-seller` kit: souk's `newInstance` creates a
//! tenant with its first user, `updateInstanceStatus` freezes or unfreezes it, `refreshInstance`
//! records the new expiry and `releaseInstance` deletes the tenant's data.
//!
//! Given an access key of the seller's souk account (`--souk-url`, `SOUK_ACCESS_KEY`,
//! `SOUK_SECRET_ACCESS_KEY`), it also calls souk back with the kit's client: after `newInstance` it
//! asks the order query who bought which plan, and when a tenant's password is reset
//! (`POST /admin/tenants/{id}/password`) it gives souk the new one, so the buyer sees it. Each
//! view of a workspace is metered as one `page_views`, reported to souk at once (a plan that
//! meters `page_views` charges for it; other plans' reports are refused by souk and only logged).
//!
//! Run: `seller-app --signing-key KEY`, then register `http://127.0.0.1:9100/souk` as the
//! product's endpoint in souk (with the same signing key).

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::Serialize;
use souk_seller::client::{AccessUpdate, Marketplace, UsageRecord};
use souk_seller::{
    access_crypto, random_iv, AppInfo, EncryptType, InstanceInfo, Keys, NewInstance, Refresh,
    ResultCode, Seller, SellerAnswer, StatusChange,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;

/// Acme Notes, a SaaS provisioned by souk.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on
    #[arg(long, env = "SELLER_APP_LISTEN", default_value = "127.0.0.1:9100")]
    listen: String,
    /// The product's signing key, as shown in souk's seller centre (repeat during a key rotation)
    #[arg(long = "signing-key", env = "SELLER_APP_SIGNING_KEY", required = true)]
    signing_keys: Vec<String>,
    /// The SQLite file holding the tenants
    #[arg(long, env = "SELLER_APP_DATABASE", default_value = "seller-app.db")]
    database: String,
    /// The URL buyers reach this app at (used in the access links given to souk)
    #[arg(long, env = "SELLER_APP_PUBLIC_URL")]
    public_url: Option<String>,
    /// souk's address, to call it back (with the access key below)
    #[arg(long, env = "SELLER_APP_SOUK_URL", requires_all = ["access_key", "secret_key"])]
    souk_url: Option<String>,
    /// An access key of the seller's souk account (policy seller_operations)
    #[arg(long, env = "SOUK_ACCESS_KEY")]
    access_key: Option<String>,
    /// Its secret key
    #[arg(long, env = "SOUK_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
struct Tenant {
    instance_id: String,
    business_id: String,
    order_id: String,
    status: String,
    expire_time: Option<String>,
    user_name: String,
    password: String,
    created_at: i64,
    /// Who bought it and which plan, as souk's order query said (when souk is called back).
    customer: Option<String>,
    plan: Option<String>,
}

struct Notes {
    db: SqlitePool,
    public_url: String,
    /// Access data is encrypted with the current signing key.
    key: String,
    /// souk, when the app has an access key to call it with.
    souk: Option<Marketplace>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl Notes {
    async fn tenant(&self, instance_id: &str) -> Option<Tenant> {
        sqlx::query_as("SELECT * FROM tenants WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.db)
            .await
            .ok()
            .flatten()
    }

    fn app_info(&self, t: &Tenant) -> AppInfo {
        AppInfo {
            front_end_url: Some(format!("{}/t/{}", self.public_url, t.instance_id)),
            admin_url: Some(format!("{}/t/{}/admin", self.public_url, t.instance_id)),
            user_name: Some(t.user_name.clone()),
            password: access_crypto::encrypt(
                &self.key,
                EncryptType::Aes256,
                &random_iv(),
                &t.password,
            )
            .ok(),
            memo: Some("Sign in with this user; add colleagues under Admin.".into()),
        }
    }

    async fn set_status(&self, instance_id: &str, status: &str) -> SellerAnswer {
        match sqlx::query("UPDATE tenants SET status = ? WHERE instance_id = ?")
            .bind(status)
            .bind(instance_id)
            .execute(&self.db)
            .await
        {
            Ok(r) if r.rows_affected() == 1 => SellerAnswer::code(ResultCode::Success, "success"),
            Ok(_) => SellerAnswer::code(ResultCode::InstanceNotFound, "no such tenant"),
            Err(e) => SellerAnswer::code(ResultCode::InternalError, e.to_string()),
        }
    }
}

impl Notes {
    /// Asks souk's order query, in the background, who bought the tenant and which plan, and
    /// keeps the answer with the tenant. A test call's made-up order is not found; nothing is kept.
    fn learn_buyer(self: &Notes, instance_id: String, order_id: String, line: Option<String>) {
        let (Some(souk), db) = (self.souk.clone(), self.db.clone()) else {
            return;
        };
        tokio::spawn(async move {
            match souk.query_order(&order_id, line.as_deref()).await {
                Ok(info) => {
                    let plan = &info["orderLineList"][0]["productInfo"][0]["skuName"];
                    let _ = sqlx::query(
                        "UPDATE tenants SET customer = ?, plan = ? WHERE instance_id = ?",
                    )
                    .bind(info["customerName"].as_str())
                    .bind(plan.as_str())
                    .bind(&instance_id)
                    .execute(&db)
                    .await;
                }
                Err(e) => tracing::warn!(order = %order_id, error = %e, "order query failed"),
            }
        });
    }
}

impl Seller for Notes {
    async fn new_instance(&self, req: NewInstance) -> SellerAnswer {
        let instance_id = format!("notes-{}", random_hex(6));
        let user = format!("admin@{}", &instance_id[6..]);
        // INSERT OR IGNORE + read back: a repeated businessId answers the tenant made the first time.
        let inserted = sqlx::query(
            "INSERT INTO tenants (instance_id, business_id, order_id, status, expire_time, user_name, password, created_at) \
             VALUES (?, ?, ?, 'active', NULL, ?, ?, ?) ON CONFLICT (business_id) DO NOTHING",
        )
        .bind(&instance_id)
        .bind(&req.business_id)
        .bind(&req.order_id)
        .bind(&user)
        .bind(random_hex(8))
        .bind(now_secs())
        .execute(&self.db)
        .await;
        if let Err(e) = inserted {
            return SellerAnswer::code(ResultCode::InternalError, e.to_string());
        }
        let tenant: Option<Tenant> = sqlx::query_as("SELECT * FROM tenants WHERE business_id = ?")
            .bind(&req.business_id)
            .fetch_optional(&self.db)
            .await
            .ok()
            .flatten();
        if let (Some(t), Some(_)) = (&tenant, &self.souk) {
            self.learn_buyer(t.instance_id.clone(), req.order_id, Some(req.order_line_id));
        }
        match tenant {
            Some(t) => SellerAnswer {
                instance_id: Some(t.instance_id.clone()),
                encrypt_type: Some(EncryptType::Aes256.wire().into()),
                app_info: Some(self.app_info(&t)),
                ..SellerAnswer::code(ResultCode::Success, "tenant created")
            },
            None => SellerAnswer::code(ResultCode::InternalError, "tenant not stored"),
        }
    }

    async fn query_instance(&self, instance_ids: Vec<String>) -> SellerAnswer {
        let mut info = Vec::new();
        for id in instance_ids {
            if let Some(t) = self.tenant(&id).await {
                info.push(InstanceInfo {
                    instance_id: t.instance_id.clone(),
                    app_info: Some(self.app_info(&t)),
                });
            }
        }
        SellerAnswer {
            info: Some(info),
            encrypt_type: Some(EncryptType::Aes256.wire().into()),
            ..SellerAnswer::code(ResultCode::Success, "success")
        }
    }

    async fn refresh_instance(&self, req: Refresh) -> SellerAnswer {
        match sqlx::query("UPDATE tenants SET expire_time = ? WHERE instance_id = ?")
            .bind(&req.expire_time)
            .bind(&req.instance_id)
            .execute(&self.db)
            .await
        {
            Ok(r) if r.rows_affected() == 1 => SellerAnswer::code(ResultCode::Success, "success"),
            Ok(_) => SellerAnswer::code(ResultCode::InstanceNotFound, "no such tenant"),
            Err(e) => SellerAnswer::code(ResultCode::InternalError, e.to_string()),
        }
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
        .await
    }

    async fn release_instance(&self, instance_id: String, _order_id: String) -> SellerAnswer {
        // The tenant's notes go; a row marked released stays so support can answer questions.
        self.set_status(&instance_id, "released").await
    }

    /// The buyer moved to another plan: the change order names it, so the tenant's plan is
    /// learnt again from souk's order query.
    async fn upgrade_instance(
        &self,
        instance_id: String,
        order_id: String,
        _product_id: String,
    ) -> SellerAnswer {
        if self.tenant(&instance_id).await.is_none() {
            return SellerAnswer::code(ResultCode::InstanceNotFound, "no such tenant");
        }
        self.learn_buyer(instance_id, order_id, None);
        SellerAnswer::code(ResultCode::Success, "plan changed")
    }
}

/// Reports one view of a workspace to souk as metered use (`page_views`); the record id is new
/// each view, so a retried report would still count once.
async fn meter_view(app: &Notes, t: &Tenant) {
    let Some(souk) = &app.souk else { return };
    let now = chrono::Utc::now();
    let record = UsageRecord {
        record_id: format!("view-{}-{}", t.instance_id, random_hex(8)),
        instance_id: t.business_id.clone(),
        dimension: "page_views".into(),
        quantity: "1".into(),
        usage_start: now,
        usage_end: now,
    };
    match souk.report_usage(&[record]).await {
        Ok(answer) if answer["accepted"] == 1 => {}
        Ok(answer) => tracing::info!(%answer, "souk did not count the view"),
        Err(e) => tracing::warn!(error = %e, "could not report a view to souk"),
    }
}

async fn tenant_page(State(app): State<Arc<Notes>>, Path(instance_id): Path<String>) -> Response {
    let tenant = app.tenant(&instance_id).await;
    if let Some(t) = tenant.as_ref().filter(|t| t.status == "active") {
        meter_view(&app, t).await;
    }
    match tenant {
        Some(t) if t.status == "active" => Html(format!(
            "<!doctype html><title>Acme Notes</title><h1>Acme Notes</h1><p>Workspace <b>{}</b> is ready. Sign in as {}.</p>",
            t.instance_id, t.user_name
        ))
        .into_response(),
        Some(t) if t.status == "frozen" => {
            (StatusCode::FORBIDDEN, Html("<!doctype html><h1>This workspace is frozen</h1><p>Renew the subscription in the marketplace to continue; your notes are kept.</p>".to_owned())).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Html("<!doctype html><h1>No such workspace</h1>".to_owned())).into_response(),
    }
}

/// Resets a tenant's password and, when souk can be called, gives souk the new one.
async fn reset_password(
    State(app): State<Arc<Notes>>,
    Path(instance_id): Path<String>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let t = app
        .tenant(&instance_id)
        .await
        .ok_or(StatusCode::NOT_FOUND)?;
    let password = random_hex(8);
    sqlx::query("UPDATE tenants SET password = ? WHERE instance_id = ?")
        .bind(&password)
        .bind(&instance_id)
        .execute(&app.db)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    // souk's id of the instance is the businessId it sent with newInstance.
    let told = match &app.souk {
        Some(souk) => {
            let update = AccessUpdate {
                password: Some(password.clone()),
                ..Default::default()
            };
            match souk.update_access(&t.business_id, &update).await {
                Ok(()) => "souk has the new password".to_owned(),
                Err(e) => e.to_string(),
            }
        }
        None => "souk was not told (no access key)".to_owned(),
    };
    Ok(Json(
        serde_json::json!({"password": password, "souk": told}),
    ))
}

async fn tenants(State(app): State<Arc<Notes>>) -> Result<Json<Vec<Tenant>>, StatusCode> {
    sqlx::query_as("SELECT * FROM tenants ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .map(Json)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SELLER_APP_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", args.database))?
        .create_if_missing(true);
    let db = SqlitePool::connect_with(options)
        .await
        .with_context(|| format!("opening {}", args.database))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tenants (instance_id TEXT PRIMARY KEY, business_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL, \
         status TEXT NOT NULL, expire_time TEXT, user_name TEXT NOT NULL, password TEXT NOT NULL, created_at INTEGER NOT NULL, \
         customer TEXT, plan TEXT)",
    )
    .execute(&db)
    .await?;
    // A tenants file from before souk was called back lacks these; adding one that is there fails
    // harmlessly.
    for column in ["customer", "plan"] {
        let _ = sqlx::query(&format!("ALTER TABLE tenants ADD COLUMN {column} TEXT"))
            .execute(&db)
            .await;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let key = args
        .signing_keys
        .first()
        .cloned()
        .context("a signing key is required")?;
    let souk = match (args.souk_url, args.access_key, args.secret_key) {
        (Some(url), Some(ak), Some(sk)) => Some(Marketplace::new(&url, &ak, &sk)),
        _ => None,
    };
    let notes = Arc::new(Notes {
        db,
        public_url,
        key,
        souk,
    });
    let app = Router::new()
        .nest_service(
            "/souk",
            souk_seller::router(notes.clone(), Keys::new(args.signing_keys)),
        )
        .route("/t/{instance_id}", get(tenant_page))
        .route("/admin/tenants", get(tenants))
        .route(
            "/admin/tenants/{instance_id}/password",
            axum::routing::post(reset_password),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(notes);
    println!("Acme Notes listening on http://{addr}; souk endpoint: http://{addr}/souk");
    axum::serve(listener, app).await?;
    Ok(())
}
