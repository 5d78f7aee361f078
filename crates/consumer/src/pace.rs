//! Send slots of one key (an issuing account, or an activity), taken from
//! PostgreSQL so that every consumer process together keeps the rate.
//!
//! The database hands out consecutive slots `1/rate` apart (GCRA: one "next
//! free time" per key, migration 0007) and never more than [`HORIZON`] ahead; a
//! process asks only for as many as it has sends waiting (at most [`CHUNK`]'s
//! worth), so processes interleave and one that dies wastes at most its few
//! slots. Each send waits for its slot and goes then: sends are spaced for the
//! whole cluster, so no one-second window at WeChat holds more than the rate.
//!
//! Failure modes, by construction:
//! - the database unreachable: no slots, so nothing is sent (fail closed);
//! - a process stalled (GC pause, SIGSTOP) while holding slots: a slot woken up
//!   for more than [`LATE`] after its time is thrown away, never spent late;
//! - clocks of hosts that disagree: slot times are read relative to the database
//!   clock of the same answer (and the round trip halved), never compared with
//!   another host's clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lijian_core::store::{Grant, Store};

/// Fraction of the limit used. Slots are exact, but a send reaches WeChat a few
/// milliseconds after its slot (scheduling, the network), and may leave up to
/// [`LATE`] after it. At 98.5% the simulator still saw sliding seconds of 201–205
/// at a 200/s limit with two or three consumers on this 2-core machine; 97% is
/// the safe side until that drift is understood (issue 11's note).
pub const RATE_FACTOR: f64 = 0.97;
/// Slots are granted at most this far ahead of the database clock.
const HORIZON: Duration = Duration::from_millis(100);
/// Most slots one call takes: this long of the rate. A process gets at most this
/// many slots per round trip to PostgreSQL, so it bounds a process's rate at
/// `CHUNK × rate / round trip`: measured with 20 ms, a lone survivor on a loaded
/// machine (40 ms round trips) could not exceed half of a 200/s limit. Half the
/// horizon still lets processes interleave within it.
const CHUNK: Duration = Duration::from_millis(50);
/// A slot reached later than this is dropped: sending it would bunch with the
/// slots after it.
pub const LATE: Duration = Duration::from_millis(10);
/// Poll no faster than this when every slot within the horizon is taken.
const MIN_POLL: Duration = Duration::from_millis(2);
/// Waits after a failed call for slots (database unreachable), doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

/// One key's slots in this process.
pub struct Pace {
    store: Store,
    key: String,
    /// Slots taken from the database and not used yet, earliest first.
    slots: tokio::sync::Mutex<VecDeque<Instant>>,
    /// Sends waiting for a slot now: how many the next call asks for.
    waiting: AtomicUsize,
    /// Slots used, i.e. sends let through (for metrics and the achieved rate).
    pub used: AtomicU64,
    /// Slots thrown away: reached too late (a stall) or left over.
    pub stale: AtomicU64,
    /// Calls to the database for slots.
    pub calls: AtomicU64,
}

impl Pace {
    pub fn new(store: Store, key: String) -> Pace {
        Pace {
            store,
            key,
            slots: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            used: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Waits for a slot at `rate` per second (the key's whole-cluster limit) and
    /// returns at its time. Never returns without a slot.
    pub async fn acquire(&self, rate: u32) {
        loop {
            let slot = self.reserve(rate).await;
            if self.wait_for(slot).await {
                return;
            }
        }
    }

    /// Takes the next slot (its time may be up to the horizon ahead) without
    /// waiting for it: the caller gets ready for it, then [`Pace::wait_for`]s it,
    /// or [`Pace::put_back`]s it for another sender of this process.
    pub async fn reserve(&self, rate: u32) -> Instant {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Leave(&self.waiting);
        let per_second = (f64::from(rate.max(1)) * RATE_FACTOR).max(1.0);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = {
                let mut slots = self.slots.lock().await;
                let now = Instant::now();
                while slots.front().is_some_and(|slot| *slot + LATE < now) {
                    slots.pop_front();
                    self.stale.fetch_add(1, Ordering::Relaxed);
                }
                match slots.pop_front() {
                    Some(slot) => Ok(slot),
                    None => self.refill(&mut slots, per_second).await,
                }
            };
            match next {
                Ok(slot) => return slot,
                Err(Wait::Poll(wait)) => {
                    backoff = FIRST_BACKOFF;
                    tokio::time::sleep(wait).await;
                }
                Err(Wait::Unavailable) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LONGEST_BACKOFF);
                }
            }
        }
    }

    /// Sleeps until `slot`; true when it is still good to send on (not more than
    /// [`LATE`] behind, e.g. after a stall), false when it was thrown away.
    pub async fn wait_for(&self, slot: Instant) -> bool {
        tokio::time::sleep_until(slot.into()).await;
        if Instant::now() <= slot + LATE {
            self.used.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.stale.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Hands a reserved slot that will not be used to the next sender of this
    /// process (slots stay in time order).
    pub async fn put_back(&self, slot: Instant) {
        let mut slots = self.slots.lock().await;
        let at = slots.partition_point(|s| *s < slot);
        slots.insert(at, slot);
    }

    /// Asks the database for slots; returns the first and keeps the rest.
    async fn refill(&self, slots: &mut VecDeque<Instant>, per_second: f64) -> Result<Instant, Wait> {
        let chunk = (per_second * CHUNK.as_secs_f64()).ceil().max(1.0) as usize;
        let want = self.waiting.load(Ordering::Relaxed).clamp(1, chunk) as u32;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let grant = match self.store.take_slots(&self.key, per_second, want, HORIZON).await {
            Ok(grant) => grant,
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "no send slots (database unreachable?); sending nothing until it answers");
                return Err(Wait::Unavailable);
            }
        };
        let answered = grant.received;
        let clock = Clock { local: grant.sent + (grant.received - grant.sent) / 2, grant };
        let first = clock.local_time(grant.first_slot);
        if grant.granted == 0 {
            // The first free slot becomes grantable once it is within the horizon.
            let ready = first.checked_sub(HORIZON).unwrap_or(answered);
            let jitter = Duration::from_micros(rand::random::<u64>() % 1000);
            return Err(Wait::Poll(ready.saturating_duration_since(answered).max(MIN_POLL) + jitter));
        }
        slots.extend((1..grant.granted).map(|i| first + grant.spacing * i));
        Ok(first)
    }
}

/// Why [`Pace::refill`] gave no slot.
enum Wait {
    /// Every slot within the horizon is taken; ask again after this.
    Poll(Duration),
    /// The database did not answer.
    Unavailable,
}

/// Reads the database's slot times on this process's clock.
struct Clock {
    /// The local instant matching `grant.db_now` (the middle of the round trip).
    local: Instant,
    grant: Grant,
}

impl Clock {
    fn local_time(&self, db_time: time::OffsetDateTime) -> Instant {
        let offset = db_time - self.grant.db_now;
        let magnitude = offset.unsigned_abs();
        if offset.is_negative() {
            self.local.checked_sub(magnitude).unwrap_or(self.local)
        } else {
            self.local + magnitude
        }
    }
}

/// Counts a waiter out when its `acquire` ends (also when cancelled).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
