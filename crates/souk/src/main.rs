//! The souk command line: thin wrappers over the library crates.

mod config;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use config::{Common, FileConfig, ServeArgs};
use souk_core::accounts::Role;
use souk_core::money::{Currency, Money};
use souk_core::validate;
use souk_server::{AppState, SharedState};
use souk_store::accounts::NewAccount;
use souk_store::Store;

/// souk: a self-hostable cloud marketplace.
#[derive(Parser)]
#[command(name = "souk", version, about = "souk: a self-hostable cloud marketplace", long_about = None)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the marketplace: the API, the seller-call dispatcher and the lifecycle scheduler
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit
    Migrate,
    /// Fill an empty database with a demo marketplace, then exit
    Demo {
        /// Where the demo products' seller endpoint is (souk serve --demo mounts it at /demo-seller)
        #[arg(long, default_value = "http://127.0.0.1:8080/demo-seller")]
        seller_endpoint: String,
    },
    /// Operator tasks
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand)]
enum Admin {
    /// Create an operator account (the first one is made this way)
    CreateOperator {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// At least 10 characters; read from SOUK_OPERATOR_PASSWORD when not given
        #[arg(long, env = "SOUK_OPERATOR_PASSWORD", hide_env_values = true)]
        password: String,
        /// reviewer, operations, finance or support; repeat for several; all when omitted
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Record a top-up for an account
    TopUp {
        #[arg(long)]
        email: String,
        /// A positive amount, e.g. 500.00
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        #[arg(long)]
        reference: Option<String>,
    },
    /// Check that every balance equals the sum of its ledger entries; exits 1 otherwise
    VerifyLedger,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let file = match FileConfig::load(cli.common.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    let json_logs = cli
        .common
        .log_format
        .as_deref()
        .or(file.log_format.as_deref())
        == Some("json");
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOUK_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    if json_logs {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if let Err(e) = run(cli, file).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn open(common: &Common, file: &FileConfig) -> Result<Store> {
    let url = config::database_url(common, file);
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// Rewrites secrets sealed in the old `v1` format as `v2`, bound to their rows. Reads the key
/// only when there is something to rewrite.
async fn reseal(store: &Store, common: &Common, file: &FileConfig) -> Result<()> {
    if store.sealed_values("v1:").await?.is_empty() {
        return Ok(());
    }
    let secrets = souk_server::crypto::SecretBox::new(&config::secret_key(common, file)?);
    let n = souk_server::crypto::reseal_v1(store, &secrets).await?;
    tracing::info!(secrets = n, "re-sealed secrets bound to their rows");
    Ok(())
}

async fn run(cli: Cli, file: FileConfig) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.common, &args, &file).await,
        Command::Migrate => {
            let store = open(&cli.common, &file).await?;
            reseal(&store, &cli.common, &file).await?;
            println!("the database is up to date");
            Ok(())
        }
        Command::Demo { seller_endpoint } => {
            let state = AppState::new(
                open(&cli.common, &file).await?,
                config::settings(&cli.common, None, &file)?,
            );
            demo(&state, &seller_endpoint).await
        }
        Command::Admin(admin) => {
            let state = AppState::new(
                open(&cli.common, &file).await?,
                config::settings(&cli.common, None, &file)?,
            );
            run_admin(&state, admin).await
        }
    }
}

async fn demo(state: &SharedState, seller_endpoint: &str) -> Result<()> {
    if souk_server::demo::fill(state, seller_endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        println!("Demo marketplace created: 3 merchants, 13 listed products, 2 buyers with balances.\nLog in with:");
        for l in souk_server::demo::LOGINS {
            println!("  {:<36} {:<22} password {}", l.role, l.email, l.password);
        }
    } else {
        println!(
            "The database already has accounts; demo data is only added to an empty marketplace."
        );
    }
    Ok(())
}

async fn serve(common: &Common, args: &ServeArgs, file: &FileConfig) -> Result<()> {
    let mut settings = config::settings(common, Some(args), file)?;
    let listen = config::listen(args, file);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    // The demo seller is mounted on this listener: allow exactly its address, nothing more.
    let demo_addr = match addr.ip() {
        ip if ip.is_unspecified() => {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    if args.demo {
        settings
            .allowed_seller_networks
            .push(ipnet::IpNet::from(demo_addr.ip()));
    }
    let store = open(common, file).await?;
    reseal(&store, common, file).await?;
    let state = AppState::new(store, settings);
    if args.demo {
        demo(&state, &format!("http://{demo_addr}/demo-seller")).await?;
    }
    if args.test_clock {
        tracing::warn!(
            "the test clock is on: POST /v1/test/clock moves time; never use this in production"
        );
    }
    let running = souk_server::start(state, listener)?;
    println!("souk is listening on http://{addr} (API under /v1, OpenAPI at /v1/openapi.json)");
    tokio::select! {
        r = running.server => r.context("server task")?.context("server")?,
        _ = tokio::signal::ctrl_c() => println!("stopping"),
    }
    Ok(())
}

async fn run_admin(state: &SharedState, admin: Admin) -> Result<()> {
    match admin {
        Admin::CreateOperator {
            email,
            name,
            password,
            roles,
        } => {
            let email = validate::email("email", &email)?;
            let name = validate::text("name", &name, 100)?;
            validate::password("password", &password)?;
            let roles: Vec<Role> = if roles.is_empty() {
                Role::ALL.to_vec()
            } else {
                roles.iter().map(|r| r.parse()).collect::<Result<_, _>>()?
            };
            let roles = roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let hash = souk_server::auth::hash_password(password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let a = state
                .store
                .create_account(
                    NewAccount {
                        kind: "individual",
                        name: &name,
                        email: &email,
                        password_hash: &hash,
                        roles: &roles,
                    },
                    state.now(),
                )
                .await?;
            println!("operator {} created ({email}) with roles {roles}", a.id);
        }
        Admin::TopUp {
            email,
            amount,
            currency,
            reference,
        } => {
            let currency: Currency = currency.parse()?;
            let amount = Money::parse("amount", &amount, currency)?;
            if amount.minor <= 0 {
                bail!("a top-up must be positive");
            }
            let account = state
                .store
                .account_by_email(&email.trim().to_lowercase())
                .await?
                .with_context(|| format!("no account with e-mail {email}"))?;
            let entry = state
                .store
                .record_movement(
                    &souk_store::ledger::Movement {
                        account_id: &account.id,
                        currency: currency.code(),
                        amount_minor: amount.minor,
                        kind: "top_up",
                        order_id: None,
                        reference: reference.as_deref(),
                        memo: "top-up (command line)",
                        created_by: None,
                        idempotency_key: None,
                    },
                    state.now(),
                )
                .await?;
            println!(
                "{} credited with {amount}; balance now {}",
                account.email,
                Money::from_minor(entry.balance_after_minor, currency)
            );
        }
        Admin::VerifyLedger => {
            let mismatches = state.store.ledger_mismatches().await?;
            if mismatches.is_empty() {
                println!("ledger balances: every balance equals the sum of its entries");
            } else {
                for m in &mismatches {
                    println!(
                        "MISMATCH {} {}: balance {} but entries sum to {}",
                        m.account_id, m.currency, m.balance_minor, m.entries_minor
                    );
                }
                bail!("{} balance(s) do not match their ledger", mismatches.len());
            }
        }
    }
    Ok(())
}
