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
//! Interactive sends go first: campaign waiters of a key take their slots one
//! at a time (behind a turn of their own), so an interactive send queues behind
//! at most one campaign send here, and behind the slots other processes were
//! granted — at most [`HORIZON`] ahead. Campaigns get whatever interactive
//! sends leave; nothing is reserved for either.
//!
//! Failure modes, by construction:
//! - the database unreachable: no slots, so nothing is sent (fail closed);
//! - a process stalled (GC pause, SIGSTOP) while holding slots: a slot woken up
//!   for more than [`LATE`] after its time is thrown away, never spent late;
//! - clocks of hosts that disagree: slot times are read through an estimate of
//!   the database clock on this process's clock ([`DbClock`]), taken from the
//!   quickest recent round trips, never compared with another host's clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lijian_core::store::{Grant, Store};
use lijian_core::vocab::IssueLane;

/// Fraction of the limit used. The issue asks every steady second to reach 98%
/// of the limit, which leaves at most 2% for sends that reach WeChat later than
/// their slot. Our own send instants stay within 98.5% (worst sliding second
/// 487–499 at 500/s, measured at 98.5%), but on a saturated host the simulator
/// counted up to 1–2% more (made in transit; docs/decisions.md, "Cluster-wide
/// limits"), and the default test run shares its two cores with seventy other
/// tests: 97% until transit is dealt with.
pub const RATE_FACTOR: f64 = 0.97;
/// Slots are granted at most this far ahead of the database clock.
const HORIZON: Duration = Duration::from_millis(100);
/// Slots are granted at least this far ahead of the database clock, so that the
/// answer reaches us, and the sender its slot, before the slot is [`LATE`]
/// (migration 0008 says what happened without it).
const LEAD: Duration = Duration::from_millis(20);
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
    /// Held by the one campaign send taking its slot: the others queue here,
    /// not at `slots`, where interactive sends would wait behind them all.
    campaign_turn: tokio::sync::Mutex<()>,
    /// Slots used, i.e. sends let through (for metrics and the achieved rate).
    pub used: AtomicU64,
    /// Slots thrown away: reached too late (a stall) or left over.
    pub stale: AtomicU64,
    /// Calls to the database for slots.
    pub calls: AtomicU64,
    /// The database clock on this process's clock (shared by the key's calls).
    clock: std::sync::Mutex<DbClock>,
}

impl Pace {
    pub fn new(store: Store, key: String) -> Pace {
        Pace {
            store,
            key,
            slots: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            campaign_turn: tokio::sync::Mutex::new(()),
            used: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            clock: std::sync::Mutex::new(DbClock::default()),
        }
    }

    /// Waits for a slot at `rate` per second (the key's whole-cluster limit) and
    /// returns at its time, interactive sends before campaign ones. Never
    /// returns without a slot.
    pub async fn acquire(&self, rate: u32, lane: IssueLane) {
        loop {
            let slot = self.reserve(rate, lane).await;
            if self.wait_for(slot).await {
                return;
            }
        }
    }

    /// Takes the next slot (its time may be up to the horizon ahead) without
    /// waiting for it.
    async fn reserve(&self, rate: u32, lane: IssueLane) -> Instant {
        // Counted before the turn: a refill asks for every waiter's slot.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Leave(&self.waiting);
        let _turn = match lane {
            IssueLane::Campaign => Some(self.campaign_turn.lock().await),
            IssueLane::Interactive => None,
        };
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
    async fn wait_for(&self, slot: Instant) -> bool {
        tokio::time::sleep_until(slot.into()).await;
        if Instant::now() <= slot + LATE {
            self.used.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.stale.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Asks the database for slots; returns the first and keeps the rest.
    async fn refill(&self, slots: &mut VecDeque<Instant>, per_second: f64) -> Result<Instant, Wait> {
        let chunk = (per_second * CHUNK.as_secs_f64()).ceil().max(1.0) as usize;
        let want = self.waiting.load(Ordering::Relaxed).clamp(1, chunk) as u32;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let grant = match self.store.take_slots(&self.key, per_second, want, LEAD, HORIZON).await {
            Ok(grant) => grant,
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "no send slots (database unreachable?); sending nothing until it answers");
                return Err(Wait::Unavailable);
            }
        };
        let answered = grant.received;
        let first = {
            let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
            clock.sample(&grant);
            clock.local_time(grant.first_slot).unwrap_or(answered)
        };
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

/// Round trips a clock estimate is chosen from.
const CLOCK_SAMPLES: usize = 32;

/// Where the database clock stands on this process's clock, estimated the way
/// NTP does: each answer's `db_now` was read somewhere between sending and
/// receiving, so the quickest round trips pin it down best. Taking the middle of
/// every round trip instead misplaces slots by up to half of it — the row lock
/// in `lijian_take_slots` waits for other processes, and the task wakes late on
/// a busy machine — and 20–40 ms round trips under load put sends of two
/// processes 10–20 ms closer together than their slots, which WeChat counts.
#[derive(Default)]
struct DbClock {
    /// Recent samples: (round trip, local instant matching `db_now`, `db_now`).
    samples: VecDeque<(Duration, Instant, time::OffsetDateTime)>,
}

impl DbClock {
    fn sample(&mut self, grant: &Grant) {
        let trip = grant.received.saturating_duration_since(grant.sent);
        if self.samples.len() == CLOCK_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((trip, grant.sent + trip / 2, grant.db_now));
    }

    /// `db_time` on this process's clock, by the quickest recent round trip.
    fn local_time(&self, db_time: time::OffsetDateTime) -> Option<Instant> {
        let (_, local, db_now) = self.samples.iter().min_by_key(|(trip, _, _)| *trip)?;
        let offset = db_time - *db_now;
        let magnitude = offset.unsigned_abs();
        Some(if offset.is_negative() { local.checked_sub(magnitude).unwrap_or(*local) } else { *local + magnitude })
    }
}

/// Counts a waiter out when its `acquire` ends (also when cancelled).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
