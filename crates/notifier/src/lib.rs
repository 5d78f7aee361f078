//! lijian-notifier: tells merchants how their orders ended.
//!
//! # Owns
//! - the status report's body and signed headers ([`report`]);
//! - where a report may go: the SSRF guard and the guarded resolver ([`ssrf`]);
//! - delivering one report ([`worker`]): endpoint slots, timeout, `SUCCESS`,
//!   the attempt log, retry on the schedule through the broker, parking;
//! - the report store ([`report_store`]): reading a report, recording attempts,
//!   closing it, and queuing report rows other roles wrote (the outbox relay).
//!
//! # Must not touch
//! Orders' status or money: a report only describes what is already final.
//!
//! # Layout
//! - `report.rs`       the report body and its signed headers
//! - `ssrf.rs`         where a report may go (checked after resolution)
//! - `report_store.rs` the report rows: load, record an attempt, close, queue unsent
//! - `worker.rs`       `NotifyHandler`: one delivery, endpoint slots, its metrics

pub mod report;
pub mod report_store;
pub mod ssrf;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::queue::{runner, Lane, Publisher};
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use worker::NotifyHandler;

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(
        "LIJIAN_PLATFORM_PRIVATE_KEY is required: the PEM file of the key that signs reports (lijian keygen makes one)"
    )]
    MissingKey,
    #[error("cannot read LIJIAN_PLATFORM_PRIVATE_KEY {path}", path = .0.display())]
    ReadKey(PathBuf, #[source] std::io::Error),
    #[error("LIJIAN_PLATFORM_PRIVATE_KEY {path}: {1}", path = .0.display())]
    BadKey(PathBuf, String),
    #[error("LIJIAN_NOTIFY_ALLOW_CIDRS: {0}")]
    BadAllowList(String),
    #[error("LIJIAN_NOTIFY_PORTS: {0}")]
    BadPorts(String),
    #[error(transparent)]
    Store(#[from] lijian_core::store::StoreError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The platform's report-signing key, from `LIJIAN_PLATFORM_PRIVATE_KEY`.
pub fn platform_key(settings: &Settings) -> Result<RsaPrivateKey, NotifierError> {
    let path = settings.notifier.platform_private_key.as_ref().ok_or(NotifierError::MissingKey)?;
    let pem = std::fs::read_to_string(path).map_err(|e| NotifierError::ReadKey(path.clone(), e))?;
    RsaPrivateKey::from_pem(&pem).map_err(|e| NotifierError::BadKey(path.clone(), e.to_string()))
}

pub fn build(settings: &Settings, store: Store) -> Result<NotifyHandler, NotifierError> {
    let notifier = &settings.notifier;
    let guard = ssrf::Guard::from_list(notifier.allow_cidrs.as_deref().unwrap_or_default())
        .map_err(NotifierError::BadAllowList)?
        .with_ports(&notifier.ports)
        .map_err(NotifierError::BadPorts)?;
    Ok(NotifyHandler::new(
        store,
        guard,
        platform_key(settings)?,
        notifier.schedule.clone(),
        notifier.timeout,
        worker::Slots { per_endpoint: notifier.per_endpoint, endpoints: notifier.concurrency * 2 },
    )?)
}

pub struct RunningNotifier {
    pub handler: Arc<NotifyHandler>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the relay and the delivery loop on the process's shared pool and
/// publisher; its metrics join `deps.ops`. Both stop on `shutdown`.
pub fn start(deps: &Deps, shutdown: CancellationToken) -> Result<RunningNotifier, NotifierError> {
    let notifier = Arc::new(build(&deps.settings, deps.store.clone())?);
    deps.ops.add_role("notifier", notifier.clone());
    let settings = &deps.settings.notifier;
    let relay =
        tokio::spawn(run_relay(deps.store.clone(), deps.publisher.clone(), settings.relay_interval, shutdown.clone()));
    let runner_settings = runner::RunnerSettings::for_role(
        &deps.settings,
        Lane::Notify,
        "lijian-notifier",
        settings.concurrency,
        settings.concurrency * 2,
    );
    let (worker, publisher, topology) = (notifier.clone(), deps.publisher.clone(), deps.topology.clone());
    let task = tokio::spawn(async move {
        runner::run(worker, publisher, topology, runner_settings, shutdown).await;
        let _ = relay.await;
    });
    Ok(RunningNotifier { handler: notifier, task })
}

async fn run_relay(
    store: Store,
    publisher: Arc<Publisher>,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    let (store, publisher) = (&store, &publisher);
    lijian_core::outbox::run_periodically(
        lijian_core::telemetry::LogTarget::Notifier,
        "report relay",
        interval,
        shutdown,
        move || report_store::queue_unsent(store, publisher),
    )
    .await;
}
