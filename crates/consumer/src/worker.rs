//! One issue job, start to finish, as a pure step the runner (or a test) drives:
//! `IssueHandler::process(payload) -> Disposition`. The broker side effects (ack, retry
//! tier, dead-letter) are the runner's; everything here is database and WeChat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;

use lijian_core::batch::Batcher;
use lijian_core::queue::{Disposition, IssueJob, IssueLane, JobHandler};
use lijian_core::store::{AttemptRecord, Begun, Finished, Issued, Store};
use lijian_core::telemetry::{render_reasons, Exposition, Histogram, MetricsSource, ReasonCounts, LATENCY_BUCKETS};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::accounts::{Accounts, Unresolved};
use crate::batch::{self, Begins, Finishes};
use crate::limits::Limits;
use crate::outcome::{classify, outcome_unknown, Verdict};
use crate::wxpay::{Call, Reply, SendCoupon};

/// Counters for progress reports and metrics.
pub struct Counters {
    pub issued: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub parked: AtomicU64,
    pub skipped: AtomicU64,
    /// Coupons that arrived for orders already failed or cancelled (and
    /// refunded): recorded, charged again, corrected report queued.
    pub issued_late: AtomicU64,
    /// Final failures per WeChat Pay error code.
    pub failures: ReasonCounts,
    /// Every call to WeChat Pay, answered or not.
    pub upstream_latency: Histogram,
    /// Acceptance → coupon of each issued order, interactive then campaign.
    pub issue_latency: [Histogram; 2],
}

/// Acceptance → coupon: seconds for an API order, up to hours for a campaign
/// order held for its release.
pub const ISSUE_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

fn lane_index(lane: IssueLane) -> usize {
    match lane {
        IssueLane::Interactive => 0,
        IssueLane::Campaign => 1,
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            issued: AtomicU64::default(),
            failed: AtomicU64::default(),
            retried: AtomicU64::default(),
            parked: AtomicU64::default(),
            skipped: AtomicU64::default(),
            issued_late: AtomicU64::default(),
            failures: ReasonCounts::default(),
            upstream_latency: Histogram::new(LATENCY_BUCKETS),
            issue_latency: [Histogram::new(ISSUE_BUCKETS), Histogram::new(ISSUE_BUCKETS)],
        }
    }
}

pub struct IssueHandler {
    store: Store,
    accounts: Accounts,
    limits: Limits,
    /// Delays between attempts; attempt n failing waits `schedule[n-1]`, and a
    /// failure after the last delay parks the job.
    schedule: Vec<Duration>,
    pub counters: Counters,
    /// Batched "mark processing" writes (see `batch.rs`).
    begins: Batcher<Begins>,
    /// Batched "issued" writes.
    finishes: Batcher<Finishes>,
}

/// Orders of a batch job worked on per delivery; the rest is handed back to the
/// queue as a smaller batch job. A consumer holds at most prefetch × this many
/// orders, so a backlog queued before a second consumer started is shared with
/// it (measured: with all 100 kept, 140 jobs fit one consumer's prefetch and a
/// second consumer got nothing). Sixteen at a time keep 64 concurrent jobs at
/// 1,024 orders waiting for send slots, seconds of work at 500/s, while a
/// 100-order job costs six extra publishes.
const BATCH_SHARE: usize = 16;

impl IssueHandler {
    pub fn new(store: Store, accounts: Accounts, limits: Limits, schedule: Vec<Duration>) -> IssueHandler {
        let begins = batch::begins(store.clone());
        let finishes = batch::finishes(store.clone());
        IssueHandler { store, accounts, limits, schedule, counters: Counters::default(), begins, finishes }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// One issue job: parse, begin, call WeChat, record, decide.
    pub async fn process(&self, payload: &[u8]) -> Disposition {
        let (job, lane) = match IssueJob::from_bytes_in(payload) {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::error!(%reason, "unreadable issue job parked");
                return Disposition::Park { reason };
            }
        };
        match job {
            IssueJob::V1 { order_code } => self.process_one(&order_code, lane).await,
            IssueJob::V2 { mut order_codes } => {
                // A share of the orders here, each as if it had come alone (retries
                // and parkings travel on as single-order jobs, so a batch is never
                // retried as a whole); the rest goes back to the queue for whichever
                // consumer is free. Every part keeps the job's lane.
                let rest = order_codes.split_off(order_codes.len().min(BATCH_SHARE));
                let mut parts = futures::stream::iter(order_codes)
                    .map(|code| async move {
                        let disposition = self.process_one(&code, lane).await;
                        (IssueJob::V1 { order_code: code }.to_bytes_in(lane), disposition)
                    })
                    .buffer_unordered(BATCH_SHARE)
                    .collect::<Vec<_>>()
                    .await;
                if !rest.is_empty() {
                    parts.push((IssueJob::for_orders(rest).to_bytes_in(lane), Disposition::Again));
                }
                Disposition::Split(parts)
            }
        }
    }

    async fn process_one(&self, order_code: &str, lane: IssueLane) -> Disposition {
        let span = tracing::info_span!("issue", order_code);
        self.process_order(order_code, lane).instrument(span).await
    }

    async fn process_order(&self, order_code: &str, lane: IssueLane) -> Disposition {
        let (order, attempt, since_replay) = match self.begins.call(order_code.to_string()).await {
            Ok(Begun::Attempt { order, attempt, since_replay }) => (order, attempt, since_replay),
            Ok(Begun::AlreadyFinal) => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                return Disposition::Ack;
            }
            Ok(Begun::Parked) => {
                // A stray duplicate: the parked job in the dead-letter queue is the
                // order's one job now, and only an operator moves it.
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::info!("order parked for an operator; duplicate job dropped");
                return Disposition::Ack;
            }
            Ok(Begun::NotFound) => return Disposition::Park { reason: format!("order {order_code} not found") },
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark the order processing; job handed back");
                return Disposition::handed_back(&e);
            }
        };
        let account = match self.accounts.resolve(&order.issuer_mchid).await {
            Ok(account) => account,
            // Nothing was sent: no attempt to record. A replay after the operator's
            // fix sends it (once: the out_request_no is the order code).
            Err(Unresolved::Park(reason)) => {
                return match self.store.mark_parked(order_code, &reason, None).await {
                    Ok(()) => self.park(reason),
                    Err(e) => Disposition::handed_back(&e),
                };
            }
            Err(Unresolved::Retry(reason)) => {
                tracing::warn!(%reason, "no account to send from yet; job handed back");
                return Disposition::Requeue;
            }
        };
        let appid = if order.app_id.is_empty() { account.default_appid.clone() } else { order.app_id.clone() };
        let request = SendCoupon {
            stock_id: order.stock_id.clone(),
            // Stable across retries, redeliveries and replays: WeChat treats a
            // re-send with the same number as the same request.
            out_request_no: order.order_code.clone(),
            appid,
            stock_creator_mchid: order.stock_creator_mchid.clone(),
        };
        let user = self.limits.user_turn(&account.mchid, &order.open_id).await;
        let ahead = self.limits.prepare_turn(&account.mchid, account.rate, lane).await;
        let (call, sent) = match account.client.prepare(&order.open_id, &request).await {
            Ok(prepared) => {
                let _sending =
                    self.limits.send_turn(user, &account.mchid, account.rate, &order.activity_id, lane).await;
                drop(ahead);
                (account.client.send(prepared).await, true)
            }
            Err(reply) => {
                drop(ahead);
                (Call { reply, latency: Duration::ZERO }, false)
            }
        };
        self.counters.upstream_latency.observe(call.latency);
        let started_at = time::OffsetDateTime::now_utc() - call.latency;
        let (http_status, code, message) = match &call.reply {
            Reply::Issued { .. } => (Some(200), None, None),
            Reply::Refused { http_status, code, message } => {
                (Some(i32::from(*http_status)), Some(code.clone()), Some(message.clone()))
            }
            Reply::Unverifiable { http_status, reason } => (Some(i32::from(*http_status)), None, Some(reason.clone())),
            Reply::NoAnswer { reason, .. } => (None, None, Some(reason.clone())),
        };
        let record = AttemptRecord {
            attempt,
            started_at,
            latency_ms: call.latency.as_millis().min(i32::MAX as u128) as i32,
            http_status,
            code,
            message,
            mchid: Some(account.mchid.clone()),
            outcome_unknown: sent && outcome_unknown(&call.reply),
        };
        let verdict = classify(&call.reply);
        let issued = matches!(verdict, Verdict::Issued { .. });
        let disposition = self.decide(order_code, verdict, since_replay, &record).await;
        if issued && disposition == Disposition::Ack {
            let waited = OffsetDateTime::now_utc() - order.accepted_at;
            self.counters.issue_latency[lane_index(lane)].observe(waited.try_into().unwrap_or_default());
        }
        disposition
    }

    async fn decide(
        &self,
        order_code: &str,
        verdict: Verdict,
        since_replay: i32,
        record: &AttemptRecord,
    ) -> Disposition {
        let written = match &verdict {
            Verdict::Issued { coupon_id } => {
                self.limits.succeeded(record.mchid.as_deref().unwrap_or_default());
                let issued =
                    Issued { order_code: order_code.into(), coupon_id: coupon_id.clone(), attempt: record.clone() };
                match self.finishes.call(issued).await {
                    Ok(Finished::IssuedLate { charged, balance_after }) => {
                        self.counters.issued_late.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            coupon_id,
                            charged = %charged,
                            balance_after = %balance_after,
                            "coupon arrived after the order had ended unissued and been refunded: recorded, \
                             merchant charged again, corrected report queued"
                        );
                        Ok(())
                    }
                    other => other.map(|_| ()),
                }
            }
            Verdict::Fail { message, .. } => self.store.finish_failed(order_code, message, record).await,
            Verdict::Park { message, .. } => self.store.mark_parked(order_code, message, Some(record)).await,
            Verdict::Retry { reason, throttled } => {
                if *throttled {
                    self.limits.throttled(record.mchid.as_deref().unwrap_or_default());
                }
                if since_replay as usize > self.schedule.len() {
                    let reason = format!("retries exhausted after {since_replay} attempts; last: {reason}");
                    let parked = self.store.mark_parked(order_code, &reason, Some(record)).await;
                    return match parked {
                        Ok(()) => self.park(reason),
                        Err(e) => Disposition::handed_back(&e),
                    };
                }
                self.store.note_retry(order_code, reason, record).await
            }
        };
        if let Err(e) = written {
            // The outcome is not recorded; the job comes back and the re-send with the
            // same out_request_no returns the same answer (for a coupon: the same one).
            // Unless the order was failed meanwhile: then the coupon id logged here is
            // the only trace of a late coupon (docs/decisions.md).
            let coupon_id = match &verdict {
                Verdict::Issued { coupon_id } => coupon_id.as_str(),
                _ => "",
            };
            tracing::warn!(error = %e, coupon_id, "cannot record the outcome; job handed back");
            return Disposition::handed_back(&e);
        }
        match verdict {
            Verdict::Issued { coupon_id } => {
                self.counters.issued.fetch_add(1, Ordering::Relaxed);
                tracing::info!(coupon_id, "coupon issued");
                Disposition::Ack
            }
            Verdict::Fail { code, .. } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.counters.failures.add(&code);
                tracing::info!(code, "order failed; refunded");
                Disposition::Ack
            }
            Verdict::Park { message, .. } => self.park(message),
            Verdict::Retry { reason, .. } => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                let delay = self.schedule[(since_replay.max(1) - 1) as usize];
                tracing::info!(%reason, delay_ms = delay.as_millis() as u64, "will retry");
                Disposition::RetryAfter(delay)
            }
        }
    }

    /// Parks the job's open orders in the database first (see
    /// [`JobHandler::give_up`]); orders already final are left alone.
    pub async fn give_up(&self, payload: &[u8], reason: String) -> Disposition {
        let job = match IssueJob::from_bytes(payload) {
            Ok(job) => job,
            Err(unreadable) => return Disposition::Park { reason: format!("{reason}; {unreadable}") },
        };
        for order_code in job.order_codes() {
            if let Err(e) = self.store.give_up_order(order_code, &reason).await {
                tracing::warn!(error = %e, order_code, "cannot park the order; job handed back");
                return Disposition::Requeue;
            }
        }
        self.park(reason)
    }

    fn park(&self, reason: String) -> Disposition {
        self.counters.parked.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%reason, "job parked in the dead-letter queue");
        Disposition::Park { reason }
    }
}

impl MetricsSource for IssueHandler {
    fn render(&self, out: &mut Exposition) {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.counter("lijian_coupons_issued_total", "Coupons issued by WeChat Pay", n(&c.issued));
        out.counter("lijian_orders_failed_total", "Orders failed for good (refunded)", n(&c.failed));
        render_reasons(
            out,
            "lijian_orders_failed_by_code_total",
            "Failed orders per WeChat Pay code",
            "code",
            &c.failures,
        );
        out.counter("lijian_issue_retries_total", "Issue attempts that will be retried", n(&c.retried));
        out.counter("lijian_issue_parked_total", "Issue jobs parked in the dead-letter queue", n(&c.parked));
        out.counter(
            "lijian_issue_skipped_total",
            "Jobs for orders already final or parked (redeliveries, stray duplicates)",
            n(&c.skipped),
        );
        out.counter(
            "lijian_coupons_issued_late_total",
            "Coupons that arrived for orders already failed or cancelled: recorded, charged again, report corrected",
            n(&c.issued_late),
        );
        out.counter("lijian_rate_limit_waits_total", "Sends that waited for the rate limiter", n(&self.limits.waits));
        out.gauge(
            "lijian_rate_limit_wait_seconds_total",
            "Time sends spent waiting for the rate limiter",
            n(&self.limits.waited_micros) as f64 / 1e6,
        );
        out.histogram("lijian_upstream_latency_seconds", "WeChat Pay send-coupon call latency", &c.upstream_latency);
        out.labelled_histograms(
            "lijian_issue_latency_seconds",
            "Order acceptance to coupon, per issue lane (a campaign's includes its wait for release)",
            "lane",
            [IssueLane::Interactive, IssueLane::Campaign].map(|l| (l.as_str(), &c.issue_latency[lane_index(l)])),
        );
        self.limits.render(out);
    }
}

impl JobHandler for IssueHandler {
    fn process(&self, payload: &[u8]) -> impl std::future::Future<Output = Disposition> + Send {
        IssueHandler::process(self, payload)
    }

    fn give_up(&self, payload: &[u8], reason: String) -> impl std::future::Future<Output = Disposition> + Send {
        IssueHandler::give_up(self, payload, reason)
    }
}
