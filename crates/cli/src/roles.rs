//! Running roles: one per process (`lijian gateway|consumer|notifier|scheduler|console`)
//! or several in one (`lijian serve`, `lijian demo`). Every role starts through
//! its crate's `start(&Deps, shutdown)` from one [`Deps`] per process ([`start`]).
//! Each process serves `/metrics`, `/healthz` and `/readyz` (the gateway on its
//! API port as well). Wiring only.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, ValueEnum};
use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::role_event;
use lijian_core::telemetry::{bind_ops, serve_ops, LogTarget};
use tokio_util::sync::CancellationToken;
use tracing::Level;

/// A role this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Consumer,
    Notifier,
    Scheduler,
    /// The operator console on LIJIAN_CONSOLE_ADDR.
    Console,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Gateway, Role::Consumer, Role::Notifier, Role::Scheduler, Role::Console];

    /// The role's name on the command line (`--roles`), in logs and in RabbitMQ.
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }

    /// The target its log lines carry.
    fn log_target(self) -> LogTarget {
        match self {
            Role::Gateway => LogTarget::Gateway,
            Role::Consumer => LogTarget::Consumer,
            Role::Notifier => LogTarget::Notifier,
            Role::Scheduler => LogTarget::Scheduler,
            Role::Console => LogTarget::Console,
        }
    }

    /// Where the role serves its ops endpoints when `LIJIAN_OPS_ADDR` is unset.
    fn default_ops_port(self) -> u16 {
        match self {
            Role::Gateway => SERVE_OPS_PORT,
            Role::Consumer => 9101,
            Role::Notifier => 9102,
            Role::Scheduler => 9103,
            Role::Console => 9104,
        }
    }
}

/// Where a process running several roles serves its ops endpoints by default.
const SERVE_OPS_PORT: u16 = 9100;

#[derive(Args)]
pub struct ServeArgs {
    /// Roles to run in this process (default: all five).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Role::ALL)]
    pub roles: Vec<Role>,
}

/// Roles started on one process's [`Deps`]: the gateway's and the console's
/// addresses if they run, and each role's task.
pub struct Started {
    pub gateway: Option<SocketAddr>,
    pub console: Option<SocketAddr>,
    tasks: Vec<(Role, tokio::task::JoinHandle<()>)>,
}

impl Started {
    /// Waits for every role to finish its in-flight work (after `shutdown`).
    pub async fn wait(self) {
        for (role, task) in self.tasks {
            if let Err(e) = task.await {
                role_event!(role.log_target(), Level::ERROR, error = %e, "role task failed");
            }
        }
    }
}

/// Starts `roles` on `deps`. Beside other roles the gateway runs on a runtime
/// of its own ([`gateway_on_own_runtime`]).
pub async fn start(deps: &Deps, roles: &[Role], shutdown: &CancellationToken) -> anyhow::Result<Started> {
    let mut started = Started { gateway: None, console: None, tasks: Vec::new() };
    for role in roles {
        let task = match role {
            Role::Gateway => {
                let (addr, task) = if roles.len() > 1 {
                    let (addr, metrics, task) = gateway_on_own_runtime(deps.settings.clone(), shutdown.clone()).await?;
                    // Its Deps are its own: its counters join this process's ops port.
                    deps.ops.add_role("gateway", metrics);
                    (addr, task)
                } else {
                    let running = lijian_gateway::start(deps, shutdown.clone()).await?;
                    (running.addr, tokio::spawn(log_end(running.task)))
                };
                started.gateway = Some(addr);
                task
            }
            Role::Consumer => lijian_consumer::start(deps, shutdown.clone())?.task,
            Role::Notifier => lijian_notifier::start(deps, shutdown.clone())?.task,
            Role::Scheduler => lijian_producer::start_scheduler(deps, shutdown.clone()).task,
            Role::Console => {
                let running = lijian_console::start(deps, shutdown.clone()).await.with_context(|| {
                    format!("starting the console (set LIJIAN_CONSOLE_ADDR, now {})", deps.settings.console.addr)
                })?;
                started.console = Some(running.addr);
                running.task
            }
        };
        started.tasks.push((*role, task));
    }
    Ok(started)
}

/// Runs `roles` until `shutdown`, then waits for each to finish its in-flight work.
pub async fn run(settings: &Settings, roles: &[Role], shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut roles = roles.to_vec();
    roles.dedup();
    let name = match roles.as_slice() {
        [] => anyhow::bail!("no role to run (--roles gateway,consumer,notifier,scheduler,console)"),
        [role] => format!("lijian-{}", role.name()),
        _ => "lijian-serve".to_string(),
    };
    // Claimed before any role starts, so a taken port stops the process before
    // it takes work. A process running only the gateway needs no second port
    // unless LIJIAN_OPS_ADDR asks for one (then /metrics leaves the API port).
    let ops_listener = if roles != [Role::Gateway] || settings.process.ops_addr.is_some() {
        let port = if roles.len() == 1 { roles[0].default_ops_port() } else { SERVE_OPS_PORT };
        let addr = settings.process.ops_addr.clone().unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let listener =
            bind_ops(&addr).await.with_context(|| format!("serving /metrics on {addr} (set LIJIAN_OPS_ADDR)"))?;
        Some(listener)
    } else {
        None
    };
    let deps = Deps::connect(settings, &name)?;
    let started = start(&deps, &roles, &shutdown).await?;
    if let Some(addr) = started.gateway {
        println!("gateway listening on http://{addr}");
    }
    if let Some(addr) = started.console {
        println!("console on http://{addr} (operators: lijian operator add --name NAME --role admin)");
    }
    if let Some(listener) = ops_listener {
        let (bound, _) = serve_ops(listener, deps.ops.clone(), log_target(&roles), shutdown.clone())?;
        println!("metrics and health on http://{bound}/metrics");
    }
    // Each role bounds its own stop by the grace; this bounds the process, whatever
    // a role is stuck on (a server that never answers), so SIGTERM is kept.
    let grace = settings.process.shutdown_grace;
    let overran = tokio::select! {
        _ = started.wait() => false,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => true,
    };
    if overran {
        let grace_ms = grace.as_millis() as u64;
        role_event!(
            log_target(&roles),
            Level::WARN,
            grace_ms,
            "shutdown grace over; exiting with work still pending (unacknowledged jobs return to their queues)"
        );
        // Returning would wait for the runtime's blocking threads, which may be the
        // stuck ones.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    deps.ops.close().await;
    Ok(())
}

/// The target of a process running `roles`: the role's own when it runs one.
pub fn log_target(roles: &[Role]) -> LogTarget {
    match roles {
        [role] => role.log_target(),
        _ => LogTarget::Process,
    }
}

async fn log_end(task: tokio::task::JoinHandle<Result<(), lijian_gateway::GatewayError>>) {
    match task.await {
        Ok(Err(e)) => tracing::error!(target: lijian_core::telemetry::logs::GATEWAY, error = %e, "gateway stopped"),
        Err(e) => tracing::error!(target: lijian_core::telemetry::logs::GATEWAY, error = %e, "gateway task failed"),
        Ok(Ok(())) => {}
    }
}

/// Starts the gateway on a tokio runtime of its own (two worker threads), with
/// its own [`Deps`] (pool and publisher) built there. When the consumer's and
/// notifier's RSA signing ran on the shared workers, the gateway's requests
/// queued behind thousands of issuing tasks: measured in the demo, 1,000 API
/// orders took 6.9 s instead of ~0.3 s. Signing now runs on the blocking pool
/// (`signing::off_workers`), but the issuing tasks still share the workers, so
/// the gateway keeps threads the OS schedules alongside the others.
async fn gateway_on_own_runtime(
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, std::sync::Arc<lijian_gateway::metrics::GatewayMetrics>, tokio::task::JoinHandle<()>)>
{
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
            // Its own pool and publisher, so their connections are driven by these threads too.
            let gateway = match Deps::connect(&settings, "lijian-gateway") {
                Ok(deps) => lijian_gateway::start(&deps, shutdown).await.map_err(anyhow::Error::from),
                Err(e) => Err(e.into()),
            };
            match gateway {
                Ok(running) => {
                    let _ = started.send(Ok((running.addr, running.metrics)));
                    log_end(running.task).await;
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            }
        });
    })?;
    let (addr, metrics) = addr.await.map_err(|_| anyhow::anyhow!("the gateway thread ended before starting"))??;
    let task = tokio::task::spawn_blocking(move || {
        let _ = thread.join();
    });
    Ok((addr, metrics, task))
}
