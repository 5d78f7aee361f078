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
//! - `wxpay.rs` `outcome.rs` `limits.rs` `worker.rs` `batch.rs`

mod batch;
pub mod limits;
pub mod outcome;
pub mod worker;
pub mod wxpay;

use std::sync::Arc;

use lijian_core::config::Settings;
use lijian_core::queue::{runner, Lane, Publisher, Topology};
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use lijian_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use lijian_core::queue::Disposition;
pub use worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("{0} is required for the consumer (see README, Configuration)")]
    Missing(&'static str),
    #[error("cannot read {what} {path}")]
    ReadKey { what: &'static str, path: String, source: std::io::Error },
    #[error("{what} {path} is not usable: {reason}")]
    BadKey { what: &'static str, path: String, reason: String },
    #[error(transparent)]
    Store(#[from] lijian_core::store::StoreError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

fn read_key(what: &'static str, path: &str) -> Result<String, ConsumerError> {
    if path.is_empty() {
        return Err(ConsumerError::Missing(what));
    }
    std::fs::read_to_string(path).map_err(|source| ConsumerError::ReadKey { what, path: path.into(), source })
}

/// Builds the worker from settings: keys are read and checked here, so a bad
/// configuration stops the process at start instead of parking every job.
pub fn build_worker(settings: &Settings) -> Result<Worker, ConsumerError> {
    for (name, value) in [
        ("LIJIAN_WXPAY_MCHID", &settings.wxpay_mchid),
        ("LIJIAN_WXPAY_SERIAL_NO", &settings.wxpay_serial_no),
        ("LIJIAN_WXPAY_PUBLIC_KEY_ID", &settings.wxpay_public_key_id),
    ] {
        if value.is_empty() {
            return Err(ConsumerError::Missing(name));
        }
    }
    let private_pem = read_key("LIJIAN_WXPAY_PRIVATE_KEY", &settings.wxpay_private_key)?;
    let key = RsaPrivateKey::from_pem(&private_pem).map_err(|e| ConsumerError::BadKey {
        what: "LIJIAN_WXPAY_PRIVATE_KEY",
        path: settings.wxpay_private_key.clone(),
        reason: e.to_string(),
    })?;
    let public_pem = read_key("LIJIAN_WXPAY_PUBLIC_KEY", &settings.wxpay_public_key)?;
    let platform_key = RsaPublicKey::parse(&public_pem).map_err(|e| ConsumerError::BadKey {
        what: "LIJIAN_WXPAY_PUBLIC_KEY",
        path: settings.wxpay_public_key.clone(),
        reason: e.to_string(),
    })?;
    let client = wxpay::WxPayClient::new(
        &settings.wxpay_base_url,
        &settings.wxpay_mchid,
        &settings.wxpay_serial_no,
        key,
        platform_key,
        &settings.wxpay_public_key_id,
        settings.wxpay_timeout,
    )?;
    let store = Store::connect(&settings.database_url, settings.db_pool_size)?;
    let limits = limits::Limits::new(settings.wxpay_rate, settings.activity_rate);
    Ok(Worker::new(store, client, limits, settings.issue_retry_schedule.clone(), settings.wxpay_appid.clone()))
}

/// A running consumer: its worker (for counters) and the task to await.
pub struct RunningConsumer {
    pub worker: Arc<Worker>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts consuming; stops (gracefully) when `shutdown` is cancelled.
pub fn start(settings: &Settings, shutdown: CancellationToken) -> Result<RunningConsumer, ConsumerError> {
    let worker = Arc::new(build_worker(settings)?);
    let topology = Topology::from_settings(settings);
    let publisher = Publisher::new(&settings.amqp_url, "lijian-consumer-publisher", topology.clone());
    let runner_settings = runner::RunnerSettings::for_role(
        settings,
        Lane::Issue,
        "lijian-consumer",
        settings.consumer_concurrency,
        settings.consumer_prefetch,
    );
    let task = tokio::spawn(runner::run(worker.clone(), publisher, topology, runner_settings, shutdown));
    Ok(RunningConsumer { worker, task })
}
