//! Campaigns: the named sets of orders a CSV load creates, and what operators do
//! with them (list, status, pause, resume, cancel, priority). Every campaign's
//! orders are held until the scheduler releases them (`crate::release`).

use std::collections::HashMap;
use std::sync::LazyLock;

use lijian_core::money::Fen;
use lijian_core::status::OrderStatus;
use lijian_core::store::{predicates, Store};
use lijian_core::vocab::CampaignState;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

mod error;
mod listing;
pub use error::{CampaignError, CampaignNameError};
pub use listing::{list_page, ListQuery};

/// Longest campaign name: it prefixes generated bizCodes (`<name>-<line>`), which
/// must stay within the open API's 64 characters.
pub const MAX_CAMPAIGN_NAME: usize = 40;

/// A campaign name: letters, digits, '_', '-', '.', at most 40.
pub fn check_campaign_name(name: &str) -> Result<(), CampaignNameError> {
    if name.is_empty() || name.len() > MAX_CAMPAIGN_NAME {
        return Err(CampaignNameError::Length);
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(CampaignNameError::Characters);
    }
    Ok(())
}

/// How a load wants its campaign: released at once, or at a time and rate (the
/// scheduler releases both, in a fair share of their account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSpec {
    pub name: String,
    pub merchant_id: String,
    /// Scheduled release time; `None` with `rate` set means "now".
    pub release_at: Option<OffsetDateTime>,
    /// Orders per second for a scheduled release.
    pub rate: Option<u32>,
    /// Weight among the merchant's campaigns on one account (1–100); None
    /// keeps a stored campaign's, or 1 for a new one.
    pub priority: Option<u32>,
}

/// Highest campaign priority (weight); the lowest is 1.
pub const MAX_PRIORITY: u32 = 100;

/// A priority is 1 to [`MAX_PRIORITY`].
pub fn check_priority(priority: u32) -> Result<(), String> {
    if (1..=MAX_PRIORITY).contains(&priority) {
        Ok(())
    } else {
        Err(format!("priority must be 1 to {MAX_PRIORITY} (a weight among the merchant's campaigns; default 1)"))
    }
}

impl CampaignSpec {
    pub fn is_scheduled(&self) -> bool {
        self.release_at.is_some() || self.rate.is_some()
    }
}

/// A campaign row.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    pub merchant_id: String,
    pub state: CampaignState,
    pub release_at: Option<OffsetDateTime>,
    pub rate: Option<i32>,
    pub released: i64,
    pub created_at: OffsetDateTime,
    /// Weight among the merchant's campaigns (1 unless set).
    pub priority: i32,
    /// Active, with every order final and every report delivered or closed:
    /// nothing more will happen (shown as state `finished`; not stored, so a
    /// later load into it simply makes it active again).
    pub finished: bool,
    /// No orders at all (a load that accepted nothing): `campaign delete` removes it.
    pub empty: bool,
}

impl Campaign {
    /// The state an operator sees: the stored one, `finished`, or `empty`.
    pub fn shown_state(&self) -> &'static str {
        if self.empty {
            "empty"
        } else if self.finished {
            "finished"
        } else {
            self.state.as_str()
        }
    }

    pub fn is_scheduled(&self) -> bool {
        self.release_at.is_some()
    }
}

pub(crate) const CAMPAIGN_COLUMNS: &str = "name, merchant_id, state, release_at, rate, released, created_at, priority";

pub(crate) fn campaign_from_row(r: &tokio_postgres::Row) -> Campaign {
    Campaign {
        name: r.get(0),
        merchant_id: r.get(1),
        state: r.get(2),
        release_at: r.get(3),
        rate: r.get(4),
        released: r.get(5),
        created_at: r.get(6),
        priority: r.get(7),
        finished: false,
        empty: false,
    }
}

/// Creates the campaign, or checks that an existing one matches the load: same
/// merchant, not cancelled, and the same schedule when the load names one (a
/// re-load may leave the schedule out).
pub async fn ensure(store: &Store, spec: &CampaignSpec) -> Result<Campaign, CampaignError> {
    check_campaign_name(&spec.name)?;
    if let Some(priority) = spec.priority {
        check_priority(priority).map_err(CampaignError::Refused)?;
    }
    let client = store.client().await?;
    let release_at = match (spec.release_at, spec.rate) {
        (Some(at), _) => Some(at),
        (None, Some(_)) => Some(OffsetDateTime::now_utc()),
        (None, None) => None,
    };
    let rate = spec.rate.map(|r| i32::try_from(r).unwrap_or(i32::MAX));
    client
        .execute(
            "INSERT INTO campaigns (name, merchant_id, release_at, rate, pace_from, priority)
             SELECT $1, $2, $3, $4, $3, coalesce($5, 1) WHERE EXISTS (SELECT 1 FROM merchants WHERE merchant_id = $2)
             ON CONFLICT (name) DO NOTHING",
            &[&spec.name, &spec.merchant_id, &release_at, &rate, &spec.priority.map(|p| p as i32)],
        )
        .await?;
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE name = $1");
    let Some(row) = client.query_opt(&sql, &[&spec.name]).await? else {
        return Err(CampaignError::NoMerchant(spec.merchant_id.clone()));
    };
    let campaign = campaign_from_row(&row);
    if campaign.merchant_id != spec.merchant_id {
        return Err(CampaignError::OtherMerchant { name: campaign.name, merchant: campaign.merchant_id });
    }
    if campaign.state == CampaignState::Cancelled {
        return Err(CampaignError::LoadIntoCancelled(spec.name.clone()));
    }
    let same_time = match (spec.release_at, campaign.release_at) {
        (Some(asked), Some(stored)) => (asked - stored).abs() < time::Duration::seconds(1),
        (Some(_), None) => false,
        (None, _) => true,
    };
    let same_rate = spec.rate.is_none() || rate == campaign.rate;
    if !same_time || !same_rate || (spec.is_scheduled() && !campaign.is_scheduled()) {
        return Err(CampaignError::OtherSchedule {
            name: campaign.name,
            release_at: campaign.release_at,
            rate: campaign.rate,
        });
    }
    match spec.priority {
        Some(priority) if priority as i32 != campaign.priority => {
            set_priority(store, &campaign.name, priority).await?;
            Ok(Campaign { priority: priority as i32, ..campaign })
        }
        _ => Ok(campaign),
    }
}

/// Sets a campaign's weight among its merchant's campaigns; the scheduler
/// applies it at its next step.
pub async fn set_priority(store: &Store, name: &str, priority: u32) -> Result<(), CampaignError> {
    check_priority(priority).map_err(CampaignError::Refused)?;
    let client = store.client().await?;
    let sql = "UPDATE campaigns SET priority = $2, updated_at = now() WHERE name = $1";
    match client.execute(sql, &[&name, &(priority as i32)]).await? {
        0 => Err(CampaignError::NotFound(name.into())),
        _ => Ok(()),
    }
}

/// Every campaign, newest first, with its orders and how many of them are final
/// (not open). A page of them: [`list_page`].
pub async fn list(store: &Store) -> Result<Vec<(Campaign, i64, i64)>, CampaignError> {
    Ok(list_page(store, &ListQuery { offset: 0, limit: i64::MAX, running_only: false }).await?.0)
}

/// Where a campaign stands.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub campaign: Campaign,
    /// Orders per status (a status with none is absent).
    pub by_status: HashMap<OrderStatus, i64>,
    /// Stored orders still held by the scheduler.
    pub unreleased: i64,
    /// Their price: what a cancel gives back.
    pub unreleased_money: Fen,
    /// Orders parked in the dead-letter queue.
    pub parked: i64,
    /// Failed orders per reason.
    pub failures: Vec<(String, i64)>,
    /// Orders that became final in the last 10 seconds, per second.
    pub finishing_per_sec: f64,
    /// Its share of its WeChat Pay account as the scheduler last gave it (in
    /// the last 5 seconds; None while not releasing or no scheduler runs).
    pub share: Option<Share>,
    /// Money charged for orders not refunded.
    pub charged: Fen,
    /// Money given back for failed and cancelled orders.
    pub refunded: Fen,
}

impl CampaignStatus {
    pub fn total(&self) -> i64 {
        self.by_status.values().sum()
    }

    /// Orders with this status.
    pub fn count(&self, status: OrderStatus) -> i64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Orders not final yet.
    pub fn open(&self) -> i64 {
        OrderStatus::OPEN.iter().map(|s| self.count(*s)).sum()
    }

    /// Seconds until every order is final at the current pace — its share of
    /// the account while it releases (no more than its `--rate`), else the
    /// observed finishing rate — plus the wait for a start still ahead; `None`
    /// if stalled.
    pub fn eta_secs(&self) -> Option<f64> {
        self.eta_secs_at(OffsetDateTime::now_utc())
    }

    fn eta_secs_at(&self, now: OffsetDateTime) -> Option<f64> {
        if self.open() == 0 {
            return Some(0.0);
        }
        let until_start = match self.campaign.release_at {
            Some(at) if self.unreleased > 0 && at > now => (at - now).as_seconds_f64(),
            _ => 0.0,
        };
        let share = self.share.map(|s| s.orders_per_sec).filter(|r| *r > 0.0);
        let rate = match (self.campaign.state, self.campaign.rate, share) {
            (CampaignState::Active, Some(r), Some(share)) if self.unreleased > 0 => f64::from(r).min(share),
            (CampaignState::Active, Some(r), None) if self.unreleased > 0 => f64::from(r),
            (CampaignState::Active, None, Some(share)) if self.unreleased > 0 => share,
            _ => self.finishing_per_sec,
        };
        (rate > 0.0).then(|| until_start + self.open() as f64 / rate)
    }
}

/// A releasing campaign's part of its account's campaign sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Of its account's window, 0–1: merchants alike, then by priority; what a
    /// campaign cannot use goes to the others.
    pub fraction: f64,
    /// What that is worth now, orders per second (the account's campaign rate
    /// times the fraction).
    pub orders_per_sec: f64,
}

/// Statuses whose settlement price was not given back.
const NOT_REFUNDED: [OrderStatus; 3] = [OrderStatus::Stored, OrderStatus::Processing, OrderStatus::Success];

/// A campaign's orders and money per status, and what is unreleased (the
/// scheduler's own predicate, so both always agree): one index-only scan of
/// `orders_campaign_figures`.
static BY_STATUS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT status, count(*), coalesce(sum(settlement_fen), 0)::bigint,
                count(*) FILTER (WHERE {unreleased}), coalesce(sum(settlement_fen) FILTER (WHERE {unreleased}), 0)::bigint
           FROM orders WHERE campaign = $1 GROUP BY status",
        unreleased = predicates::UNRELEASED
    )
});

/// Parked orders (read from `orders_parked`, a row per parked order, not the
/// campaign's), finishing in the last 10 s (the BRIN on finished_at), and the
/// scheduler's last share.
const CAMPAIGN_FIGURES: &str =
    "SELECT (SELECT count(*) FROM orders WHERE dead_at IS NOT NULL AND status = ANY($2) AND campaign = $1),
            (SELECT count(*) FROM orders WHERE finished_at > now() - interval '10 seconds' AND campaign = $1),
            (SELECT share FROM campaigns WHERE name = $1 AND share_at > now() - interval '5 seconds'),
            (SELECT share_rate FROM campaigns WHERE name = $1 AND share_at > now() - interval '5 seconds')";

/// The rows of `sql`, on a connection of its own.
async fn rows(
    store: &Store,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, CampaignError> {
    Ok(store.client().await?.query(sql, params).await?)
}

pub async fn status(store: &Store, name: &str) -> Result<CampaignStatus, CampaignError> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE name = $1");
    // The counts, the figures and the failures at once, each on a connection
    // of its own: a big campaign's counts (60 ms at 200,000 orders) then
    // hide the rest instead of adding to it.
    let (failed, open_statuses) = (OrderStatus::Failed, &OrderStatus::OPEN[..]);
    let by_name: [&(dyn ToSql + Sync); 1] = [&name];
    let with_open: [&(dyn ToSql + Sync); 2] = [&name, &open_statuses];
    let with_failed: [&(dyn ToSql + Sync); 2] = [&name, &failed];
    let (row, counts, figures, failures) = tokio::try_join!(
        rows(store, &sql, &by_name),
        rows(store, BY_STATUS.as_str(), &by_name),
        rows(store, CAMPAIGN_FIGURES, &with_open),
        rows(
            store,
            "SELECT coalesce(last_error, 'unknown'), count(*) FROM orders
              WHERE campaign = $1 AND status = $2 GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
            &with_failed
        ),
    )?;
    let row = row.first().ok_or_else(|| CampaignError::NotFound(name.into()))?;
    let mut campaign = campaign_from_row(row);
    let mut by_status = HashMap::new();
    let (mut charged, mut refunded, mut unreleased, mut unreleased_money) = (0i64, 0i64, 0i64, 0i64);
    for r in counts {
        let (status, n, money): (OrderStatus, i64, i64) = (r.get(0), r.get(1), r.get(2));
        by_status.insert(status, n);
        if NOT_REFUNDED.contains(&status) {
            charged += money;
        } else {
            refunded += money;
        }
        unreleased += r.get::<_, i64>(3);
        unreleased_money += r.get::<_, i64>(4);
    }
    let figures = figures.first().ok_or_else(|| CampaignError::NotFound(name.into()))?;
    let failures = failures.iter().map(|r| (r.get(0), r.get(1))).collect();
    let total: i64 = by_status.values().sum();
    let open: i64 = OrderStatus::OPEN.iter().map(|s| by_status.get(s).copied().unwrap_or(0)).sum();
    let unreported = if campaign.state == CampaignState::Active && total > 0 && open == 0 {
        listing::unreported(&store.client().await?, Some(name)).await?.contains(name)
    } else {
        false
    };
    campaign.finished = campaign.state == CampaignState::Active && total > 0 && open == 0 && !unreported;
    campaign.empty = total == 0;
    Ok(CampaignStatus {
        campaign,
        by_status,
        unreleased,
        unreleased_money: Fen(unreleased_money),
        parked: figures.get(0),
        finishing_per_sec: figures.get::<_, i64>(1) as f64 / 10.0,
        failures,
        charged: Fen(charged),
        refunded: Fen(refunded),
        share: match (figures.get::<_, Option<f64>>(2), figures.get::<_, Option<f64>>(3)) {
            (Some(fraction), Some(orders_per_sec)) => Some(Share { fraction, orders_per_sec }),
            _ => None,
        },
    })
}

/// Stops releasing (orders already released, at most its part of the release
/// window, are issued as usual).
pub async fn pause(store: &Store, name: &str) -> Result<(), CampaignError> {
    let sql = "UPDATE campaigns SET state = $2, updated_at = now() WHERE name = $1 AND state = $3";
    set_state(store, name, sql, CampaignState::Paused, CampaignState::Active).await
}

/// Releases again, pacing from now: the paused time is not made up in a burst.
pub async fn resume(store: &Store, name: &str) -> Result<(), CampaignError> {
    let sql = "UPDATE campaigns SET state = $2, pace_from = greatest(clock_timestamp(), release_at),
                      pace_base = released, updated_at = now()
                WHERE name = $1 AND state = $3";
    set_state(store, name, sql, CampaignState::Active, CampaignState::Paused).await
}

/// Runs `sql` (`$1` name, `$2` the new state, `$3` the state it must be in); a
/// campaign in another state is refused with the state it is in.
async fn set_state(
    store: &Store,
    name: &str,
    sql: &str,
    to: CampaignState,
    from: CampaignState,
) -> Result<(), CampaignError> {
    let client = store.client().await?;
    if client.execute(sql, &[&name, &to, &from]).await? == 1 {
        return Ok(());
    }
    match current_state(&client, name).await? {
        None => Err(CampaignError::NotFound(name.into())),
        Some(state) => Err(CampaignError::WrongState { name: name.into(), state, wanted: from }),
    }
}

async fn current_state(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<Option<CampaignState>, CampaignError> {
    Ok(client.query_opt("SELECT state FROM campaigns WHERE name = $1", &[&name]).await?.map(|r| r.get(0)))
}

/// Deletes a campaign that has no orders (a load that accepted nothing), so its
/// name can be used again. The campaign row is locked first: a load adding
/// orders holds the same lock, so its orders are seen before anything is deleted.
pub async fn delete_empty(store: &Store, name: &str) -> Result<(), CampaignError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM campaigns WHERE name = $1 FOR UPDATE", &[&name]).await?.is_none() {
        return Err(CampaignError::NotFound(name.into()));
    }
    let orders: i64 = tx.query_one("SELECT count(*) FROM orders WHERE campaign = $1", &[&name]).await?.get(0);
    if orders > 0 {
        return Err(CampaignError::NotEmpty { name: name.into(), orders });
    }
    tx.execute("DELETE FROM campaigns WHERE name = $1", &[&name]).await?;
    tx.commit().await?;
    Ok(())
}

/// Cancels: every unreleased order becomes cancelled, refunded, with its report
/// queued — one transaction. Returns (orders cancelled, money refunded).
pub async fn cancel(store: &Store, name: &str) -> Result<(i64, Fen), CampaignError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    match current_state(&tx, name).await? {
        None => return Err(CampaignError::NotFound(name.into())),
        Some(CampaignState::Cancelled) => return Err(CampaignError::AlreadyCancelled(name.into())),
        Some(_) => {}
    }
    let row = tx.query_one("SELECT cancelled, refunded FROM lijian_cancel_unreleased($1)", &[&name]).await?;
    tx.commit().await?;
    Ok((row.get(0), Fen(row.get(1))))
}
