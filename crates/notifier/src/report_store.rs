//! The report store: the notifier's reads and writes of `reports` and
//! `report_attempts` — the report with what it needs to be sent, each attempt,
//! and how the report ended — and the outbox of reports other roles wrote that
//! are not on the broker yet.

use lijian_core::money::Fen;
use lijian_core::outbox::{drain, Confirms, Outbox, Taken, Transaction};
use lijian_core::queue::{NotifyJob, Publisher};
use lijian_core::status::OrderStatus;
use lijian_core::store::{storable, Store, StoreError};
use lijian_core::vocab::ReportOutcome;

use crate::report::Report;

/// A pending report and how to deliver it.
pub struct Pending {
    pub report: Report,
    /// The order's callbackUrl, else the merchant's; None when both are empty.
    pub url: Option<String>,
    pub business_id: String,
    /// Some when the merchant signs with MD5 only (no live RSA key): its reports
    /// are MD5-signed too, with its newest live MD5 key — during a rotation the
    /// key it was given last (docs/callbacks.md).
    pub md5_key: Option<String>,
}

/// The message of a corrected report (docs/callbacks.md).
pub const LATE_MESSAGE: &str =
    "issued late: the coupon arrived after the order was reported failed and refunded; settlementPrice is charged again";

/// What [`load`] found.
pub enum Loaded {
    Pending(Box<Pending>),
    /// Already delivered, recorded as having no callback, or parked.
    Closed,
    NotFound,
}

pub async fn load(store: &Store, notify_id: &str) -> Result<Loaded, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT r.outcome, r.status, o.order_code, o.biz_code, o.merchant_id, o.product_code, o.activity_id, o.open_id,
                    CASE WHEN r.status = $2 THEN o.coupon_id END, o.settlement_fen, coalesce(o.last_error, ''),
                    -- The first report of an order issued late tells of the failure,
                    -- when it happened (the report was written in that transaction).
                    (extract(epoch FROM CASE WHEN o.issued_late_at IS NOT NULL AND r.corrects IS NULL THEN r.created_at
                                             ELSE coalesce(o.finished_at, r.created_at) END) * 1000)::bigint,
                    coalesce(nullif(o.callback_url, ''), nullif(m.callback_url, '')),
                    m.business_id,
                    (SELECT k.key_text FROM merchant_keys k WHERE k.merchant_id = m.merchant_id AND k.sign_type = 'MD5'
                        AND k.retired_at IS NULL ORDER BY k.key_id DESC LIMIT 1),
                    EXISTS (SELECT 1 FROM merchant_keys k WHERE k.merchant_id = m.merchant_id
                               AND k.sign_type = 'SHA256-RSA' AND k.retired_at IS NULL),
                    r.corrects
               FROM reports r JOIN orders o USING (order_code) JOIN merchants m ON m.merchant_id = o.merchant_id
              WHERE r.notify_id = $1",
        )
        .await?;
    let Some(r) = client.query_opt(&stmt, &[&notify_id, &OrderStatus::Success]).await? else {
        return Ok(Loaded::NotFound);
    };
    if r.get::<_, Option<String>>(0).is_some() {
        return Ok(Loaded::Closed);
    }
    let status: OrderStatus = r.get(1);
    let last_error: String = r.get(10);
    let corrects: Option<String> = r.get(16);
    let message = match status {
        OrderStatus::Success if corrects.is_some() => LATE_MESSAGE.to_string(),
        OrderStatus::Success | OrderStatus::Cancelled => status.label().to_string(),
        _ if last_error.is_empty() => "failed".to_string(),
        _ => last_error,
    };
    let has_rsa: bool = r.get(15);
    let md5_key: Option<String> = r.get(14);
    Ok(Loaded::Pending(Box::new(Pending {
        report: Report {
            notify_id: notify_id.to_string(),
            order_code: r.get(2),
            biz_code: r.get(3),
            merchant_id: r.get(4),
            product_code: r.get(5),
            activity_id: r.get(6),
            open_id: r.get(7),
            status,
            coupon_id: r.get(8),
            settlement: Fen(r.get(9)),
            message,
            finish_time_ms: r.get(11),
            corrects,
        },
        url: r.get(12),
        business_id: r.get(13),
        md5_key: if has_rsa { None } else { md5_key },
    })))
}

/// One POST, as it went.
pub struct AttemptLog<'a> {
    pub notify_id: &'a str,
    pub url: &'a str,
    pub http_status: Option<i32>,
    pub latency_ms: i32,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub delivered: bool,
    /// The waits between attempts (the notifier's schedule): a failed attempt
    /// records when the next is due.
    pub schedule: &'a [std::time::Duration],
}

/// Counts the attempt, logs it and, when delivered, closes the report — one
/// statement. Returns the attempts since the last replay (for the schedule), or
/// None when the report was closed meanwhile (another notifier delivered it).
pub async fn record_attempt(store: &Store, a: &AttemptLog<'_>) -> Result<Option<i32>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "WITH counted AS (
                 UPDATE reports SET attempts = attempts + 1,
                        delivered_at = CASE WHEN $7 THEN now() END,
                        outcome = CASE WHEN $7 THEN $8::text END,
                        last_error = CASE WHEN $7::bool THEN NULL ELSE coalesce($6::text, 'HTTP ' || ($3::int4)::text) END
                  WHERE notify_id = $1 AND outcome IS NULL
                  RETURNING attempts, attempts - attempts_before_replay AS since_replay)
             INSERT INTO report_attempts (notify_id, attempt, url, http_status, latency_ms, answer, error, delivered, retry_at)
             SELECT $1, attempts, $2, $3, $4, $5, $6, $7,
                    -- Past the schedule's end the index gives NULL: parked, nothing is due.
                    CASE WHEN NOT $7 THEN now() + make_interval(secs => ($9::float8[])[since_replay]) END
               FROM counted
             RETURNING (SELECT since_replay FROM counted)",
        )
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &a.notify_id,
                &a.url,
                &a.http_status,
                &a.latency_ms,
                &a.answer,
                &a.error,
                &a.delivered,
                &ReportOutcome::Delivered,
                &a.schedule.iter().map(|d| d.as_secs_f64()).collect::<Vec<f64>>(),
            ],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i32>(0)))
}

/// Closes a report that will not be sent (no callback, or parked), with why.
pub async fn close(store: &Store, notify_id: &str, outcome: ReportOutcome, reason: &str) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE reports SET outcome = $2, last_error = $3, dead_at = CASE WHEN $4 THEN now() END
              WHERE notify_id = $1 AND outcome IS NULL",
            &[&notify_id, &outcome, &storable(reason), &(outcome == ReportOutcome::Parked)],
        )
        .await?;
    Ok(())
}

/// Reports not on the broker yet: written by the consumer or by cancellations in
/// the same transaction as the order's final status.
struct Unsent;

impl Outbox for Unsent {
    type Key = String;
    type Job = NotifyJob;
    const NAME: &'static str = "report relay";
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Notifier;

    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<String, NotifyJob>, StoreError> {
        let rows = tx
            .query(
                "SELECT r.notify_id, coalesce(nullif(o.callback_url, ''), m.callback_url)
                   FROM reports r JOIN orders o USING (order_code) JOIN merchants m ON m.merchant_id = o.merchant_id
                  WHERE r.enqueued_at IS NULL ORDER BY r.id LIMIT 1000 FOR UPDATE OF r SKIP LOCKED",
                &[],
            )
            .await?;
        Ok(Taken::Jobs(
            rows.iter()
                .map(|r| {
                    let (notify_id, url): (String, Option<String>) = (r.get(0), r.get(1));
                    (notify_id.clone(), NotifyJob::V1 { notify_id, endpoint: url.as_deref().and_then(endpoint_of) })
                })
                .collect(),
        ))
    }

    async fn settle(&self, tx: &Transaction<'_>, queued: &[String]) -> Result<(), StoreError> {
        tx.execute("UPDATE reports SET enqueued_at = now() WHERE notify_id = ANY($1)", &[&queued]).await?;
        Ok(())
    }
}

/// Queues the reports that are not on the broker yet; returns how many the
/// broker confirmed.
pub async fn queue_unsent(store: &Store, publisher: &Publisher) -> Result<usize, StoreError> {
    Ok(drain(store, publisher, &Unsent, Confirms::Partial).await?.settled.len())
}

/// `host:port` of a callback URL: the unit of the per-endpoint limit.
pub fn endpoint_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    Some(format!("{}:{}", parsed.host_str()?, parsed.port_or_known_default()?))
}
