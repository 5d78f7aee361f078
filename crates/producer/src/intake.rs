//! The accepting transaction, micro-batched.
//!
//! Every order of a campaign charges one merchant row and counts on one activity
//! row; a row lock is held until commit, so one order per transaction caps a
//! campaign at 1 / commit latency. Writers here take whatever orders are waiting
//! (up to `max_batch`), call `lijian_accept_order` for each in one transaction —
//! pipelined, one round trip in all — and commit once. Under light load a batch is
//! a single order and nothing waits for company.

use std::sync::Arc;

use futures::future::join_all;
use lijian_core::money::Fen;
use lijian_core::status::ApiStatus;
use lijian_core::store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::error::SqlState;

use crate::request::OrderRequest;

/// What the accepting transaction decided for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// Committed: stored with status 0, charged, counted against the budget.
    Accepted { order_code: String, settlement: Fen },
    /// The merchant already has an order with this bizCode; nothing changed.
    /// `same_request` is false when that order has a different openId, activityId
    /// or productCode: a reused bizCode rather than a retry.
    Duplicate { order_code: String, settlement: Fen, same_request: bool },
    /// Refused with a status of the open API table (7, 9, 11) and the reason.
    Refused { status: ApiStatus, reason: String },
}

/// Why no decision could be made (nothing was stored).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("intake is shutting down")]
    Closed,
}

pub(crate) struct Pending {
    pub request: OrderRequest,
    pub reply: oneshot::Sender<Result<IntakeOutcome, IntakeError>>,
}

pub(crate) type Queue = Arc<Mutex<mpsc::Receiver<Pending>>>;

const ACCEPT_SQL: &str =
    "SELECT status, detail, order_code, settlement_fen FROM lijian_accept_order($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// One writer: repeatedly takes a batch off the shared queue and commits it.
/// Ends when every sender is gone and the queue is drained.
pub(crate) async fn run_writer(store: Store, queue: Queue, max_batch: usize) {
    loop {
        let mut batch = Vec::with_capacity(max_batch);
        {
            let mut rx = queue.lock().await;
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
        }
        // One global lock order across concurrent writers and processes: merchant
        // row, then activity row (see the SQL function), so batches never deadlock.
        batch.sort_by(|a, b| {
            (&a.request.merchant_id, &a.request.activity_id).cmp(&(&b.request.merchant_id, &b.request.activity_id))
        });
        let requests: Vec<&OrderRequest> = batch.iter().map(|p| &p.request).collect();
        let results = accept_batch(&store, &requests).await;
        for (pending, result) in batch.into_iter().zip(results) {
            let _ = pending.reply.send(result);
        }
    }
}

/// Accepts a batch in one transaction; when the batch as a whole fails (a deadlock
/// with another process, a bad row), each order is retried in its own transaction
/// so one bad order cannot sink its neighbours.
async fn accept_batch(store: &Store, requests: &[&OrderRequest]) -> Vec<Result<IntakeOutcome, IntakeError>> {
    match try_batch(store, requests).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) if requests.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, batch = requests.len(), "batch failed; accepting its orders one by one");
            let mut results = Vec::with_capacity(requests.len());
            for request in requests {
                results.push(try_batch(store, std::slice::from_ref(request)).await.map(|mut v| v.remove(0)));
            }
            results
        }
    }
}

async fn try_batch(store: &Store, requests: &[&OrderRequest]) -> Result<Vec<IntakeOutcome>, IntakeError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_transaction(store, requests).await {
            Err(IntakeError::Store(StoreError::Db(e)))
                if attempt < 3
                    && matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE) =>
            {
                continue
            }
            other => return other,
        }
    }
}

async fn run_transaction(store: &Store, requests: &[&OrderRequest]) -> Result<Vec<IntakeOutcome>, IntakeError> {
    let mut client = store.client().await?;
    let stmt = client.prepare_cached(ACCEPT_SQL).await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let calls = requests.iter().map(|r| {
        let app_id = r.app_id.as_deref().unwrap_or("");
        let callback = r.callback_url.as_deref().unwrap_or("");
        let business_id = r.replay_guard.as_ref().map(|g| g.business_id.as_str());
        let nonce = r.replay_guard.as_ref().map(|g| g.nonce.as_str());
        let stmt = &stmt;
        let tx = &tx;
        async move {
            tx.query_one(
                stmt,
                &[
                    &r.merchant_id,
                    &r.biz_code,
                    &r.open_id,
                    &app_id,
                    &r.product_code,
                    &r.activity_id,
                    &callback,
                    &r.source,
                    &business_id,
                    &nonce,
                ],
            )
            .await
        }
    });
    // Polled together, tokio-postgres pipelines these: the batch costs one round trip.
    let rows = join_all(calls).await;
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in rows {
        outcomes.push(outcome_from_row(&row.map_err(StoreError::from)?));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(outcomes)
}

fn outcome_from_row(row: &tokio_postgres::Row) -> IntakeOutcome {
    let status: i32 = row.get(0);
    let detail: String = row.get(1);
    let order_code: Option<String> = row.get(2);
    let settlement: Option<i64> = row.get(3);
    match (status, order_code) {
        (0, Some(order_code)) => IntakeOutcome::Accepted { order_code, settlement: Fen(settlement.unwrap_or(0)) },
        (8 | 98, Some(order_code)) => {
            IntakeOutcome::Duplicate { order_code, settlement: Fen(settlement.unwrap_or(0)), same_request: status == 8 }
        }
        (code, _) => {
            IntakeOutcome::Refused { status: ApiStatus::from_code(code).unwrap_or(ApiStatus::Failure), reason: detail }
        }
    }
}
