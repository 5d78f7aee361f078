//! An order's story in words: the store's [`Timeline`] facts, one line each,
//! as `lijian order show` prints them and the console's `/orders/{code}` shows
//! them. Operators (and tests) read these phrases, so they change only on purpose.

use crate::queue::Lane;
use crate::status::OrderStatus;
use crate::store::{Door, Event, Timeline};
use crate::times::rfc3339_millis;

/// The whole story: the order as it stands, then its timeline.
pub fn render(t: &Timeline) -> Vec<String> {
    let o = &t.order;
    let mut lines = vec![
        format!("order {} — merchant {}, bizCode {}", o.order_code, o.merchant_id, o.biz_code),
        format!("  status:   {} ({})", o.status.code(), o.status.label()),
    ];
    if let Some(coupon) = &o.coupon_id {
        lines.push(format!("  coupon:   {coupon}"));
    }
    if let Some(at) = t.issued_late_at {
        lines.push(format!(
            "  LATE:     issued late at {}: the coupon arrived after the order had ended unissued ({}) and been \
             refunded; recorded, charged again, corrected report sent",
            rfc3339_millis(at),
            o.last_error.as_deref().unwrap_or("no reason recorded")
        ));
    }
    if let Some(reason) = &t.dead_reason {
        lines.push(format!(
            "  PARKED:   {reason} (lijian dlq replay --order {} / lijian dlq fail --order {})",
            o.order_code, o.order_code
        ));
    }
    lines.push(format!("  attempts: {}", o.attempts));
    lines.push("timeline (UTC):".into());
    for e in &t.events {
        lines.push(format!("  {}  {:<8} {}", rfc3339_millis(e.at()), kind(e), detail(e)));
    }
    lines
}

/// The short word in the timeline's second column.
pub fn kind(e: &Event) -> &'static str {
    match e {
        Event::Accepted { .. } => "accepted",
        Event::Queued { .. } => "queued",
        Event::Attempt { .. } => "attempt",
        Event::Parked { .. } => "parked",
        Event::Replayed { .. } => "replay",
        Event::Finished { .. } => "final",
        Event::Refunded { .. } => "refund",
        Event::IssuedLate { .. } => "late",
        Event::ReportQueued { .. } | Event::ReportNotNeeded { .. } => "report",
        Event::Delivery { .. } => "delivery",
    }
}

/// What happened, in a sentence.
pub fn detail(e: &Event) -> String {
    match e {
        Event::Accepted { door, biz_code, open_id, activity_id, product_code, charged, .. } => {
            let origin = match door {
                Door::Campaign { name, line } => format!("from campaign {name}, CSV line {line}"),
                Door::Api => "through the open API".into(),
                Door::Other(source) => format!("through the {source}"),
            };
            format!(
                "bizCode {biz_code} for openId {open_id}, activity {activity_id}, product {product_code} {origin}; charged {charged} yuan"
            )
        }
        Event::Queued { .. } => "issue job on the broker".into(),
        Event::Attempt { number, outcome, http_status, code, message, latency_ms, mchid, .. } => {
            let answer = match (http_status, code, message) {
                (Some(s), Some(c), m) => {
                    format!("HTTP {s} {c}{}", m.as_ref().map(|m| format!(": {m}")).unwrap_or_default())
                }
                (Some(s), None, Some(m)) => format!("HTTP {s}: {m}"),
                (Some(s), None, None) => format!("HTTP {s}"),
                (None, _, m) => format!("no answer: {}", m.as_deref().unwrap_or_default()),
            };
            let account = mchid.as_ref().map(|m| format!(" from account {m}")).unwrap_or_default();
            format!("WeChat Pay attempt {number} → {outcome} ({answer}, {latency_ms} ms){account}")
        }
        Event::Parked { lane, reason, .. } => {
            let reason = reason.as_deref().unwrap_or_default();
            match lane {
                Lane::Issue => format!("in the issue dead-letter queue: {reason}"),
                Lane::Notify => format!("report in the notify dead-letter queue: {reason}"),
            }
        }
        Event::Replayed { lane, .. } => match lane {
            Lane::Issue => "issue job sent again by an operator (lijian dlq replay), with a fresh retry budget".into(),
            Lane::Notify => "report sent again by an operator (lijian dlq replay), with a fresh retry budget".into(),
        },
        Event::Finished { status, coupon_id, reason, .. } => {
            let reason = reason.as_deref().unwrap_or_default();
            match status {
                OrderStatus::Success => {
                    format!("coupon {} issued (status {})", coupon_id.as_deref().unwrap_or_default(), status.code())
                }
                OrderStatus::Failed => format!("failed (status {}): {reason}", status.code()),
                OrderStatus::Cancelled => format!("cancelled (status {}): {reason}", status.code()),
                OrderStatus::Stored | OrderStatus::Processing => format!("status {}", status.code()),
            }
        }
        Event::Refunded { amount, balance_after, .. } => format!("{amount} yuan back; balance {balance_after} yuan"),
        Event::IssuedLate { coupon_id, charged, balance_after, .. } => {
            let debt = if balance_after.0 < 0 { " (below zero: a debt the next top-up repays)" } else { "" };
            format!(
                "coupon {} issued late: charged {charged} yuan again; balance {balance_after} yuan{debt}",
                coupon_id.as_deref().unwrap_or_default()
            )
        }
        Event::ReportQueued { notify_id, status, .. } => {
            format!("status report {notify_id} (status {}) queued", status.code())
        }
        Event::ReportNotNeeded { .. } => "no callbackUrl: nothing to send".into(),
        Event::Delivery { attempt, url, http_status, answer, error, latency_ms, delivered, retry_at, .. } => {
            let reply = match (http_status, error) {
                (_, Some(e)) => format!("error: {e}"),
                (Some(s), None) => {
                    let answer: String = answer.as_deref().unwrap_or_default().chars().take(80).collect();
                    format!("HTTP {s} {answer:?}")
                }
                (None, None) => "no answer".into(),
            };
            let after = match (delivered, retry_at) {
                (true, _) => ", delivered".to_string(),
                (false, Some(at)) => format!("; next attempt due {}", rfc3339_millis(*at)),
                (false, None) => String::new(),
            };
            format!("report attempt {attempt} to {url} → {reply} ({latency_ms} ms){after}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Fen;
    use crate::vocab::AttemptOutcome;
    use time::macros::datetime;

    #[test]
    fn events_read_as_operators_know_them() {
        let at = datetime!(2026-11-25 10:00:00 UTC);
        let attempt = Event::Attempt {
            at,
            number: 1,
            outcome: AttemptOutcome::Parked,
            http_status: Some(401),
            code: Some("SIGN_ERROR".into()),
            message: Some("bad signature".into()),
            latency_ms: 12,
            mchid: Some("1900000001".into()),
        };
        assert_eq!(
            detail(&attempt),
            "WeChat Pay attempt 1 → parked (HTTP 401 SIGN_ERROR: bad signature, 12 ms) from account 1900000001"
        );
        let issued = Event::Finished { at, status: OrderStatus::Success, coupon_id: Some("C1".into()), reason: None };
        assert_eq!((kind(&issued), detail(&issued).as_str()), ("final", "coupon C1 issued (status 2)"));
        let delivery = Event::Delivery {
            at,
            attempt: 5,
            url: "http://m/cb".into(),
            http_status: Some(200),
            answer: Some("SUCCESS".into()),
            error: None,
            latency_ms: 3,
            delivered: true,
            retry_at: None,
        };
        assert_eq!(detail(&delivery), "report attempt 5 to http://m/cb → HTTP 200 \"SUCCESS\" (3 ms), delivered");
        let late = Event::IssuedLate { at, coupon_id: Some("C1".into()), charged: Fen(950), balance_after: Fen(-450) };
        assert_eq!(
            (kind(&late), detail(&late).as_str()),
            (
                "late",
                "coupon C1 issued late: charged 9.50 yuan again; balance -4.50 yuan (below zero: a debt the next top-up repays)"
            )
        );
        let failed = Event::Delivery {
            at,
            attempt: 1,
            url: "http://m/cb".into(),
            http_status: Some(500),
            answer: Some("oops".into()),
            error: None,
            latency_ms: 3,
            delivered: false,
            retry_at: Some(at + time::Duration::seconds(15)),
        };
        assert_eq!(
            detail(&failed),
            "report attempt 1 to http://m/cb → HTTP 500 \"oops\" (3 ms); next attempt due 2026-11-25T10:00:15.000Z"
        );
    }
}
