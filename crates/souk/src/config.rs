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

/// Settings of `souk serve`.
#[derive(Args, Debug, Clone)]
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
    /// Grace period after expiry, in days  [default: 15]
    #[arg(long, env = "SOUK_GRACE_DAYS")]
    pub grace_days: Option<i64>,
    /// Retention period after grace, in days  [default: 15]
    #[arg(long, env = "SOUK_RETENTION_DAYS")]
    pub retention_days: Option<i64>,
    /// Allow product endpoints on plain HTTP to loopback addresses (development)  [default: false]
    #[arg(long, env = "SOUK_ALLOW_LOOPBACK_HTTP")]
    pub allow_loopback_http: Option<bool>,
    /// Seconds a seller has to answer one call  [default: 5]
    #[arg(long, env = "SOUK_SELLER_TIMEOUT_SECS")]
    pub seller_timeout_secs: Option<u64>,
    /// Attempts of a seller call before giving up  [default: 8]
    #[arg(long, env = "SOUK_JOB_MAX_ATTEMPTS")]
    pub job_max_attempts: Option<i64>,
    /// Seconds before the first retry of a failed seller call, doubled each time  [default: 5]
    #[arg(long, env = "SOUK_JOB_BACKOFF_SECS")]
    pub job_backoff_secs: Option<i64>,
    /// Mark the session cookie Secure (when served behind TLS)  [default: false]
    #[arg(long, env = "SOUK_COOKIE_SECURE")]
    pub cookie_secure: Option<bool>,
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
    /// Dates (YYYY-MM-DD) that are not working days for review deadlines.
    pub review_holidays: Option<Vec<NaiveDate>>,
    pub allow_loopback_http: Option<bool>,
    pub seller_timeout_secs: Option<u64>,
    pub job_max_attempts: Option<i64>,
    pub job_backoff_secs: Option<i64>,
    pub session_ttl_hours: Option<i64>,
    pub cookie_secure: Option<bool>,
    pub catalog_ttl_secs: Option<u64>,
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
        Ok(text) => parse_key(text.trim())
            .with_context(|| format!("{} must hold 64 hex digits", path.display())),
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

/// The server settings from flags, environment, file and defaults.
pub fn settings(common: &Common, serve: Option<&ServeArgs>, file: &FileConfig) -> Result<Settings> {
    let d = Settings::default();
    let pick = |flag: Option<i64>, file: Option<i64>| flag.or(file);
    let serve_opt = |f: fn(&ServeArgs) -> Option<i64>| serve.and_then(f);
    let grace = pick(serve_opt(|s| s.grace_days), file.grace_days).unwrap_or(15);
    let retention = pick(serve_opt(|s| s.retention_days), file.retention_days).unwrap_or(15);
    if !(0..=365).contains(&grace) || !(0..=365).contains(&retention) {
        bail!("grace_days and retention_days must be between 0 and 365");
    }
    let max_attempts = pick(serve_opt(|s| s.job_max_attempts), file.job_max_attempts)
        .unwrap_or(d.job_max_attempts);
    if !(1..=100).contains(&max_attempts) {
        bail!("job_max_attempts must be between 1 and 100");
    }
    let demo = serve.is_some_and(|s| s.demo);
    Ok(Settings {
        policy: souk_core::lifecycle::Policy {
            grace: chrono::Duration::days(grace),
            retention: chrono::Duration::days(retention),
        },
        holidays: file.review_holidays.clone().unwrap_or_default(),
        allow_loopback_http: demo
            || serve
                .and_then(|s| s.allow_loopback_http)
                .or(file.allow_loopback_http)
                .unwrap_or(false),
        seller_timeout: Duration::from_secs(
            serve
                .and_then(|s| s.seller_timeout_secs)
                .or(file.seller_timeout_secs)
                .unwrap_or(5)
                .clamp(1, 60),
        ),
        job_max_attempts: max_attempts,
        job_backoff: chrono::Duration::seconds(
            pick(serve_opt(|s| s.job_backoff_secs), file.job_backoff_secs)
                .unwrap_or(5)
                .clamp(1, 3600),
        ),
        job_backoff_cap: d.job_backoff_cap,
        secret_key: secret_key(common, file)?,
        session_ttl: chrono::Duration::hours(
            file.session_ttl_hours.unwrap_or(168).clamp(1, 24 * 365),
        ),
        cookie_secure: serve
            .and_then(|s| s.cookie_secure)
            .or(file.cookie_secure)
            .unwrap_or(false),
        test_clock: serve.is_some_and(|s| s.test_clock),
        demo_seller: demo,
        catalog_ttl: Duration::from_secs(file.catalog_ttl_secs.unwrap_or(5)),
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
            s.holidays,
            vec![NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()]
        );
        assert_eq!(s.secret_key[1], 1);
        assert_eq!(listen(&cli.serve, &file), "0.0.0.0:9000");
        assert_eq!(database_url(&cli.common, &file), "postgres://db/souk");
        let defaults = settings(&cli.common, None, &FileConfig::default()).unwrap();
        assert_eq!(defaults.policy.retention, chrono::Duration::days(15));
        assert!(!defaults.allow_loopback_http && !defaults.test_clock);
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
}
