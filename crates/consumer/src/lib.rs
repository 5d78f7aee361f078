//! lijian-consumer: turns issue jobs into WeChat Pay coupons, exactly one per order.
//!
//! # Owns
//! - the WeChat Pay API v3 client for send-coupon: request signing, answer
//!   verification ([`wxpay`]);
//! - what each answer means for the order ([`outcome`]) and the limits on how fast
//!   and how concurrently we call ([`limits`]);
//! - the worker step ([`worker`]): mark processing, call WeChat, then finish
//!   the order (`lijian_core::store::finish`: success, or failure with refund,
//!   together with the status report) before the job is acknowledged;
//! - its use of the shared broker loop (`lijian_core::queue::runner`): prefetch,
//!   concurrency, retry tiers, parking, reconnects, graceful shutdown.
//!
//! # Must not touch
//! Order intake and charging (producer), delivering reports (notifier). It never
//! changes an order that is already final.
//!
//! # Layout
//! - `wxpay.rs`   the send-coupon call: signing, answer verification
//! - `outcome.rs` what an answer means (issued, retry, fail, park)
//! - `limits.rs`  rate, per-activity rate, 429 pause, one send per openid
//! - `worker.rs`  `IssueHandler`: one job start to finish, and its metrics
//! - `batch.rs`   the batched begin and finish writes

mod batch;
mod leases;
pub mod limits;
pub mod outcome;
mod pace;
pub mod worker;
pub mod wxpay;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::queue::{runner, Lane};
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use lijian_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use lijian_core::queue::Disposition;
pub use worker::IssueHandler;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("{0} is required for the consumer (see README, Configuration)")]
    Missing(&'static str),
    #[error("cannot read {what} {path}")]
    ReadKey { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {path} is not usable: {reason}")]
    BadKey { what: &'static str, path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] lijian_core::store::StoreError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A setting the consumer cannot run without; `what` names its variable.
fn required<'a, T: ?Sized>(what: &'static str, value: Option<&'a T>) -> Result<&'a T, ConsumerError> {
    value.ok_or(ConsumerError::Missing(what))
}

fn read_key(what: &'static str, path: &Path) -> Result<String, ConsumerError> {
    std::fs::read_to_string(path).map_err(|source| ConsumerError::ReadKey { what, path: path.into(), source })
}

/// Builds the worker from settings: keys are read and checked here, so a bad
/// configuration stops the process at start instead of parking every job.
pub fn build_handler(settings: &Settings, store: Store) -> Result<IssueHandler, ConsumerError> {
    let wxpay = &settings.wxpay;
    let mchid = required("LIJIAN_WXPAY_MCHID", wxpay.mchid.as_deref())?;
    let serial_no = required("LIJIAN_WXPAY_SERIAL_NO", wxpay.serial_no.as_deref())?;
    let public_key_id = required("LIJIAN_WXPAY_PUBLIC_KEY_ID", wxpay.public_key_id.as_deref())?;
    let private_path = required("LIJIAN_WXPAY_PRIVATE_KEY", wxpay.private_key.as_deref())?;
    let key = RsaPrivateKey::from_pem(&read_key("LIJIAN_WXPAY_PRIVATE_KEY", private_path)?).map_err(|e| {
        ConsumerError::BadKey { what: "LIJIAN_WXPAY_PRIVATE_KEY", path: private_path.into(), reason: e.to_string() }
    })?;
    let public_path = required("LIJIAN_WXPAY_PUBLIC_KEY", wxpay.public_key.as_deref())?;
    let platform_key = RsaPublicKey::parse(&read_key("LIJIAN_WXPAY_PUBLIC_KEY", public_path)?).map_err(|e| {
        ConsumerError::BadKey { what: "LIJIAN_WXPAY_PUBLIC_KEY", path: public_path.into(), reason: e.to_string() }
    })?;
    let client =
        wxpay::WxPayClient::new(&wxpay.base_url, mchid, serial_no, key, platform_key, public_key_id, wxpay.timeout)?;
    let limits = limits::Limits::new(store.clone(), wxpay.activity_rate);
    let appid = wxpay.appid.clone().unwrap_or_default();
    Ok(IssueHandler::new(store, client, limits, settings.consumer.retry_schedule.clone(), appid, wxpay.rate))
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
    let runner_settings = runner::RunnerSettings::for_role(
        &deps.settings,
        Lane::Issue,
        "lijian-consumer",
        consumer.concurrency,
        consumer.prefetch,
    );
    let task = tokio::spawn(runner::run(
        handler.clone(),
        deps.publisher.clone(),
        deps.topology.clone(),
        runner_settings,
        shutdown,
    ));
    Ok(RunningConsumer { handler, task })
}
