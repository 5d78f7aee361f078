//! The batch outbox: issue jobs owed for orders stored in bulk.
//!
//! A CSV batch wrote its orders and one `issue_outbox` row per job (up to
//! [`JOB_SIZE`] order codes) in one transaction until campaigns were released by
//! the scheduler (migration 0014); rows an older loader left are still flushed
//! here, to the campaign lane. Whoever flushes the outbox — the gateway's relay,
//! the scheduler, a load — takes rows with `FOR UPDATE SKIP LOCKED`, publishes
//! them under confirms and deletes them in the same transaction. A crash between
//! confirm and commit publishes a job twice, which the consumer shrugs off (a
//! finished order is skipped).

use std::sync::Arc;

use lijian_core::outbox::{drain, Confirms, Outbox, Taken, Transaction};
use lijian_core::queue::{IssueJob, IssueLane, Publisher};
use lijian_core::store::{Store, StoreError};

/// Orders per bulk issue job: 1,000,000 orders are 10,000 messages, and a
/// redelivered job repeats at most this many (cheap, idempotent) order lookups.
pub const JOB_SIZE: i32 = 100;
/// Outbox rows one flush pass takes.
const FLUSH_ROWS: i64 = 200;

/// The `issue_outbox` table; a key is a row id and how many orders its job carries.
struct BulkOutbox;

impl Outbox for BulkOutbox {
    type Key = (i64, usize);
    type Job = (IssueLane, IssueJob);
    const NAME: &'static str = "bulk outbox";
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Gateway;

    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<(i64, usize), Self::Job>, StoreError> {
        let rows = tx
            .query(
                "SELECT id, order_codes FROM issue_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&FLUSH_ROWS],
            )
            .await?;
        Ok(Taken::Jobs(
            rows.into_iter()
                .map(|row| {
                    let (id, codes): (i64, Vec<String>) = (row.get(0), row.get(1));
                    ((id, codes.len()), (IssueLane::Campaign, IssueJob::for_orders(codes)))
                })
                .collect(),
        ))
    }

    async fn settle(&self, tx: &Transaction<'_>, confirmed: &[(i64, usize)]) -> Result<(), StoreError> {
        let ids: Vec<i64> = confirmed.iter().map(|(id, _)| *id).collect();
        tx.execute("DELETE FROM issue_outbox WHERE id = ANY($1)", &[&ids]).await?;
        Ok(())
    }
}

/// One pass: publishes up to [`FLUSH_ROWS`] owed jobs and forgets those the
/// broker confirmed. Returns how many orders they carried.
pub async fn flush_once(store: &Store, publisher: &Arc<Publisher>) -> Result<usize, StoreError> {
    let drained = drain(store, publisher, &BulkOutbox, Confirms::Partial).await?;
    Ok(drained.settled.iter().map(|(_, orders)| orders).sum())
}

/// Flushes until the outbox is empty or a pass makes no progress (broker down:
/// the rows wait for the next relay pass). Returns the orders published.
pub async fn flush(store: &Store, publisher: &Arc<Publisher>) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        match flush_once(store, publisher).await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Orders whose jobs are still owed (all loads and campaigns).
pub async fn owed(store: &Store) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let row =
        client.query_one("SELECT coalesce(sum(cardinality(order_codes)), 0)::bigint FROM issue_outbox", &[]).await?;
    Ok(row.get(0))
}
