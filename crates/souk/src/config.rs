//! Configuration: every setting has a flag, an environment variable and a line in the
//! configuration file, taken in that order; docs/configuration.md lists them with defaults.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use clap::Args;
use serde::Deserialize;
use souk_server::Settings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings every command that touches the database takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Database URL: sqlite://FILE (created if missing) or postgres://…  [default: sqlite://./souk.db]
    #[arg(long, env = "SOUK_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Configuration file  [default: ./souk.toml if present]
    #[arg(long, env = "SOUK_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// 64 hex digits: the key that encrypts secrets at rest  [default: read from (or created in) the secret key file]
    #[arg(long, env = "SOUK_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Where the secret key is kept when not given directly  [default: ./souk.key]
    #[arg(long, env = "SOUK_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
    /// Log format: text or json  [default: text]
    #[arg(long, env = "SOUK_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

/// Settings of `souk serve`. Every one also has an environment variable and a line in the
/// configuration file (the same name in snake case), taken in that order.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on  [default: 127.0.0.1:8080]
    #[arg(long, env = "SOUK_LISTEN")]
    pub listen: Option<String>,
    /// Fill an empty database with demo data and mount the built-in demo seller
    #[arg(long)]
    pub demo: bool,
    /// Use a clock that only moves through POST /v1/test/clock (for tests; never in production)
    #[arg(long)]
    pub test_clock: bool,
    /// Grace period after expiry, in days, 0 to 365  [default: 15]
    #[arg(long, env = "SOUK_GRACE_DAYS")]
    pub grace_days: Option<i64>,
    /// Retention period after grace, in days, 0 to 365  [default: 15]
    #[arg(long, env = "SOUK_RETENTION_DAYS")]
    pub retention_days: Option<i64>,
    /// Days after an order in which unsubscribing refunds it in full, 0 to 365 (prorated after)  [default: 5]
    #[arg(long, env = "SOUK_FULL_REFUND_DAYS")]
    pub full_refund_days: Option<i64>,
    /// How many hours after it ended a seller may still report usage, 1 to 72  [default: 6]
    #[arg(long, env = "SOUK_USAGE_LATE_HOURS")]
    pub usage_late_hours: Option<i64>,
    /// Dates (YYYY-MM-DD, comma-separated) that are not working days for review deadlines
    #[arg(long, env = "SOUK_REVIEW_HOLIDAYS")]
    pub review_holidays: Option<String>,
    /// Allow product endpoints on plain HTTP to literal loopback addresses (development)  [default: false]
    #[arg(long, env = "SOUK_ALLOW_LOOPBACK_HTTP")]
    pub allow_loopback_http: Option<bool>,
    /// Submit a product for review only after its endpoint passed the endpoint check  [default: true]
    #[arg(long, env = "SOUK_SUBMIT_NEEDS_ENDPOINT_CHECK")]
    pub submit_needs_endpoint_check: Option<bool>,
    /// Non-public networks seller endpoints may be in, comma-separated CIDRs (e.g. 127.0.0.0/8)  [default: none]
    #[arg(long, env = "SOUK_ALLOWED_SELLER_NETWORKS")]
    pub allowed_seller_networks: Option<String>,
    /// Seconds a seller has to answer one call, 1 to 60  [default: 5]
    #[arg(long, env = "SOUK_SELLER_TIMEOUT_SECS")]
    pub seller_timeout_secs: Option<u64>,
    /// The largest seller answer read, in KiB, 1 to 10240  [default: 64]
    #[arg(long, env = "SOUK_SELLER_ANSWER_LIMIT_KIB")]
    pub seller_answer_limit_kib: Option<u64>,
    /// Attempts of a seller call before giving up, 1 to 100  [default: 8]
    #[arg(long, env = "SOUK_JOB_MAX_ATTEMPTS")]
    pub job_max_attempts: Option<i64>,
    /// Seconds before the first retry of a failed seller call, doubled each time, 1 to 3600  [default: 5]
    #[arg(long, env = "SOUK_JOB_BACKOFF_SECS")]
    pub job_backoff_secs: Option<i64>,
    /// The longest wait between two attempts, in seconds, job_backoff_secs to 86400  [default: 1800]
    #[arg(long, env = "SOUK_JOB_BACKOFF_CAP_SECS")]
    pub job_backoff_cap_secs: Option<i64>,
    /// Days a done job and its attempts are kept before they are forgotten, 1 to 3650  [default: 30]
    #[arg(long, env = "SOUK_KEEP_DONE_JOBS_DAYS")]
    pub keep_done_jobs_days: Option<i64>,
    /// Days the audit of refused signed requests is kept, 1 to 3650  [default: 365]
    #[arg(long, env = "SOUK_KEEP_AUTH_AUDIT_DAYS")]
    pub keep_auth_audit_days: Option<i64>,
    /// How long a login lasts at most, in hours, 1 to 8760  [default: 168]
    #[arg(long, env = "SOUK_SESSION_TTL_HOURS")]
    pub session_ttl_hours: Option<i64>,
    /// A session unused this many minutes ends, 1 to the session TTL  [default: 120]
    #[arg(long, env = "SOUK_SESSION_IDLE_MINUTES")]
    pub session_idle_minutes: Option<i64>,
    /// Always mark the session cookie Secure (as an https public_url does)  [default: false]
    #[arg(long, env = "SOUK_COOKIE_SECURE")]
    pub cookie_secure: Option<bool>,
    /// Where people reach souk, e.g. https://market.example.com  [default: none]
    #[arg(long, env = "SOUK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, comma-separated CIDRs  [default: none]
    #[arg(long, env = "SOUK_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Seconds a node serves the catalog from memory, 0 to 3600  [default: 5]
    #[arg(long, env = "SOUK_CATALOG_TTL_SECS")]
    pub catalog_ttl_secs: Option<u64>,
    /// Bearer token that reads /metrics (at least 16 characters)  [default: none: operators only]
    #[arg(long, env = "SOUK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Bearer token that reads and moves the test clock (at least 16 characters)  [default: none: operators only]
    #[arg(long, env = "SOUK_TEST_CLOCK_TOKEN", hide_env_values = true)]
    pub test_clock_token: Option<String>,
    /// Failed log-ins per account before it waits, 1 to 10000  [default: 10]
    #[arg(long, env = "SOUK_LOGIN_FAILURES_PER_ACCOUNT")]
    pub login_failures_per_account: Option<u32>,
    /// The window of login_failures_per_account, in seconds, 1 to 86400  [default: 900]
    #[arg(long, env = "SOUK_LOGIN_FAILURE_WINDOW_SECS")]
    pub login_failure_window_secs: Option<u64>,
    /// Log-in attempts per client address, 1 to 100000  [default: 30]
    #[arg(long, env = "SOUK_LOGIN_ATTEMPTS_PER_ADDRESS")]
    pub login_attempts_per_address: Option<u32>,
    /// The window of login_attempts_per_address, in seconds, 1 to 86400  [default: 60]
    #[arg(long, env = "SOUK_LOGIN_ADDRESS_WINDOW_SECS")]
    pub login_address_window_secs: Option<u64>,
    /// Refused signed requests per client address that are audited, 1 to 100000  [default: 60]
    #[arg(long, env = "SOUK_SIGNATURE_REFUSALS_PER_ADDRESS")]
    pub signature_refusals_per_address: Option<u32>,
    /// The window of signature_refusals_per_address, in seconds, 1 to 86400  [default: 60]
    #[arg(long, env = "SOUK_SIGNATURE_REFUSAL_WINDOW_SECS")]
    pub signature_refusal_window_secs: Option<u64>,
    /// Sign-ups per client address, 1 to 100000  [default: 10]
    #[arg(long, env = "SOUK_SIGNUPS_PER_ADDRESS")]
    pub signups_per_address: Option<u32>,
    /// The window of signups_per_address, in seconds, 1 to 86400  [default: 3600]
    #[arg(long, env = "SOUK_SIGNUP_WINDOW_SECS")]
    pub signup_window_secs: Option<u64>,
    /// Password hashes computed at once, 1 to 256  [default: the number of cores]
    #[arg(long, env = "SOUK_PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,
    /// Password hashes that may wait for a slot (more are answered 503), 0 to 10000  [default: 32]
    #[arg(long, env = "SOUK_PASSWORD_HASH_QUEUE")]
    pub password_hash_queue: Option<usize>,
    /// Who notification e-mail comes from  [default: souk <no-reply@localhost>]
    #[arg(long, env = "SOUK_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// SMTP server for notification e-mail, e.g. smtp://user:password@mail.example.com:587?tls=required  [default: none: the outbox]
    #[arg(long, env = "SOUK_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Directory the e-mail goes to, one .eml file each, when no smtp_url is set  [default: ./outbox]
    #[arg(long, env = "SOUK_OUTBOX_DIR")]
    pub outbox_dir: Option<PathBuf>,
}

/// The configuration file's lines; all optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub log_format: Option<String>,
    pub grace_days: Option<i64>,
    pub retention_days: Option<i64>,
    pub full_refund_days: Option<i64>,
    pub usage_late_hours: Option<i64>,
    /// Dates (YYYY-MM-DD) that are not working days for review deadlines.
    pub review_holidays: Option<Vec<NaiveDate>>,
    pub allow_loopback_http: Option<bool>,
    pub submit_needs_endpoint_check: Option<bool>,
    pub allowed_seller_networks: Option<Vec<String>>,
    pub seller_timeout_secs: Option<u64>,
    pub seller_answer_limit_kib: Option<u64>,
    pub job_max_attempts: Option<i64>,
    pub job_backoff_secs: Option<i64>,
    pub job_backoff_cap_secs: Option<i64>,
    pub keep_done_jobs_days: Option<i64>,
    pub keep_auth_audit_days: Option<i64>,
    pub session_ttl_hours: Option<i64>,
    pub session_idle_minutes: Option<i64>,
    pub cookie_secure: Option<bool>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub catalog_ttl_secs: Option<u64>,
    pub metrics_token: Option<String>,
    pub test_clock_token: Option<String>,
    pub login_failures_per_account: Option<u32>,
    pub login_failure_window_secs: Option<u64>,
    pub login_attempts_per_address: Option<u32>,
    pub login_address_window_secs: Option<u64>,
    pub signature_refusals_per_address: Option<u32>,
    pub signature_refusal_window_secs: Option<u64>,
    pub signups_per_address: Option<u32>,
    pub signup_window_secs: Option<u64>,
    pub password_hash_concurrency: Option<usize>,
    pub password_hash_queue: Option<usize>,
    pub mail_from: Option<String>,
    pub smtp_url: Option<String>,
    pub outbox_dir: Option<PathBuf>,
}

impl FileConfig {
    /// Reads the file named on the command line, or `./souk.toml` when present.
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("souk.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("reading configuration file {}", path.display())),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(FileConfig::default())
            }
            Err(e) => {
                Err(e).with_context(|| format!("reading configuration file {}", path.display()))
            }
        }
    }
}

/// The database URL in force.
pub fn database_url(common: &Common, file: &FileConfig) -> String {
    common
        .database_url
        .clone()
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| "sqlite://./souk.db".to_owned())
}

/// The secret key: given directly, or read from its file, which is created on first use.
pub fn secret_key(common: &Common, file: &FileConfig) -> Result<[u8; 32]> {
    if let Some(hex_key) = common
        .secret_key
        .clone()
        .or_else(|| file.secret_key.clone())
    {
        return parse_key(&hex_key).context("the secret key must be 64 hex digits");
    }
    let path = common
        .secret_key_file
        .clone()
        .or_else(|| file.secret_key_file.clone())
        .unwrap_or_else(|| PathBuf::from("souk.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            private_enough(&path)?;
            parse_key(text.trim())
                .with_context(|| format!("{} must hold 64 hex digits", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private(&path, &hex_string(&key))
                .with_context(|| format!("creating the secret key file {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new secret key file; back it up with the database");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the secret key file {}", path.display())),
    }
}

/// Refuses a key file that the group or others can read or write: whoever reads it can open
/// every sealed secret in the database.
fn private_enough(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading the secret key file {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the secret key file {} is accessible to its group or others (mode {:o}); \
                 make it private with: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn hex_string(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_key(text: &str) -> Result<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("expected 64 hex digits");
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{text}")
}

/// A number within `lo..=hi`, or an error naming the setting: out-of-range values are refused,
/// never clamped, so what runs is what was written.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<T> {
    if value < lo || value > hi {
        bail!("{name} must be between {lo} and {hi}, not {value}");
    }
    Ok(value)
}

/// A list of IP networks (`10.0.0.0/8`; a bare address is one host), naming the setting on error.
fn networks(name: &str, items: &[String]) -> Result<Vec<ipnet::IpNet>> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("{name}: {s:?} is not an IP network such as 10.0.0.0/8")
                })
        })
        .collect()
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_owned()).collect()
}

fn token(name: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(t) if t.trim().chars().count() < 16 => {
            bail!("{name} must be at least 16 characters")
        }
        Some(t) => Ok(Some(t.trim().to_owned())),
        None => Ok(None),
    }
}

/// The server settings from flags, environment, file and defaults, each checked once.
pub fn settings(common: &Common, serve: Option<&ServeArgs>, file: &FileConfig) -> Result<Settings> {
    let d = Settings::default();
    let none = ServeArgs::default();
    let a = serve.unwrap_or(&none);
    let grace = within(
        "grace_days",
        a.grace_days.or(file.grace_days).unwrap_or(15),
        0,
        365,
    )?;
    let retention = within(
        "retention_days",
        a.retention_days.or(file.retention_days).unwrap_or(15),
        0,
        365,
    )?;
    let full_refund_days = within(
        "full_refund_days",
        a.full_refund_days.or(file.full_refund_days).unwrap_or(5),
        0,
        365,
    )?;
    let usage_late_hours = within(
        "usage_late_hours",
        a.usage_late_hours.or(file.usage_late_hours).unwrap_or(6),
        1,
        72,
    )?;
    let holidays = match &a.review_holidays {
        Some(text) => comma_list(text)
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    anyhow::anyhow!("review_holidays: {s:?} is not a date such as 2027-01-01")
                })
            })
            .collect::<Result<Vec<_>>>()?,
        None => file.review_holidays.clone().unwrap_or_default(),
    };
    let max_attempts = within(
        "job_max_attempts",
        a.job_max_attempts
            .or(file.job_max_attempts)
            .unwrap_or(d.job_max_attempts),
        1,
        100,
    )?;
    let backoff = within(
        "job_backoff_secs",
        a.job_backoff_secs.or(file.job_backoff_secs).unwrap_or(5),
        1,
        3600,
    )?;
    let backoff_cap = within(
        "job_backoff_cap_secs",
        a.job_backoff_cap_secs
            .or(file.job_backoff_cap_secs)
            .unwrap_or_else(|| d.job_backoff_cap.num_seconds().max(backoff)),
        backoff,
        86_400,
    )?;
    let ttl_hours = within(
        "session_ttl_hours",
        a.session_ttl_hours
            .or(file.session_ttl_hours)
            .unwrap_or(168),
        1,
        24 * 365,
    )?;
    let idle_minutes = match a.session_idle_minutes.or(file.session_idle_minutes) {
        Some(m) => within("session_idle_minutes", m, 1, ttl_hours * 60)?,
        // The default never outlasts a shorter configured lifetime.
        None => (ttl_hours * 60).min(120),
    };
    let list = |flag: &Option<String>, file: &Option<Vec<String>>| match flag {
        Some(text) => comma_list(text),
        None => file.clone().unwrap_or_default(),
    };
    let allowed_seller_networks = networks(
        "allowed_seller_networks",
        &list(&a.allowed_seller_networks, &file.allowed_seller_networks),
    )?;
    // `souk serve --demo` calls its own demo seller; `serve` allows exactly that address.
    let demo = a.demo;
    let public_url = match a.public_url.clone().or_else(|| file.public_url.clone()) {
        Some(u) => {
            let u = u.trim().trim_end_matches('/').to_owned();
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || souk_core::net::url_host(&u).is_none()
            {
                bail!("public_url must be an http(s) URL such as https://market.example.com, not {u:?}");
            }
            Some(u)
        }
        // The demo's e-mails (in the outbox) link to the demo itself.
        None if demo => {
            let at = listen(a, file);
            let at = at.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
            Some(format!("http://{at}"))
        }
        None => None,
    };
    let d_limits = souk_server::throttle::Limits::default();
    let secs = |name: &str, flag: Option<u64>, file: Option<u64>, default: std::time::Duration| {
        within(name, flag.or(file).unwrap_or(default.as_secs()), 1, 86_400).map(Duration::from_secs)
    };
    // How long something is kept, in days.
    let days = |name: &str, flag: Option<i64>, file: Option<i64>, default: chrono::Duration| {
        within(name, flag.or(file).unwrap_or(default.num_days()), 1, 3650)
            .map(chrono::Duration::days)
    };
    let throttle = souk_server::throttle::Limits {
        login_failures_per_account: within(
            "login_failures_per_account",
            a.login_failures_per_account
                .or(file.login_failures_per_account)
                .unwrap_or(d_limits.login_failures_per_account),
            1,
            10_000,
        )?,
        login_failure_window: secs(
            "login_failure_window_secs",
            a.login_failure_window_secs,
            file.login_failure_window_secs,
            d_limits.login_failure_window,
        )?,
        login_attempts_per_address: within(
            "login_attempts_per_address",
            a.login_attempts_per_address
                .or(file.login_attempts_per_address)
                .unwrap_or(d_limits.login_attempts_per_address),
            1,
            100_000,
        )?,
        login_address_window: secs(
            "login_address_window_secs",
            a.login_address_window_secs,
            file.login_address_window_secs,
            d_limits.login_address_window,
        )?,
        signups_per_address: within(
            "signups_per_address",
            a.signups_per_address
                .or(file.signups_per_address)
                .unwrap_or(d_limits.signups_per_address),
            1,
            100_000,
        )?,
        signup_window: secs(
            "signup_window_secs",
            a.signup_window_secs,
            file.signup_window_secs,
            d_limits.signup_window,
        )?,
        hashes_at_once: within(
            "password_hash_concurrency",
            a.password_hash_concurrency
                .or(file.password_hash_concurrency)
                .unwrap_or(d_limits.hashes_at_once),
            1,
            256,
        )?,
        hash_queue: within(
            "password_hash_queue",
            a.password_hash_queue
                .or(file.password_hash_queue)
                .unwrap_or(d_limits.hash_queue),
            0,
            10_000,
        )?,
        signature_refusals_per_address: within(
            "signature_refusals_per_address",
            a.signature_refusals_per_address
                .or(file.signature_refusals_per_address)
                .unwrap_or(d_limits.signature_refusals_per_address),
            1,
            100_000,
        )?,
        signature_refusal_window: secs(
            "signature_refusal_window_secs",
            a.signature_refusal_window_secs,
            file.signature_refusal_window_secs,
            d_limits.signature_refusal_window,
        )?,
        endpoint_checks_per_merchant: d_limits.endpoint_checks_per_merchant,
        endpoint_check_window: d_limits.endpoint_check_window,
    };
    Ok(Settings {
        policy: souk_core::lifecycle::Policy {
            grace: chrono::Duration::days(grace),
            retention: chrono::Duration::days(retention),
        },
        refunds: souk_core::refunds::RefundPolicy {
            full_refund_window: chrono::Duration::days(full_refund_days),
        },
        usage_window: souk_core::metering::Window {
            late: chrono::Duration::hours(usage_late_hours),
            ..Default::default()
        },
        holidays,
        allow_loopback_http: demo
            || a.allow_loopback_http
                .or(file.allow_loopback_http)
                .unwrap_or(false),
        submit_needs_endpoint_check: a
            .submit_needs_endpoint_check
            .or(file.submit_needs_endpoint_check)
            .unwrap_or(d.submit_needs_endpoint_check),
        allowed_seller_networks,
        seller_timeout: Duration::from_secs(within(
            "seller_timeout_secs",
            a.seller_timeout_secs
                .or(file.seller_timeout_secs)
                .unwrap_or(5),
            1,
            60,
        )?),
        seller_answer_limit: within(
            "seller_answer_limit_kib",
            a.seller_answer_limit_kib
                .or(file.seller_answer_limit_kib)
                .unwrap_or(64),
            1,
            10 * 1024,
        )? as usize
            * 1024,
        job_max_attempts: max_attempts,
        job_backoff: chrono::Duration::seconds(backoff),
        job_backoff_cap: chrono::Duration::seconds(backoff_cap),
        keep_done_jobs: days(
            "keep_done_jobs_days",
            a.keep_done_jobs_days,
            file.keep_done_jobs_days,
            d.keep_done_jobs,
        )?,
        keep_auth_audit: days(
            "keep_auth_audit_days",
            a.keep_auth_audit_days,
            file.keep_auth_audit_days,
            d.keep_auth_audit,
        )?,
        secret_key: secret_key(common, file)?,
        session_ttl: chrono::Duration::hours(ttl_hours),
        session_idle: chrono::Duration::minutes(idle_minutes),
        cookie_secure: a.cookie_secure.or(file.cookie_secure).unwrap_or(false),
        public_url,
        trusted_proxies: networks(
            "trusted_proxies",
            &list(&a.trusted_proxies, &file.trusted_proxies),
        )?,
        test_clock: a.test_clock,
        test_clock_token: token(
            "test_clock_token",
            a.test_clock_token
                .clone()
                .or_else(|| file.test_clock_token.clone()),
        )?,
        metrics_token: token(
            "metrics_token",
            a.metrics_token
                .clone()
                .or_else(|| file.metrics_token.clone()),
        )?,
        demo_seller: demo,
        mail_from: match a.mail_from.as_ref().or(file.mail_from.as_ref()) {
            Some(from) => {
                souk_server::mail::sender(from).map_err(|e| anyhow::anyhow!("mail_from: {e}"))?
            }
            None => Settings::default().mail_from,
        },
        mail_transport: match a.smtp_url.as_ref().or(file.smtp_url.as_ref()) {
            Some(url) => {
                souk_server::mail::check_smtp_url(url)
                    .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
                souk_server::mail::MailTransport::Smtp(url.clone())
            }
            None => souk_server::mail::MailTransport::Outbox(
                a.outbox_dir
                    .clone()
                    .or_else(|| file.outbox_dir.clone())
                    .unwrap_or_else(|| "outbox".into()),
            ),
        },
        catalog_ttl: Duration::from_secs(within(
            "catalog_ttl_secs",
            a.catalog_ttl_secs.or(file.catalog_ttl_secs).unwrap_or(5),
            0,
            3600,
        )?),
        throttle,
    })
}

/// The listen address in force.
pub fn listen(serve: &ServeArgs, file: &FileConfig) -> String {
    serve
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        serve: ServeArgs,
    }

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("souk").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file: FileConfig = toml::from_str(
            "grace_days = 10\nretention_days = 20\nreview_holidays = [\"2027-01-01\"]\nlisten = \"0.0.0.0:9000\"\ndatabase_url = \"postgres://db/souk\"",
        )
        .unwrap();
        let cli = parse(&["--secret-key", KEY, "--grace-days", "3"]);
        let s = settings(&cli.common, Some(&cli.serve), &file).unwrap();
        assert_eq!(s.policy.grace, chrono::Duration::days(3));
        assert_eq!(s.policy.retention, chrono::Duration::days(20));
        assert_eq!(
            s.refunds.full_refund_window,
            chrono::Duration::days(5),
            "the default refund window"
        );
        assert_eq!(
            s.holidays,
            vec![NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()]
        );
        assert_eq!(s.secret_key[1], 1);
        assert_eq!(listen(&cli.serve, &file), "0.0.0.0:9000");
        assert_eq!(database_url(&cli.common, &file), "postgres://db/souk");
        let defaults = settings(&cli.common, None, &FileConfig::default()).unwrap();
        assert_eq!(defaults.policy.retention, chrono::Duration::days(15));
        assert!(!defaults.allow_loopback_http && !defaults.test_clock);
        assert!(defaults.submit_needs_endpoint_check);
        let cli = parse(&[
            "--secret-key",
            KEY,
            "--submit-needs-endpoint-check",
            "false",
        ]);
        let lax = settings(&cli.common, Some(&cli.serve), &FileConfig::default()).unwrap();
        assert!(!lax.submit_needs_endpoint_check);
        assert_eq!(
            database_url(
                &parse(&["--secret-key", KEY]).common,
                &FileConfig::default()
            ),
            "sqlite://./souk.db"
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_a_reason() {
        assert!(
            toml::from_str::<FileConfig>("grace_dayz = 3").is_err(),
            "unknown keys are errors"
        );
        let cli = parse(&["--secret-key", "not-hex", "--grace-days", "3"]);
        assert!(settings(&cli.common, Some(&cli.serve), &FileConfig::default()).is_err());
        let cli = parse(&["--secret-key", KEY, "--grace-days", "400"]);
        let err = settings(&cli.common, Some(&cli.serve), &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("grace_days"));
    }

    #[test]
    fn the_demo_links_its_emails_to_itself_unless_told_otherwise() {
        let public = |args: &[&str]| {
            let cli = parse(args);
            settings(&cli.common, Some(&cli.serve), &FileConfig::default())
                .unwrap()
                .public_url
        };
        assert_eq!(public(&["--secret-key", KEY]), None);
        assert_eq!(
            public(&["--secret-key", KEY, "--demo", "--listen", "0.0.0.0:9000"]).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            public(&[
                "--secret-key",
                KEY,
                "--demo",
                "--public-url",
                "https://m.example"
            ])
            .as_deref(),
            Some("https://m.example")
        );
    }

    #[test]
    fn the_secret_key_file_is_created_once_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("souk-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("souk.key");
        let cli = parse(&["--secret-key-file", path.to_str().unwrap()]);
        let first = secret_key(&cli.common, &FileConfig::default()).unwrap();
        let again = secret_key(&cli.common, &FileConfig::default()).unwrap();
        assert_eq!(first, again);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn flags_beat_environment_and_environment_beats_the_file() {
        // Only this test reads SOUK_CATALOG_TTL_SECS and SOUK_SIGNUPS_PER_ADDRESS.
        std::env::set_var("SOUK_CATALOG_TTL_SECS", "7");
        std::env::set_var("SOUK_SIGNUPS_PER_ADDRESS", "4");
        let file: FileConfig = toml::from_str(
            "catalog_ttl_secs = 9\nsignups_per_address = 3\njob_backoff_cap_secs = 600\nallowed_seller_networks = [\"10.0.0.0/8\"]\nsession_idle_minutes = 30",
        )
        .unwrap();
        let env_only = parse(&["--secret-key", KEY]);
        let s = settings(&env_only.common, Some(&env_only.serve), &file).unwrap();
        assert_eq!(
            s.catalog_ttl,
            Duration::from_secs(7),
            "environment over file"
        );
        assert_eq!(s.throttle.signups_per_address, 4);
        assert_eq!(
            s.job_backoff_cap,
            chrono::Duration::seconds(600),
            "file over default"
        );
        assert_eq!(s.session_idle, chrono::Duration::minutes(30));
        assert_eq!(
            s.allowed_seller_networks,
            vec!["10.0.0.0/8".parse().unwrap()]
        );
        let flagged = parse(&[
            "--secret-key",
            KEY,
            "--catalog-ttl-secs",
            "2",
            "--allowed-seller-networks",
            "127.0.0.0/8, ::1",
            "--review-holidays",
            "2027-01-01,2027-01-02",
            "--keep-done-jobs-days",
            "7",
        ]);
        let s = settings(&flagged.common, Some(&flagged.serve), &file).unwrap();
        std::env::remove_var("SOUK_CATALOG_TTL_SECS");
        std::env::remove_var("SOUK_SIGNUPS_PER_ADDRESS");
        assert_eq!(
            s.catalog_ttl,
            Duration::from_secs(2),
            "flag over environment"
        );
        assert_eq!(
            s.allowed_seller_networks,
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
        );
        assert_eq!(s.holidays.len(), 2);
        assert_eq!(s.keep_done_jobs, chrono::Duration::days(7));
        let defaults = settings(&env_only.common, None, &FileConfig::default()).unwrap();
        assert_eq!(defaults.session_idle, chrono::Duration::hours(2));
        assert_eq!(defaults.seller_answer_limit, 64 * 1024);
        assert_eq!(defaults.keep_done_jobs, chrono::Duration::days(30));
        assert_eq!(defaults.keep_auth_audit, chrono::Duration::days(365));
        assert_eq!(defaults.throttle.signature_refusals_per_address, 60);
        assert!(defaults.allowed_seller_networks.is_empty() && defaults.metrics_token.is_none());
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_setting_not_clamped() {
        for (args, name) in [
            (&["--seller-timeout-secs", "0"][..], "seller_timeout_secs"),
            (&["--seller-timeout-secs", "600"], "seller_timeout_secs"),
            (&["--job-backoff-secs", "0"], "job_backoff_secs"),
            (
                &["--job-backoff-secs", "10", "--job-backoff-cap-secs", "5"],
                "job_backoff_cap_secs",
            ),
            (&["--session-ttl-hours", "0"], "session_ttl_hours"),
            (
                &["--session-ttl-hours", "1", "--session-idle-minutes", "61"],
                "session_idle_minutes",
            ),
            (
                &["--allowed-seller-networks", "127.0.0.1/33"],
                "allowed_seller_networks",
            ),
            (&["--trusted-proxies", "proxy.example"], "trusted_proxies"),
            (&["--public-url", "market.example.com"], "public_url"),
            (&["--metrics-token", "short"], "metrics_token"),
            (
                &["--password-hash-concurrency", "0"],
                "password_hash_concurrency",
            ),
            (
                &["--login-failures-per-account", "0"],
                "login_failures_per_account",
            ),
            (&["--review-holidays", "2027-13-01"], "review_holidays"),
            (&["--keep-done-jobs-days", "0"], "keep_done_jobs_days"),
            (&["--keep-auth-audit-days", "3651"], "keep_auth_audit_days"),
            (
                &["--signature-refusals-per-address", "0"],
                "signature_refusals_per_address",
            ),
            (
                &["--signature-refusal-window-secs", "86401"],
                "signature_refusal_window_secs",
            ),
            (
                &["--seller-answer-limit-kib", "0"],
                "seller_answer_limit_kib",
            ),
        ] {
            let cli = parse(&[&["--secret-key", KEY][..], args].concat());
            let err = settings(&cli.common, Some(&cli.serve), &FileConfig::default())
                .expect_err(name)
                .to_string();
            assert!(err.contains(name), "{args:?}: {err}");
        }
        let file: FileConfig = toml::from_str("session_ttl_hours = 100000").unwrap();
        let cli = parse(&["--secret-key", KEY]);
        let err = settings(&cli.common, None, &file).unwrap_err().to_string();
        assert!(err.contains("session_ttl_hours"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("souk-open-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("souk.key");
        std::fs::write(&path, KEY).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cli = parse(&["--secret-key-file", path.to_str().unwrap()]);
        let err = secret_key(&cli.common, &FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(secret_key(&cli.common, &FileConfig::default()).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }
}
