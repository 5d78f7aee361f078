//! The consumer's bookkeeping around a WeChat Pay call: mark the order
//! processing and count the attempt before the call, record each attempt, park.
//! How an order *ends* (issued, failed, cancelled) is [`super::finish`].

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::status::OrderStatus;
use crate::vocab::AttemptOutcome;

/// An order as the consumer needs it to call WeChat.
#[derive(Debug, Clone)]
pub struct IssueOrder {
    pub order_code: String,
    pub open_id: String,
    pub app_id: String,
    pub activity_id: String,
    pub stock_id: String,
    pub stock_creator_mchid: String,
    /// The WeChat Pay account to send from: the activity's issuer, else its
    /// stock_creator_mchid.
    pub issuer_mchid: String,
    /// When the order was accepted (the start of acceptance → coupon latency).
    pub accepted_at: OffsetDateTime,
}

/// One call to WeChat Pay as it went, for the order's timeline.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    pub code: Option<String>,
    pub message: Option<String>,
    /// The WeChat Pay account that sent it (None when no call was made).
    pub mchid: Option<String>,
    /// The call went out and what came back does not rule a coupon out (no
    /// answer, an unverifiable answer, a 5xx): `dlq fail` then wants `--force`.
    pub outcome_unknown: bool,
}

/// What [`Store::begin_attempts`] found for one order.
#[derive(Debug, Clone)]
pub enum Begun {
    /// Marked processing; the attempt number and the attempts since the last replay.
    Attempt {
        order: IssueOrder,
        attempt: i32,
        since_replay: i32,
    },
    /// The order is already final: nothing to do.
    AlreadyFinal,
    /// The order is parked for an operator: a stray duplicate job leaves it
    /// alone (a replay clears the parking before it publishes the job).
    Parked,
    NotFound,
}

/// A begun attempt from a row of `begin_attempts`' UPDATE … RETURNING.
fn attempt_of(r: &tokio_postgres::Row) -> Begun {
    let order = IssueOrder {
        order_code: r.get(0),
        open_id: r.get(1),
        app_id: r.get(2),
        activity_id: r.get(3),
        stock_id: r.get(4),
        stock_creator_mchid: r.get(5),
        issuer_mchid: r.get(8),
        accepted_at: r.get(9),
    };
    Begun::Attempt { order, attempt: r.get(6), since_replay: r.get(7) }
}

impl Store {
    /// Marks each open order processing and counts the attempt, returning what
    /// the call to WeChat needs — one statement for the whole batch, answers in
    /// input order.
    pub async fn begin_attempts(&self, codes: &[String]) -> Result<Vec<Begun>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE orders o SET status = $2, attempts = o.attempts + 1, updated_at = now()
                   FROM activities a, (SELECT DISTINCT code FROM unnest($1::text[]) AS k(code)) k
                  WHERE o.order_code = k.code AND o.status = ANY($3) AND o.dead_at IS NULL
                    AND a.activity_id = o.activity_id
                  RETURNING o.order_code, o.open_id, o.app_id, o.activity_id, a.stock_id, a.stock_creator_mchid,
                            o.attempts, o.attempts - o.attempts_before_replay,
                            coalesce(a.issuer_mchid, a.stock_creator_mchid), o.created_at",
            )
            .await?;
        let mut begun: HashMap<String, Begun> = HashMap::new();
        for r in client.query(&stmt, &[&codes, &OrderStatus::Processing, &&OrderStatus::OPEN[..]]).await? {
            begun.insert(r.get(0), attempt_of(&r));
        }
        let mut missing: Vec<&String> = codes.iter().filter(|c| !begun.contains_key(*c)).collect();
        if !missing.is_empty() {
            // A replay clears the parking in a transaction that commits only once
            // the broker confirmed its job, so that job can arrive while the
            // order still reads as parked. Locking the rows still parked waits
            // for such a transaction; whatever it revived is begun now, instead
            // of the job being dropped as a stray duplicate (which stranded the
            // order: open, not parked, and no job).
            let still_parked: Vec<String> = client
                .query(
                    "SELECT order_code FROM orders WHERE order_code = ANY($1) AND dead_at IS NOT NULL FOR SHARE",
                    &[&missing],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let revived: Vec<String> =
                missing.iter().filter(|c| !still_parked.contains(**c)).map(|c| c.to_string()).collect();
            if !revived.is_empty() {
                for r in client.query(&stmt, &[&revived, &OrderStatus::Processing, &&OrderStatus::OPEN[..]]).await? {
                    begun.insert(r.get(0), attempt_of(&r));
                }
                missing.retain(|c| !begun.contains_key(*c));
            }
        }
        if !missing.is_empty() {
            let rows = client
                .query(
                    "SELECT order_code, dead_at IS NOT NULL AND status = ANY($2) FROM orders WHERE order_code = ANY($1)",
                    &[&missing, &&OrderStatus::OPEN[..]],
                )
                .await?;
            for r in rows {
                begun.insert(r.get(0), if r.get(1) { Begun::Parked } else { Begun::AlreadyFinal });
            }
        }
        // A job delivered twice in one batch: both deliveries get the same attempt;
        // WeChat's idempotency on out_request_no makes the second call harmless.
        Ok(codes.iter().map(|c| begun.get(c).cloned().unwrap_or(Begun::NotFound)).collect())
    }

    /// A retryable failure: remember why, keep processing.
    pub async fn note_retry(&self, order_code: &str, reason: &str, a: &AttemptRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE orders SET last_error = $2, updated_at = now() WHERE order_code = $1",
            &[&order_code, &reason],
        )
        .await?;
        record_attempt(&tx, order_code, a, AttemptOutcome::Retry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Parked: the order stays processing for the merchant, marked dead for
    /// operators until they replay or fail it.
    pub async fn mark_parked(
        &self,
        order_code: &str,
        reason: &str,
        a: Option<&AttemptRecord>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE orders SET dead_at = now(), dead_reason = $2, last_error = $2, updated_at = now()
              WHERE order_code = $1 AND status = ANY($3)",
            &[&order_code, &reason, &&OrderStatus::OPEN[..]],
        )
        .await?;
        if let Some(a) = a {
            record_attempt(&tx, order_code, a, AttemptOutcome::Parked).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Parks an order whose job is given up (redelivered or refused too often).
    /// An attempt begun for it whose outcome was never recorded — a worker that
    /// died or could not write after calling — is recorded now, as parked with
    /// its outcome unknown, so `dlq fail` knows a coupon may exist.
    pub async fn give_up_order(&self, order_code: &str, reason: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let parked = tx
            .execute(
                "UPDATE orders SET dead_at = now(), dead_reason = $2, last_error = $2, updated_at = now()
                  WHERE order_code = $1 AND status = ANY($3)",
                &[&order_code, &reason, &&OrderStatus::OPEN[..]],
            )
            .await?;
        if parked > 0 {
            tx.execute(
                "INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, outcome, message, outcome_unknown)
                 SELECT o.order_code, o.attempts, now(), 0, $2, 'outcome never recorded: ' || $3, true
                   FROM orders o
                  WHERE o.order_code = $1 AND o.attempts > 0
                    AND NOT EXISTS (SELECT 1 FROM upstream_attempts u WHERE u.order_code = o.order_code AND u.attempt = o.attempts)",
                &[&order_code, &AttemptOutcome::Parked, &reason],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Logs one attempt in `tx`.
pub(super) async fn record_attempt(
    tx: &impl GenericClient,
    order_code: &str,
    a: &AttemptRecord,
    outcome: AttemptOutcome,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, http_status, code, outcome, message, mchid,
                                        outcome_unknown)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &order_code,
            &a.attempt,
            &a.started_at,
            &a.latency_ms,
            &a.http_status,
            &a.code,
            &outcome,
            &a.message,
            &a.mchid,
            &a.outcome_unknown,
        ],
    )
    .await?;
    Ok(())
}
