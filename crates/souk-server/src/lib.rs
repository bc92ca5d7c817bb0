//! souk's application: the use cases every front door shares (`app`), the JSON API under `/v1`
//! (`api`), authentication, and the background workers that call sellers and walk instances
//! through their lifecycle. Use cases ask `souk-core` what to do and let `souk-store` keep it; the
//! front doors only extract, call and shape the answer.

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod conformance;
pub mod crypto;
pub mod csrf;
pub mod demo;
pub mod demo_seller;
pub mod egress;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod known_keys;
pub mod mail;
pub mod metrics;
pub mod ops;
pub mod panics;
pub mod replays;
pub mod sessions;
pub mod settings;
pub mod signed;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod web;
pub mod workers;

use souk_core::clock::{Clock, SystemClock, TestClock};
use souk_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use settings::Settings;

/// Everything a request handler or worker needs.
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// The same clock when it is a test clock (`--test-clock`), so the API can move it.
    pub test_clock: Option<Arc<TestClock>>,
    /// Configuration.
    pub settings: Settings,
    /// Encrypts secrets at rest.
    pub secrets: crypto::SecretBox,
    /// The in-memory catalog.
    pub catalog: app::catalog::CatalogCache,
    /// The ways a request can prove who is calling, asked in order.
    pub authenticators: Vec<Box<dyn auth::Authenticator>>,
    /// Wakes the dispatcher early: a job was just written (a purchase, a renewal, a transition).
    pub wake_dispatcher: Notify,
    /// Wakes the scheduler early: the test clock moved.
    pub wake_scheduler: Notify,
    /// The HTTP client for seller calls.
    pub http: reqwest::Client,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Log-in and sign-up limits, and the password-hashing slots.
    pub throttle: throttle::Throttle,
    /// Sends notification e-mail.
    pub mailer: mail::Mailer,
    /// The signed requests accepted while they could be replayed.
    pub replays: replays::Replays,
}

/// Shared application state.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Builds the state; with `settings.test_clock` time starts now and moves only when told.
    pub fn new(store: Store, settings: Settings) -> SharedState {
        let (clock, test_clock): (Arc<dyn Clock>, Option<Arc<TestClock>>) = if settings.test_clock {
            let tc = Arc::new(TestClock::new(SystemClock.now()));
            (tc.clone(), Some(tc))
        } else {
            (Arc::new(SystemClock), None)
        };
        let http = reqwest::Client::builder()
            .timeout(settings.seller_timeout)
            .connect_timeout(settings.seller_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("souk/", env!("CARGO_PKG_VERSION")))
            // Names resolve only to addresses seller calls may reach (see `egress`).
            .dns_resolver(Arc::new(egress::GuardedResolver {
                networks: settings.seller_networks(),
            }))
            .build()
            .expect("the HTTP client builds with static settings and the bundled TLS roots");
        let throttle = throttle::Throttle::new(&settings.throttle);
        let mailer = mail::Mailer::new(settings.mail_from.clone(), &settings.mail_transport);
        Arc::new(AppState {
            mailer,
            replays: replays::Replays::for_backend(store.backend()),
            secrets: crypto::SecretBox::new(&settings.secret_key),
            catalog: app::catalog::CatalogCache::new(settings.catalog_ttl),
            authenticators: vec![
                Box::new(signed::AccessKeyAuth),
                Box::new(auth::SessionCookie),
            ],
            store,
            clock,
            test_clock,
            settings,
            wake_dispatcher: Notify::new(),
            wake_scheduler: Notify::new(),
            metrics: metrics::Metrics::default(),
            throttle,
            http,
        })
    }

    /// The current instant.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// A running souk: the API on `addr`, the workers beside it.
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The shared state.
    pub state: SharedState,
    /// Finishes when the server stops.
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves the API on `listener` and starts the workers.
pub fn start(state: SharedState, listener: TcpListener) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    workers::spawn(state.clone());
    let app = api::router(state.clone());
    // With the peer's address: log-in throttling counts per client address.
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(Running {
        addr,
        state,
        server,
    })
}
