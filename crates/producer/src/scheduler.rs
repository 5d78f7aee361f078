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
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lijian_core::outbox::{drain, run_periodically, Confirms, Outbox, Taken, Transaction};
use lijian_core::queue::{IssueJob, IssueLane, Publisher};
use lijian_core::store::predicates::UNRELEASED;
use lijian_core::store::{Store, StoreError};
use lijian_core::telemetry::{Exposition, MetricsSource};
use lijian_core::vocab::CampaignState;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::outbox::JOB_SIZE;

/// How often the scheduler looks for due orders: 50 steps a second keeps a
/// 100/s campaign at two orders a step.
pub const STEP: Duration = Duration::from_millis(20);
/// Most orders one step releases per campaign (an unpaced campaign drains at
/// about this many per step).
const MAX_PER_STEP: i64 = 5_000;
/// Steps between two flushes of the bulk outbox (a crashed loader's leftovers).
const STEPS_PER_FLUSH: u64 = 50;

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
    /// While the database is down, steps back off (up to 5 s) instead of failing
    /// 50 times a second.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // Connect (and declare the topology) now: done lazily, the first release of
        // a campaign waited ~0.3 s for it and then caught up in a burst.
        if let Err(e) = self.publisher.channel().await {
            tracing::warn!(error = %e, "RabbitMQ not reachable yet; releases wait for it");
        }
        let this = &self;
        let mut steps: u64 = 0;
        run_periodically("scheduler", STEP, shutdown, move || {
            steps += 1;
            this.tick(steps.is_multiple_of(STEPS_PER_FLUSH))
        })
        .await;
    }

    async fn tick(&self, flush_outbox: bool) -> Result<usize, StoreError> {
        let released = step(&self.store, &self.publisher).await;
        if let Ok(n) = released {
            self.released.fetch_add(n as u64, Ordering::Relaxed);
        }
        if flush_outbox {
            if let Err(e) = crate::outbox::flush(&self.store, &self.publisher).await {
                tracing::warn!(error = %e, "outbox pass failed; will retry");
            }
        }
        released
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
            "SELECT name FROM campaigns WHERE state = $1 AND NOT drained AND release_at <= clock_timestamp()",
            &[&CampaignState::Active],
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

/// The orders of one campaign that are due now; a key is the orders of one job.
struct DueOrders<'a> {
    campaign: &'a str,
}

static DUE_ORDERS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT order_code FROM orders WHERE campaign = $1 AND {UNRELEASED} ORDER BY id LIMIT $2")
});

impl Outbox for DueOrders<'_> {
    type Key = Vec<String>;
    type Job = (IssueLane, IssueJob);
    const NAME: &'static str = "campaign release";

    /// Locks the campaign row (another scheduler holding it makes this pass a
    /// no-op), works out how many orders are due at its pace, and takes them.
    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<Vec<String>, Self::Job>, StoreError> {
        let campaign = self.campaign;
        let row = tx
            .query_opt(
                "SELECT rate, pace_base + floor(extract(epoch FROM clock_timestamp() - pace_from) * rate)::bigint - released
                   FROM campaigns
                  WHERE name = $1 AND state = $2 AND NOT drained AND release_at <= clock_timestamp()
                  FOR UPDATE SKIP LOCKED",
                &[&campaign, &CampaignState::Active],
            )
            .await?;
        let Some(row) = row else { return Ok(Taken::Jobs(Vec::new())) };
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
            return Ok(Taken::Jobs(Vec::new()));
        }
        let codes: Vec<String> =
            tx.query(DUE_ORDERS_SQL.as_str(), &[&campaign, &due]).await?.iter().map(|r| r.get(0)).collect();
        if codes.is_empty() {
            tx.execute("UPDATE campaigns SET drained = true, updated_at = now() WHERE name = $1", &[&campaign]).await?;
            tracing::info!(campaign, "campaign fully released");
            return Ok(Taken::CommitOnly);
        }
        Ok(Taken::Jobs(
            codes
                .chunks(JOB_SIZE as usize)
                .map(|chunk| (chunk.to_vec(), (IssueLane::Campaign, IssueJob::for_orders(chunk.to_vec()))))
                .collect(),
        ))
    }

    /// Stamps the confirmed orders and counts them against the pace; unconfirmed
    /// ones stay unreleased for a later step (a job confirmed after all is a
    /// harmless duplicate).
    async fn settle(&self, tx: &Transaction<'_>, confirmed: &[Vec<String>]) -> Result<(), StoreError> {
        let codes = confirmed.concat();
        tx.execute("UPDATE orders SET enqueued_at = clock_timestamp() WHERE order_code = ANY($1)", &[&codes]).await?;
        tx.execute(
            "UPDATE campaigns SET released = released + $2, updated_at = now() WHERE name = $1",
            &[&self.campaign, &(codes.len() as i64)],
        )
        .await?;
        Ok(())
    }
}

/// Releases the orders of `campaign` that are due now. Another scheduler holding
/// the campaign makes this a no-op.
pub async fn release_due(store: &Store, publisher: &Arc<Publisher>, campaign: &str) -> Result<usize, StoreError> {
    let span = tracing::info_span!("release", campaign);
    let drained = drain(store, publisher, &DueOrders { campaign }, Confirms::Partial).instrument(span).await?;
    Ok(drained.settled.iter().map(Vec::len).sum())
}
