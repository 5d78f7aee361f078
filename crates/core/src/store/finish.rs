//! How an order ends — the one place that makes an order final.
//!
//! - issued (2): the coupon, the attempt and the status report in one statement;
//! - failed (3) or cancelled (4): the SQL function `lijian_end_orders`
//!   (migrations/0005) refunds (ledger row, balance, budget slot) and queues the
//!   report in the same statement. Campaign cancel calls the same function from
//!   `lijian_cancel_unreleased`, so the refund exists once.
//!
//! Every path changes only an order that is still open, so a redelivered job, a
//! second `dlq fail` or a cancel racing a failure changes nothing twice. Report
//! ids come from `lijian_notify_id` (SQL), the one spelling of that rule.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::issuance::{record_attempt, AttemptRecord};
use super::{Store, StoreError};
use crate::status::OrderStatus;
use crate::vocab::AttemptOutcome;

/// One coupon to record.
#[derive(Debug, Clone)]
pub struct Issued {
    pub order_code: String,
    pub coupon_id: String,
    pub attempt: AttemptRecord,
}

/// Why an open order ends without a coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unissued {
    /// Any open order (a final refusal from WeChat).
    Failed,
    /// Only a parked order (an operator's `dlq fail`): one that was replayed or
    /// finished meanwhile is left alone.
    FailedIfParked,
}

impl Store {
    /// Successes: status 2 with the coupon, the attempt and the report, for a
    /// whole batch in one statement (atomic, one commit). An order already final
    /// only gets its attempt recorded.
    pub async fn finish_issued(&self, batch: &[Issued]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH input AS (
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::int[], $7::text[], $8::text[], $12::text[])
                              AS t(order_code, coupon_id, attempt, started_at, latency_ms, http_status, code, message, mchid)),
                 done AS (
                     UPDATE orders o SET status = $9, coupon_id = i.coupon_id, finished_at = now(), updated_at = now(),
                            last_error = NULL, dead_at = NULL, dead_reason = NULL
                       FROM input i
                      WHERE o.order_code = i.order_code AND o.status = ANY($10)
                      RETURNING o.order_code),
                 attempt AS (
                     INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, http_status, code, outcome, message, mchid)
                     SELECT order_code, attempt, started_at, latency_ms, http_status, code, $11, message, mchid FROM input),
                 report AS (
                     INSERT INTO reports (notify_id, order_code, status)
                     SELECT lijian_notify_id(order_code), order_code, $9 FROM done
                     ON CONFLICT (order_code) DO NOTHING)
                 SELECT count(*) FROM done",
            )
            .await?;
        let codes: Vec<&str> = batch.iter().map(|i| i.order_code.as_str()).collect();
        let coupons: Vec<&str> = batch.iter().map(|i| i.coupon_id.as_str()).collect();
        let attempts: Vec<i32> = batch.iter().map(|i| i.attempt.attempt).collect();
        let started: Vec<OffsetDateTime> = batch.iter().map(|i| i.attempt.started_at).collect();
        let latency: Vec<i32> = batch.iter().map(|i| i.attempt.latency_ms).collect();
        let status: Vec<Option<i32>> = batch.iter().map(|i| i.attempt.http_status).collect();
        let code: Vec<Option<&str>> = batch.iter().map(|i| i.attempt.code.as_deref()).collect();
        let message: Vec<Option<&str>> = batch.iter().map(|i| i.attempt.message.as_deref()).collect();
        let mchid: Vec<Option<&str>> = batch.iter().map(|i| i.attempt.mchid.as_deref()).collect();
        client
            .query_one(
                &stmt,
                &[
                    &codes,
                    &coupons,
                    &attempts,
                    &started,
                    &latency,
                    &status,
                    &code,
                    &message,
                    &OrderStatus::Success,
                    &&OrderStatus::OPEN[..],
                    &AttemptOutcome::Issued,
                    &mchid,
                ],
            )
            .await?;
        Ok(())
    }

    /// A final refusal from WeChat: the order fails (refund and report, see
    /// [`end_unissued`]) and the attempt is recorded — one transaction. A second
    /// call finds the order final and only records the attempt.
    pub async fn finish_failed(&self, order_code: &str, reason: &str, a: &AttemptRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        end_unissued(&tx, &[order_code.to_string()], Unissued::Failed, reason).await?;
        record_attempt(&tx, order_code, a, AttemptOutcome::Failed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes parked orders as failed (an operator's `dlq fail`), one
    /// transaction per order so one bad row cannot hold the others back. Orders no
    /// longer parked are left alone. Returns the orders failed.
    pub async fn fail_parked_orders(&self, codes: &[String], reason: &str) -> Result<Vec<String>, StoreError> {
        let mut failed = Vec::new();
        let mut client = self.client().await?;
        for code in codes {
            let tx = client.transaction().await?;
            failed.extend(end_unissued(&tx, std::slice::from_ref(code), Unissued::FailedIfParked, reason).await?);
            tx.commit().await?;
        }
        Ok(failed)
    }
}

/// Ends the open orders among `codes` as failed, in `tx`: status 3 with
/// `reason`, refund, report (`lijian_end_orders`). Returns the orders that changed.
async fn end_unissued(
    tx: &impl GenericClient,
    codes: &[String],
    how: Unissued,
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    let parked_only = how == Unissued::FailedIfParked;
    let rows = tx
        .query(
            "SELECT order_code FROM lijian_end_orders($1, $2, $3, $4)",
            &[&codes, &OrderStatus::Failed, &reason, &parked_only],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
