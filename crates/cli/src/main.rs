//! The `lijian` binary: parses the command line and wires library crates together.
//! No business logic lives here.

mod admin;
mod bench;
mod campaigns;
mod client;
mod demo;
mod operators;
mod roles;
mod sim;
mod timeline_text;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lijian_core::config::{redact_url, Settings};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "lijian",
    version,
    about = "Issue WeChat Pay instant-discount coupons (立减金) for merchants at campaign scale"
)]
struct Cli {
    /// Optional TOML file, one table per section (`[database] url = …`; keys in
    /// README's configuration table); LIJIAN_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// See the whole system work: simulator, every role and a verifying merchant on a fresh
    /// `lijian_demo` database; orders through the open API and a CSV; a summary at the end.
    Demo(demo::DemoArgs),
    /// Create the database if missing and apply pending migrations (safe to repeat).
    Migrate,
    /// Generate an RSA-2048 key pair: DIR/private.pem (PKCS#8) and DIR/public.pem (SPKI).
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Register and manage merchants.
    #[command(subcommand)]
    Merchant(admin::MerchantCommand),
    /// Register products (what an order costs the merchant).
    #[command(subcommand)]
    Product(admin::ProductCommand),
    /// Register activities (WeChat coupon stocks created for a merchant).
    #[command(subcommand)]
    Activity(admin::ActivityCommand),
    /// Register and manage the WeChat Pay merchant accounts coupons are sent from.
    #[command(subcommand)]
    WxpayAccount(admin::AccountCommand),
    /// Run every role in one process (small installs): gateway, consumer, notifier, scheduler.
    Serve(roles::ServeArgs),
    /// Run the open API gateway on LIJIAN_HTTP_ADDR until SIGTERM/SIGINT.
    Gateway,
    /// Issue coupons: consume issue jobs and call WeChat Pay (stored accounts and LIJIAN_WXPAY_*) until SIGTERM/SIGINT.
    Consumer,
    /// Deliver signed status reports to merchants' callback URLs until SIGTERM/SIGINT.
    Notifier,
    /// Release scheduled campaigns at their time and pace until SIGTERM/SIGINT.
    Scheduler,
    /// Load a campaign from a CSV file (idempotent: loading it again adds nothing).
    Load(campaigns::LoadArgs),
    /// List, inspect, pause, resume or cancel campaigns.
    #[command(subcommand)]
    Campaign(campaigns::CampaignCommand),
    /// Parked jobs: list, replay, fail.
    #[command(subcommand)]
    Dlq(operators::DlqCommand),
    /// Orders, for operators.
    #[command(subcommand)]
    Order(OrderCommand),
    /// The platform's own keys.
    #[command(subcommand)]
    Platform(PlatformCommand),
    /// A merchant-side client of the open API (signs per docs/signing.md).
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Simulators of the systems outside our walls.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Measure throughput and latency against raw baselines (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum OrderCommand {
    /// An order's timeline: accepted, each WeChat Pay attempt, coupon, each report attempt.
    Show(operators::OrderShowArgs),
}

#[derive(Subcommand)]
enum PlatformCommand {
    /// Print the public key merchants verify status reports with (from LIJIAN_PLATFORM_PRIVATE_KEY).
    PublicKey,
}

/// `RUST_LOG` wins; otherwise `default` (the demo keeps per-order lines quiet).
/// Connections of a one-shot command (admin, dlq, campaign, order show): its
/// statements run one after another; the second serves a query issued while a
/// transaction is open (`dlq fail` reads the parked jobs, then fails each).
const COMMAND_CONNECTIONS: usize = 2;

/// The store for a one-shot command.
fn command_store(settings: &Settings) -> anyhow::Result<lijian_core::store::Store> {
    Ok(lijian_core::store::Store::for_settings(settings, COMMAND_CONNECTIONS)?)
}

fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = std::env::var("LIJIAN_LOG_FORMAT").unwrap_or_default().to_ascii_lowercase();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format.as_str() {
        // One object per line with the span fields (orderCode, notifyId) flattened in.
        "json" => builder.json().with_current_span(true).init(),
        "pretty" => builder.pretty().init(),
        _ => builder.init(),
    }
}

/// Cancelled on the first SIGTERM or SIGINT; roles then finish what is in flight.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested; finishing in-flight work");
        trigger.cancel();
    });
    token
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_tracing(match cli.command {
        // lapin logs a closed channel as an error even when we closed it.
        // The faults are the point of --faults: counted in its summary, not logged one by one.
        Command::Demo(demo::DemoArgs { faults: true, .. }) => "error,lapin=off",
        Command::Demo(_) | Command::Load(_) => "warn,lapin=off",
        // Its gateway would log every API order among the figures.
        Command::Bench(bench::BenchCommand::Priority { .. }) => "warn,lapin=off",
        _ => "info,tokio_postgres=warn,lapin=warn",
    });
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => {
            let applied = lijian_core::store::migrate_within(&settings.database.url, settings.database.connect_timeout)
                .await
                .with_context(|| format!("migrating {}", redact_url(&settings.database.url)))?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied migrations {applied:?}");
            }
            Ok(())
        }
        Command::Keygen { out } => admin::keygen(&out),
        Command::Merchant(cmd) => admin::merchant(&settings, cmd).await,
        Command::Product(cmd) => admin::product(&settings, cmd).await,
        Command::Activity(cmd) => admin::activity(&settings, cmd).await,
        Command::WxpayAccount(cmd) => admin::wxpay_account(&settings, cmd).await,
        Command::Serve(args) => roles::run(&settings, &args.roles, shutdown_on_signals()).await,
        Command::Gateway => roles::run(&settings, &[roles::Role::Gateway], shutdown_on_signals()).await,
        Command::Consumer => roles::run(&settings, &[roles::Role::Consumer], shutdown_on_signals()).await,
        Command::Notifier => roles::run(&settings, &[roles::Role::Notifier], shutdown_on_signals()).await,
        Command::Scheduler => roles::run(&settings, &[roles::Role::Scheduler], shutdown_on_signals()).await,
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Dlq(cmd) => operators::dlq(&settings, cmd).await,
        Command::Order(OrderCommand::Show(args)) => operators::order_show(&settings, args).await,
        Command::Load(args) => campaigns::load(&settings, args).await,
        Command::Campaign(cmd) => campaigns::campaign(&settings, cmd).await,
        Command::Platform(PlatformCommand::PublicKey) => {
            print!("{}", lijian_notifier::platform_key(&settings)?.public_key_pem()?);
            Ok(())
        }
        Command::Client(cmd) => client::run(cmd).await,
        Command::Sim(cmd) => sim::run(cmd, shutdown_on_signals()).await,
        Command::Bench(cmd) => bench::run(&settings, cmd).await,
    }
}
