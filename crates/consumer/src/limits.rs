//! How fast and how concurrently we call WeChat Pay.
//!
//! - A GCRA limiter (governor) per sending account (mchid) with a burst of two, so requests are
//!   spaced evenly and no one-second window exceeds the rate. It runs at 96% of
//!   the configured rate: the margin absorbs scheduling and network jitter that
//!   can bunch evenly granted requests into one of WeChat's windows (at 98% a
//!   loaded 2-core machine produced a 201-request window at a 200/s limit).
//! - An optional limiter per activity.
//! - A 429 pauses that account's sends (100 ms, doubling on consecutive 429s, at
//!   most 5 s) instead of hammering; a success resets it.
//! - At most one send per (account, openid) in flight: concurrent sends to one user can fail
//!   with a spurious RULE_LIMIT at WeChat.
//!
//! All of this is per process. With several consumer processes, give each a share
//! of the merchant's limit through `LIJIAN_WXPAY_RATE` (see docs/operations.md).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Fraction of the configured rate actually used (see the module comment).
const RATE_MARGIN: f64 = 0.96;
/// Two, not one: a waiter woken a little late (timer granularity) may catch up
/// with one extra request instead of losing its slot, which kept the achieved rate
/// at 94% of the limit with a burst of one. Any one-second window still holds at
/// most `rate × 0.96 + 2` requests at the limiter.
const BURST: NonZeroU32 = NonZeroU32::new(2).expect("2 is not zero");
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

fn quota(per_second: u32) -> Option<Quota> {
    let effective = (f64::from(per_second) * RATE_MARGIN).max(1.0);
    Quota::with_period(Duration::from_secs_f64(1.0 / effective)).map(|q| q.allow_burst(BURST))
}

pub struct Limits {
    /// One sender per WeChat Pay account (mchid).
    senders: Mutex<HashMap<String, Arc<Sender>>>,
    per_activity: Option<DefaultKeyedRateLimiter<String>>,
    /// Keyed by (mchid, openid): the rule is WeChat's, per merchant.
    openids: Mutex<HashMap<OpenIdKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Total time requests waited on limits, in microseconds (for metrics).
    pub waited_micros: AtomicU64,
    /// Sends that had to wait at least a millisecond (for metrics).
    pub waits: AtomicU64,
}

/// (mchid, openid).
type OpenIdKey = (String, String);

/// One account's pace: its limiter (rebuilt when its rate changes) and its 429 pause.
#[derive(Default)]
struct Sender {
    limiter: Mutex<Option<(u32, Arc<DefaultDirectRateLimiter>)>>,
    /// While set and in the future, no request is sent (after a 429).
    paused_until: Mutex<Option<Instant>>,
    consecutive_throttles: AtomicU32,
}

impl Sender {
    /// The limiter for `rate` (0 = unlimited).
    fn limiter(&self, rate: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
        let mut current = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some((r, limiter)) if *r == rate => Some(limiter.clone()),
            _ => {
                *current = quota(rate).filter(|_| rate > 0).map(|q| (rate, Arc::new(RateLimiter::direct(q))));
                current.as_ref().map(|(_, limiter)| limiter.clone())
            }
        }
    }
}

/// Held while a send to one openid is in flight.
pub struct OpenIdTurn<'a> {
    limits: &'a Limits,
    key: OpenIdKey,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for OpenIdTurn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let (Some(lock), Ok(mut map)) = (self.lock.take(), self.limits.openids.lock()) {
            // Two references left (the map's and ours): nobody else waits; forget it.
            if Arc::strong_count(&lock) == 2 {
                map.remove(&self.key);
            }
        }
    }
}

impl Limits {
    /// `activity_rate` requests per second per activity (0 = no per-activity
    /// limit); each account's rate comes with every [`Limits::wait_to_send`].
    pub fn new(activity_rate: u32) -> Limits {
        Limits {
            senders: Mutex::new(HashMap::new()),
            per_activity: quota(activity_rate).filter(|_| activity_rate > 0).map(RateLimiter::keyed),
            openids: Mutex::new(HashMap::new()),
            waited_micros: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    fn sender(&self, mchid: &str) -> Arc<Sender> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.entry(mchid.to_string()).or_default().clone()
    }

    /// Waits for this openid's turn at this account; hold the returned value until the call ends.
    pub async fn openid_turn(&self, mchid: &str, openid: &str) -> OpenIdTurn<'_> {
        let key = (mchid.to_string(), openid.to_string());
        let lock = {
            let mut map = self.openids.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        OpenIdTurn { limits: self, key, lock: Some(lock), guard: Some(guard) }
    }

    /// Waits until account `mchid`, allowed `rate` requests/s (0 = unlimited),
    /// may send a request now.
    pub async fn wait_to_send(&self, mchid: &str, rate: u32, activity_id: &str) {
        let started = Instant::now();
        let sender = self.sender(mchid);
        loop {
            let until = *sender.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if let Some(limiter) = &self.per_activity {
            limiter.until_key_ready(&activity_id.to_string()).await;
        }
        if let Some(limiter) = sender.limiter(rate) {
            limiter.until_ready().await;
        }
        let waited = started.elapsed();
        self.waited_micros.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// WeChat said 429 to `mchid`: pause that account's sends for a while, longer
    /// each time in a row.
    pub fn throttled(&self, mchid: &str) {
        let sender = self.sender(mchid);
        let n = sender.consecutive_throttles.fetch_add(1, Ordering::Relaxed);
        let pause = FIRST_PAUSE.saturating_mul(1 << n.min(6)).min(LONGEST_PAUSE);
        let mut until = sender.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        let candidate = Instant::now() + pause;
        if until.is_none_or(|t| t < candidate) {
            *until = Some(candidate);
        }
        tracing::warn!(mchid, pause_ms = pause.as_millis() as u64, "WeChat Pay answered 429; pausing sends");
    }

    /// A call of `mchid` got through: back to full speed.
    pub fn succeeded(&self, mchid: &str) {
        self.sender(mchid).consecutive_throttles.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_send_per_openid_at_a_time() {
        let limits = Limits::new(0);
        let first = limits.openid_turn("m1", "o1").await;
        let other = tokio::time::timeout(Duration::from_millis(20), limits.openid_turn("m1", "o2")).await;
        assert!(other.is_ok(), "another openid is not blocked");
        drop(other);
        let elsewhere = tokio::time::timeout(Duration::from_millis(20), limits.openid_turn("m2", "o1")).await;
        assert!(elsewhere.is_ok(), "the same openid at another account is not blocked");
        drop(elsewhere);
        let second = tokio::time::timeout(Duration::from_millis(50), limits.openid_turn("m1", "o1")).await;
        assert!(second.is_err(), "the same openid waits");
        drop(first);
        assert!(limits.openids.lock().map(|m| m.is_empty()).unwrap_or(false), "idle openids are forgotten");
    }

    #[tokio::test]
    async fn throttling_pauses_sends() {
        let limits = Limits::new(0);
        limits.throttled("m1");
        let started = Instant::now();
        limits.wait_to_send("m2", 0, "a").await;
        assert!(started.elapsed() < Duration::from_millis(50), "another account is not paused");
        limits.wait_to_send("m1", 0, "a").await;
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
