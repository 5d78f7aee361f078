//! The consumer's reads and writes in PostgreSQL. Every write that finishes an
//! order also writes its status report (transactional outbox) and, for a failure,
//! the refund — in one transaction, guarded so that doing it twice changes nothing.

use std::collections::HashMap;

use lijian_core::store::dlq::fail_open_order;
use lijian_core::store::{Store, StoreError};
use time::OffsetDateTime;

/// An order as the consumer needs it to call WeChat.
#[derive(Debug, Clone)]
pub struct IssueOrder {
    pub order_code: String,
    pub open_id: String,
    pub app_id: String,
    pub activity_id: String,
    pub stock_id: String,
    pub stock_creator_mchid: String,
}

/// One attempt, for the timeline.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What [`begin_attempt`] found.
#[derive(Debug, Clone)]
pub enum Begun {
    /// Marked processing; the attempt number and the attempts since the last replay.
    Attempt {
        order: IssueOrder,
        attempt: i32,
        since_replay: i32,
    },
    /// The order is already final (2, 3 or 4): nothing to do.
    AlreadyFinal,
    NotFound,
}

/// Marks each order processing and counts the attempt, returning what the call to
/// WeChat needs — one statement for the whole batch, answers in input order.
pub async fn begin_attempts(store: &Store, codes: &[String]) -> Result<Vec<Begun>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE orders o SET status = 1, attempts = o.attempts + 1, updated_at = now()
               FROM activities a, (SELECT DISTINCT code FROM unnest($1::text[]) AS k(code)) k
              WHERE o.order_code = k.code AND o.status IN (0, 1) AND a.activity_id = o.activity_id
              RETURNING o.order_code, o.open_id, o.app_id, o.activity_id, a.stock_id, a.stock_creator_mchid,
                        o.attempts, o.attempts - o.attempts_before_replay",
        )
        .await?;
    let mut begun: HashMap<String, Begun> = HashMap::new();
    for r in client.query(&stmt, &[&codes]).await? {
        let order = IssueOrder {
            order_code: r.get(0),
            open_id: r.get(1),
            app_id: r.get(2),
            activity_id: r.get(3),
            stock_id: r.get(4),
            stock_creator_mchid: r.get(5),
        };
        begun.insert(order.order_code.clone(), Begun::Attempt { order, attempt: r.get(6), since_replay: r.get(7) });
    }
    let missing: Vec<&String> = codes.iter().filter(|c| !begun.contains_key(*c)).collect();
    if !missing.is_empty() {
        let rows = client.query("SELECT order_code FROM orders WHERE order_code = ANY($1)", &[&missing]).await?;
        for r in rows {
            begun.insert(r.get(0), Begun::AlreadyFinal);
        }
    }
    // A job delivered twice in one batch: both deliveries get the same attempt;
    // WeChat's idempotency on out_request_no makes the second call harmless.
    Ok(codes.iter().map(|c| begun.get(c).cloned().unwrap_or(Begun::NotFound)).collect())
}

async fn record_attempt(
    tx: &impl deadpool_postgres::GenericClient,
    order_code: &str,
    a: &AttemptRecord,
    outcome: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, http_status, code, outcome, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[&order_code, &a.attempt, &a.started_at, &a.latency_ms, &a.http_status, &a.code, &outcome, &a.message],
    )
    .await?;
    Ok(())
}

/// One success to record.
#[derive(Debug, Clone)]
pub struct Issued {
    pub order_code: String,
    pub coupon_id: String,
    pub attempt: AttemptRecord,
}

/// Successes: status 2 with the coupon, the attempt and the report, for a whole
/// batch in one statement (atomic, one commit). An order already final only gets
/// its attempt recorded.
pub async fn finish_issued(store: &Store, batch: &[Issued]) -> Result<(), StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "WITH input AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::int[], $7::text[], $8::text[])
                          AS t(order_code, coupon_id, attempt, started_at, latency_ms, http_status, code, message)),
             done AS (
                 UPDATE orders o SET status = 2, coupon_id = i.coupon_id, finished_at = now(), updated_at = now(),
                        last_error = NULL, dead_at = NULL, dead_reason = NULL
                   FROM input i
                  WHERE o.order_code = i.order_code AND o.status IN (0, 1)
                  RETURNING o.order_code),
             attempt AS (
                 INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, http_status, code, outcome, message)
                 SELECT order_code, attempt, started_at, latency_ms, http_status, code, 'issued', message FROM input),
             report AS (
                 INSERT INTO reports (notify_id, order_code, status)
                 SELECT 'N' || order_code, order_code, 2 FROM done
                 ON CONFLICT (order_code) DO NOTHING)
             SELECT count(*) FROM done",
        )
        .await?;
    let col = |f: &dyn Fn(&Issued) -> String| batch.iter().map(f).collect::<Vec<String>>();
    let codes = col(&|i| i.order_code.clone());
    let coupons = col(&|i| i.coupon_id.clone());
    let attempts: Vec<i32> = batch.iter().map(|i| i.attempt.attempt).collect();
    let started: Vec<OffsetDateTime> = batch.iter().map(|i| i.attempt.started_at).collect();
    let latency: Vec<i32> = batch.iter().map(|i| i.attempt.latency_ms).collect();
    let status: Vec<Option<i32>> = batch.iter().map(|i| i.attempt.http_status).collect();
    let code: Vec<Option<String>> = batch.iter().map(|i| i.attempt.code.clone()).collect();
    let message: Vec<Option<String>> = batch.iter().map(|i| i.attempt.message.clone()).collect();
    client.query_one(&stmt, &[&codes, &coupons, &attempts, &started, &latency, &status, &code, &message]).await?;
    Ok(())
}

/// Final failure: status 3, refund (ledger row, balance, budget), the attempt,
/// the report — one transaction. A second call finds the order final and only
/// records the attempt.
pub async fn finish_failed(store: &Store, order_code: &str, reason: &str, a: &AttemptRecord) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    fail_open_order(&tx, order_code, reason, false).await?;
    record_attempt(&tx, order_code, a, "failed").await?;
    tx.commit().await?;
    Ok(())
}

/// A retryable failure: remember why, keep processing.
pub async fn note_retry(store: &Store, order_code: &str, reason: &str, a: &AttemptRecord) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    tx.execute("UPDATE orders SET last_error = $2, updated_at = now() WHERE order_code = $1", &[&order_code, &reason])
        .await?;
    record_attempt(&tx, order_code, a, "retry").await?;
    tx.commit().await?;
    Ok(())
}

/// Parked: the order stays status 1 for the merchant, marked dead for operators.
pub async fn mark_parked(
    store: &Store,
    order_code: &str,
    reason: &str,
    a: Option<&AttemptRecord>,
) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE orders SET dead_at = now(), dead_reason = $2, last_error = $2, updated_at = now()
          WHERE order_code = $1 AND status IN (0, 1)",
        &[&order_code, &reason],
    )
    .await?;
    if let Some(a) = a {
        record_attempt(&tx, order_code, a, "parked").await?;
    }
    tx.commit().await?;
    Ok(())
}
