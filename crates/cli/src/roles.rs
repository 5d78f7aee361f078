//! Running roles: one per process (`lijian gateway|consumer|notifier|scheduler`)
//! or several in one (`lijian serve`). Each process serves `/metrics`,
//! `/healthz` and `/readyz` (the gateway on its API port as well). Wiring only.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lijian_core::config::Settings;
use lijian_core::queue::{Publisher, Topology};
use lijian_core::store::Store;
use lijian_core::telemetry::{MetricsSource, Ops};
use lijian_producer::scheduler::Scheduler;
use tokio_util::sync::CancellationToken;

/// A role this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Consumer,
    Notifier,
    Scheduler,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Consumer => "consumer",
            Role::Notifier => "notifier",
            Role::Scheduler => "scheduler",
        }
    }

    /// Where the role serves its ops endpoints when `LIJIAN_OPS_ADDR` is empty.
    fn default_ops_port(self) -> u16 {
        match self {
            Role::Gateway => 9100,
            Role::Consumer => 9101,
            Role::Notifier => 9102,
            Role::Scheduler => 9103,
        }
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// Roles to run in this process (default: all four).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Role::Gateway, Role::Consumer, Role::Notifier, Role::Scheduler])]
    pub roles: Vec<Role>,
}

fn ops_addr(settings: &Settings, port: u16) -> String {
    if settings.ops_addr.is_empty() {
        format!("127.0.0.1:{port}")
    } else {
        settings.ops_addr.clone()
    }
}

/// Runs `roles` until `shutdown`, then waits for each to finish its in-flight work.
pub async fn run(settings: &Settings, roles: &[Role], shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut roles = roles.to_vec();
    roles.dedup();
    if roles.is_empty() {
        anyhow::bail!("no role to run (--roles gateway,consumer,notifier,scheduler)");
    }
    // Claimed before any role starts, so a taken port stops the process before
    // it takes work. A process running only the gateway needs no second port.
    let ops_listener = if roles != [Role::Gateway] {
        let port = if roles.len() == 1 { roles[0].default_ops_port() } else { 9100 };
        let addr = ops_addr(settings, port);
        let listener = lijian_gateway::ops::bind_ops(&addr)
            .await
            .with_context(|| format!("serving /metrics on {addr} (set LIJIAN_OPS_ADDR)"))?;
        Some(listener)
    } else {
        None
    };
    let topology = Topology::from_settings(settings);
    let store = Store::connect(&settings.database_url, 2)?;
    let publisher = Publisher::new(&settings.amqp_url, "lijian-ops", topology.clone());
    let mut ops = Ops::new(store, publisher, topology);
    let mut tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)> = Vec::new();
    for role in &roles {
        let source: Option<Arc<dyn MetricsSource>> = match role {
            Role::Gateway => {
                let (addr, task) = if roles.len() > 1 {
                    gateway_on_own_runtime(settings.clone(), shutdown.clone()).await?
                } else {
                    let running = lijian_gateway::start(settings, shutdown.clone()).await?;
                    (running.addr, tokio::spawn(log_end(running.task)))
                };
                println!("gateway listening on http://{addr}");
                tasks.push(("gateway", task));
                // The gateway reports its own counters on its API port.
                None
            }
            Role::Consumer => {
                let running = lijian_consumer::start(settings, shutdown.clone())?;
                tasks.push(("consumer", running.task));
                Some(running.worker)
            }
            Role::Notifier => {
                let running = lijian_notifier::start(settings, shutdown.clone())?;
                tasks.push(("notifier", running.task));
                Some(running.notifier)
            }
            Role::Scheduler => {
                let store = Store::connect(&settings.database_url, 4)?;
                let publisher =
                    Publisher::new(&settings.amqp_url, "lijian-scheduler", Topology::from_settings(settings));
                let scheduler = Scheduler::new(store, publisher);
                tasks.push(("scheduler", tokio::spawn(scheduler.clone().run(shutdown.clone()))));
                Some(scheduler)
            }
        };
        if let Some(source) = source {
            ops = ops.with_role(role.name(), source);
        }
    }
    if let Some(listener) = ops_listener {
        let (bound, _) = lijian_gateway::ops::serve_ops(listener, Arc::new(ops), shutdown.clone())?;
        println!("metrics and health on http://{bound}/metrics");
    }
    for (name, task) in tasks {
        if let Err(e) = task.await {
            tracing::error!(role = name, error = %e, "role task failed");
        }
    }
    Ok(())
}

async fn log_end(task: tokio::task::JoinHandle<Result<(), lijian_gateway::GatewayError>>) {
    match task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "gateway stopped"),
        Err(e) => tracing::error!(error = %e, "gateway task failed"),
        Ok(Ok(())) => {}
    }
}

/// Starts the gateway on a tokio runtime of its own (two worker threads). Beside
/// the consumer and notifier, whose RSA signing runs on the shared workers, the
/// gateway's requests queued behind thousands of issuing tasks: measured in the
/// demo, 1,000 API orders took 6.9 s instead of ~0.3 s. Own threads are scheduled
/// by the OS alongside the others, so API latency stays flat while coupons issue.
pub async fn gateway_on_own_runtime(
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let (started, addr) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new().name("gateway".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway-worker")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = started.send(Err(anyhow::Error::from(e)));
                return;
            }
        };
        runtime.block_on(async move {
            match lijian_gateway::start(&settings, shutdown).await {
                Ok(running) => {
                    let _ = started.send(Ok(running.addr));
                    log_end(running.task).await;
                }
                Err(e) => {
                    let _ = started.send(Err(e.into()));
                }
            }
        });
    })?;
    let addr = addr.await.map_err(|_| anyhow::anyhow!("the gateway thread ended before starting"))??;
    let task = tokio::task::spawn_blocking(move || {
        let _ = thread.join();
    });
    Ok((addr, task))
}
