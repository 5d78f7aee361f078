//! The `lijian` binary: parses the command line and wires library crates together.
//! No business logic lives here.

mod admin;
mod bench;
mod campaigns;
mod client;
mod console;
mod demo;
mod doctor;
mod operators;
mod roles;
mod sim;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lijian_core::config::{redact_url, Settings};
use lijian_core::role_event;
use lijian_core::telemetry::LogTarget;
use tokio_util::sync::CancellationToken;
use tracing::Level;

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
    /// Check this installation: PostgreSQL, RabbitMQ, migrations, key files, settings,
    /// clock; one line per check (OK, WARN or FAIL with what to do); exits 1 on any FAIL.
    Doctor(doctor::DoctorArgs),
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
    /// Run every role in one process (small installs): gateway, consumer, notifier, scheduler, console.
    Serve(roles::ServeArgs),
    /// Run the open API gateway on LIJIAN_HTTP_ADDR until SIGTERM/SIGINT.
    Gateway,
    /// Issue coupons: consume issue jobs and call WeChat Pay (stored accounts and LIJIAN_WXPAY_*) until SIGTERM/SIGINT.
    Consumer,
    /// Deliver signed status reports to merchants' callback URLs until SIGTERM/SIGINT.
    Notifier,
    /// Release scheduled campaigns at their time and pace until SIGTERM/SIGINT.
    Scheduler,
    /// Serve the operator console (pages and JSON API) on LIJIAN_CONSOLE_ADDR until SIGTERM/SIGINT.
    Console,
    /// Console operators: add (prints a password once), token (prints an API token once), list, disable.
    #[command(subcommand)]
    Operator(console::OperatorCommand),
    /// The audit log: what operators did, in the console and with these commands.
    #[command(subcommand)]
    Audit(console::AuditCommand),
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
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = std::env::var("LIJIAN_LOG_FORMAT").unwrap_or_default().to_ascii_lowercase();
    // Escape codes only for a person at a terminal: in a file, a pipe or a log
    // collector they are noise (https://no-color.org: any non-empty NO_COLOR).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format.as_str() {
        // One object per line with the span fields (orderCode, notifyId) flattened in.
        "json" => builder.json().with_current_span(true).init(),
        "pretty" => builder.pretty().init(),
        _ => builder.init(),
    }
}

/// Cancelled on the first SIGTERM or SIGINT; roles then finish what is in flight.
/// `log`: whose target the lines carry.
fn shutdown_on_signals(log: LogTarget) -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                role_event!(log, Level::ERROR, error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        role_event!(log, Level::INFO, "shutdown requested; finishing in-flight work");
        trigger.cancel();
    });
    token
}

/// The command line, where a value may start with '-' when it reads as a number
/// (`--price -1`): it then reaches our validation, which says what is wrong with
/// it, instead of clap's "unexpected argument".
fn command_line() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    fn negative_values(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| if arg.get_action().takes_values() { arg.allow_negative_numbers(true) } else { arg })
            .mut_subcommands(negative_values)
    }
    let matches = negative_values(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The error and its causes, each said once: many errors already include their
/// cause's text, which `{:#}` would repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

async fn run_roles(settings: &Settings, roles: &[roles::Role]) -> anyhow::Result<()> {
    roles::run(settings, roles, shutdown_on_signals(roles::log_target(roles))).await
}

#[tokio::main]
async fn main() {
    let cli = command_line();
    init_tracing(match cli.command {
        // lapin logs a closed channel as an error even when we closed it.
        // The faults are the point of --faults: counted in its summary, not logged one by one.
        Command::Demo(demo::DemoArgs { faults: true, .. }) => "error,lapin=off",
        // The doctor's passive declare of a queue not declared yet closes a
        // channel; so does dlq's on a prefix no role has declared yet.
        Command::Demo(_) | Command::Load(_) | Command::Doctor(_) | Command::Dlq(_) => "warn,lapin=off",
        // Its gateway would log every API order among the figures.
        Command::Bench(bench::BenchCommand::Priority { .. }) => "warn,lapin=off",
        _ => "info,tokio_postgres=warn,lapin=warn",
    });
    if let Err(e) = run(cli).await {
        eprintln!("error: {}", error_text(&e));
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
            }
            if !applied.versions.is_empty() {
                println!("applied migrations {:?}", applied.versions);
            }
            if !applied.functions.is_empty() {
                println!("defined SQL functions {}", applied.functions.join(", "));
            }
            Ok(())
        }
        Command::Doctor(args) => doctor::run(&settings, args).await,
        Command::Keygen { out } => admin::keygen(&out),
        Command::Merchant(cmd) => admin::merchant(&settings, cmd).await,
        Command::Product(cmd) => admin::product(&settings, cmd).await,
        Command::Activity(cmd) => admin::activity(&settings, cmd).await,
        Command::WxpayAccount(cmd) => admin::wxpay_account(&settings, cmd).await,
        Command::Serve(args) => run_roles(&settings, &args.roles).await,
        Command::Gateway => run_roles(&settings, &[roles::Role::Gateway]).await,
        Command::Consumer => run_roles(&settings, &[roles::Role::Consumer]).await,
        Command::Notifier => run_roles(&settings, &[roles::Role::Notifier]).await,
        Command::Scheduler => run_roles(&settings, &[roles::Role::Scheduler]).await,
        Command::Console => run_roles(&settings, &[roles::Role::Console]).await,
        Command::Operator(cmd) => console::operator(&settings, cmd).await,
        Command::Audit(cmd) => console::audit(&settings, cmd).await,
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Dlq(cmd) => operators::dlq(&settings, cmd).await,
        Command::Order(OrderCommand::Show(args)) => operators::order_show(&settings, args).await,
        Command::Load(args) => campaigns::load(&settings, args).await,
        Command::Campaign(cmd) => campaigns::campaign(&settings, cmd).await,
        Command::Platform(PlatformCommand::PublicKey) => {
            print!("{}", lijian_notifier::platform_key(&settings)?.public_key_pem()?);
            Ok(())
        }
        Command::Client(cmd) => client::run(&settings, cmd).await,
        Command::Sim(cmd) => sim::run(cmd, shutdown_on_signals(LogTarget::Process)).await,
        Command::Bench(cmd) => bench::run(&settings, cmd).await,
    }
}
