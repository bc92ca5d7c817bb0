//! What an operator can configure; the command line fills this from flags, environment and the
//! configuration file (docs/configuration.md lists every setting and its default).

use chrono::NaiveDate;
use souk_core::calendar::WorkCalendar;
use souk_core::lifecycle::Policy;
use std::time::Duration;

/// Runtime settings of the server and its workers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Grace and retention periods.
    pub policy: Policy,
    /// Holidays that do not count as working days for review deadlines.
    pub holidays: Vec<NaiveDate>,
    /// Allow product endpoints on plain HTTP to loopback addresses (development, tests, demo).
    pub allow_loopback_http: bool,
    /// How long a seller has to answer one call.
    pub seller_timeout: Duration,
    /// Attempts of a seller call before it is given up.
    pub job_max_attempts: i64,
    /// Delay before the first retry; doubled each attempt, capped at `job_backoff_cap`.
    pub job_backoff: chrono::Duration,
    /// The longest delay between two attempts.
    pub job_backoff_cap: chrono::Duration,
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
}

impl Settings {
    /// Where product endpoints may point.
    pub fn endpoint_rules(&self) -> souk_core::review::EndpointRules {
        souk_core::review::EndpointRules {
            allow_loopback_http: self.allow_loopback_http,
        }
    }

    /// The working-day calendar for review deadlines.
    pub fn calendar(&self) -> WorkCalendar {
        WorkCalendar::new(self.holidays.iter().copied())
    }

    /// Defaults for tests and embedding: loopback endpoints allowed, a random secret key.
    pub fn for_tests() -> Settings {
        Settings {
            allow_loopback_http: true,
            test_clock: true,
            secret_key: rand::random(),
            ..Settings::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            holidays: Vec::new(),
            allow_loopback_http: false,
            seller_timeout: Duration::from_secs(5),
            job_max_attempts: 8,
            job_backoff: chrono::Duration::seconds(5),
            job_backoff_cap: chrono::Duration::minutes(30),
            secret_key: [0; 32],
            session_ttl: chrono::Duration::days(7),
            cookie_secure: false,
            test_clock: false,
            demo_seller: false,
            catalog_ttl: Duration::from_secs(5),
        }
    }
}
