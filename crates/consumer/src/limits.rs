//! How fast and how concurrently we call WeChat Pay — for the whole cluster,
//! not per process. Every consumer, however many run, shares through PostgreSQL:
//!
//! - each issuing account's rate ([`pace`](crate::pace)): send slots spaced
//!   `1/rate` apart cluster-wide, so the configured rate is the total;
//! - the optional per-activity rate, the same way;
//! - a 429 pauses the whole account, cluster-wide (100 ms, doubling on
//!   consecutive 429s, at most 5 s), and this process at once;
//! - at most one send per (account, openid) in flight ([`leases`](crate::leases)):
//!   concurrent sends to one user fail with a spurious RULE_LIMIT at WeChat.
//!
//! Interactive sends take their slot before campaign sends waiting in this
//! process ([`Pace`]); across processes, behind at most the slots already
//! granted (100 ms ahead).
//!
//! A send takes its user's turn in this process, then the user's lease in the
//! cluster, then waits for its slot: nothing but the wait lies between slot and
//! wire. A lease is held while its send waits for a slot (up to a few seconds
//! behind a backlog); users rarely have two orders in flight at once, so that
//! blocks little.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lijian_core::store::Store;
use lijian_core::telemetry::{Exposition, Histogram, LATENCY_BUCKETS};
use lijian_core::vocab::IssueLane;

use crate::ahead::{Ahead, Prepared};
use crate::leases::{Leases, UserTurn};
use crate::pace::Pace;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// One issuing account as this process sees it.
struct Account {
    pace: Pace,
    /// Sends prepared and waiting for a slot, interactive then campaign.
    ahead: [Ahead; 2],
    /// The account's whole-cluster limit, as last configured.
    rate: AtomicU32,
    /// After a 429, no send from this process before this (the database pause
    /// reaches other processes at their next slot request).
    paused_until: Mutex<Option<Instant>>,
    consecutive_throttles: AtomicU32,
    throttled: AtomicU64,
    in_flight: AtomicI64,
    /// Sends in the current and the previous whole second (the achieved rate).
    second: Mutex<(u64, u64, u64)>,
}

impl Account {
    fn count_send(&self) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut s = self.second.lock().unwrap_or_else(|p| p.into_inner());
        match now.saturating_sub(s.0) {
            0 => s.2 += 1,
            1 => *s = (now, s.2, 1),
            _ => *s = (now, 0, 1),
        }
    }

    fn last_second(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let s = self.second.lock().unwrap_or_else(|p| p.into_inner());
        match now.saturating_sub(s.0) {
            0 => s.1,
            1 => s.2,
            _ => 0,
        }
    }
}

pub struct Limits {
    store: Store,
    /// Requests per second per activity, cluster-wide; 0 = none.
    activity_rate: u32,
    /// Percent of every limit left unused (`LIJIAN_WXPAY_HEADROOM`).
    headroom_percent: f64,
    accounts: Mutex<HashMap<String, Arc<Account>>>,
    activities: Mutex<HashMap<String, Arc<Pace>>>,
    leases: Leases,
    /// Total time sends waited for their slot, in microseconds (for metrics).
    pub waited_micros: AtomicU64,
    /// Sends that had to wait at least a millisecond for their slot (for metrics).
    pub waits: AtomicU64,
    /// How long sends waited for their turn, interactive then campaign.
    waited: [Histogram; 2],
}

fn lane_index(lane: IssueLane) -> usize {
    match lane {
        IssueLane::Interactive => 0,
        IssueLane::Campaign => 1,
    }
}

/// A send in flight: its user's turn and lease, counted per account until dropped.
#[must_use = "hold it for the duration of the call"]
pub struct Sending<'a> {
    account: Arc<Account>,
    _user: UserTurn<'a>,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.account.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    /// `activity_rate` per activity (0 = none); `headroom_percent` of every
    /// limit left unused.
    pub fn new(store: Store, activity_rate: u32, headroom_percent: f64) -> Limits {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Limits {
            leases: Leases::start(store.clone(), holder),
            store,
            activity_rate,
            headroom_percent,
            accounts: Mutex::new(HashMap::new()),
            activities: Mutex::new(HashMap::new()),
            waited_micros: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            waited: [Histogram::new(LATENCY_BUCKETS), Histogram::new(LATENCY_BUCKETS)],
        }
    }

    /// Every send looks its account up twice (its place ahead, then its slot):
    /// a hit allocates nothing.
    fn account(&self, mchid: &str) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = accounts.get(mchid) {
            return account.clone();
        }
        accounts
            .entry(mchid.to_string())
            .or_insert_with(|| {
                Arc::new(Account {
                    pace: Pace::new(self.store.clone(), format!("account:{mchid}"), self.headroom_percent),
                    ahead: [Ahead::new(), Ahead::new()],
                    rate: AtomicU32::new(0),
                    paused_until: Mutex::new(None),
                    consecutive_throttles: AtomicU32::new(0),
                    throttled: AtomicU64::new(0),
                    in_flight: AtomicI64::new(0),
                    second: Mutex::new((0, 0, 0)),
                })
            })
            .clone()
    }

    fn activity(&self, activity_id: &str) -> Arc<Pace> {
        let mut activities = self.activities.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pace) = activities.get(activity_id) {
            return pace.clone();
        }
        activities
            .entry(activity_id.to_string())
            .or_insert_with(|| {
                Arc::new(Pace::new(self.store.clone(), format!("activity:{activity_id}"), self.headroom_percent))
            })
            .clone()
    }

    /// Waits for `openid`'s turn at `mchid` in the whole cluster: this
    /// process's other sends to the user first, then the user's lease. Taken
    /// before [`Limits::prepare_turn`], so that a send waiting for a user whose
    /// lease another process holds (up to its TTL, when that process was
    /// killed mid-call) does not hold one of the few places prepared ahead —
    /// measured with it the other way round: after a SIGKILL the survivor's
    /// places all waited for the dead consumer's users and its rate fell to
    /// 30–60 of 200/s for two seconds.
    pub async fn user_turn(&self, mchid: &str, openid: &str) -> UserTurn<'_> {
        let mut user = self.leases.user((mchid.to_string(), openid.to_string())).await;
        user.wait_for_lease().await;
        user
    }

    /// Waits for a place among the sends of `mchid` (limit `rate`, whole
    /// cluster) prepared ahead in this lane: take it before signing a request,
    /// drop it once [`Limits::send_turn`] returned.
    pub async fn prepare_turn(&self, mchid: &str, rate: u32, lane: IssueLane) -> Option<Prepared> {
        let account = self.account(mchid);
        account.ahead[lane_index(lane)].enter(rate).await
    }

    /// Waits until the request of `user` (its turn from [`Limits::user_turn`])
    /// may be sent now from `mchid`, whose whole-cluster limit is `rate` per
    /// second (0: none): the activity's and the account's slot, interactive
    /// sends first. Hold the returned value until the call ends.
    pub async fn send_turn<'a>(
        &'a self,
        user: UserTurn<'a>,
        mchid: &str,
        rate: u32,
        activity_id: &str,
        lane: IssueLane,
    ) -> Sending<'a> {
        let started = Instant::now();
        let account = self.account(mchid);
        account.rate.store(rate, Ordering::Relaxed);
        loop {
            let until = *account.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if self.activity_rate > 0 {
            self.activity(activity_id).acquire(self.activity_rate, lane).await;
        }
        // The user's turn in the cluster came before the slot: between taking a
        // slot and sending on it there must be nothing but the wait, or slots go
        // stale (measured: with the lease taken after the slot, a busy consumer
        // threw away a third of its slots waiting for the lease's round trip).
        if rate == 0 {
            // No limit (the benchmarks measure the consumer itself this way).
            account.pace.used.fetch_add(1, Ordering::Relaxed);
        } else {
            account.pace.acquire(rate, lane).await;
        }
        let waited = started.elapsed();
        self.waited[lane_index(lane)].observe(waited);
        self.waited_micros.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if waited >= Duration::from_millis(1) {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        account.count_send();
        account.in_flight.fetch_add(1, Ordering::Relaxed);
        Sending { account, _user: user }
    }

    /// WeChat said 429 to `mchid`: pause its sends, cluster-wide, longer each
    /// time in a row.
    pub fn throttled(&self, mchid: &str) {
        let account = self.account(mchid);
        account.throttled.fetch_add(1, Ordering::Relaxed);
        let n = account.consecutive_throttles.fetch_add(1, Ordering::Relaxed);
        let pause = FIRST_PAUSE.saturating_mul(1 << n.min(6)).min(LONGEST_PAUSE);
        {
            let mut until = account.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            let candidate = Instant::now() + pause;
            if until.is_none_or(|t| t < candidate) {
                *until = Some(candidate);
            }
        }
        let (store, key) = (self.store.clone(), format!("account:{mchid}"));
        tokio::spawn(async move {
            if let Err(e) = store.pause_sends(&key, pause).await {
                tracing::warn!(error = %e, "cannot pause the account cluster-wide; this process pauses");
            }
        });
        tracing::warn!(
            mchid,
            pause_ms = pause.as_millis() as u64,
            "WeChat Pay answered 429; pausing the account's sends"
        );
    }

    /// A call from `mchid` got through: back to full speed.
    pub fn succeeded(&self, mchid: &str) {
        self.account(mchid).consecutive_throttles.store(0, Ordering::Relaxed);
    }

    /// Per-account metrics: sends, the last second's sends against the limit,
    /// 429s, sends in flight, slot calls and slots thrown away; the wait for a
    /// turn per lane.
    pub fn render(&self, out: &mut Exposition) {
        out.labelled_histograms(
            "lijian_send_wait_seconds",
            "Time a send waited for its user's turn and its slot, per issue lane",
            "lane",
            [IssueLane::Interactive, IssueLane::Campaign].map(|lane| (lane.as_str(), &self.waited[lane_index(lane)])),
        );
        let accounts: Vec<(String, Arc<Account>)> = {
            let map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            let mut list: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            list.sort_by(|a, b| a.0.cmp(&b.0));
            list
        };
        let each = |f: &dyn Fn(&Account) -> u64| accounts.iter().map(|(m, a)| (m.as_str(), f(a))).collect::<Vec<_>>();
        let gauge = |f: &dyn Fn(&Account) -> f64| accounts.iter().map(|(m, a)| (m.as_str(), f(a))).collect::<Vec<_>>();
        out.labelled_counter(
            "lijian_wxpay_sends_total",
            "Send-coupon calls let through by the account's limit",
            "mchid",
            each(&|a| a.pace.used.load(Ordering::Relaxed)),
        );
        out.labelled_gauge(
            "lijian_wxpay_sends_last_second",
            "This process's sends in the last whole second, per account",
            "mchid",
            gauge(&|a| a.last_second() as f64),
        );
        out.labelled_gauge(
            "lijian_wxpay_rate_limit",
            "The account's limit, requests per second for the whole cluster",
            "mchid",
            gauge(&|a| f64::from(a.rate.load(Ordering::Relaxed))),
        );
        out.labelled_counter(
            "lijian_wxpay_throttled_total",
            "429 answers per account",
            "mchid",
            each(&|a| a.throttled.load(Ordering::Relaxed)),
        );
        out.labelled_gauge(
            "lijian_wxpay_in_flight",
            "Send-coupon calls in flight per account",
            "mchid",
            gauge(&|a| a.in_flight.load(Ordering::Relaxed) as f64),
        );
        out.labelled_counter(
            "lijian_wxpay_slot_requests_total",
            "Calls to PostgreSQL for send slots per account",
            "mchid",
            each(&|a| a.pace.calls.load(Ordering::Relaxed)),
        );
        out.labelled_counter(
            "lijian_wxpay_slots_stale_total",
            "Send slots thrown away because they were reached too late (a stall)",
            "mchid",
            each(&|a| a.pace.stale.load(Ordering::Relaxed)),
        );
    }
}
