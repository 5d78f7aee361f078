//! One notify job, start to finish: `NotifyHandler::process(payload) -> Disposition`.
//! A report is delivered when the merchant answers HTTP 2xx with the body
//! `SUCCESS` (trimmed, any case); anything else is a failed attempt, retried on
//! the schedule from the broker. A refused target (SSRF) parks at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lijian_core::config::NOTIFY_BUSY_DELAY;
use lijian_core::queue::{Disposition, JobHandler, NotifyJob};
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::{storable, Store};
use lijian_core::vocab::ReportOutcome;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::report::{signed_headers, Signer};
use crate::report_store::{self, AttemptLog, Loaded, Pending};
use crate::ssrf::{Guard, GuardedResolver, DNS_TIMEOUT};

/// Longest wait for a free slot at an endpoint before the report goes back to the
/// broker for [`NOTIFY_BUSY_DELAY`].
const SLOT_WAIT: Duration = Duration::from_millis(250);

/// Most of a merchant's answer kept for the timeline.
const ANSWER_KEEP: usize = 1024;

#[derive(Default, Debug)]
pub struct Counters {
    /// POSTs made to merchants, whatever the answer.
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub parked: AtomicU64,
    pub no_callback: AtomicU64,
    pub busy: AtomicU64,
}

/// How many reports may be in flight per endpoint, and how many endpoints are
/// remembered (those with reports in flight always are).
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub per_endpoint: usize,
    pub endpoints: usize,
}

pub struct NotifyHandler {
    store: Store,
    http: reqwest::Client,
    guard: Arc<Guard>,
    platform_key: Arc<RsaPrivateKey>,
    /// Delays after failed attempts; after the last, the report is parked.
    schedule: Vec<Duration>,
    slots: Slots,
    /// In-flight slots per host:port, so one slow merchant cannot hold them all.
    /// Idle entries are dropped once there are more than `slots.endpoints`, so
    /// reports to ever new host:ports cannot grow it without end.
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub counters: Counters,
}

impl NotifyHandler {
    pub fn new(
        store: Store,
        guard: Guard,
        platform_key: RsaPrivateKey,
        schedule: Vec<Duration>,
        timeout: Duration,
        slots: Slots,
    ) -> Result<NotifyHandler, reqwest::Error> {
        let guard = Arc::new(guard);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect past the guarded resolver.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { guard: guard.clone() }))
            .user_agent(concat!("lijian-notifier/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(NotifyHandler {
            store,
            http,
            guard,
            platform_key: Arc::new(platform_key),
            schedule,
            slots: Slots { per_endpoint: slots.per_endpoint.max(1), endpoints: slots.endpoints.max(1) },
            endpoints: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    pub async fn process(&self, payload: &[u8]) -> Disposition {
        let job = match NotifyJob::from_bytes(payload) {
            Ok(job) => job,
            Err(reason) => return Disposition::Park { reason },
        };
        let order_code = job.notify_id().strip_prefix('N').unwrap_or_default();
        let span = tracing::info_span!("notify", notify_id = job.notify_id(), order_code);
        self.deliver(&job).instrument(span).await
    }

    async fn deliver(&self, job: &NotifyJob) -> Disposition {
        let notify_id = job.notify_id();
        // Saturated endpoint: back to the broker before touching the database, so a
        // dead endpoint's backlog costs other merchants as little as possible.
        let mut slot = None;
        if let Some(endpoint) = job.endpoint() {
            match self.endpoint_slot(endpoint).await {
                Some(permit) => slot = Some((endpoint.to_string(), permit)),
                None => return self.busy(),
            }
        }
        let pending = match report_store::load(&self.store, notify_id).await {
            Ok(Loaded::Pending(p)) => p,
            Ok(Loaded::Closed) => return Disposition::Ack,
            Ok(Loaded::NotFound) => return Disposition::Park { reason: format!("report {notify_id} not found") },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the report; job handed back");
                return Disposition::handed_back(&e);
            }
        };
        let order_code = pending.report.order_code.clone();
        let Some(url) = pending.url.clone() else {
            self.counters.no_callback.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(order_code, "no callbackUrl on the order or the merchant; nothing sent");
            return self
                .close(notify_id, ReportOutcome::NoCallback, "no callbackUrl on the order or the merchant")
                .await;
        };
        let target = match self.vet(&url).await {
            Ok(target) => target,
            Err(Vetting::Refused(reason)) => {
                tracing::warn!(order_code, %reason, "callback target refused");
                return self.park(notify_id, &format!("refused target: {reason}")).await;
            }
            Err(Vetting::Unresolved(reason)) => {
                // DNS may come back: an ordinary failed attempt.
                return self.failed(notify_id, &url, reason).await;
            }
        };
        if slot.as_ref().is_none_or(|(endpoint, _)| *endpoint != target) {
            // The job named no endpoint, or the callback changed since it was queued.
            drop(slot.take());
            match self.endpoint_slot(&target).await {
                Some(permit) => slot = Some((target, permit)),
                None => return self.busy(),
            }
        }
        let outcome = self.post(notify_id, &url, &pending).await;
        drop(slot);
        outcome
    }

    /// Not an attempt: the endpoint already has its share in flight.
    fn busy(&self) -> Disposition {
        self.counters.busy.fetch_add(1, Ordering::Relaxed);
        Disposition::RetryAfter(NOTIFY_BUSY_DELAY)
    }

    async fn post(&self, notify_id: &str, url: &str, pending: &Pending) -> Disposition {
        let body = pending.report.body();
        let signer = match &pending.md5_key {
            Some(key) => Signer::Md5(key),
            None => Signer::Platform(&self.platform_key),
        };
        let headers = match signed_headers(&pending.business_id, &signer, &body).await {
            Ok(h) => h,
            Err(e) => return self.park(notify_id, &format!("cannot sign the report: {e}")).await,
        };
        let mut request = self.http.post(url).header("Content-Type", "application/json; charset=utf-8").body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let answer = read_prefix(response).await;
                Ok((status, answer))
            }
            Err(e) => Err(error_text(&e)),
        };
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let (status, answer, error) = match outcome {
            Ok((status, answer)) => (Some(status), Some(answer), None),
            Err(e) => (None, None, Some(e)),
        };
        let delivered = status.is_some_and(|s| s.is_success())
            && answer.as_deref().is_some_and(|a| a.trim().eq_ignore_ascii_case("SUCCESS"));
        let log = AttemptLog {
            notify_id,
            url,
            http_status: status.map(|s| i32::from(s.as_u16())),
            latency_ms,
            answer: answer.clone(),
            error: error.clone(),
            delivered,
            schedule: &self.schedule,
        };
        let since_replay = match self.record(&log).await {
            Ok(since_replay) => since_replay,
            Err(disposition) => return disposition,
        };
        if delivered {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            tracing::info!(order_code = pending.report.order_code, attempt = since_replay, "report delivered");
            return Disposition::Ack;
        }
        self.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.retry_or_park(
            notify_id,
            since_replay,
            error.unwrap_or_else(|| format!("HTTP {}", status.map(|s| s.as_u16()).unwrap_or(0))),
        )
        .await
    }

    /// A failed attempt that never reached the POST (e.g. DNS): counted, then retried.
    async fn failed(&self, notify_id: &str, url: &str, error: String) -> Disposition {
        let log = AttemptLog {
            notify_id,
            url,
            http_status: None,
            latency_ms: 0,
            answer: None,
            error: Some(error.clone()),
            delivered: false,
            schedule: &self.schedule,
        };
        let since_replay = match self.record(&log).await {
            Ok(since_replay) => since_replay,
            Err(disposition) => return disposition,
        };
        self.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.retry_or_park(notify_id, since_replay, error).await
    }

    async fn retry_or_park(&self, notify_id: &str, since_replay: i32, reason: String) -> Disposition {
        match self.schedule.get((since_replay.max(1) - 1) as usize) {
            Some(delay) => Disposition::RetryAfter(*delay),
            None => {
                self.park(notify_id, &format!("retries exhausted after {since_replay} attempts; last: {reason}")).await
            }
        }
    }

    /// Records the attempt and returns the attempts since the last replay. Err is
    /// what to do with the job instead: Ack when another notifier closed the
    /// report meanwhile, Requeue when the database failed.
    async fn record(&self, log: &AttemptLog<'_>) -> Result<i32, Disposition> {
        match report_store::record_attempt(&self.store, log).await {
            Ok(Some(since_replay)) => Ok(since_replay),
            Ok(None) => Err(Disposition::Ack),
            Err(e) => {
                tracing::warn!(error = %e, delivered = log.delivered, "cannot record the attempt; job handed back");
                Err(Disposition::handed_back(&e))
            }
        }
    }

    /// Parks the report in the database first (see [`JobHandler::give_up`]).
    pub async fn give_up(&self, payload: &[u8], reason: String) -> Disposition {
        match NotifyJob::from_bytes(payload) {
            Ok(job) => {
                tracing::warn!(notify_id = job.notify_id(), %reason, "report given up");
                self.park(job.notify_id(), &reason).await
            }
            Err(unreadable) => Disposition::Park { reason: format!("{reason}; {unreadable}") },
        }
    }

    async fn park(&self, notify_id: &str, reason: &str) -> Disposition {
        match self.close(notify_id, ReportOutcome::Parked, reason).await {
            Disposition::Ack => {
                self.counters.parked.fetch_add(1, Ordering::Relaxed);
                Disposition::Park { reason: reason.to_string() }
            }
            requeue => requeue,
        }
    }

    async fn close(&self, notify_id: &str, outcome: ReportOutcome, reason: &str) -> Disposition {
        match report_store::close(&self.store, notify_id, outcome, reason).await {
            Ok(()) => Disposition::Ack,
            Err(e) => {
                tracing::warn!(error = %e, %outcome, "cannot close the report; job handed back");
                Disposition::handed_back(&e)
            }
        }
    }

    /// Checks the URL and where its host resolves now; the resolver checks again
    /// at connect time. Returns the endpoint key (host:port).
    async fn vet(&self, url: &str) -> Result<String, Vetting> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Vetting::Refused(format!("invalid callbackUrl: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Vetting::Refused(format!("scheme {} is not http or https", parsed.scheme())));
        }
        let host = parsed.host_str().ok_or_else(|| Vetting::Refused("callbackUrl has no host".into()))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        self.guard.check_port(port).map_err(Vetting::Refused)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((bare, port)))
                .await
                .map_err(|_| Vetting::Unresolved(format!("no DNS answer for {host} within {DNS_TIMEOUT:?}")))?
                .map_err(|e| Vetting::Unresolved(format!("cannot resolve {host}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(Vetting::Unresolved(format!("{host} has no address")));
        }
        if let Some(reason) = addresses.iter().find_map(|ip| self.guard.check(*ip).err()) {
            return Err(Vetting::Refused(format!("{host} resolves to {reason}")));
        }
        Ok(format!("{host}:{port}"))
    }

    /// Host:ports whose slot count is kept now.
    pub fn endpoints_tracked(&self) -> usize {
        self.endpoints.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// A slot for the endpoint, waiting at most [`SLOT_WAIT`]: long enough for a
    /// healthy endpoint's slots to turn over, short enough that reports for a dead
    /// one go back to the broker instead of holding delivery capacity.
    async fn endpoint_slot(&self, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= self.slots.endpoints && !map.contains_key(endpoint) {
                // Only the map holds an idle endpoint's semaphore (a permit holds
                // an Arc of it), so these can go without losing a count.
                map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            map.entry(endpoint.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.slots.per_endpoint))).clone()
        };
        tokio::time::timeout(SLOT_WAIT, semaphore.acquire_owned()).await.ok()?.ok()
    }
}

enum Vetting {
    /// Never send there: final for this report.
    Refused(String),
    /// Could not tell (DNS): a failed attempt, retried.
    Unresolved(String),
}

/// Up to 1 KiB of the answer, as text.
async fn read_prefix(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < ANSWER_KEEP {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(ANSWER_KEEP);
    storable(&String::from_utf8_lossy(&kept)).into_owned()
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { format!("timeout: {e}") } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    storable(&text).into_owned()
}

impl JobHandler for NotifyHandler {
    fn process(&self, payload: &[u8]) -> impl std::future::Future<Output = Disposition> + Send {
        NotifyHandler::process(self, payload)
    }

    fn give_up(&self, payload: &[u8], reason: String) -> impl std::future::Future<Output = Disposition> + Send {
        NotifyHandler::give_up(self, payload, reason)
    }
}

impl lijian_core::telemetry::MetricsSource for NotifyHandler {
    fn render(&self, out: &mut lijian_core::telemetry::Exposition) {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.counter("lijian_report_attempts_total", "Status report POSTs to merchants", n(&c.attempts));
        out.counter(
            "lijian_reports_delivered_total",
            "Reports the merchant acknowledged with SUCCESS",
            n(&c.delivered),
        );
        out.counter(
            "lijian_report_failed_attempts_total",
            "Report attempts that failed (retried or parked)",
            n(&c.failed_attempts),
        );
        out.counter("lijian_reports_parked_total", "Reports parked in the dead-letter queue", n(&c.parked));
        out.counter("lijian_reports_no_callback_total", "Reports with no callback URL to go to", n(&c.no_callback));
        out.gauge(
            "lijian_report_endpoints_tracked",
            "Callback host:ports with a slot count kept",
            self.endpoints_tracked() as f64,
        );
        out.counter(
            "lijian_report_endpoint_busy_total",
            "Jobs delayed because their endpoint was saturated",
            n(&c.busy),
        );
    }
}
