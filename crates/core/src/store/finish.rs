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
//!
//! One exception, and it is not silent: a coupon that arrives for an order
//! already failed or cancelled (a job mid-call while an operator failed the
//! parked order) is recorded on it by `lijian_issue_late` (migrations/0011):
//! status 2, charged again, a corrected report.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::issuance::{record_attempt, AttemptRecord};
use super::{Store, StoreError};
use crate::money::Fen;
use crate::status::OrderStatus;
use crate::vocab::AttemptOutcome;

/// One coupon to record.
#[derive(Debug, Clone)]
pub struct Issued {
    pub order_code: String,
    pub coupon_id: String,
    pub attempt: AttemptRecord,
}

/// What recording one coupon did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The order was open: now issued (status 2), report queued.
    Issued,
    /// The order had ended unissued and been refunded: the coupon is recorded
    /// on it, the merchant charged again (`balance_after` below zero is a debt)
    /// and a corrected report queued.
    IssuedLate { charged: Fen, balance_after: Fen },
    /// The order already had its coupon (a redelivery): only the attempt is new.
    AlreadyIssued,
}

/// What `dlq fail` did with the orders it was given.
#[derive(Debug, Clone, Default)]
pub struct FailedParked {
    pub failed: Vec<String>,
    /// Left parked because the last attempt's outcome is unknown (a coupon may
    /// exist), each with why; `force` fails them anyway.
    pub unknown: Vec<(String, String)>,
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
    /// gets its attempt recorded and, if it ended without a coupon, the late
    /// coupon recorded in a second statement (see the module notes). One answer
    /// per item, in order.
    pub async fn finish_issued(&self, batch: &[Issued]) -> Result<Vec<Finished>, StoreError> {
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
                     ON CONFLICT (order_code) WHERE corrects IS NULL DO NOTHING)
                 SELECT coalesce(array_agg(order_code), '{}') FROM done",
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
        let done: Vec<String> = client
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
            .await?
            .get(0);
        let done: HashSet<&str> = done.iter().map(String::as_str).collect();
        let mut late: HashMap<String, Finished> = HashMap::new();
        // Rare (redeliveries, late coupons): a statement of its own, which sees a
        // failure committed while the first one waited for the row.
        let (codes, coupons): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .filter(|i| !done.contains(i.order_code.as_str()))
            .map(|i| (i.order_code.as_str(), i.coupon_id.as_str()))
            .unzip();
        if !codes.is_empty() {
            for r in client.query("SELECT * FROM lijian_issue_late($1, $2)", &[&codes, &coupons]).await? {
                let (charged, balance_after) = (Fen(r.get(1)), Fen(r.get(2)));
                late.insert(r.get(0), Finished::IssuedLate { charged, balance_after });
            }
        }
        Ok(batch
            .iter()
            .map(|i| match late.remove(&i.order_code) {
                Some(finished) => finished,
                None if done.contains(i.order_code.as_str()) => Finished::Issued,
                None => Finished::AlreadyIssued,
            })
            .collect())
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
    /// longer parked are left alone. An order whose last attempt's outcome is
    /// unknown stays parked, with why, unless `force`: failing it would refund
    /// a coupon WeChat may have issued.
    pub async fn fail_parked_orders(
        &self,
        codes: &[String],
        reason: &str,
        force: bool,
    ) -> Result<FailedParked, StoreError> {
        let mut result = FailedParked::default();
        let mut client = self.client().await?;
        for code in codes {
            let tx = client.transaction().await?;
            if !force {
                if let Some(why) = unknown_outcome(&tx, code).await? {
                    tx.rollback().await?;
                    result.unknown.push((code.clone(), why));
                    continue;
                }
            }
            result
                .failed
                .extend(end_unissued(&tx, std::slice::from_ref(code), Unissued::FailedIfParked, reason).await?);
            tx.commit().await?;
        }
        Ok(result)
    }
}

/// Why the parked order `code` may hold a coupon after all: its last attempt
/// went out and left the outcome unknown. Locks the order, so the answer holds
/// until `tx` ends. None when the order is not parked or the outcome is known.
async fn unknown_outcome(tx: &impl GenericClient, code: &str) -> Result<Option<String>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT a.attempt, a.http_status, a.code, a.message
               FROM orders o
               JOIN LATERAL (SELECT * FROM upstream_attempts u WHERE u.order_code = o.order_code
                              ORDER BY u.id DESC LIMIT 1) a ON true
              WHERE o.order_code = $1 AND o.dead_at IS NOT NULL AND o.status = ANY($2) AND a.outcome_unknown
                FOR UPDATE OF o",
            &[&code, &&OrderStatus::OPEN[..]],
        )
        .await?;
    Ok(row.map(|r| {
        let (attempt, http_status, code, message): (i32, Option<i32>, Option<String>, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let message = message.unwrap_or_default();
        match (http_status, code) {
            (None, _) => format!("attempt {attempt} got no answer ({message})"),
            (Some(s), Some(c)) => format!("attempt {attempt} got HTTP {s} {c}"),
            (Some(s), None) => {
                format!("attempt {attempt} got an answer that could not be verified (HTTP {s}: {message})")
            }
        }
    }))
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
