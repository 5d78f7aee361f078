//! Totals over a whole run, for summaries (`lijian demo`): orders per status,
//! reports delivered, why orders failed, and how long delivery took.

use crate::status::OrderStatus;
use crate::vocab::ReportOutcome;

use super::{Store, StoreError};

/// Orders per status and reports delivered, read together.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    by_status: Vec<(OrderStatus, i64)>,
    pub reports_delivered: i64,
}

impl StatusCounts {
    /// Orders in `status`.
    pub fn orders(&self, status: OrderStatus) -> i64 {
        self.by_status.iter().filter(|(s, _)| *s == status).map(|(_, n)| n).sum()
    }

    /// Orders that will not change any more (issued, failed or cancelled).
    pub fn finals(&self) -> i64 {
        self.by_status.iter().filter(|(s, _)| s.is_final()).map(|(_, n)| n).sum()
    }
}

/// Attempts that did not settle an order or a report, over a whole run: what
/// retries absorbed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryCounts {
    /// Calls to WeChat Pay whose outcome was "try again" (errors, 429s,
    /// timeouts, dropped answers).
    pub issue_retries: i64,
    /// POSTs to merchants that were not answered `SUCCESS`.
    pub report_failures: i64,
}

/// Time from acceptance to the merchant's `SUCCESS`, over delivered reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryLatency {
    pub p50_secs: Option<f64>,
    pub p99_secs: Option<f64>,
}

impl Store {
    pub async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT status, count(*) FROM orders GROUP BY status", &[]).await?;
        let delivered =
            client.query_one("SELECT count(*) FROM reports WHERE outcome = $1", &[&ReportOutcome::Delivered]).await?;
        Ok(StatusCounts {
            by_status: rows.iter().map(|r| (r.get::<_, OrderStatus>(0), r.get::<_, i64>(1))).collect(),
            reports_delivered: delivered.get(0),
        })
    }

    /// Failed orders per last error, most frequent first.
    pub async fn failure_reasons(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT coalesce(last_error, '?'), count(*) FROM orders WHERE status = $1 GROUP BY 1 ORDER BY 2 DESC",
                &[&OrderStatus::Failed],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn delivery_latency(&self) -> Result<DeliveryLatency, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.delivered_at - o.created_at)),
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.delivered_at - o.created_at))
                   FROM reports r JOIN orders o USING (order_code) WHERE r.outcome = $1",
                &[&ReportOutcome::Delivered],
            )
            .await?;
        Ok(DeliveryLatency { p50_secs: row.get(0), p99_secs: row.get(1) })
    }

    pub async fn retry_counts(&self) -> Result<RetryCounts, StoreError> {
        let client = self.client().await?;
        let issue = client.query_one("SELECT count(*) FROM upstream_attempts WHERE outcome = 'retry'", &[]).await?;
        let reports = client.query_one("SELECT count(*) FROM report_attempts WHERE NOT delivered", &[]).await?;
        Ok(RetryCounts { issue_retries: issue.get(0), report_failures: reports.get(0) })
    }
}
