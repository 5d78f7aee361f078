//! More of a campaign's page: its release and issue rate over time (the SVG
//! chart of `chart.rs`), its last load (from the audit log) and its rejects
//! file. Kept apart from `campaigns.rs`, which holds the progress and actions.

use lijian_core::status::OrderStatus;
use lijian_core::store::{Store, StoreError};
use lijian_core::times::rfc3339_seconds;
use lijian_core::vocab::AuditAction;
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;

use super::chart::{lines, Series};
use super::i18n::{self, Lang, M};
use super::layout::{at, trusted};
use super::Ctx;
use crate::actions::loads;

/// Points of the rate chart.
const POINTS: i64 = 60;

/// Orders released (handed to the issue queue) and issued per step of time,
/// from the campaign's first release to its last event (or now, while open).
#[derive(Serialize, Default)]
pub(super) struct RateChart {
    /// The first step's start, UTC.
    pub since: Option<String>,
    pub step_secs: i64,
    pub released: Vec<i64>,
    pub issued: Vec<i64>,
}

/// The campaign's last load, as the audit log has it.
#[derive(Serialize)]
pub(super) struct LastLoad {
    /// UTC, RFC 3339 (what JSON gives).
    pub at: String,
    /// The same moment, shown in the operator's zone on the page.
    #[serde(skip)]
    pub time: OffsetDateTime,
    pub by: String,
    pub detail: String,
}

/// A campaign's orders released and issued per minute (minutes since the
/// epoch, count), read without knowing its state so the page can read them
/// while it counts the campaign; [`RateMinutes::chart`] shapes them.
pub(super) struct RateMinutes {
    released_at: Vec<(i64, i64)>,
    issued_at: Vec<(i64, i64)>,
}

pub(super) async fn rate_minutes(store: &Store, campaign: &str) -> Result<RateMinutes, StoreError> {
    // Two index-only passes over the campaign's entries in
    // `orders_campaign_figures` (which carries enqueued_at and finished_at), on
    // two connections at once, counted per whole minute. The span and the steps
    // are worked out from these minutes, which is exact because a step is whole
    // minutes from a whole minute. No time condition: a range on finished_at
    // would tempt the planner onto `orders_finished`, which visits the heap for
    // every row (180 ms for `c-big` against 25 ms).
    let (released_at, issued_at) = tokio::join!(
        per_minute(
            store,
            "SELECT date_trunc('minute', enqueued_at), count(*) FROM orders
              WHERE campaign = $1 AND enqueued_at IS NOT NULL GROUP BY 1",
            campaign,
            None
        ),
        per_minute(
            store,
            "SELECT date_trunc('minute', finished_at), count(*) FROM orders
              WHERE campaign = $1 AND status = $2 GROUP BY 1",
            campaign,
            Some(OrderStatus::Success)
        ),
    );
    Ok(RateMinutes { released_at: released_at?, issued_at: issued_at? })
}

impl RateMinutes {
    /// The chart, from the first release to the last event, or to now while
    /// orders are `open`.
    pub(super) fn chart(self, open: bool) -> RateChart {
        let RateMinutes { released_at, issued_at } = self;
        rate_chart(released_at, issued_at, open)
    }
}

fn rate_chart(released_at: Vec<(i64, i64)>, issued_at: Vec<(i64, i64)>, open: bool) -> RateChart {
    let last_finished = issued_at.iter().map(|r| r.0).max();
    let (Some(first_min), Some(last_released)) =
        (released_at.iter().map(|r| r.0).min(), released_at.iter().map(|r| r.0).max())
    else {
        return RateChart::default();
    };
    let minute_start = |m: i64| OffsetDateTime::from_unix_timestamp(m * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let first = minute_start(first_min);
    let last = minute_start(last_released.max(last_finished.unwrap_or(last_released)));
    let last = if open { OffsetDateTime::now_utc().max(last) } else { last };
    // Whole minutes per step, so that a step's count reads as "per N min".
    let span_secs = (last - first).whole_seconds().max(1);
    let step_secs = ((span_secs + 1) / POINTS / 60 + 1) * 60;
    // At least ten steps, so that a short campaign still reads as a line.
    let steps = (span_secs / step_secs + 1).clamp(10, POINTS + 1) as usize;
    let mut released = vec![0i64; steps];
    let mut issued = vec![0i64; steps];
    for (into, counts) in [(&mut released, released_at), (&mut issued, issued_at)] {
        for (minute, n) in counts {
            let slot = (minute - first_min) * 60 / step_secs;
            if let Some(slot) = usize::try_from(slot).ok().and_then(|i| into.get_mut(i)) {
                *slot += n;
            }
        }
    }
    RateChart { since: Some(rfc3339_seconds(first)), step_secs, released, issued }
}

/// (minutes since the epoch, count) rows of `sql`, for the campaign (and the
/// status, when given).
async fn per_minute(
    store: &Store,
    sql: &str,
    campaign: &str,
    status: Option<OrderStatus>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let client = store.client().await?;
    let rows = match &status {
        Some(status) => client.query(sql, &[&campaign, status]).await?,
        None => client.query(sql, &[&campaign]).await?,
    };
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get::<_, Option<OffsetDateTime>>(0)?.unix_timestamp().div_euclid(60), r.get(1))))
        .collect())
}

pub(super) fn chart_markup(l: Lang, c: &RateChart) -> Markup {
    let Some(since) = &c.since else {
        return html! { p.muted { (l.t(M::NothingReleased)) } };
    };
    let minutes = c.step_secs / 60;
    let labels: Vec<String> = (0..c.released.len())
        .map(|i| match i {
            0 => since.get(11..16).unwrap_or_default().to_string(),
            i if i % 10 == 0 => i18n::minutes_after(l, i as i64 * minutes),
            _ => String::new(),
        })
        .collect();
    let svg = lines(
        &i18n::rate_chart_title(l, minutes),
        &[
            Series { name: l.t(M::SeriesReleasedOrders), colour: "#2b4a7d", values: &c.released },
            Series { name: l.t(M::SeriesIssued), colour: "#2f8f5b", values: &c.issued },
        ],
        &labels,
    );
    html! {
        h2 { (l.t(M::RateHeading)) }
        p.muted { (i18n::rate_chart_note(l, minutes, since)) }
        div.chart { (trusted(svg)) }
    }
}

pub(super) async fn last_load(store: &Store, campaign: &str) -> Result<Option<LastLoad>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT at, actor, detail FROM audit_log WHERE action = $1 AND target = $2 ORDER BY id DESC LIMIT 1",
            &[&AuditAction::Load, &campaign],
        )
        .await?;
    Ok(row.map(|r| {
        let time: OffsetDateTime = r.get(0);
        LastLoad { at: rfc3339_seconds(time), time, by: r.get(1), detail: r.get(2) }
    }))
}

/// Where the rejects file of the campaign's latest load is, if it refused a row.
pub(super) async fn rejects_link(store: &Store, campaign: &str) -> Result<Option<String>, StoreError> {
    Ok(loads::rejects_chunks(store, campaign).await?.map(|_| format!("/campaigns/{campaign}/rejects")))
}

pub(super) fn load_markup(ctx: &Ctx, last: Option<&LastLoad>, rejects: Option<&str>) -> Markup {
    let l = ctx.lang;
    html! {
        h2 { (l.t(M::LastLoad)) }
        @match last {
            Some(last) => p { (at(ctx, last.time)) (i18n::last_load_by(l, &last.by, &last.detail)) },
            None => p.muted { (l.t(M::NoLoad)) },
        }
        @match rejects {
            Some(href) => p { a.rejects href=(href) download { (l.t(M::DownloadRejects)) } (l.t(M::RejectsColumns)) },
            None => p.muted { (l.t(M::NoRejects)) },
        }
    }
}
