//! lijian-consumer: turns issue jobs into WeChat Pay coupons, exactly one per order.
//!
//! # Owns
//! - the WeChat Pay API v3 client for send-coupon: request signing, answer
//!   verification ([`wxpay`]);
//! - the accounts it sends from: the `LIJIAN_WXPAY_*` default and every stored
//!   `wxpay-account`, and which one sends an order ([`accounts`]);
//! - what each answer means for the order ([`outcome`]) and the limits on how fast
//!   and how concurrently we call ([`limits`]);
//! - the worker step ([`worker`]): mark processing, call WeChat, then finish
//!   the order (`lijian_core::store::finish`: success, or failure with refund,
//!   together with the status report) before the job is acknowledged;
//! - its use of the shared broker loop (`lijian_core::queue::runner`): prefetch,
//!   concurrency, retry tiers, parking, reconnects, graceful shutdown — one loop
//!   per issue lane (interactive `<p>.issue`, campaign `<p>.issue.campaign`),
//!   each with its own prefetch and concurrency, so an API order never waits
//!   for a campaign's delivery or worker slot.
//!
//! # Must not touch
//! Order intake and charging (producer), delivering reports (notifier). It never
//! changes an order that is already final, with one exception that is never
//! silent: a coupon that arrives for an order already failed and refunded is
//! recorded on it, charged again and reported again (`store::finish`).
//!
//! # Layout
//! - `wxpay.rs`   the send-coupon call: signing, answer verification
//! - `accounts.rs` the accounts we send from, their clients, which one sends an order
//! - `outcome.rs` what an answer means (issued, retry, fail, park)
//! - `limits.rs`  rate, per-activity rate, 429 pause, one send per openid
//!   (`pace.rs` send slots, `leases.rs` user leases, `ahead.rs` how many sends
//!   are prepared ahead of their slot)
//! - `worker.rs`  `IssueHandler`: one job start to finish, and its metrics
//! - `batch.rs`   the batched begin and finish writes

pub mod accounts;
mod ahead;
mod batch;
mod leases;
pub mod limits;
pub mod outcome;
mod pace;
pub mod worker;
pub mod wxpay;

use std::path::PathBuf;
use std::sync::Arc;

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::queue::{runner, IssueJob, IssueLane, JobHandler, Lane};
use lijian_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use lijian_core::queue::Disposition;
pub use worker::IssueHandler;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(
        "{} required with the other LIJIAN_WXPAY_* settings of the default account (see README, Configuration)",
        accounts::missing_list(.0)
    )]
    Missing(Vec<&'static str>),
    #[error("cannot read {what} {path}")]
    ReadKey { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {path} is not usable: {reason}")]
    BadKey { what: &'static str, path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] lijian_core::store::StoreError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Builds the worker from settings: the default account's keys are read and
/// checked here, so a bad configuration stops the process at start instead of
/// parking every job. Without `LIJIAN_WXPAY_*` it sends from stored accounts only.
pub fn build_handler(settings: &Settings, store: Store) -> Result<IssueHandler, ConsumerError> {
    let default = accounts::default_account(settings)?;
    match &default {
        Some(account) => tracing::info!(mchid = %account.mchid, "default WeChat Pay account from LIJIAN_WXPAY_*"),
        None => tracing::info!("no LIJIAN_WXPAY_* account: sending from stored WeChat Pay accounts only"),
    }
    let accounts = accounts::Accounts::new(default, store.clone(), &settings.wxpay);
    let limits = limits::Limits::new(store.clone(), settings.wxpay.activity_rate, settings.wxpay.headroom);
    Ok(IssueHandler::new(store, accounts, limits, settings.consumer.retry_schedule.clone()))
}

/// The handler as one lane's loop runs it. A campaign job arriving on the
/// interactive queue (retry tiers send every job back there) is moved to the
/// campaign queue rather than worked here, where it would hold a worker slot
/// meant for API orders while it waits for a campaign's turn.
struct LaneHandler {
    issue: Arc<IssueHandler>,
    queue: IssueLane,
}

impl JobHandler for LaneHandler {
    async fn process(&self, payload: &[u8]) -> Disposition {
        let lane = IssueJob::from_bytes_in(payload).map(|(_, lane)| lane);
        if self.queue == IssueLane::Interactive && lane == Ok(IssueLane::Campaign) {
            return Disposition::Forward(IssueLane::Campaign.routing_key());
        }
        self.issue.process(payload).await
    }

    async fn give_up(&self, payload: &[u8], reason: String) -> Disposition {
        self.issue.give_up(payload, reason).await
    }
}

/// A running consumer: its handler (for counters) and the task to await.
pub struct RunningConsumer {
    pub handler: Arc<IssueHandler>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts consuming on the process's shared pool and publisher; its metrics join
/// `deps.ops`. Stops (gracefully) when `shutdown` is cancelled.
pub fn start(deps: &Deps, shutdown: CancellationToken) -> Result<RunningConsumer, ConsumerError> {
    let handler = Arc::new(build_handler(&deps.settings, deps.store.clone())?);
    deps.ops.add_role("consumer", handler.clone());
    let consumer = &deps.settings.consumer;
    let loops = [IssueLane::Interactive, IssueLane::Campaign].map(|lane| {
        let settings = runner::RunnerSettings::for_role(
            &deps.settings,
            Lane::Issue,
            &format!("lijian-consumer-{lane}"),
            consumer.concurrency,
            consumer.prefetch,
        )
        .on_queue(deps.topology.issue_lane_queue(lane), lane.routing_key());
        let handler = Arc::new(LaneHandler { issue: handler.clone(), queue: lane });
        tokio::spawn(runner::run(handler, deps.publisher.clone(), deps.topology.clone(), settings, shutdown.clone()))
    });
    let task = tokio::spawn(async move {
        for done in futures::future::join_all(loops).await {
            if let Err(e) = done {
                tracing::error!(error = %e, "an issue lane's consume loop ended abnormally");
            }
        }
    });
    Ok(RunningConsumer { handler, task })
}
