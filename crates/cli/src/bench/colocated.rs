//! `lijian bench colocated`: the gateway's latency while coupons issue in the
//! same process. A backlog of orders is queued, then the gateway and consumer
//! start together and signed API orders arrive open-loop at a fixed rate; the
//! latency of those due while the backlog is still issuing is what counts.
//!
//! Two wirings, each with a fresh backlog: the gateway on the consumer's runtime
//! (where any work that hogs a worker delays the API directly) and the gateway
//! as `lijian serve` runs it, on a runtime of its own (`roles::start`). The
//! simulator and the load client run on runtimes of their own, so only the
//! measured roles share the process's workers (all still share the two cores).

use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::status::OrderStatus;
use tokio_util::sync::CancellationToken;

use super::common::{rsa_sign_per_sec, rsa_verify_per_sec, BenchEnv};
use super::consumer::{queue_backlog, WxpayKeys};
use super::gateway::{histogram, open_loop, percentiles, sign_all, Sample};
use crate::roles::Role;

/// The measured settings of one run.
pub struct Load {
    pub orders: usize,
    pub rate: u64,
    pub seconds: u64,
    pub latency_ms: u64,
}

#[derive(Clone, Copy)]
enum Wiring {
    SharedRuntime,
    Serve,
}

pub async fn run(base: &Settings, load: Load) -> anyhow::Result<()> {
    let keys = WxpayKeys::generate()?;
    let api_key = RsaPrivateKey::generate()?;
    let api_public = api_key.public_key_pem()?;
    let env = BenchEnv::create(base, &api_public).await?;
    // Whatever happens below, the bench database and queues are removed.
    let outcome = async {
        println!("baselines (same machine, same run):");
        let sign = rsa_sign_per_sec(&keys.merchant)?;
        println!("  RSA-2048 sign, one core        {sign:>10.0} /s");
        let verify = rsa_verify_per_sec(&api_key, &api_public)?;
        println!("  RSA-2048 verify, one core      {verify:>10.0} /s");

        let stop_sim = CancellationToken::new();
        let mut sim_config = keys.sim_config()?;
        sim_config.latency_ms = load.latency_ms;
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stop = stop_sim.clone();
        let sim_thread = on_own_runtime("bench-sim", 1, move || async move {
            let running = wxpay_sim::start(sim_config, stop).await?;
            let _ = addr_tx.send(running.addr);
            running.task.await?;
            Ok(())
        })?;
        let sim_addr = addr_rx.await.map_err(|_| anyhow::anyhow!("the simulator did not start"))?;
        let settings = keys.settings_for(&env.settings, sim_addr)?;
        println!(
            "backlog {} orders, simulator latency {} ms, LIJIAN_WXPAY_RATE {} (0 = unlimited), consumer concurrency {}",
            load.orders, load.latency_ms, settings.wxpay.rate, settings.consumer.concurrency
        );

        let per_run = (load.rate * load.seconds) as usize;
        // The same load with nothing to issue: this run's machine, undisturbed.
        let runs = [(Wiring::SharedRuntime, 0), (Wiring::SharedRuntime, load.orders), (Wiring::Serve, load.orders)];
        for (i, (wiring, backlog)) in runs.into_iter().enumerate() {
            measure(&env, &settings, &api_key, wiring, backlog, &load, i * per_run).await?;
        }
        stop_sim.cancel();
        let _ = tokio::task::spawn_blocking(move || sim_thread.join()).await;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    env.destroy().await;
    outcome
}

async fn measure(
    env: &BenchEnv,
    settings: &Settings,
    api_key: &RsaPrivateKey,
    wiring: Wiring,
    backlog: usize,
    load: &Load,
    offset: usize,
) -> anyhow::Result<()> {
    let prefix = format!("BK{offset}-");
    queue_backlog(env, settings, &prefix, backlog).await?;
    let requests = sign_all(api_key, offset, (load.rate * load.seconds) as usize)?;

    let stop = CancellationToken::new();
    let deps = Deps::connect(settings, "lijian-bench")?;
    let (gateway, roles): (_, BoxFuture<'static, ()>) = match wiring {
        Wiring::SharedRuntime => {
            let gateway = lijian_gateway::start(&deps, stop.clone()).await?;
            let consumer = lijian_consumer::start(&deps, stop.clone())?;
            (gateway.addr, async move { drop(tokio::join!(gateway.task, consumer.task)) }.boxed())
        }
        Wiring::Serve => {
            let started = crate::roles::start(&deps, &[Role::Gateway, Role::Consumer], &stop).await?;
            let addr = started.gateway.ok_or_else(|| anyhow::anyhow!("the gateway did not start"))?;
            (addr, started.wait().boxed())
        }
    };

    let started = Instant::now();
    let url = format!("http://{gateway}/v1/openapi/order/wechat/coupons");
    let rate = load.rate;
    let client_thread = on_own_runtime("bench-client", 1, move || async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(open_loop(&client, &url, requests, rate).await)
    })?;
    let issued = wait_issued(env, &prefix, backlog, &started).await?;
    let issuing = if backlog == 0 { Duration::ZERO } else { started.elapsed() };
    let samples = tokio::task::spawn_blocking(move || client_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the load client panicked"))??;
    stop.cancel();
    roles.await;

    let name = match (wiring, backlog) {
        (_, 0) => "baseline, nothing to issue",
        (Wiring::SharedRuntime, _) => "gateway on the consumer's runtime",
        (Wiring::Serve, _) => "gateway on its own runtime (as `lijian serve`)",
    };
    let ok = samples.iter().filter(|s| s.ok).count();
    println!(
        "{name}: backlog {issued}/{backlog} issued in {:.2}s; API {rate}/s for {}s, {ok}/{} accepted",
        issuing.as_secs_f64(),
        load.seconds,
        samples.len()
    );
    let during: Vec<&Sample> = samples.iter().filter(|s| s.due < issuing).collect();
    if !during.is_empty() {
        let h = histogram(during.iter().copied())?;
        println!("  while issuing ({:>5} orders)  {}  (goal p99 < 20 ms)", during.len(), percentiles(&h));
    }
    let after: Vec<&Sample> = samples.iter().filter(|s| s.due >= issuing).collect();
    if !after.is_empty() {
        let h = histogram(after.iter().copied())?;
        println!("  not issuing   ({:>5} orders)  {}", after.len(), percentiles(&h));
    }
    Ok(())
}

/// Polls until every backlog order (codes starting `prefix`) is issued, or two minutes.
async fn wait_issued(env: &BenchEnv, prefix: &str, orders: usize, started: &Instant) -> anyhow::Result<i64> {
    let client = env.store.client().await?;
    let pattern = format!("{prefix}%");
    loop {
        let issued: i64 = client
            .query_one(
                "SELECT count(*) FROM orders WHERE status = $1 AND order_code LIKE $2",
                &[&OrderStatus::Success, &pattern],
            )
            .await?
            .get(0);
        if issued as usize >= orders || started.elapsed() > Duration::from_secs(120) {
            return Ok(issued);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `work` on a tokio runtime of its own (`workers` threads) in a new OS
/// thread, so it never waits behind the measured roles' tasks.
pub(super) fn on_own_runtime<T, F>(
    name: &str,
    workers: usize,
    work: impl FnOnce() -> F + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>>,
{
    let thread_name = name.to_string();
    Ok(std::thread::Builder::new().name(name.into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        runtime.block_on(work())
    })?)
}
