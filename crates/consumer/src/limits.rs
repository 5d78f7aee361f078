//! How fast and how concurrently we call WeChat Pay.
//!
//! - A GCRA limiter (governor) per sender with a burst of two, so requests are
//!   spaced evenly and no one-second window exceeds the rate. It runs at 96% of
//!   the configured rate: the margin absorbs scheduling and network jitter that
//!   can bunch evenly granted requests into one of WeChat's windows (at 98% a
//!   loaded 2-core machine produced a 201-request window at a 200/s limit).
//! - An optional limiter per activity.
//! - A 429 pauses the whole sender (100 ms, doubling on consecutive 429s, at
//!   most 5 s) instead of hammering; a success resets it.
//! - At most one send per openid in flight: concurrent sends to one user can fail
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
    sender: Option<DefaultDirectRateLimiter>,
    per_activity: Option<DefaultKeyedRateLimiter<String>>,
    /// While set and in the future, no request is sent (after a 429).
    paused_until: Mutex<Option<Instant>>,
    consecutive_throttles: AtomicU32,
    openids: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Total time requests waited on limits, in microseconds (for metrics).
    pub waited_micros: AtomicU64,
    /// Sends that had to wait at least a millisecond (for metrics).
    pub waits: AtomicU64,
}

/// Held while a send to one openid is in flight.
pub struct OpenIdTurn<'a> {
    limits: &'a Limits,
    openid: String,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for OpenIdTurn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let (Some(lock), Ok(mut map)) = (self.lock.take(), self.limits.openids.lock()) {
            // Two references left (the map's and ours): nobody else waits; forget it.
            if Arc::strong_count(&lock) == 2 {
                map.remove(&self.openid);
            }
        }
    }
}

impl Limits {
    /// `rate` requests per second for the sender (0 = unlimited); `activity_rate`
    /// per activity (0 = no per-activity limit).
    pub fn new(rate: u32, activity_rate: u32) -> Limits {
        Limits {
            sender: quota(rate).filter(|_| rate > 0).map(RateLimiter::direct),
            per_activity: quota(activity_rate).filter(|_| activity_rate > 0).map(RateLimiter::keyed),
            paused_until: Mutex::new(None),
            consecutive_throttles: AtomicU32::new(0),
            openids: Mutex::new(HashMap::new()),
            waited_micros: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    /// Waits for this openid's turn; hold the returned value until the call ends.
    pub async fn openid_turn(&self, openid: &str) -> OpenIdTurn<'_> {
        let lock = {
            let mut map = self.openids.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(openid.to_string()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        OpenIdTurn { limits: self, openid: openid.to_string(), lock: Some(lock), guard: Some(guard) }
    }

    /// Waits until a request may be sent now.
    pub async fn wait_to_send(&self, activity_id: &str) {
        let started = Instant::now();
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if let Some(limiter) = &self.per_activity {
            limiter.until_key_ready(&activity_id.to_string()).await;
        }
        if let Some(limiter) = &self.sender {
            limiter.until_ready().await;
        }
        let waited = started.elapsed();
        self.waited_micros.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// WeChat said 429: pause every send for a while, longer each time in a row.
    pub fn throttled(&self) {
        let n = self.consecutive_throttles.fetch_add(1, Ordering::Relaxed);
        let pause = FIRST_PAUSE.saturating_mul(1 << n.min(6)).min(LONGEST_PAUSE);
        let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        let candidate = Instant::now() + pause;
        if until.is_none_or(|t| t < candidate) {
            *until = Some(candidate);
        }
        tracing::warn!(pause_ms = pause.as_millis() as u64, "WeChat Pay answered 429; pausing sends");
    }

    /// A call got through: back to full speed.
    pub fn succeeded(&self) {
        self.consecutive_throttles.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_send_per_openid_at_a_time() {
        let limits = Limits::new(0, 0);
        let first = limits.openid_turn("o1").await;
        let other = tokio::time::timeout(Duration::from_millis(20), limits.openid_turn("o2")).await;
        assert!(other.is_ok(), "another openid is not blocked");
        drop(other);
        let second = tokio::time::timeout(Duration::from_millis(50), limits.openid_turn("o1")).await;
        assert!(second.is_err(), "the same openid waits");
        drop(first);
        assert!(limits.openids.lock().map(|m| m.is_empty()).unwrap_or(false), "idle openids are forgotten");
    }

    #[tokio::test]
    async fn throttling_pauses_sends() {
        let limits = Limits::new(0, 0);
        limits.throttled();
        let started = Instant::now();
        limits.wait_to_send("a").await;
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
