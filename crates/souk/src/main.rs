//! The souk command line: thin wrappers over the library crates.

mod config;
mod sign;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use config::{Common, FileConfig, ServeArgs};
use souk_core::accounts::Role;
use souk_server::app::{accounts, jobs, ledger, PageRequest};
use souk_server::error::AppError;
use souk_server::{AppState, SharedState};
use souk_store::Store;

/// mimalloc rather than the system's allocator: a request allocates and frees many small
/// buffers across threads, and under the orders benchmark the system's allocator took about a
/// sixth of souk's own time; mimalloc served 10% more orders a second.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Tools for a seller building its endpoint
    #[command(subcommand)]
    Seller(SellerTools),
    /// Print a curl command for a request signed with an access key (SDK-HMAC-SHA256), dated now
    Sign {
        /// GET, POST, PUT, DELETE …
        method: String,
        /// The whole URL, with its query string
        url: String,
        /// A JSON body (sent as application/json)
        #[arg(long)]
        data: Option<String>,
        /// The access key
        #[arg(long, env = "SOUK_ACCESS_KEY")]
        ak: String,
        /// The secret key; read from SOUK_SECRET_ACCESS_KEY when not given
        #[arg(long, env = "SOUK_SECRET_ACCESS_KEY", hide_env_values = true)]
        sk: String,
    },
}

#[derive(Subcommand)]
enum SellerTools {
    /// Walk a made-up instance through every call souk makes (testFlag 1), check each answer and
    /// that forged or stale calls are refused; exits 1 unless every check passes
    CheckEndpoint {
        /// The endpoint's URL, as entered for the product
        url: String,
        /// The product's signing key; read from SOUK_SELLER_KEY when not given
        #[arg(long, env = "SOUK_SELLER_KEY", hide_env_values = true)]
        key: String,
        /// The endpoint signs its answers (Body-Sign); check every answer's signature
        #[arg(long)]
        signed_answers: bool,
        /// Speak the older V1 protocol (GET, authToken, every answer signed)
        #[arg(long)]
        v1: bool,
    },
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
    /// Record a top-up for an account (the same limit and idempotency as the API)
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
        /// Makes a repeated command credit once (e.g. the bank transfer's id)
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Check that every balance equals the sum of its ledger entries; exits 1 otherwise
    VerifyLedger,
    /// The background job queue
    #[command(subcommand)]
    Jobs(Jobs),
    /// Make an access key with full access for an account (under its IAM user `cli`) and print
    /// the access key and, once, the secret key
    CreateAccessKey {
        #[arg(long)]
        email: String,
        /// Print {"access_key": …, "secret_key": …}
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Jobs {
    /// List jobs in a state (dead by default), newest first, with their attempts
    List {
        /// pending, running, done or dead
        #[arg(long, default_value = "dead")]
        state: String,
        /// How many, 1 to 100
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Put a dead job back in the queue, due now, with a fresh retry budget
    Replay {
        /// The job's id (job_…)
        id: String,
    },
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
            let mut settings = config::settings(&cli.common, None, &file)?;
            // The demo products call this endpoint: allow exactly its address, nothing more.
            match souk_core::net::url_host(&seller_endpoint) {
                Some(souk_core::net::Host::Ip(ip)) => {
                    settings.allowed_seller_networks.push(ipnet::IpNet::from(ip))
                }
                _ => bail!("--seller-endpoint must name the demo seller by IP address, e.g. http://127.0.0.1:8080/demo-seller"),
            }
            let state = AppState::new(open(&cli.common, &file).await?, settings);
            demo(&state, &seller_endpoint).await
        }
        Command::Sign {
            method,
            url,
            data,
            ak,
            sk,
        } => {
            let cmd =
                sign::curl_command(&method, &url, data.as_deref(), &ak, &sk, chrono::Utc::now())?;
            println!("{cmd}");
            Ok(())
        }
        Command::Seller(SellerTools::CheckEndpoint {
            url,
            key,
            signed_answers,
            v1,
        }) => {
            let protocol = if v1 {
                souk_core::review::SellerProtocol::V1
            } else {
                souk_core::review::SellerProtocol::V2
            };
            check_endpoint(&url, &key, Wire::for_check(protocol, signed_answers)).await
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
        .map_err(app_error)?
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
    // Another node keeping accepted signatures alone hands them over before this one serves.
    state
        .replays
        .join(&state.store)
        .await
        .context("joining the nodes serving the database")?;
    let running = souk_server::start(state.clone(), listener)?;
    println!("souk is listening on http://{addr} (API under /v1, OpenAPI at /v1/openapi.json)");
    tokio::select! {
        r = running.server => r.context("server task")?.context("server")?,
        _ = stop_requested() => println!("stopping"),
    }
    // What this node kept alone is written for the next node, or for its own restart (not
    // waiting forever on a database that does not answer).
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.replays.leave(&state.store),
    )
    .await
    .context("writing the accepted signatures: the database did not answer")?
    .context("writing the accepted signatures")?;
    Ok(())
}

/// Ctrl-C, or (on Unix) the SIGTERM a service manager or container runtime stops a process with.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM cannot be caught; stopping on Ctrl-C only")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run_admin(state: &SharedState, admin: Admin) -> Result<()> {
    let system = accounts::command_line_caller(state)
        .await
        .map_err(app_error)?;
    match admin {
        Admin::CreateOperator {
            email,
            name,
            password,
            roles,
        } => {
            let roles: Vec<Role> = roles.iter().map(|r| r.parse()).collect::<Result<_, _>>()?;
            let a = accounts::create_operator(state, &email, &name, password, &roles)
                .await
                .map_err(app_error)?;
            let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
            println!(
                "operator {} created ({}) with roles {}",
                a.id,
                a.email,
                roles.join(",")
            );
        }
        Admin::TopUp {
            email,
            amount,
            currency,
            reference,
            idempotency_key,
        } => {
            let key = idempotency_key
                .map(|k| souk_core::orders::idempotency_key(&k))
                .transpose()?;
            let recorded = ledger::top_up(
                state,
                &system,
                ledger::TopUp {
                    account_id: None,
                    email: Some(email.clone()),
                    amount,
                    currency,
                    reference,
                    memo: "top-up (command line)".into(),
                },
                key,
            )
            .await
            .map_err(app_error)?;
            let e = recorded.entry;
            if recorded.replayed {
                println!(
                    "already recorded with this key: {} credited with {}",
                    email, e.amount
                );
            } else {
                println!(
                    "{email} credited with {}; balance now {}",
                    e.amount, e.balance_after
                );
            }
        }
        Admin::VerifyLedger => {
            let mismatches = state.store.ledger_mismatches().await?;
            for m in &mismatches {
                println!(
                    "MISMATCH {} {}: balance {} but entries sum to {}",
                    m.account_id, m.currency, m.balance_minor, m.entries_minor
                );
            }
            let orders = state.store.order_mismatches().await?;
            for o in &orders {
                println!(
                    "MISMATCH order {}: charged {} less refunded {} but its entries sum to {}",
                    o.order_id, o.amount_minor, o.refunded_minor, o.entries_minor
                );
            }
            let usage = state.store.usage_mismatches().await?;
            for u in &usage {
                println!("MISMATCH usage {u}: the charge and its ledger entry differ");
            }
            if !mismatches.is_empty() || !orders.is_empty() || !usage.is_empty() {
                bail!(
                    "{} balance(s), {} order(s) and {} usage charge(s) do not match their ledger",
                    mismatches.len(),
                    orders.len(),
                    usage.len()
                );
            }
            println!("ledger balances: every balance equals the sum of its entries, every order's money (paid = charged - refunded) and every usage charge is in the ledger");
        }
        Admin::Jobs(Jobs::List {
            state: in_state,
            limit,
        }) => {
            let in_state = jobs::parse_state(&in_state).map_err(app_error)?;
            let page = jobs::list(
                state,
                &system,
                in_state,
                PageRequest {
                    cursor: None,
                    limit: Some(limit),
                },
            )
            .await
            .map_err(app_error)?;
            if page.items.is_empty() {
                println!("no {in_state} jobs");
            }
            for d in page.items {
                print_job(&d);
            }
        }
        Admin::CreateAccessKey { email, json } => {
            let key = souk_server::app::iam::create_key_for(state, &email)
                .await
                .map_err(app_error)?;
            if json {
                println!(
                    "{{\"access_key\":\"{}\",\"secret_key\":\"{}\"}}",
                    key.key.access_key, key.secret
                );
            } else {
                println!("access key  {}", key.key.access_key);
                println!("secret key  {}  (shown once: store it now)", key.secret);
            }
        }
        Admin::Jobs(Jobs::Replay { id }) => {
            let d = jobs::replay(state, &system, &id.as_str().into())
                .await
                .map_err(app_error)?;
            println!("replayed; the job is {} again", d.job.state);
        }
    }
    Ok(())
}

fn print_job(d: &jobs::JobDetails) {
    let j = &d.job;
    println!(
        "{}  {}  {}  instance {}  {} attempt(s)  last error: {}",
        j.id,
        j.kind,
        j.state,
        j.instance_id.as_ref().map_or("-", |i| i.as_str()),
        j.attempts,
        j.last_error.as_deref().unwrap_or("-")
    );
    for a in &d.attempts {
        println!(
            "    #{} {} {} ms  {}  ->  {}{}",
            a.attempt,
            a.started_at.format("%Y-%m-%d %H:%M:%S"),
            a.latency_ms,
            a.request.as_deref().unwrap_or("-"),
            a.answer.as_deref().unwrap_or("-"),
            a.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
}

/// A use case's refusal, as the command line says it.
fn app_error(e: AppError) -> anyhow::Error {
    match e.field() {
        Some(field) => anyhow::anyhow!("{field}: {}", e.detail()),
        None => anyhow::anyhow!("{}", e.detail()),
    }
}

use souk_server::workers::seller::Wire;

/// `souk seller check-endpoint`: the seller centre's endpoint check, from the seller's machine.
async fn check_endpoint(url: &str, key: &str, wire: Wire) -> Result<()> {
    let http = souk_server::conformance::client();
    let report = souk_server::conformance::run(&souk_server::conformance::Target {
        http: &http,
        endpoint: url,
        key,
        answer_limit: 64 * 1024,
        wire,
    })
    .await;
    for c in &report.checks {
        println!(
            "{} {}: {} ({} ms)",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail,
            c.latency_ms
        );
    }
    let passed = report.checks.iter().filter(|c| c.passed).count();
    println!("{passed} of {} checks passed", report.checks.len());
    if !report.passed() {
        bail!("the endpoint does not yet answer as souk expects");
    }
    Ok(())
}
