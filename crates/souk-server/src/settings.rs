//! What an operator can configure; the command line fills this from flags, environment and the
//! configuration file (docs/configuration.md lists every setting and its default).

use chrono::NaiveDate;
use souk_core::calendar::WorkCalendar;
use souk_core::lifecycle::Policy;
use souk_core::refunds::RefundPolicy;
use std::time::Duration;

/// Runtime settings of the server and its workers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Grace and retention periods.
    pub policy: Policy,
    /// What unsubscribing gives back.
    pub refunds: RefundPolicy,
    /// How late (and how early) sellers may report usage.
    pub usage_window: souk_core::metering::Window,
    /// Holidays that do not count as working days for review deadlines.
    pub holidays: Vec<NaiveDate>,
    /// Allow product endpoints on plain HTTP to loopback addresses (development, tests, demo).
    pub allow_loopback_http: bool,
    /// A product is submitted for review only once its endpoint, as the product would call it,
    /// has passed the endpoint check.
    pub submit_needs_endpoint_check: bool,
    /// How long a seller has to answer one call.
    pub seller_timeout: Duration,
    /// Attempts of a seller call before it is given up.
    pub job_max_attempts: i64,
    /// Delay before the first retry; doubled each attempt, capped at `job_backoff_cap`.
    pub job_backoff: chrono::Duration,
    /// The longest delay between two attempts.
    pub job_backoff_cap: chrono::Duration,
    /// How long a done job and its attempts are kept before they are forgotten.
    pub keep_done_jobs: chrono::Duration,
    /// How long the audit of refused signed requests is kept.
    pub keep_auth_audit: chrono::Duration,
    /// 32-byte key that encrypts secrets at rest.
    pub secret_key: [u8; 32],
    /// How long a login lasts.
    pub session_ttl: chrono::Duration,
    /// Mark the session cookie `Secure` (serve behind TLS).
    pub cookie_secure: bool,
    /// Use a test clock that the API can move (`--test-clock`); never in production.
    pub test_clock: bool,
    /// Mount the built-in demo seller at `/demo-seller`.
    pub demo_seller: bool,
    /// How long a node serves the catalog from memory before re-reading it.
    pub catalog_ttl: Duration,
    /// Log-in and sign-up limits, and how many password hashes run at once.
    pub throttle: crate::throttle::Limits,
    /// Non-public networks seller endpoints may be in (e.g. `127.0.0.0/8` for development).
    pub allowed_seller_networks: Vec<ipnet::IpNet>,
    /// The largest seller answer souk reads, in bytes.
    pub seller_answer_limit: usize,
    /// Where people reach souk (`https://market.example.com`); an https URL makes the session
    /// cookie `Secure` and `__Host-` prefixed, and is an accepted `Origin` for browser writes.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` souk believes.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A session unused this long ends.
    pub session_idle: chrono::Duration,
    /// Bearer token that reads `/metrics` (operators with a session may too).
    pub metrics_token: Option<String>,
    /// Bearer token that reads and moves the test clock (operators with a session may too).
    pub test_clock_token: Option<String>,
    /// Who souk's e-mail comes from.
    pub mail_from: lettre::message::Mailbox,
    /// Where souk's e-mail goes.
    pub mail_transport: crate::mail::MailTransport,
}

/// The test clock token [`Settings::for_tests`] sets, for test helpers.
pub const TEST_CLOCK_TOKEN_FOR_TESTS: &str = "test-clock-token";

impl Settings {
    /// Where product endpoints may point.
    pub fn endpoint_rules(&self) -> souk_core::review::EndpointRules {
        souk_core::review::EndpointRules {
            allow_loopback_http: self.allow_loopback_http,
            networks: self.seller_networks(),
        }
    }

    /// The networks seller calls may reach beyond the public internet.
    pub fn seller_networks(&self) -> souk_core::net::SellerNetworks {
        souk_core::net::SellerNetworks {
            allowed: self.allowed_seller_networks.clone(),
        }
    }

    /// The working-day calendar for review deadlines.
    pub fn calendar(&self) -> WorkCalendar {
        WorkCalendar::new(self.holidays.iter().copied())
    }

    /// Defaults for tests and embedding: loopback endpoints allowed, a random secret key, a test
    /// clock behind [`TEST_CLOCK_TOKEN_FOR_TESTS`], and log-in limits loose enough for tests that
    /// sign up many accounts from 127.0.0.1.
    pub fn for_tests() -> Settings {
        Settings {
            allow_loopback_http: true,
            allowed_seller_networks: vec![
                ipnet::IpNet::V4(
                    ipnet::Ipv4Net::new(std::net::Ipv4Addr::LOCALHOST, 8).unwrap_or_default(),
                ),
                ipnet::IpNet::V6(
                    ipnet::Ipv6Net::new(std::net::Ipv6Addr::LOCALHOST, 128).unwrap_or_default(),
                ),
            ],
            test_clock: true,
            test_clock_token: Some(TEST_CLOCK_TOKEN_FOR_TESTS.to_owned()),
            // Tests list products against endpoints that are not all complete sellers; the
            // requirement has tests of its own.
            submit_needs_endpoint_check: false,
            secret_key: rand::random(),
            throttle: crate::throttle::Limits::loose(),
            // Each test's e-mail in a directory of its own.
            mail_transport: crate::mail::MailTransport::Outbox(std::env::temp_dir().join(format!(
                "souk-outbox-{}",
                hex::encode(rand::random::<[u8; 8]>())
            ))),
            ..Settings::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            refunds: RefundPolicy::default(),
            usage_window: Default::default(),
            holidays: Vec::new(),
            allow_loopback_http: false,
            submit_needs_endpoint_check: true,
            seller_timeout: Duration::from_secs(5),
            job_max_attempts: 8,
            job_backoff: chrono::Duration::seconds(5),
            job_backoff_cap: chrono::Duration::minutes(30),
            keep_done_jobs: chrono::Duration::days(30),
            keep_auth_audit: chrono::Duration::days(365),
            secret_key: [0; 32],
            session_ttl: chrono::Duration::days(7),
            cookie_secure: false,
            test_clock: false,
            demo_seller: false,
            catalog_ttl: Duration::from_secs(5),
            throttle: crate::throttle::Limits::default(),
            allowed_seller_networks: Vec::new(),
            seller_answer_limit: 64 * 1024,
            public_url: None,
            trusted_proxies: Vec::new(),
            session_idle: chrono::Duration::hours(2),
            metrics_token: None,
            test_clock_token: None,
            mail_from: lettre::message::Mailbox::new(
                Some("souk".into()),
                lettre::Address::new("no-reply", "localhost")
                    .unwrap_or_else(|_| unreachable!("a literal address")),
            ),
            mail_transport: crate::mail::MailTransport::Outbox("outbox".into()),
        }
    }
}
