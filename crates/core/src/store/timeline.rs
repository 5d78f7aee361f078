//! An order's story for operators (`lijian order show`): every row any role
//! wrote about it, in time order.

use time::OffsetDateTime;

use super::{OrderView, Store, StoreError};

/// One thing that happened to an order.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: OffsetDateTime,
    /// Short kind: accepted, charged, queued, attempt, parked, final, report,
    /// delivery, refund.
    pub kind: &'static str,
    pub detail: String,
}

/// The order as it stands and what led there.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub order: OrderView,
    pub campaign: Option<String>,
    pub source_line: Option<i64>,
    pub dead_reason: Option<String>,
    pub events: Vec<Event>,
}

impl Store {
    /// The timeline of an order named by its code, or by merchant and bizCode.
    pub async fn order_timeline(
        &self,
        order_code: Option<&str>,
        merchant_and_biz: Option<(&str, &str)>,
    ) -> Result<Option<Timeline>, StoreError> {
        let order = match (order_code, merchant_and_biz) {
            (Some(code), _) => self.order_by_code(code).await?,
            (None, Some((merchant, biz))) => {
                self.find_order(merchant, &super::OrderLookup::BizCode(biz.to_string())).await?
            }
            (None, None) => {
                return Err(StoreError::Invalid("name the order by code or by merchant and bizCode".into()))
            }
        };
        let Some(order) = order else { return Ok(None) };
        let client = self.client().await?;
        let code = order.order_code.as_str();
        let extra = client
            .query_one("SELECT campaign, source_line, dead_reason, dead_at FROM orders WHERE order_code = $1", &[&code])
            .await?;
        let (campaign, source_line, dead_reason): (Option<String>, Option<i64>, Option<String>) =
            (extra.get(0), extra.get(1), extra.get(2));
        let mut events = Vec::new();
        let origin = match (&campaign, source_line) {
            (Some(c), Some(line)) => format!("from campaign {c}, CSV line {line}"),
            _ => format!(
                "through the {}",
                if order.source == crate::vocab::Source::Api { "open API" } else { order.source.as_str() }
            ),
        };
        events.push(Event {
            at: order.created_at,
            kind: "accepted",
            detail: format!(
                "bizCode {} for openId {}, activity {}, product {} {origin}; charged {} yuan",
                order.biz_code, order.open_id, order.activity_id, order.product_code, order.settlement
            ),
        });
        if let Some(at) = order.enqueued_at {
            events.push(Event { at, kind: "queued", detail: "issue job on the broker".into() });
        }
        for r in client
            .query(
                "SELECT started_at, attempt, outcome, http_status, code, message, latency_ms
                   FROM upstream_attempts WHERE order_code = $1 ORDER BY id",
                &[&code],
            )
            .await?
        {
            let (status, wx_code, message): (Option<i32>, Option<String>, Option<String>) =
                (r.get(3), r.get(4), r.get(5));
            let answer = match (status, wx_code, message) {
                (Some(s), Some(c), m) => format!("HTTP {s} {c}{}", m.map(|m| format!(": {m}")).unwrap_or_default()),
                (Some(s), None, Some(m)) => format!("HTTP {s}: {m}"),
                (Some(s), None, None) => format!("HTTP {s}"),
                (None, _, m) => format!("no answer: {}", m.unwrap_or_default()),
            };
            events.push(Event {
                at: r.get(0),
                kind: "attempt",
                detail: format!(
                    "WeChat Pay attempt {} → {} ({answer}, {} ms)",
                    r.get::<_, i32>(1),
                    r.get::<_, String>(2),
                    r.get::<_, i32>(6)
                ),
            });
        }
        if let Some(at) = extra.get::<_, Option<OffsetDateTime>>(3) {
            let reason = dead_reason.clone().unwrap_or_default();
            events.push(Event { at, kind: "parked", detail: format!("in the issue dead-letter queue: {reason}") });
        }
        if let Some(at) = order.finished_at {
            let detail = match order.status.code() {
                2 => format!("coupon {} issued (status 2)", order.coupon_id.clone().unwrap_or_default()),
                3 => format!("failed (status 3): {}", order.last_error.clone().unwrap_or_default()),
                4 => format!("cancelled (status 4): {}", order.last_error.clone().unwrap_or_default()),
                s => format!("status {s}"),
            };
            events.push(Event { at, kind: "final", detail });
        }
        for r in client
            .query(
                "SELECT created_at, kind, amount_fen, balance_after_fen FROM balance_ledger
                  WHERE order_code = $1 AND kind = 'refund' ORDER BY id",
                &[&code],
            )
            .await?
        {
            let amount = crate::money::Fen(r.get(2));
            let after = crate::money::Fen(r.get(3));
            events.push(Event {
                at: r.get(0),
                kind: "refund",
                detail: format!("{amount} yuan back; balance {after} yuan"),
            });
        }
        for r in client
            .query(
                "SELECT created_at, notify_id, status, outcome, last_error, delivered_at, dead_at
                   FROM reports WHERE order_code = $1",
                &[&code],
            )
            .await?
        {
            let notify_id: String = r.get(1);
            events.push(Event {
                at: r.get(0),
                kind: "report",
                detail: format!("status report {notify_id} (status {}) queued", r.get::<_, i16>(2)),
            });
            let outcome: Option<String> = r.get(3);
            if outcome.as_deref() == Some("no_callback") {
                events.push(Event { at: r.get(0), kind: "report", detail: "no callbackUrl: nothing to send".into() });
            }
            if let (Some("parked"), Some(at)) = (outcome.as_deref(), r.get::<_, Option<OffsetDateTime>>(6)) {
                let why: Option<String> = r.get(4);
                events.push(Event {
                    at,
                    kind: "parked",
                    detail: format!("report in the notify dead-letter queue: {}", why.unwrap_or_default()),
                });
            }
            for a in client
                .query(
                    "SELECT at, attempt, url, http_status, latency_ms, answer, error, delivered
                       FROM report_attempts WHERE notify_id = $1 ORDER BY id",
                    &[&notify_id],
                )
                .await?
            {
                let (status, answer, error): (Option<i32>, Option<String>, Option<String>) =
                    (a.get(3), a.get(5), a.get(6));
                let reply = match (status, error) {
                    (_, Some(e)) => format!("error: {e}"),
                    (Some(s), None) => {
                        format!("HTTP {s} {:?}", answer.unwrap_or_default().chars().take(80).collect::<String>())
                    }
                    (None, None) => "no answer".into(),
                };
                events.push(Event {
                    at: a.get(0),
                    kind: "delivery",
                    detail: format!(
                        "report attempt {} to {} → {reply} ({} ms){}",
                        a.get::<_, i32>(1),
                        a.get::<_, String>(2),
                        a.get::<_, i32>(4),
                        if a.get::<_, bool>(7) { ", delivered" } else { "" }
                    ),
                });
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(Some(Timeline { order, campaign, source_line, dead_reason, events }))
    }
}
