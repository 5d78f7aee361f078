//! `lijian demo`: the whole system in one command, on the PostgreSQL and
//! RabbitMQ at the configured addresses. A fresh `lijian_demo` database and
//! `lijian-demo.*` queues (so it is safe to run again), freshly generated keys,
//! the WeChat Pay simulator, every role, and a merchant endpoint that verifies
//! each report; orders through the signed open API and a CSV campaign; a summary
//! once every order is final and every report delivered.
//!
//! - `mod.rs`       the run, start to finish: wiring, then load, then summary
//! - `preflight.rs` is PostgreSQL and RabbitMQ there, and how to start them if not
//! - `setup.rs`     the demo's settings, keys, merchant, product and activity
//! - `receiver.rs`  the merchant endpoint that verifies each report
//! - `load.rs`      orders through the open API and a CSV campaign
//! - `summary.rs`   progress, and the summary checked against the simulator
//! - `faults.rs`    `--faults`: injected failures and the operator's part

mod faults;
mod load;
mod preflight;
mod receiver;
mod setup;
mod summary;

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::queue::Topology;
use lijian_core::vocab::OperatorRole;
use tokio_util::sync::CancellationToken;

use crate::roles::{self, Role};

#[derive(Args)]
pub struct DemoArgs {
    /// Orders to place: one in ten through the signed open API, the rest from a generated CSV.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Give up if not everything is final and reported after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The demo's database (dropped and created afresh on every run).
    #[arg(long, default_value = "lijian_demo")]
    pub database: String,
    /// The demo's queue prefix (its queues are deleted before and after).
    #[arg(long, default_value = "lijian-demo")]
    pub queue_prefix: String,
    /// Make it hard: WeChat Pay errors, 429s, timeouts and dropped answers, a
    /// merchant endpoint refusing first attempts, a consumer restarted mid-run,
    /// orders parked on a disabled account and replayed. The summary must still add up.
    #[arg(long)]
    pub faults: bool,
    /// After the summary, keep every role and the console running (to look around
    /// in the browser) until Ctrl-C.
    #[arg(long)]
    pub stay: bool,
}

/// The console operator each demo run creates (admin, with a generated password).
const DEMO_OPERATOR: &str = "demo";

/// How long the roles may take to finish in-flight work once the demo is over.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

pub async fn run(base: &Settings, args: DemoArgs) -> anyhow::Result<()> {
    if args.orders == 0 {
        bail!("--orders must be at least 1");
    }
    preflight::check(base).await?;
    let mut settings = setup::demo_settings(base, &args);
    println!("lijian demo: {} orders", args.orders);
    Topology::from_settings(&settings).remove(&settings.broker.url).await;
    lijian_core::store::drop_database(&settings.database.url).await?;
    lijian_core::store::migrate(&settings.database.url).await?;
    println!("  fresh database {}, queues {}.*", args.database, args.queue_prefix);

    let dir = tempfile::tempdir()?;
    let keys = setup::Keys::generate()?;
    keys.install(dir.path(), &mut settings)?;
    println!("  generated keys: merchant, WeChat Pay merchant and platform, lijian platform");

    let stop = CancellationToken::new();
    let mut sim_config = wxpay_sim::SimConfig::new(
        "127.0.0.1:0",
        &keys.wxpay_merchant.public_key_pem()?,
        &keys.wxpay_platform.to_pkcs8_pem()?,
        setup::KEY_ID,
    );
    sim_config.max_per_user = u32::MAX;
    if args.faults {
        faults::tune(&mut settings, &mut sim_config);
    }
    let sim = wxpay_sim::start(sim_config, stop.clone()).await?;
    settings.wxpay.base_url = format!("http://{}", sim.addr);
    let flaky = match args.faults {
        true => receiver::Flaky { every: faults::REFUSE_EVERY, attempts: faults::REFUSED_ATTEMPTS },
        false => receiver::Flaky::default(),
    };
    let receiver = receiver::start(&keys.platform.public_key_pem()?, flaky, stop.clone()).await?;
    let callback = format!("http://{}/callback", receiver.addr);

    // The same wiring as `lijian serve`; the load shares the roles' pool and publisher.
    let deps = Deps::connect(&settings, "lijian-demo")?;
    setup::seed(&deps.store, &keys.merchant, &callback, args.orders).await?;
    // With --faults the consumer runs apart, so that it can be restarted.
    let (roles_here, consumer) = match args.faults {
        true => {
            faults::seed(&deps.store, &settings, faults::PARKED_ORDERS).await?;
            let consumer = faults::RestartableConsumer::start(&deps, &stop).await?;
            (vec![Role::Gateway, Role::Notifier, Role::Scheduler, Role::Console], Some(consumer))
        }
        false => (Role::ALL.to_vec(), None),
    };
    let started = roles::start(&deps, &roles_here, &stop).await?;
    let gateway = started.gateway.ok_or_else(|| anyhow::anyhow!("the gateway did not start"))?;
    println!(
        "  running: WeChat Pay simulator http://{}, gateway http://{gateway}, consumer, notifier, scheduler, merchant {callback}",
        sim.addr
    );
    if let Some(console) = started.console {
        // A fresh database each run, so this login exists for this run only.
        let actor = lijian_console::Actor::cli();
        let (_, password) =
            lijian_console::actions::operators::add(&deps.store, DEMO_OPERATOR, OperatorRole::Admin, &actor).await?;
        println!("  console: http://{console} (sign in as {DEMO_OPERATOR}, password {password}; made for this run)");
    }

    let clock = Instant::now();
    let split = load::Split::of(args.orders);
    load::place(&gateway.to_string(), &keys.merchant, &deps.store, &split, dir.path()).await?;
    let mut total = args.orders as i64;
    if consumer.is_some() {
        faults::place_parked(&gateway.to_string(), &keys.merchant).await?;
        total += faults::PARKED_ORDERS as i64;
    }
    let timeout = Duration::from_secs(args.timeout);
    // The operator's part (--faults) runs beside the watch, until the watch ends.
    let watching = CancellationToken::new();
    let (outcome, operated) = tokio::join!(
        async {
            let outcome = summary::wait_for_everything(&deps.store, &receiver, total, timeout).await;
            watching.cancel();
            outcome
        },
        async {
            match consumer {
                Some(consumer) => Some(faults::operate(&deps, consumer, total, &stop, &watching).await),
                None => None,
            }
        }
    );
    let elapsed = clock.elapsed();
    let (interventions, consumer) = match operated {
        Some(operated) => {
            let (done, consumer) = operated?;
            (Some(done), Some(consumer))
        }
        None => (None, None),
    };
    let sim_url = format!("http://{}", sim.addr);
    let summary = summary::summarise(&deps.store, &receiver, &sim_url, elapsed, &split, interventions.as_ref()).await;
    if args.stay {
        if let Some(console) = started.console {
            println!("every role and the console stay up (http://{console}); Ctrl-C stops them");
        }
        let _ = tokio::signal::ctrl_c().await;
    }

    stop.cancel();
    if let Some(consumer) = consumer {
        consumer.stop().await;
    }
    let _ = tokio::time::timeout(STOP_GRACE, started.wait()).await;
    deps.topology.remove(&settings.broker.url).await;
    outcome?;
    summary?;
    // Redacted: terminals get recorded and shared; the password is the operator's own.
    println!(
        "inspect: LIJIAN_DATABASE_URL={} lijian campaign status demo | lijian order show <orderCode>",
        lijian_core::config::redact_url(&settings.database.url)
    );
    Ok(())
}
