//! `lijian bench …`: throughput and latency goals, measured against raw baselines
//! in the same run (see docs/benchmarks.md).

mod colocated;
mod common;
mod console;
mod consumer;
mod gateway;
mod load;
mod notifier;
mod priority;
mod rate;
mod rate_accounts;
mod upload;

use clap::Subcommand;
use lijian_core::config::Settings;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Gateway throughput and latency (creates and drops its own database and queues).
    Gateway {
        /// Orders in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        orders: usize,
        /// Concurrent client connections in the throughput run.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Offered load of the latency run, orders per second.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Length of the latency run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Accepted orders → coupons issued per second through the consumer, with the
    /// WeChat Pay simulator in-process at zero latency and no rate limit.
    Consumer {
        /// Orders to issue.
        #[arg(long, default_value_t = 20_000)]
        orders: usize,
        /// Jobs the consumer works on at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Gateway latency at a fixed API load while a backlog issues in the same
    /// process: the gateway on the consumer's runtime, then as `lijian serve` runs it.
    /// The WeChat Pay simulator runs in-process on a runtime of its own.
    Colocated {
        /// Orders queued for issuing before the API load starts.
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        /// Offered API load, orders per second (open loop).
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Length of the API load.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Mean simulator latency in ms.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
    },
    /// Status reports delivered per second to 20 local receivers, alone and beside a black-holed one.
    Notifier {
        /// Reports per run.
        #[arg(long, default_value_t = 20_000)]
        reports: usize,
    },
    /// Consumer processes (1, 2, 4; then one of two SIGKILLed) against the
    /// simulator's hard per-account limit: sends per second as a ratio of it.
    Rate {
        /// The account's limit, requests per second (the simulator answers 429 beyond it).
        #[arg(long, default_value_t = 500)]
        limit: u32,
        /// The simulator's mean latency per request.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// Length of each run at the limit (the backlog is limit × seconds orders).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Who gets the account's next send: API orders while a campaign saturates the
    /// account (acceptance → coupon p50/p99, the campaign's share of what is left),
    /// then a small campaign of another merchant loaded after a big one (its time
    /// against its fair share). A scheduler and consumers as child processes.
    Priority {
        /// The account's limit, requests per second (the simulator answers 429 beyond it).
        #[arg(long, default_value_t = 500)]
        limit: u32,
        /// The simulator's mean latency per request.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// Orders of the big campaign (each run cancels what is left once measured).
        #[arg(long, default_value_t = 100_000)]
        campaign: usize,
        /// Orders of the small campaign of the second run.
        #[arg(long, default_value_t = 1_000)]
        small: usize,
        /// API orders per second, open loop, in the first run.
        #[arg(long, default_value_t = 20)]
        api_rate: u64,
        /// Length of the API load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds between the big and the small campaign's loads.
        #[arg(long, default_value_t = 10)]
        delay: u64,
        /// Consumer processes.
        #[arg(long, default_value_t = 1)]
        consumers: usize,
    },
    /// Every console page at a million orders: a database seeded in SQL, the
    /// console in-process, each page several times as HTML and JSON (p50/max ms
    /// on the client and from Server-Timing, against /healthz).
    Console {
        /// Orders in the database.
        #[arg(long, default_value_t = 1_000_000)]
        orders: u64,
        /// Campaigns (one big one holds a fifth of the orders).
        #[arg(long, default_value_t = 1_000)]
        campaigns: u32,
        /// Merchants.
        #[arg(long, default_value_t = 50)]
        merchants: u32,
        /// Timed requests per page and form (after one to warm up).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// A generated campaign CSV through `lijian load` (child process): rows/s and
    /// peak RSS beside raw COPY and raw publish+confirm, then a re-load.
    Load {
        /// Data rows in the generated file.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Bad rows per thousand (they must all land in the rejects file).
        #[arg(long, default_value_t = 10)]
        bad_per_mille: usize,
    },
    /// A generated campaign CSV through `lijian load`, then another of the same
    /// size uploaded to the console's POST /campaigns (both child processes):
    /// the time ratio and the console's memory growth.
    Upload {
        /// Data rows in each generated file.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Bad rows per thousand.
        #[arg(long, default_value_t = 10)]
        bad_per_mille: usize,
    },
}

pub async fn run(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Gateway { orders, concurrency, rate, seconds } => {
            gateway::run(settings, orders, concurrency, rate, seconds).await
        }
        BenchCommand::Consumer { orders, concurrency } => consumer::run(settings, orders, concurrency).await,
        BenchCommand::Colocated { orders, rate, seconds, latency_ms } => {
            colocated::run(settings, colocated::Load { orders, rate, seconds, latency_ms }).await
        }
        BenchCommand::Notifier { reports } => notifier::run(settings, reports).await,
        BenchCommand::Rate { limit, latency_ms, seconds } => rate::run(settings, limit, latency_ms, seconds).await,
        BenchCommand::Console { orders, campaigns, merchants, repeat } => {
            console::run(settings, console::Size { orders, campaigns, merchants, repeat }).await
        }
        BenchCommand::Load { rows, bad_per_mille } => load::run(settings, rows, bad_per_mille).await,
        BenchCommand::Upload { rows, bad_per_mille } => upload::run(settings, rows, bad_per_mille).await,
        BenchCommand::Priority { limit, latency_ms, campaign, small, api_rate, seconds, delay, consumers } => {
            let p = priority::Priority { limit, latency_ms, campaign, small, api_rate, seconds, delay, consumers };
            priority::run(settings, p).await
        }
    }
}
