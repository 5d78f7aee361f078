//! The handle every door uses: place an order, get a decision, and have its job on
//! the broker (now, or later through the relay).

use std::sync::Arc;
use std::time::Duration;

use lijian_core::batch::Batcher;
use lijian_core::config::Settings;
use lijian_core::queue::{IssueJob, Publisher};
use lijian_core::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::intake::{Intake, IntakeError, IntakeOutcome};
use crate::relay::{run_marker, run_relay};
use crate::request::OrderRequest;

/// Tuning of the producer's background tasks (from [`Settings`]).
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub writers: usize,
    pub max_batch: usize,
    pub relay_interval: Duration,
    pub relay_grace: Duration,
}

impl From<&Settings> for ProducerSettings {
    fn from(s: &Settings) -> Self {
        ProducerSettings {
            writers: s.producer.intake_writers,
            max_batch: s.producer.intake_max_batch,
            relay_interval: s.producer.relay_interval,
            relay_grace: s.producer.relay_grace,
        }
    }
}

/// The decision on one order, and whether its job already reached the broker.
#[derive(Debug, Clone)]
pub struct Placed {
    pub outcome: IntakeOutcome,
    /// False when the order was accepted but the publish failed: it is durable and
    /// the relay will enqueue it.
    pub enqueued: bool,
}

pub struct Producer {
    intake: Batcher<Intake>,
    publisher: Arc<Publisher>,
    marker: mpsc::UnboundedSender<String>,
    tasks: TaskTracker,
}

impl Producer {
    /// Starts the writers, the marker and the relay. The relay stops on `shutdown`;
    /// writers and the marker drain and stop when the producer is dropped.
    pub fn start(
        store: Store,
        publisher: Arc<Publisher>,
        settings: ProducerSettings,
        shutdown: CancellationToken,
    ) -> Arc<Producer> {
        let intake = Batcher::spawn(Intake { store: store.clone() }, settings.writers, settings.max_batch);
        let tasks = TaskTracker::new();
        let (marker, marks) = mpsc::unbounded_channel();
        tasks.spawn(run_marker(store.clone(), marks));
        tasks.spawn(run_relay(store, publisher.clone(), settings.relay_interval, settings.relay_grace, shutdown));
        tasks.close();
        Arc::new(Producer { intake, publisher, marker, tasks })
    }

    /// Decides on one order (validate it first with [`OrderRequest::validate`]).
    pub async fn accept(&self, request: OrderRequest) -> Result<IntakeOutcome, IntakeError> {
        self.intake.call(request).await
    }

    /// Accepts the order and, when accepted, publishes its job and waits for the
    /// broker's confirm. A failed publish is logged, not returned: the order is
    /// already durable and the relay will enqueue it.
    pub async fn place(&self, request: OrderRequest) -> Result<Placed, IntakeError> {
        let outcome = self.accept(request).await?;
        let enqueued = match &outcome {
            IntakeOutcome::Accepted { order_code, .. } => self.enqueue(order_code).await,
            _ => false,
        };
        Ok(Placed { outcome, enqueued })
    }

    /// Publishes the issue job of a committed order; true when confirmed.
    pub async fn enqueue(&self, order_code: &str) -> bool {
        let job = IssueJob::V1 { order_code: order_code.to_string() };
        match self.publisher.publish_issue(&job).await {
            Ok(()) => {
                // Cannot fail: the marker runs until this handle's sender is dropped.
                let _ = self.marker.send(order_code.to_string());
                true
            }
            Err(e) => {
                tracing::warn!(target: lijian_core::telemetry::logs::GATEWAY, order_code, error = %e, "issue job not published; the relay will enqueue it");
                false
            }
        }
    }

    /// Waits for the background tasks after `shutdown` was cancelled and the last
    /// other handle was dropped.
    pub async fn finish(self: Arc<Self>) {
        let (tasks, writers) = (self.tasks.clone(), self.intake.writers());
        drop(self);
        tasks.wait().await;
        writers.wait().await;
    }
}
