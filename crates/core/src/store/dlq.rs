//! Parked work, as operators see and fix it. The database is the record of what
//! is parked (`orders.dead_at`, a report's outcome `parked`); the broker's
//! dead-letter queues hold the same jobs and are swept to match after a replay
//! or a fail (`queue::sweep_dead_letters`). Failing a parked order is
//! [`super::finish`]'s job, like every other way an order ends.

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::status::OrderStatus;
use crate::vocab::{Lane, ReportOutcome};

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
                      WHERE dead_at IS NOT NULL AND status = ANY($4)
                        AND ($1::text IS NULL OR dead_reason ILIKE $1)
                        AND ($2::text IS NULL OR campaign = $2)
                        AND (cardinality($3::text[]) = 0 OR order_code = ANY($3))
                      ORDER BY dead_at, id",
                    &[&pattern, &filter.campaign, codes, &&OrderStatus::OPEN[..]],
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
                      WHERE r.outcome = $4
                        AND ($1::text IS NULL OR r.last_error ILIKE $1)
                        AND ($2::text IS NULL OR o.campaign = $2)
                        AND (cardinality($3::text[]) = 0 OR o.order_code = ANY($3))
                      ORDER BY r.dead_at, r.id",
                    &[&pattern, &filter.campaign, codes, &ReportOutcome::Parked],
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

    /// Gives up on the parked reports of these orders: nothing more is sent and
    /// they leave `dlq list`. Returns the order codes whose report was dismissed.
    pub async fn dismiss_reports(&self, order_codes: &[String]) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE reports SET outcome = $2,
                        last_error = coalesce(last_error, '') || ' (dismissed by an operator: lijian dlq fail)'
                  WHERE order_code = ANY($1) AND outcome = $3
                  RETURNING order_code",
                &[&order_codes, &ReportOutcome::Dismissed, &ReportOutcome::Parked],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Points the reports of these orders at another callback URL (checked by
    /// the caller): the order's own URL changes, so the next delivery attempt
    /// goes there. Returns how many orders changed.
    pub async fn retarget_reports(&self, order_codes: &[String], url: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client
            .execute("UPDATE orders SET callback_url = $2 WHERE order_code = ANY($1)", &[&order_codes, &url])
            .await?)
    }

    /// Puts parked reports back in line with a fresh retry budget: the notifier's
    /// relay queues them again. Returns the notify ids revived (a second call
    /// finds nothing to do).
    pub async fn revive_reports(&self, notify_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                // The parking it clears is kept as part of the order's story (`replays`).
                "WITH revived AS (
                     UPDATE reports r SET outcome = NULL, dead_at = NULL, last_error = NULL, enqueued_at = NULL,
                            attempts_before_replay = attempts
                       FROM (SELECT id, dead_at, last_error FROM reports WHERE notify_id = ANY($1)) parked
                      WHERE r.id = parked.id AND r.outcome = $2
                      RETURNING r.notify_id, r.order_code, parked.dead_at, parked.last_error),
                 noted AS (
                     INSERT INTO replays (order_code, lane, parked_at, reason)
                     SELECT order_code, $3, dead_at, last_error FROM revived)
                 SELECT notify_id FROM revived",
                &[&notify_ids, &ReportOutcome::Parked, &Lane::Notify],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
