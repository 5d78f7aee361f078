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
/// A process joins an account's sending over this long, from [`FIRST_SHARE`]
/// of the rate up to all of it (the "slow start" below).
const WARM_UP: Duration = Duration::from_secs(1);
const FIRST_SHARE: f64 = 0.1;
/// Idle this long, a process warms up again: its HTTP connections have gone
/// (or go soon), and the first sends on new connections reach WeChat late and
/// together.
const COLD_AFTER: Duration = Duration::from_secs(10);
/// Waits after a failed call for slots (database unreachable), doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

/// One key's slots in this process.
pub struct Pace {
    store: Store,
    key: String,
    /// The share of the limit used: 1 − the headroom (`LIJIAN_WXPAY_HEADROOM`).
    /// The issue asks every steady second to reach 98% of the limit, which
    /// leaves at most 2% for sends that reach WeChat later than their slot; our
    /// own send instants stay within 98.5% of it, but on a saturated host the
    /// simulator counted up to 1–2% more (transit; docs/decisions.md).
    share: f64,
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
    /// This process's slow start on the key.
    warm_up: std::sync::Mutex<WarmUp>,
}

impl Pace {
    /// `headroom_percent` of every limit is left unused.
    pub fn new(store: Store, key: String, headroom_percent: f64) -> Pace {
        Pace {
            store,
            key,
            share: 1.0 - headroom_percent.clamp(0.0, 49.9) / 100.0,
            slots: tokio::sync::Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            campaign_turn: tokio::sync::Mutex::new(()),
            used: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            clock: std::sync::Mutex::new(DbClock::default()),
            warm_up: std::sync::Mutex::new(WarmUp::default()),
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
        let per_second = (f64::from(rate.max(1)) * self.share).max(1.0);
        let warm = self.warm_up.lock().unwrap_or_else(|p| p.into_inner()).next(Instant::now(), per_second);
        if let Some(at) = warm {
            tokio::time::sleep_until(at.into()).await;
        }
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

/// Slow start: a process that starts sending on a key (or starts again after
/// [`COLD_AFTER`] idle) asks for slots at a rising share of the rate, spaced
/// locally, so it joins without a burst. Its first requests go out on new
/// connections from a process still starting up, and reach WeChat late and
/// together: measured at full rate from the first slot (two debug consumers
/// starting at once on a backlog, 200/s), 8–30 requests arrived within a
/// millisecond after 20–60 ms in transit, and the simulator counted 203–206 in
/// a sliding second whose send instants held 196. Slots it does not ask for
/// stay free for the other processes.
#[derive(Default)]
struct WarmUp {
    /// When this process began sending (again).
    since: Option<Instant>,
    /// The last time a slot was asked for or used.
    last: Option<Instant>,
    /// Earliest time the next waiter may ask, while warming up.
    next: Option<Instant>,
}

impl WarmUp {
    /// When a waiter may ask for its slot: `None` at once (warm). The spacing
    /// follows the share at the waiter's own turn, not at its arrival: a
    /// process starting with fifty waiters would otherwise space all fifty at
    /// the first, smallest share (measured: its first sends spread over 2.5 s,
    /// and another consumer kept most of a shared backlog).
    fn next(&mut self, now: Instant, per_second: f64) -> Option<Instant> {
        let cold = self.last.is_none_or(|last| now.saturating_duration_since(last) > COLD_AFTER);
        self.last = Some(now);
        if cold {
            self.since = Some(now);
            self.next = None;
        }
        let since = self.since.unwrap_or(now);
        let at = self.next.map_or(now, |next| next.max(now));
        let warm_for = at.saturating_duration_since(since);
        if warm_for >= WARM_UP {
            return (at > now).then_some(at);
        }
        let share = FIRST_SHARE + (1.0 - FIRST_SHARE) * warm_for.as_secs_f64() / WARM_UP.as_secs_f64();
        self.next = Some(at + Duration::from_secs_f64(1.0 / (per_second * share)));
        Some(at)
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
