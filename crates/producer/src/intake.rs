//! The accepting transaction, micro-batched.
//!
//! Every order of a campaign charges one merchant row and counts on one activity
//! row; a row lock is held until commit, so one order per transaction caps a
//! campaign at 1 / commit latency. The batcher's writers (`lijian_core::batch`)
//! take whatever orders are waiting (up to `max_batch`); [`Intake`] calls
//! `lijian_accept_order` for each in one transaction — pipelined, one round trip
//! in all — and commits once. Under light load a batch is a single order and
//! nothing waits for company.

use std::cmp::Ordering;

use futures::future::join_all;
use lijian_core::batch::{BatchWrite, Stopped};
use lijian_core::money::Fen;
use lijian_core::status::ApiStatus;
use lijian_core::store::{Store, StoreError};
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

impl From<Stopped> for IntakeError {
    fn from(_: Stopped) -> IntakeError {
        IntakeError::Closed
    }
}

const ACCEPT_SQL: &str =
    "SELECT status, detail, order_code, settlement_fen FROM lijian_accept_order($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The accepting transaction as a batched write.
pub(crate) struct Intake {
    pub store: Store,
}

impl BatchWrite for Intake {
    type Item = OrderRequest;
    type Output = IntakeOutcome;
    type Error = IntakeError;
    const NAME: &'static str = "intake";
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Gateway;

    async fn write(&self, requests: &[OrderRequest]) -> Result<Vec<IntakeOutcome>, IntakeError> {
        try_batch(&self.store, requests).await
    }

    /// One global lock order across concurrent writers and processes: merchant
    /// row, then activity row (see the SQL function), so batches never deadlock.
    fn lock_order(&self, a: &OrderRequest, b: &OrderRequest) -> Ordering {
        (&a.merchant_id, &a.activity_id).cmp(&(&b.merchant_id, &b.activity_id))
    }
}

/// One transaction, tried again (up to three times in all) when PostgreSQL
/// picked it as a deadlock or serialization victim.
async fn try_batch(store: &Store, requests: &[OrderRequest]) -> Result<Vec<IntakeOutcome>, IntakeError> {
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

async fn run_transaction(store: &Store, requests: &[OrderRequest]) -> Result<Vec<IntakeOutcome>, IntakeError> {
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
    let settlement = Fen(settlement.unwrap_or(0));
    match (ApiStatus::from_code(status), order_code) {
        (Some(ApiStatus::Success), Some(order_code)) => IntakeOutcome::Accepted { order_code, settlement },
        // The same bizCode again: a retry of the same request, or a reused bizCode.
        (Some(same @ (ApiStatus::DuplicateBizCode | ApiStatus::OrderAbnormal)), Some(order_code)) => {
            IntakeOutcome::Duplicate { order_code, settlement, same_request: same == ApiStatus::DuplicateBizCode }
        }
        (status, _) => IntakeOutcome::Refused { status: status.unwrap_or(ApiStatus::Failure), reason: detail },
    }
}
