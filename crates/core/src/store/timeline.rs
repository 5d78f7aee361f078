//! An order's story for operators (`lijian order show`): every row any role
//! wrote about it, as typed events in time order. Facts only: the CLI (or any
//! other console) puts them into words.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::{OrderLookup, OrderView, Store, StoreError};
use crate::money::Fen;
use crate::status::OrderStatus;
use crate::vocab::{AttemptOutcome, Lane, LedgerKind, ReportOutcome, Source};

/// The door an order came in through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// The signed open API.
    Api,
    /// A line of a campaign file.
    Campaign { name: String, line: i64 },
    /// Any other source (an order without campaign and line).
    Other(Source),
}

/// One thing that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Stored and charged.
    Accepted {
        at: OffsetDateTime,
        door: Door,
        biz_code: String,
        open_id: String,
        activity_id: String,
        product_code: String,
        charged: Fen,
    },
    /// Its issue job was handed to the broker.
    Queued { at: OffsetDateTime },
    /// One call of WeChat Pay.
    Attempt {
        at: OffsetDateTime,
        number: i32,
        outcome: AttemptOutcome,
        http_status: Option<i32>,
        /// WeChat Pay's error code, if it answered with one.
        code: Option<String>,
        message: Option<String>,
        latency_ms: i32,
        /// The WeChat Pay account that sent it (None for attempts recorded before v6).
        mchid: Option<String>,
    },
    /// Its issue job (lane issue) or its report (lane notify) waits for an operator.
    Parked { at: OffsetDateTime, lane: Lane, reason: Option<String> },
    /// An operator sent the parked job or report again (`lijian dlq replay`).
    Replayed { at: OffsetDateTime, lane: Lane },
    /// The order became final (or its status otherwise settled at `at`).
    Finished { at: OffsetDateTime, status: OrderStatus, coupon_id: Option<String>, reason: Option<String> },
    /// Its settlement price was given back.
    Refunded { at: OffsetDateTime, amount: Fen, balance_after: Fen },
    /// A coupon arrived after the order had ended unissued and been refunded:
    /// recorded on the order and charged again (a balance below zero is a debt).
    IssuedLate { at: OffsetDateTime, coupon_id: Option<String>, charged: Fen, balance_after: Fen },
    /// A status report to the merchant was queued.
    ReportQueued { at: OffsetDateTime, notify_id: String, status: OrderStatus },
    /// The report had nowhere to go: no callbackUrl.
    ReportNotNeeded { at: OffsetDateTime },
    /// One attempt to deliver the report.
    Delivery {
        at: OffsetDateTime,
        attempt: i32,
        url: String,
        http_status: Option<i32>,
        /// The merchant's reply body.
        answer: Option<String>,
        /// Why no reply was read (connection refused, timeout…).
        error: Option<String>,
        latency_ms: i32,
        delivered: bool,
        /// When the next attempt is due, after a failed one that is not the last.
        retry_at: Option<OffsetDateTime>,
    },
}

impl Event {
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Event::Accepted { at, .. }
            | Event::Queued { at }
            | Event::Attempt { at, .. }
            | Event::Parked { at, .. }
            | Event::Replayed { at, .. }
            | Event::Finished { at, .. }
            | Event::Refunded { at, .. }
            | Event::IssuedLate { at, .. }
            | Event::ReportQueued { at, .. }
            | Event::ReportNotNeeded { at }
            | Event::Delivery { at, .. } => *at,
        }
    }
}

/// The order as it stands and what led there.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub order: OrderView,
    pub campaign: Option<String>,
    pub source_line: Option<i64>,
    /// Why its issue job is parked, while it is.
    pub dead_reason: Option<String>,
    /// When its coupon arrived after it had ended unissued (see [`Event::IssuedLate`]).
    pub issued_late_at: Option<OffsetDateTime>,
    /// In the order they happened: oldest first, events of the same instant in the
    /// order they were written, and never an attempt before its job was queued.
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
            (None, Some((merchant, biz))) => self.find_order(merchant, &OrderLookup::BizCode(biz.to_string())).await?,
            (None, None) => {
                return Err(StoreError::Invalid("name the order by code or by merchant and bizCode".into()))
            }
        };
        let Some(order) = order else { return Ok(None) };
        let client = self.client().await?;
        let code = order.order_code.as_str();
        let origin = origin(&client, code).await?;
        // Pushed in the order rows are written, so that the stable sort keeps
        // events of one instant in that order (a report before its "no callbackUrl").
        let mut events = vec![accepted(&order, &origin)];
        events.extend(order.enqueued_at.map(|at| Event::Queued { at }));
        events.extend(attempts(&client, code).await?);
        events.extend(origin.dead_at.map(|at| Event::Parked {
            at,
            lane: Lane::Issue,
            reason: origin.dead_reason.clone(),
        }));
        events.extend(replays(&client, code).await?);
        events.extend(finished(&order));
        events.extend(money_back_and_again(&client, &order).await?);
        for report in reports(&client, code).await? {
            events.extend(report.events());
            events.extend(deliveries(&client, &report.notify_id).await?);
        }
        events.sort_by_key(Event::at);
        queued_before_attempts(&mut events);
        let Origin { campaign, source_line, dead_reason, issued_late_at, .. } = origin;
        Ok(Some(Timeline { order, campaign, source_line, dead_reason, issued_late_at, events }))
    }
}

/// The order columns `OrderView` leaves out: where it came from, and its parking.
struct Origin {
    campaign: Option<String>,
    source_line: Option<i64>,
    dead_reason: Option<String>,
    dead_at: Option<OffsetDateTime>,
    issued_late_at: Option<OffsetDateTime>,
}

async fn origin(client: &impl GenericClient, code: &str) -> Result<Origin, StoreError> {
    let row = client
        .query_one(
            "SELECT campaign, source_line, dead_reason, dead_at, issued_late_at FROM orders WHERE order_code = $1",
            &[&code],
        )
        .await?;
    Ok(Origin {
        campaign: row.get(0),
        source_line: row.get(1),
        dead_reason: row.get(2),
        dead_at: row.get(3),
        issued_late_at: row.get(4),
    })
}

fn accepted(order: &OrderView, origin: &Origin) -> Event {
    let door = match (&origin.campaign, origin.source_line) {
        (Some(name), Some(line)) => Door::Campaign { name: name.clone(), line },
        _ if order.source == Source::Api => Door::Api,
        _ => Door::Other(order.source),
    };
    Event::Accepted {
        at: order.created_at,
        door,
        biz_code: order.biz_code.clone(),
        open_id: order.open_id.clone(),
        activity_id: order.activity_id.clone(),
        product_code: order.product_code.clone(),
        charged: order.settlement,
    }
}

fn finished(order: &OrderView) -> Option<Event> {
    Some(Event::Finished {
        at: order.finished_at?,
        status: order.status,
        coupon_id: order.coupon_id.clone(),
        reason: order.last_error.clone(),
    })
}

/// The job is stamped queued once the broker's confirm is recorded, which can
/// be after a fast consumer's first attempt began: the true order puts it first.
fn queued_before_attempts(events: &mut Vec<Event>) {
    let queued = events.iter().position(|e| matches!(e, Event::Queued { .. }));
    let first_attempt = events.iter().position(|e| matches!(e, Event::Attempt { .. }));
    if let (Some(queued), Some(attempt)) = (queued, first_attempt) {
        if attempt < queued {
            let event = events.remove(queued);
            events.insert(attempt, event);
        }
    }
}

/// Each replay, with the parking it ended (the order's and report's own
/// columns only hold the current one).
async fn replays(client: &impl GenericClient, code: &str) -> Result<Vec<Event>, StoreError> {
    let rows = client
        .query("SELECT lane, parked_at, reason, replayed_at FROM replays WHERE order_code = $1 ORDER BY id", &[&code])
        .await?;
    let mut events = Vec::with_capacity(rows.len() * 2);
    for r in &rows {
        let lane: Lane = r.get(0);
        if let Some(at) = r.get::<_, Option<OffsetDateTime>>(1) {
            events.push(Event::Parked { at, lane, reason: r.get(2) });
        }
        events.push(Event::Replayed { at: r.get(3), lane });
    }
    Ok(events)
}

async fn attempts(client: &impl GenericClient, code: &str) -> Result<Vec<Event>, StoreError> {
    let rows = client
        .query(
            "SELECT started_at, attempt, outcome, http_status, code, message, latency_ms, mchid
               FROM upstream_attempts WHERE order_code = $1 ORDER BY id",
            &[&code],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Event::Attempt {
            at: r.get(0),
            number: r.get(1),
            outcome: r.get(2),
            http_status: r.get(3),
            code: r.get(4),
            message: r.get(5),
            latency_ms: r.get(6),
            mchid: r.get(7),
        })
        .collect())
}

/// Its refund, and the charge again when a coupon arrived after it.
async fn money_back_and_again(client: &impl GenericClient, order: &OrderView) -> Result<Vec<Event>, StoreError> {
    let rows = client
        .query(
            "SELECT created_at, amount_fen, balance_after_fen, kind FROM balance_ledger
              WHERE order_code = $1 AND kind = ANY($2) ORDER BY id",
            &[&order.order_code, &&[LedgerKind::Refund, LedgerKind::LateCharge][..]],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (at, amount, balance_after) = (r.get(0), Fen(r.get(1)), Fen(r.get(2)));
            match r.get(3) {
                LedgerKind::LateCharge => {
                    Event::IssuedLate { at, coupon_id: order.coupon_id.clone(), charged: Fen(-amount.0), balance_after }
                }
                _ => Event::Refunded { at, amount, balance_after },
            }
        })
        .collect())
}

/// A status report row.
struct Report {
    notify_id: String,
    created_at: OffsetDateTime,
    status: OrderStatus,
    outcome: Option<ReportOutcome>,
    last_error: Option<String>,
    dead_at: Option<OffsetDateTime>,
}

impl Report {
    /// Queued, then not needed or parked (its delivery attempts are rows of their own).
    fn events(&self) -> Vec<Event> {
        let mut events =
            vec![Event::ReportQueued { at: self.created_at, notify_id: self.notify_id.clone(), status: self.status }];
        match (self.outcome, self.dead_at) {
            (Some(ReportOutcome::NoCallback), _) => events.push(Event::ReportNotNeeded { at: self.created_at }),
            (Some(ReportOutcome::Parked | ReportOutcome::Dismissed), Some(at)) => {
                events.push(Event::Parked { at, lane: Lane::Notify, reason: self.last_error.clone() })
            }
            _ => {}
        }
        events
    }
}

async fn reports(client: &impl GenericClient, code: &str) -> Result<Vec<Report>, StoreError> {
    let rows = client
        .query(
            // An order's report, then its correction: each through its partial
            // unique index (a plain `order_code = $1` matches neither index's
            // predicate and reads the whole table).
            "SELECT notify_id, created_at, status, outcome, last_error, dead_at FROM reports
              WHERE order_code = $1 AND corrects IS NULL
             UNION ALL
             SELECT notify_id, created_at, status, outcome, last_error, dead_at FROM reports
              WHERE order_code = $1 AND corrects IS NOT NULL",
            &[&code],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Report {
            notify_id: r.get(0),
            created_at: r.get(1),
            status: r.get(2),
            outcome: r.get(3),
            last_error: r.get(4),
            dead_at: r.get(5),
        })
        .collect())
}

async fn deliveries(client: &impl GenericClient, notify_id: &str) -> Result<Vec<Event>, StoreError> {
    let rows = client
        .query(
            "SELECT at, attempt, url, http_status, latency_ms, answer, error, delivered, retry_at
               FROM report_attempts WHERE notify_id = $1 ORDER BY id",
            &[&notify_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|a| Event::Delivery {
            at: a.get(0),
            attempt: a.get(1),
            url: a.get(2),
            http_status: a.get(3),
            latency_ms: a.get(4),
            answer: a.get(5),
            error: a.get(6),
            delivered: a.get(7),
            retry_at: a.get(8),
        })
        .collect())
}
