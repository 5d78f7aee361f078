//! The scheduler role: releases scheduled campaigns' orders to the issue queue at
//! their time and pace.
//!
//! Pacing is computed from the database clock, not counted per process: a
//! campaign paced at `rate` may have released `pace_base + rate × (now −
//! pace_from)` orders by now. Each step locks the campaign row (`FOR UPDATE SKIP
//! LOCKED`), releases what is due, and stamps the orders in the same transaction,
//! so any number of schedulers together release each order once and keep the
//! pace of one. Small, frequent steps spread the release evenly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use lijian_core::queue::{IssueJob, Publisher};
use lijian_core::store::{Store, StoreError};
use lijian_core::telemetry::{Exposition, MetricsSource};
use tokio_util::sync::CancellationToken;

use crate::outbox::JOB_SIZE;

/// How often the scheduler looks for due orders: 50 steps a second keeps a
/// 100/s campaign at two orders a step.
pub const STEP: Duration = Duration::from_millis(20);
/// Most orders one step releases per campaign (an unpaced campaign drains at
/// about this many per step).
const MAX_PER_STEP: i64 = 5_000;

/// The scheduler role: its connections and what it has released.
pub struct Scheduler {
    store: Store,
    publisher: Arc<Publisher>,
    /// Orders this process handed to the issue queue (for metrics).
    pub released: AtomicU64,
}

impl Scheduler {
    pub fn new(store: Store, publisher: Arc<Publisher>) -> Arc<Scheduler> {
        Arc::new(Scheduler { store, publisher, released: AtomicU64::new(0) })
    }

    /// Runs until `shutdown`: each step releases what is due in every campaign,
    /// and flushes the bulk outbox now and then (a crashed loader's leftovers).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Connect (and declare the topology) now: done lazily, the first release of
        // a campaign waited ~0.3 s for it and then caught up in a burst.
        if let Err(e) = self.publisher.channel().await {
            tracing::warn!(error = %e, "RabbitMQ not reachable yet; releases wait for it");
        }
        let mut steps: u64 = 0;
        // After a failed step (database unreachable), wait longer before the next
        // one, up to 5 s: 50 failing steps a second would flood the log.
        let mut pause = STEP;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            steps += 1;
            match step(&self.store, &self.publisher).await {
                Ok(n) => {
                    self.released.fetch_add(n as u64, Ordering::Relaxed);
                    pause = STEP;
                }
                Err(e) => {
                    pause = (pause * 4).min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "scheduler step failed");
                }
            }
            if steps.is_multiple_of(50) {
                if let Err(e) = crate::outbox::flush(&self.store, &self.publisher).await {
                    tracing::warn!(error = %e, "outbox pass failed; will retry");
                }
            }
        }
    }
}

impl MetricsSource for Scheduler {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "lijian_orders_released_total",
            "Scheduled campaign orders released to the issue queue",
            self.released.load(Ordering::Relaxed),
        );
    }
}

/// One pass over the due campaigns; returns the orders released.
pub async fn step(store: &Store, publisher: &Arc<Publisher>) -> Result<usize, StoreError> {
    let names: Vec<String> = store
        .client()
        .await?
        .query(
            "SELECT name FROM campaigns WHERE state = 'active' AND NOT drained AND release_at <= clock_timestamp()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut released = 0;
    for name in names {
        released += release_due(store, publisher, &name).await?;
    }
    Ok(released)
}

/// Releases the orders of `campaign` that are due now. Another scheduler holding
/// the campaign makes this a no-op.
pub async fn release_due(store: &Store, publisher: &Arc<Publisher>, campaign: &str) -> Result<usize, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT rate, pace_base + floor(extract(epoch FROM clock_timestamp() - pace_from) * rate)::bigint - released
               FROM campaigns
              WHERE name = $1 AND state = 'active' AND NOT drained AND release_at <= clock_timestamp()
              FOR UPDATE SKIP LOCKED",
            &[&campaign],
        )
        .await?;
    let Some(row) = row else { return Ok(0) };
    let due = match (row.get::<_, Option<i32>>(0), row.get::<_, Option<i64>>(1)) {
        (None, _) => MAX_PER_STEP,
        (Some(rate), Some(behind)) if behind > i64::from(rate) => {
            // More than a second behind (broker outage, all schedulers down): the
            // lost time stays lost, like a pause, instead of a burst to catch up.
            tx.execute(
                "UPDATE campaigns SET pace_from = clock_timestamp(), pace_base = released WHERE name = $1",
                &[&campaign],
            )
            .await?;
            tracing::warn!(campaign, behind, "release fell behind; pacing restarts from now");
            (f64::from(rate) * STEP.as_secs_f64()).ceil() as i64
        }
        (Some(_), behind) => behind.unwrap_or(0).min(MAX_PER_STEP),
    };
    if due <= 0 {
        return Ok(0);
    }
    let codes: Vec<String> = tx
        .query(
            "SELECT order_code FROM orders
              WHERE campaign = $1 AND enqueued_at IS NULL AND status = 0 ORDER BY id LIMIT $2",
            &[&campaign, &due],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if codes.is_empty() {
        tx.execute("UPDATE campaigns SET drained = true, updated_at = now() WHERE name = $1", &[&campaign]).await?;
        tx.commit().await?;
        tracing::info!(campaign, "campaign fully released");
        return Ok(0);
    }
    let publishes = codes.chunks(JOB_SIZE as usize).map(|chunk| async move {
        publisher.publish_issue(&IssueJob::for_orders(chunk.to_vec())).await.map(|_| chunk)
    });
    let mut confirmed: Vec<String> = Vec::with_capacity(codes.len());
    for outcome in join_all(publishes).await {
        match outcome {
            Ok(chunk) => confirmed.extend_from_slice(chunk),
            // Those orders stay unreleased and are taken by a later step; a job
            // that was confirmed after all is a harmless duplicate.
            Err(e) => tracing::warn!(campaign, error = %e, "release not confirmed; will retry"),
        }
    }
    let n = confirmed.len();
    tx.execute("UPDATE orders SET enqueued_at = clock_timestamp() WHERE order_code = ANY($1)", &[&confirmed]).await?;
    tx.execute(
        "UPDATE campaigns SET released = released + $2, updated_at = now() WHERE name = $1",
        &[&campaign, &(n as i64)],
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}
