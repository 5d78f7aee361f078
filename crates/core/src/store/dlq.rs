//! Parked work, as operators see and fix it. The database is the record of what
//! is parked (`orders.dead_at`, `reports.outcome = 'parked'`); the broker's
//! dead-letter queues hold the same jobs and are swept to match after a replay
//! or a fail (`queue::sweep_dead_letters`).

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::vocab::Lane;

/// One parked job.
#[derive(Debug, Clone)]
pub struct DeadJob {
    /// Which dead-letter queue the job is in.
    pub lane: Lane,
    pub order_code: String,
    /// The report's id for notify jobs.
    pub notify_id: Option<String>,
    pub merchant_id: String,
    pub campaign: Option<String>,
    /// Attempts in all, and since the last replay.
    pub attempts: i32,
    pub attempts_since_replay: i32,
    pub reason: String,
    pub dead_at: OffsetDateTime,
}

/// Which parked jobs an operator means. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct DeadFilter {
    pub lane: Option<Lane>,
    /// Case-insensitive substring of the reason.
    pub reason: Option<String>,
    pub campaign: Option<String>,
    pub order_codes: Vec<String>,
}

impl Store {
    /// Parked jobs matching `filter`, oldest first.
    pub async fn dead_jobs(&self, filter: &DeadFilter) -> Result<Vec<DeadJob>, StoreError> {
        let client = self.client().await?;
        let pattern = filter.reason.as_ref().map(|r| format!("%{}%", r.replace('%', "\\%").replace('_', "\\_")));
        let codes = &filter.order_codes;
        let mut jobs = Vec::new();
        if filter.lane != Some(Lane::Notify) {
            let rows = client
                .query(
                    "SELECT order_code, merchant_id, campaign, attempts, attempts - attempts_before_replay,
                            coalesce(dead_reason, ''), dead_at
                       FROM orders
                      WHERE dead_at IS NOT NULL AND status IN (0, 1)
                        AND ($1::text IS NULL OR dead_reason ILIKE $1)
                        AND ($2::text IS NULL OR campaign = $2)
                        AND (cardinality($3::text[]) = 0 OR order_code = ANY($3))
                      ORDER BY dead_at, id",
                    &[&pattern, &filter.campaign, codes],
                )
                .await?;
            jobs.extend(rows.iter().map(|r| DeadJob {
                lane: Lane::Issue,
                order_code: r.get(0),
                notify_id: None,
                merchant_id: r.get(1),
                campaign: r.get(2),
                attempts: r.get(3),
                attempts_since_replay: r.get(4),
                reason: r.get(5),
                dead_at: r.get(6),
            }));
        }
        if filter.lane != Some(Lane::Issue) {
            let rows = client
                .query(
                    "SELECT o.order_code, r.notify_id, o.merchant_id, o.campaign, r.attempts,
                            r.attempts - r.attempts_before_replay, coalesce(r.last_error, ''), r.dead_at
                       FROM reports r JOIN orders o ON o.order_code = r.order_code
                      WHERE r.outcome = 'parked'
                        AND ($1::text IS NULL OR r.last_error ILIKE $1)
                        AND ($2::text IS NULL OR o.campaign = $2)
                        AND (cardinality($3::text[]) = 0 OR o.order_code = ANY($3))
                      ORDER BY r.dead_at, r.id",
                    &[&pattern, &filter.campaign, codes],
                )
                .await?;
            jobs.extend(rows.iter().map(|r| DeadJob {
                lane: Lane::Notify,
                order_code: r.get(0),
                notify_id: r.get(1),
                merchant_id: r.get(2),
                campaign: r.get(3),
                attempts: r.get(4),
                attempts_since_replay: r.get(5),
                reason: r.get(6),
                dead_at: r.get::<_, Option<OffsetDateTime>>(7).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            }));
        }
        Ok(jobs)
    }

    /// Puts parked reports back in line with a fresh retry budget: the notifier's
    /// relay queues them again. Returns the notify ids revived (a second call
    /// finds nothing to do).
    pub async fn revive_reports(&self, notify_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE reports SET outcome = NULL, dead_at = NULL, last_error = NULL, enqueued_at = NULL,
                        attempts_before_replay = attempts
                  WHERE notify_id = ANY($1) AND outcome = 'parked'
                  RETURNING notify_id",
                &[&notify_ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Finishes parked orders as failed: status 3, refund (ledger row, balance,
    /// budget) and the report, one transaction per order. Orders no longer parked
    /// are left alone. Returns the orders failed.
    pub async fn fail_dead_orders(&self, codes: &[String], reason: &str) -> Result<Vec<String>, StoreError> {
        let mut failed = Vec::new();
        let mut client = self.client().await?;
        for code in codes {
            let tx = client.transaction().await?;
            if fail_open_order(&tx, code, reason, true).await? {
                failed.push(code.clone());
            }
            tx.commit().await?;
        }
        Ok(failed)
    }
}

/// Ends an order as failed in `tx`: status 3 with `reason`, the refund and the
/// status report. Only an order still open (status 0 or 1) changes — and, with
/// `parked_only`, only a parked one — so doing it twice changes nothing. Whether
/// it changed.
pub async fn fail_open_order(
    tx: &impl deadpool_postgres::GenericClient,
    order_code: &str,
    reason: &str,
    parked_only: bool,
) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "UPDATE orders SET status = 3, last_error = $2, finished_at = now(), updated_at = now(),
                    dead_at = NULL, dead_reason = NULL
              WHERE order_code = $1 AND status IN (0, 1) AND (NOT $3 OR dead_at IS NOT NULL)
              RETURNING merchant_id, settlement_fen, activity_id",
            &[&order_code, &reason, &parked_only],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    refund(tx, order_code, row.get(0), row.get(1), row.get(2)).await?;
    queue_report(tx, order_code, 3).await?;
    Ok(true)
}

/// Gives an order's money and budget slot back. The ledger's unique (order,
/// kind) index makes a second refund of one order impossible.
async fn refund(
    tx: &impl deadpool_postgres::GenericClient,
    order_code: &str,
    merchant_id: &str,
    settlement: i64,
    activity_id: &str,
) -> Result<(), StoreError> {
    let balance: i64 = tx
        .query_one(
            "UPDATE merchants SET balance_fen = balance_fen + $2, updated_at = now() WHERE merchant_id = $1 RETURNING balance_fen",
            &[&merchant_id, &settlement],
        )
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen) VALUES ($1, $2, 'refund', $3, $4)",
        &[&merchant_id, &order_code, &settlement, &balance],
    )
    .await?;
    tx.execute("UPDATE activities SET issued = issued - 1 WHERE activity_id = $1 AND issued > 0", &[&activity_id])
        .await?;
    Ok(())
}

/// Queues the order's status report (transactional outbox); once per order.
async fn queue_report(
    tx: &impl deadpool_postgres::GenericClient,
    order_code: &str,
    status: i16,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO reports (notify_id, order_code, status) VALUES ('N' || $1, $1, $2) ON CONFLICT (order_code) DO NOTHING",
        &[&order_code, &status],
    )
    .await?;
    Ok(())
}
