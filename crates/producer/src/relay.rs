//! Getting committed orders onto the broker.
//!
//! The fast path publishes right after commit and tells the marker, which stamps
//! `enqueued_at` in batches. Whatever the fast path missed — broker down, confirm
//! lost, process killed between commit and publish — still has `enqueued_at IS
//! NULL` and is found by the relay once it is older than the grace period. A job
//! may therefore be published twice; the consumer treats a second job for a
//! finished order as a no-op.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use lijian_core::queue::{IssueJob, Publisher};
use lijian_core::store::{Store, StoreError};
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
            tracing::warn!(error = %e, orders = codes.len(), "could not stamp enqueued orders; the relay will publish them again");
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
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match relay_once(&store, &publisher, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "relay published orders left behind"),
            Err(e) => tracing::warn!(error = %e, "relay pass failed; will retry"),
        }
        match crate::outbox::flush(&store, &publisher).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "relay published bulk jobs left in the outbox"),
            Err(e) => tracing::warn!(error = %e, "outbox pass failed; will retry"),
        }
    }
}

/// One relay pass; returns how many jobs the broker confirmed.
pub async fn relay_once(store: &Store, publisher: &Publisher, grace: Duration) -> Result<usize, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let grace_secs = grace.as_secs_f64();
    let rows = tx
        .query(
            "SELECT order_code FROM orders
              WHERE enqueued_at IS NULL AND status = 0 AND campaign IS NULL AND created_at < now() - make_interval(secs => $1)
              ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&grace_secs, &RELAY_BATCH],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let codes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let publishes = codes.iter().map(|code| async move {
        let job = IssueJob::V1 { order_code: code.clone() };
        publisher.publish_issue(&job).await.map(|_| code.clone())
    });
    let confirmed: Vec<String> = join_all(publishes).await.into_iter().filter_map(Result::ok).collect();
    tx.execute("UPDATE orders SET enqueued_at = now() WHERE order_code = ANY($1)", &[&confirmed]).await?;
    tx.commit().await?;
    Ok(confirmed.len())
}

/// Replays parked orders: clears the parking, gives each a fresh retry budget
/// (`attempts_before_replay`) and publishes their jobs — committed only once the
/// broker confirmed every job, so an order is never revived without one. Orders
/// not parked (already replayed, or final) are left alone, which makes a second
/// replay a no-op. Returns the orders replayed.
pub async fn replay_orders(store: &Store, publisher: &Publisher, codes: &[String]) -> Result<Vec<String>, ReplayError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let revived: Vec<String> = tx
        .query(
            "UPDATE orders SET dead_at = NULL, dead_reason = NULL, attempts_before_replay = attempts, updated_at = now()
              WHERE order_code = ANY($1) AND dead_at IS NOT NULL AND status IN (0, 1)
              RETURNING order_code",
            &[&codes],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let publishes = revived
        .chunks(crate::outbox::JOB_SIZE as usize)
        .map(|chunk| async move { publisher.publish_issue(&IssueJob::for_orders(chunk.to_vec())).await });
    for outcome in join_all(publishes).await {
        outcome?;
    }
    tx.commit().await?;
    Ok(revived)
}

/// Why a replay did not happen (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot publish the replayed jobs: {0}")]
    Queue(#[from] lijian_core::queue::QueueError),
}

impl From<tokio_postgres::Error> for ReplayError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReplayError::Store(StoreError::Db(e))
    }
}
