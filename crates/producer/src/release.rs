//! One release step: which campaign orders go to the campaign queue now.
//!
//! Every campaign — loaded as is, scheduled, or paced with `--rate` — is held
//! in PostgreSQL and released by the scheduler. A step reads, per WeChat Pay
//! account, how many of its campaign orders are in flight (released, not final:
//! index `orders_in_flight`), sizes the account's window from its limit
//! ([`Window`]), splits it between the campaigns that have orders to release
//! ([`campaign_quotas`]) and releases what each may add. So
//! the broker holds about a window of campaign work, never a whole file;
//! pause and cancel act on everything not released; a campaign loaded later
//! gets its share at the next step; and a campaign held to its `--rate` is
//! released no faster than that.
//!
//! One scheduler plans at a time (an advisory lock; the others skip the
//! step), so windows are not overfilled by two planners; the campaign rows are
//! locked `FOR UPDATE SKIP LOCKED` while their orders are taken and stamped,
//! as cancel locks them too: what cancel finds unreleased was never released.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use lijian_core::outbox::{Outbox, Taken, Transaction};
use lijian_core::queue::{IssueJob, IssueLane};
use lijian_core::store::predicates::{IN_FLIGHT, UNRELEASED};
use lijian_core::store::StoreError;
use lijian_core::telemetry::LogTarget;
use lijian_core::vocab::CampaignState;

use crate::fair::{campaign_quotas, CampaignClaim, Flow, Window};

/// Most orders one step releases per campaign.
const MAX_PER_STEP: i64 = 5_000;
/// Orders per released job: what a consumer works on in one delivery (its
/// `BATCH_SHARE`), so no job is handed back to the end of the queue half done
/// and a lane's orders are sent about in the order they were released — the
/// first come, first served that makes a campaign's rate follow its part of
/// the window. A window is a few hundred orders: tens of messages a second.
const RELEASE_JOB: usize = 16;
/// The advisory lock one planning scheduler holds (migrations hold 7220314).
const PLANNING_LOCK: i64 = 7_220_315;
/// How often the shares `campaign status` shows are written.
const SHARES_EVERY: Duration = Duration::from_millis(500);

/// The release planner of one scheduler process, and what it last decided
/// (for metrics).
pub struct Releaser {
    window: Duration,
    /// `LIJIAN_WXPAY_MCHID`: the account that sends for issuers without a
    /// stored account, as the consumer resolves them.
    default_mchid: Option<String>,
    /// `LIJIAN_WXPAY_RATE`: that account's limit (stored accounts have theirs).
    default_rate: u32,
    /// The step interval: a `--rate` campaign that fell behind restarts with
    /// one step's worth.
    step: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    windows: HashMap<String, Window>,
    flows: HashMap<String, Flow>,
    shares_written: Option<Instant>,
    campaigns: BTreeMap<String, CampaignView>,
    accounts: BTreeMap<String, AccountView>,
}

/// A campaign as the last step saw it.
#[derive(Debug, Clone, Default)]
pub struct CampaignView {
    /// Orders this process released (a counter).
    pub released: u64,
    /// Its part of its account's window among the campaigns releasing (0–1).
    pub share: f64,
    /// What that part is worth now, orders per second.
    pub share_rate: f64,
    pub in_flight: i64,
}

/// An account as the last step saw it.
#[derive(Debug, Clone, Default)]
pub struct AccountView {
    /// Orders its campaigns may have in flight.
    pub window: f64,
    /// Campaign orders it finished per second lately.
    pub rate: f64,
    /// How much the window grew for a slow pipeline (1–4).
    pub growth: f64,
}

/// A campaign's figures at the start of a step.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    merchant: String,
    priority: i32,
    rate: Option<i32>,
    released: i64,
    in_flight: i64,
    /// Active, started, with orders left to release.
    releasing: bool,
    /// Orders its `--rate` allows now (None: no rate).
    due: Option<i64>,
    account: String,
    /// The account's limit, requests per second.
    limit: i32,
}

/// What a step decided for one campaign.
#[derive(Debug, Clone, PartialEq)]
struct Release {
    campaign: String,
    orders: i64,
}

static ROWS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH flight AS (SELECT campaign, count(*) AS n FROM orders WHERE {IN_FLIGHT} GROUP BY campaign),
              started AS (SELECT c.*, c.state = $1 AND NOT c.drained
                                  AND (c.release_at IS NULL OR c.release_at <= clock_timestamp()) AS releasing
                             FROM campaigns c)
         SELECT c.name, c.merchant_id, c.priority, c.rate, c.released, coalesce(f.n, 0)::bigint, c.releasing,
                c.pace_base + floor(extract(epoch FROM clock_timestamp() - c.pace_from) * c.rate)::bigint - c.released,
                coalesce(acc.mchid, ''), coalesce(acc.rate, $3)
           FROM started c
           LEFT JOIN flight f ON f.campaign = c.name
           -- The account that sends the campaign's orders, as the consumer resolves
           -- it: the activity's issuer if stored, else the default account.
           LEFT JOIN LATERAL (
                SELECT CASE WHEN w.mchid IS NOT NULL OR $2::text IS NULL THEN i.mchid ELSE $2::text END AS mchid,
                       CASE WHEN w.mchid IS NOT NULL THEN w.rate ELSE $3 END AS rate
                  FROM (SELECT coalesce(a.issuer_mchid, a.stock_creator_mchid) AS mchid
                          FROM orders o JOIN activities a ON a.activity_id = o.activity_id
                         WHERE o.campaign = c.name LIMIT 1) i
                  LEFT JOIN wxpay_accounts w ON w.mchid = i.mchid) acc ON true
          WHERE c.releasing OR f.n > 0"
    )
});

/// Locked before their jobs are published: a consumer that gets a job before
/// this step commits waits for the commit at its `begin` instead of locking the
/// rows the step stamps next (measured: a deadlock between the two updates).
static TAKE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT order_code FROM orders WHERE campaign = $1 AND {UNRELEASED} ORDER BY id LIMIT $2 FOR UPDATE")
});

/// Every change a step makes to one campaign row, written in one statement
/// ([`write_rows`]). Updating a row twice in one transaction makes PostgreSQL
/// check its foreign key (the row version is then our own), which locks the
/// merchant row after the campaign row: the reverse of a load's lock order, and
/// measured, a deadlock with a load's batch.
#[derive(Debug, Clone, Default)]
struct RowWrite {
    released: i64,
    drained: bool,
    restart_pace: bool,
    /// Its share and what that is worth, orders per second.
    share: Option<(f64, f64)>,
}

impl Releaser {
    /// `default` is the default account's mchid and limit (`LIJIAN_WXPAY_MCHID`,
    /// `LIJIAN_WXPAY_RATE`).
    pub fn new(window: Duration, default: (Option<String>, u32), step: Duration) -> Releaser {
        let (default_mchid, default_rate) = default;
        Releaser { window, default_mchid, default_rate, step, state: Mutex::new(State::default()) }
    }

    /// One step's outbox (see [`lijian_core::outbox::drain`]).
    pub fn step(&self) -> Step<'_> {
        Step { releaser: self, writes: Mutex::new(BTreeMap::new()) }
    }

    /// Campaigns and accounts as the last step saw them.
    pub fn views(&self) -> (BTreeMap<String, CampaignView>, BTreeMap<String, AccountView>) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.campaigns.clone(), state.accounts.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Orders a `--rate` campaign may have now: what it is due, or one step's
    /// worth when it is more than a second behind (its pacing restarts then).
    fn due_now(&self, row: &Row) -> Option<i64> {
        let (rate, due) = (row.rate?, row.due.unwrap_or(0));
        Some(if due > i64::from(rate) { self.restart_worth(rate) } else { due.max(0) })
    }

    fn restart_worth(&self, rate: i32) -> i64 {
        (f64::from(rate) * self.step.as_secs_f64()).ceil() as i64
    }

    /// Decides the step's releases from `rows`; `saturated` names the accounts
    /// whose consumers queued for send slots (or that a 429 paused).
    fn plan(&self, now: Instant, rows: &[Row], saturated: &HashSet<String>) -> Vec<Release> {
        let mut state = self.lock();
        let state = &mut *state;
        let seen: HashSet<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        state.flows.retain(|name, _| seen.contains(name.as_str()));
        let mut by_account: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for row in rows {
            by_account.entry(row.account.as_str()).or_default().push(row);
        }
        let mut releases = Vec::new();
        state.accounts.clear();
        for (account, rows) in by_account {
            let rate: f64 = rows
                .iter()
                .map(|r| state.flows.entry(r.name.clone()).or_default().observe(now, r.released - r.in_flight))
                .sum();
            let window = state.windows.entry(account.to_string()).or_insert_with(|| Window::new(self.window));
            let limit = rows.iter().map(|r| r.limit).max().unwrap_or(0);
            let size = window.size(f64::from(limit));
            let tails: i64 = rows.iter().filter(|r| !r.releasing).map(|r| r.in_flight).sum();
            let candidates: Vec<&Row> = rows.iter().copied().filter(|r| r.releasing).collect();
            let claims: Vec<CampaignClaim> = candidates
                .iter()
                .map(|r| CampaignClaim {
                    merchant: r.merchant.clone(),
                    priority: u32::try_from(r.priority).unwrap_or(1),
                    cap: self.due_now(r).map_or(f64::INFINITY, |due| (r.in_flight + due) as f64),
                })
                .collect();
            let quotas = campaign_quotas((size - tails as f64).max(0.0), &claims);
            let total: f64 = quotas.iter().sum();
            let mut held_back = false;
            for (row, quota) in candidates.iter().zip(&quotas) {
                let room = (quota - row.in_flight as f64).floor().max(0.0) as i64;
                let wants = self.due_now(row).unwrap_or(MAX_PER_STEP).min(MAX_PER_STEP);
                // Held back: its part nearly full (a campaign out of orders to
                // release has room left, and a bigger window would not help it).
                held_back |= room < wants && (room as f64) < 0.2 * quota;
                let orders = room.min(wants);
                if orders > 0 {
                    releases.push(Release { campaign: row.name.clone(), orders });
                }
                let view = state.campaigns.entry(row.name.clone()).or_default();
                view.share = if total > 0.0 { quota / total } else { 0.0 };
                view.share_rate = view.share * rate;
            }
            for row in &rows {
                let view = state.campaigns.entry(row.name.clone()).or_default();
                view.in_flight = row.in_flight;
                if !row.releasing {
                    view.share = 0.0;
                    view.share_rate = 0.0;
                }
            }
            window.adjust(held_back, saturated.contains(account));
            let (size, growth) = (window.size(f64::from(limit)), window.growth());
            state.accounts.insert(account.to_string(), AccountView { window: size, rate, growth });
        }
        releases
    }

    /// The shares to write now (twice a second), if any: (campaign, (share,
    /// orders per second)).
    fn shares_due(&self, now: Instant, rows: &[Row]) -> Option<Vec<(String, (f64, f64))>> {
        let mut state = self.lock();
        if state.shares_written.is_some_and(|t| now.duration_since(t) < SHARES_EVERY) {
            return None;
        }
        state.shares_written = Some(now);
        let shares = rows
            .iter()
            .map(|row| {
                let view = state.campaigns.get(&row.name).cloned().unwrap_or_default();
                (row.name.clone(), (view.share, view.share_rate))
            })
            .collect();
        Some(shares)
    }

    fn count_released(&self, campaign: &str, orders: usize) {
        self.lock().campaigns.entry(campaign.to_string()).or_default().released += orders as u64;
    }
}

/// One release step as an outbox pass: take plans and takes the orders, settle
/// stamps those the broker confirmed.
pub struct Step<'a> {
    releaser: &'a Releaser,
    writes: Mutex<BTreeMap<String, RowWrite>>,
}

impl Step<'_> {
    fn write(&self, campaign: &str, change: impl FnOnce(&mut RowWrite)) {
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        change(writes.entry(campaign.to_string()).or_default());
    }

    /// Writes every campaign row the step changed, one statement. Rows another
    /// transaction holds (a cancel, a load) are skipped, not waited for: only
    /// shares can be pending for those (released rows are locked by this step).
    async fn write_rows(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()));
        if writes.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = writes.keys().map(String::as_str).collect();
        let released: Vec<i64> = writes.values().map(|w| w.released).collect();
        let drained: Vec<bool> = writes.values().map(|w| w.drained).collect();
        let restart: Vec<bool> = writes.values().map(|w| w.restart_pace).collect();
        let share: Vec<Option<f64>> = writes.values().map(|w| w.share.map(|s| s.0)).collect();
        let rate: Vec<Option<f64>> = writes.values().map(|w| w.share.map(|s| s.1)).collect();
        tx.execute(
            "UPDATE campaigns c
                SET released = c.released + w.released,
                    drained = c.drained OR w.drained,
                    pace_from = CASE WHEN w.restart THEN clock_timestamp() ELSE c.pace_from END,
                    pace_base = CASE WHEN w.restart THEN c.released ELSE c.pace_base END,
                    share = coalesce(w.share, c.share),
                    share_rate = coalesce(w.rate, c.share_rate),
                    share_at = CASE WHEN w.share IS NULL THEN c.share_at ELSE clock_timestamp() END,
                    updated_at = now()
               FROM unnest($1::text[], $2::bigint[], $3::bool[], $4::bool[], $5::float8[], $6::float8[])
                    AS w(name, released, drained, restart, share, rate)
              WHERE c.name = w.name
                AND c.name IN (SELECT name FROM campaigns WHERE name = ANY($1) FOR UPDATE SKIP LOCKED)",
            &[&names, &released, &drained, &restart, &share, &rate],
        )
        .await?;
        Ok(())
    }
}

impl Outbox for Step<'_> {
    /// The campaign and the orders of one job.
    type Key = (String, Vec<String>);
    type Job = (IssueLane, IssueJob);
    const NAME: &'static str = "campaign release";
    const LOG: LogTarget = LogTarget::Scheduler;

    async fn take(&self, tx: &Transaction<'_>) -> Result<Taken<Self::Key, Self::Job>, StoreError> {
        let r = self.releaser;
        let planning: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PLANNING_LOCK]).await?.get(0);
        if !planning {
            return Ok(Taken::Jobs(Vec::new()));
        }
        let rows: Vec<Row> = tx
            .query(ROWS_SQL.as_str(), &[&CampaignState::Active, &r.default_mchid, &(r.default_rate as i32)])
            .await?
            .iter()
            .map(|row| Row {
                name: row.get(0),
                merchant: row.get(1),
                priority: row.get(2),
                rate: row.get(3),
                released: row.get(4),
                in_flight: row.get(5),
                releasing: row.get(6),
                due: row.get(7),
                account: row.get(8),
                limit: row.get(9),
            })
            .collect();
        if rows.is_empty() {
            return Ok(Taken::Jobs(Vec::new()));
        }
        let keys: Vec<String> =
            rows.iter().map(|r| format!("account:{}", r.account)).collect::<HashSet<_>>().into_iter().collect();
        // Slots cut further ahead than a few sends: consumers queue for them (a
        // lone sender's slot is cut only 20 ms ahead, migration 0008).
        let saturated: HashSet<String> = tx
            .query(
                "SELECT substr(key, 9) FROM send_pace
                  WHERE key = ANY($1)
                    AND (tat > clock_timestamp() + interval '50 milliseconds' OR paused_until > clock_timestamp())",
                &[&keys],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let now = Instant::now();
        let releases = r.plan(now, &rows, &saturated);
        let mut jobs = Vec::new();
        for release in releases {
            let (campaign, mut orders) = (release.campaign.as_str(), release.orders);
            // Locked, and still active: a pause or cancel since the plan wins.
            let locked = tx
                .query_opt(
                    "SELECT rate, pace_base + floor(extract(epoch FROM clock_timestamp() - pace_from) * rate)::bigint - released
                       FROM campaigns WHERE name = $1 AND state = $2 AND NOT drained FOR UPDATE SKIP LOCKED",
                    &[&campaign, &CampaignState::Active],
                )
                .await?;
            let Some(locked) = locked else { continue };
            if let (Some(rate), Some(behind)) = (locked.get::<_, Option<i32>>(0), locked.get::<_, Option<i64>>(1)) {
                if behind > i64::from(rate) {
                    // More than a second behind (held back by the window, an outage):
                    // the time lost stays lost, like a pause, instead of a burst.
                    tracing::debug!(campaign, behind, "release fell behind its --rate; pacing restarts from now");
                    self.write(campaign, |w| w.restart_pace = true);
                    orders = orders.min(r.restart_worth(rate));
                }
            }
            let codes: Vec<String> =
                tx.query(TAKE_SQL.as_str(), &[&campaign, &orders]).await?.iter().map(|row| row.get(0)).collect();
            if codes.is_empty() {
                tracing::info!(campaign, "campaign fully released");
                self.write(campaign, |w| w.drained = true);
                continue;
            }
            for chunk in codes.chunks(RELEASE_JOB) {
                let job = (IssueLane::Campaign, IssueJob::for_orders(chunk.to_vec()));
                jobs.push(((campaign.to_string(), chunk.to_vec()), job));
            }
        }
        for (name, share) in r.shares_due(now, &rows).unwrap_or_default() {
            self.write(&name, |w| w.share = Some(share));
        }
        if !jobs.is_empty() {
            return Ok(Taken::Jobs(jobs));
        }
        let wrote = !self.writes.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        self.write_rows(tx).await?;
        Ok(if wrote { Taken::CommitOnly } else { Taken::Jobs(Vec::new()) })
    }

    /// Stamps the confirmed orders and counts them per campaign; unconfirmed
    /// ones stay unreleased for a later step (a job confirmed after all is a
    /// harmless duplicate).
    async fn settle(&self, tx: &Transaction<'_>, confirmed: &[Self::Key]) -> Result<(), StoreError> {
        let codes: Vec<&String> = confirmed.iter().flat_map(|(_, codes)| codes).collect();
        tx.execute("UPDATE orders SET enqueued_at = clock_timestamp() WHERE order_code = ANY($1)", &[&codes]).await?;
        let mut per_campaign: BTreeMap<&str, usize> = BTreeMap::new();
        for (campaign, codes) in confirmed {
            *per_campaign.entry(campaign.as_str()).or_default() += codes.len();
        }
        for (campaign, n) in &per_campaign {
            self.write(campaign, |w| w.released += *n as i64);
        }
        self.write_rows(tx).await?;
        for (campaign, n) in per_campaign {
            self.releaser.count_released(campaign, n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, merchant: &str, in_flight: i64, releasing: bool) -> Row {
        Row {
            name: name.into(),
            merchant: merchant.into(),
            priority: 1,
            rate: None,
            released: in_flight,
            in_flight,
            releasing,
            due: None,
            account: "1900000001".into(),
            limit: 0,
        }
    }

    fn releaser() -> Releaser {
        Releaser::new(Duration::from_millis(500), (None, 0), Duration::from_millis(20))
    }

    #[test]
    fn a_campaign_loaded_later_gets_its_share_at_the_next_step() {
        let r = releaser();
        let now = Instant::now();
        // Alone, the big campaign fills the (starting) window.
        let plan = r.plan(now, &[row("big", "a", 0, true)], &HashSet::new());
        assert_eq!(plan, vec![Release { campaign: "big".into(), orders: 32 }]);
        // The small one arrives: it gets half, the big one nothing more for now.
        let plan = r.plan(now, &[row("big", "a", 32, true), row("small", "b", 0, true)], &HashSet::new());
        assert_eq!(plan, vec![Release { campaign: "small".into(), orders: 16 }]);
        let (campaigns, _) = r.views();
        assert_eq!(campaigns["small"].share, 0.5);
    }

    #[test]
    fn a_rate_caps_a_campaign_and_the_rest_of_the_window_goes_to_others() {
        let r = releaser();
        let slow = Row { rate: Some(100), due: Some(2), ..row("slow", "a", 4, true) };
        let plan = r.plan(Instant::now(), &[slow, row("fast", "b", 0, true)], &HashSet::new());
        assert_eq!(
            plan,
            vec![Release { campaign: "slow".into(), orders: 2 }, Release { campaign: "fast".into(), orders: 26 }]
        );
    }

    #[test]
    fn paused_campaigns_in_flight_count_against_the_window() {
        let r = releaser();
        let plan =
            r.plan(Instant::now(), &[row("paused", "a", 30, false), row("other", "b", 0, true)], &HashSet::new());
        assert_eq!(plan, vec![Release { campaign: "other".into(), orders: 2 }]);
    }
}
