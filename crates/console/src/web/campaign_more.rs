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
use super::layout::trusted;
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
    pub at: String,
    pub by: String,
    pub detail: String,
}

pub(super) async fn rate_chart(store: &Store, campaign: &str, open: bool) -> Result<RateChart, StoreError> {
    let client = store.client().await?;
    let span = client
        .query_one(
            "SELECT min(enqueued_at), greatest(max(enqueued_at), max(finished_at)) FROM orders
              WHERE campaign = $1 AND enqueued_at IS NOT NULL",
            &[&campaign],
        )
        .await?;
    let (Some(first), Some(last)) =
        (span.get::<_, Option<OffsetDateTime>>(0), span.get::<_, Option<OffsetDateTime>>(1))
    else {
        return Ok(RateChart::default());
    };
    let first = first.replace_second(0).unwrap_or(first).replace_nanosecond(0).unwrap_or(first);
    let last = if open { OffsetDateTime::now_utc().max(last) } else { last };
    // Whole minutes per step, so that a step's count reads as "per N min".
    let span_secs = (last - first).whole_seconds().max(1);
    let step_secs = ((span_secs + 1) / POINTS / 60 + 1) * 60;
    // At least ten steps, so that a short campaign still reads as a line.
    let steps = (span_secs / step_secs + 1).clamp(10, POINTS + 1) as usize;
    let mut released = vec![0i64; steps];
    let mut issued = vec![0i64; steps];
    let step = step_secs as f64;
    let released_rows = client
        .query(
            "SELECT floor(extract(epoch FROM enqueued_at - $2)::float8 / $3)::bigint, count(*) FROM orders
              WHERE campaign = $1 AND enqueued_at >= $2 GROUP BY 1",
            &[&campaign, &first, &step],
        )
        .await?;
    let issued_rows = client
        .query(
            "SELECT floor(extract(epoch FROM finished_at - $2)::float8 / $3)::bigint, count(*) FROM orders
              WHERE campaign = $1 AND status = $4 AND finished_at >= $2 GROUP BY 1",
            &[&campaign, &first, &step, &OrderStatus::Success],
        )
        .await?;
    for (into, rows) in [(&mut released, released_rows), (&mut issued, issued_rows)] {
        for row in rows {
            let at: i64 = row.get(0);
            if let Some(slot) = usize::try_from(at).ok().and_then(|i| into.get_mut(i)) {
                *slot += row.get::<_, i64>(1);
            }
        }
    }
    Ok(RateChart { since: Some(rfc3339_seconds(first)), step_secs, released, issued })
}

pub(super) fn chart_markup(c: &RateChart) -> Markup {
    let Some(since) = &c.since else {
        return html! { p.muted { "Nothing released yet: no rate to draw." } };
    };
    let minutes = c.step_secs / 60;
    let labels: Vec<String> = (0..c.released.len())
        .map(|i| match i {
            0 => since.get(11..16).unwrap_or_default().to_string(),
            i if i % 10 == 0 => format!("+{} min", i as i64 * minutes),
            _ => String::new(),
        })
        .collect();
    let svg = lines(
        &format!("Orders released and issued per {minutes} min"),
        &[
            Series { name: "released", colour: "#2b4a7d", values: &c.released },
            Series { name: "issued", colour: "#2f8f5b", values: &c.issued },
        ],
        &labels,
    );
    html! {
        h2 { "Release and issue rate" }
        p.muted { "Orders per " (minutes) " min from " (since) " (UTC)." }
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
    Ok(row.map(|r| LastLoad { at: rfc3339_seconds(r.get(0)), by: r.get(1), detail: r.get(2) }))
}

/// Where the rejects file of the campaign's latest load is, if it refused a row.
pub(super) async fn rejects_link(store: &Store, campaign: &str) -> Result<Option<String>, StoreError> {
    Ok(loads::rejects_chunks(store, campaign).await?.map(|_| format!("/campaigns/{campaign}/rejects")))
}

pub(super) fn load_markup(last: Option<&LastLoad>, rejects: Option<&str>) -> Markup {
    html! {
        h2 { "Last load" }
        @match last {
            Some(l) => p { (l.at) " by " (l.by) ": " (l.detail) },
            None => p.muted { "No load recorded." },
        }
        @match rejects {
            Some(href) => p { a.rejects href=(href) download { "Download the rejects file" } " (line, reason, the row as uploaded)" },
            None => p.muted { "No rejected rows in the last load." },
        }
    }
}
