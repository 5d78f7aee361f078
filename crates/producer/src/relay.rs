//! Getting committed orders onto the broker.
//!
//! The fast path publishes right after commit and tells the marker, which stamps
//! `enqueued_at` in batches. Whatever the fast path missed — broker down, confirm
//! lost, process killed between commit and publish — still has `enqueued_at IS
//! NULL` and is found by the relay once it is older than the grace period. A job
//! may therefore be published twice; the consumer treats a second job for a
//! finished order as a no-op.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lijian_core::outbox::{drain, run_periodically, Confirms, Outbox, Taken, Transaction};
use lijian_core::queue::{IssueJob, IssueLane, Publisher};
use lijian_core::status::OrderStatus;
use lijian_core::store::predicates::UNRELEASED;
use lijian_core::store::{Store, StoreError};
use lijian_core::telemetry::logs::GATEWAY;
use lijian_core::telemetry::LogTarget;
use lijian_core::vocab::Lane;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most codes the marker stamps in one statement.
const MARK_BATCH: usize = 1000;
/// Most orders one relay pass publishes.
const RELAY_BATCH: i64 = 500;

/// Stamps `enqueued_at` on orders whose job the broker confirmed. Ends when all
/// senders are gone (after draining), so nothing confirmed is left unstamped on a
/// clean shutdown; on a crash the relay re-publishes instead.
pub(crate) async fn run_marker(store: Store, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut codes = Vec::with_capacity(MARK_BATCH);
    while rx.recv_many(&mut codes, MARK_BATCH).await > 0 {
        if let Err(e) = mark_enqueued(&store, &codes).await {
            tracing::warn!(target: GATEWAY, error = %e, orders = codes.len(), "could not stamp enqueued orders; the relay will publish them again");
        }
        codes.clear();
    }
}

async fn mark_enqueued(store: &Store, codes: &[String]) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute("UPDATE orders SET enqueued_at = now() WHERE order_code = ANY($1) AND enqueued_at IS NULL", &[&codes])
        .await?;
    Ok(())
}

/// Periodically publishes orders the fast path left behind (and bulk jobs left in
/// the outbox; scheduled campaign orders are the scheduler's, not ours). Several relays (one per
/// gateway) can run: `FOR UPDATE SKIP LOCKED` hands each row to one of them.
pub(crate) async fn run_relay(
    store: Store,
    publisher: Arc<Publisher>,
    interval: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let (store, publisher) = (&store, &publisher);
    run_periodically(LogTarget::Gateway, "issue relay", interval, shutdown, move || async move {
        let orders = relay_once(store, publisher, grace).await?;
        if orders > 0 {
            tracing::info!(target: GATEWAY, orders, "relay published orders left behind");
        }
        let bulk = crate::outbox::flush(store, publisher).await?;
        if bulk > 0 {
            tracing::info!(target: GATEWAY, orders = bulk, "relay published bulk jobs left in the outbox");
        }
        Ok::<_, StoreError>(orders + bulk)
    })
    .await;
}

/// Orders stored (not in a campaign) whose job the fast path did not publish
/// within the grace period.
struct LeftBehind {
    grace_secs: f64,
}

static LEFT_BEHIND_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT order_code FROM orders
          WHERE {UNRELEASED} AND campaign IS NULL AND created_at < now() - make_interval(secs => $1)
          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
    )
});

impl Outbox for LeftBehind {
    type Key = String;
    type Job = IssueJob;
    const NAME: &'static str = "issue relay";
    const LOG: LogTarget = LogTarget::Gateway;

    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<String, IssueJob>, StoreError> {
        let rows = tx.query(LEFT_BEHIND_SQL.as_str(), &[&self.grace_secs, &RELAY_BATCH]).await?;
        Ok(Taken::Jobs(
            rows.iter()
                .map(|r| {
                    let code: String = r.get(0);
                    (code.clone(), IssueJob::V1 { order_code: code })
                })
                .collect(),
        ))
    }

    async fn settle(&self, tx: &Transaction<'_>, confirmed: &[String]) -> Result<(), StoreError> {
        tx.execute("UPDATE orders SET enqueued_at = now() WHERE order_code = ANY($1)", &[&confirmed]).await?;
        Ok(())
    }
}

/// One relay pass; returns how many jobs the broker confirmed.
pub async fn relay_once(store: &Store, publisher: &Publisher, grace: Duration) -> Result<usize, StoreError> {
    let outbox = LeftBehind { grace_secs: grace.as_secs_f64() };
    Ok(drain(store, publisher, &outbox, Confirms::Partial).await?.settled.len())
}

/// Parked orders being replayed; a key is the orders of one job.
struct Replay<'a> {
    codes: &'a [String],
}

impl Outbox for Replay<'_> {
    type Key = Vec<String>;
    type Job = (IssueLane, IssueJob);
    const NAME: &'static str = "replay";
    const LOG: LogTarget = LogTarget::Process;

    /// Campaign orders go back to the campaign lane: replaying a campaign's
    /// thousands of parked orders must not put them in front of API orders.
    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<Vec<String>, Self::Job>, StoreError> {
        let rows = tx
            .query(
                // The parking it clears is kept as part of the order's story (`replays`).
                "WITH revived AS (
                     UPDATE orders o SET dead_at = NULL, dead_reason = NULL, attempts_before_replay = attempts,
                            updated_at = now()
                       FROM (SELECT order_code, dead_at, dead_reason FROM orders WHERE order_code = ANY($1)) parked
                      WHERE o.order_code = parked.order_code AND o.dead_at IS NOT NULL AND o.status = ANY($2)
                      RETURNING o.order_code, parked.dead_at, parked.dead_reason, o.campaign IS NOT NULL AS in_campaign),
                 noted AS (
                     INSERT INTO replays (order_code, lane, parked_at, reason)
                     SELECT order_code, $3, dead_at, dead_reason FROM revived)
                 SELECT order_code, in_campaign FROM revived",
                &[&self.codes, &&OrderStatus::OPEN[..], &Lane::Issue],
            )
            .await?;
        let mut jobs = Vec::new();
        for lane in [IssueLane::Interactive, IssueLane::Campaign] {
            let codes: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<_, bool>(1) == (lane == IssueLane::Campaign))
                .map(|r| r.get(0))
                .collect();
            jobs.extend(
                codes
                    .chunks(crate::outbox::JOB_SIZE as usize)
                    .map(|chunk| (chunk.to_vec(), (lane, IssueJob::for_orders(chunk.to_vec())))),
            );
        }
        Ok(Taken::Jobs(jobs))
    }

    async fn settle(&self, _: &Transaction<'_>, _: &[Vec<String>]) -> Result<(), StoreError> {
        // Reviving the orders in `take` is the whole change; it commits only with
        // every job confirmed.
        Ok(())
    }
}

/// Replays parked orders: clears the parking, gives each a fresh retry budget
/// (`attempts_before_replay`) and publishes their jobs — committed only once the
/// broker confirmed every job, so an order is never revived without one. Orders
/// not parked (already replayed, or final) are left alone, which makes a second
/// replay a no-op. Returns the orders replayed.
pub async fn replay_orders(store: &Store, publisher: &Publisher, codes: &[String]) -> Result<Vec<String>, ReplayError> {
    let drained = drain(store, publisher, &Replay { codes }, Confirms::All).await?;
    match drained.unconfirmed {
        Some(e) => Err(ReplayError::Queue(e)),
        None => Ok(drained.settled.concat()),
    }
}

/// Why a replay did not happen (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot publish the replayed jobs: {0}")]
    Queue(#[from] lijian_core::queue::QueueError),
}
