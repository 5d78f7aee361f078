//! `/`: the last hour per minute (accepted, issued, failed, reports
//! delivered), the broker's queue depths, what is parked, the campaigns running.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use lijian_core::queue::Lane;
use lijian_core::status::OrderStatus;
use lijian_core::store::{Store, StoreError};
use lijian_core::times::rfc3339_seconds;
use lijian_core::vocab::{CampaignState, ReportOutcome};
use lijian_producer::campaign::ListQuery;
use maud::{html, Markup};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::chart::{lines, Series};
use super::layout::{progress, trusted};
use super::{Answer, Ctx};
use crate::Console;

#[derive(Serialize)]
pub(super) struct Overview {
    /// The first minute shown (UTC); one entry per minute up to now.
    since: String,
    minutes: Vec<Minute>,
    queues: Vec<QueueDepth>,
    parked: Parked,
    /// The newest running campaigns, at most [`RUNNING_SHOWN`].
    campaigns: Vec<RunningCampaign>,
    /// More are running than shown (all of them are on /campaigns).
    more_running: bool,
}

const RUNNING_SHOWN: i64 = 20;

#[derive(Serialize, Default, Clone)]
struct Minute {
    at: String,
    accepted: i64,
    issued: i64,
    failed: i64,
    delivered: i64,
}

#[derive(Serialize)]
struct QueueDepth {
    queue: String,
    /// None when the broker (or the queue) cannot be reached.
    messages: Option<u32>,
}

#[derive(Serialize)]
struct Parked {
    issue: i64,
    notify: i64,
}

#[derive(Serialize)]
struct RunningCampaign {
    name: String,
    merchant_id: String,
    state: CampaignState,
    orders: i64,
    finished: i64,
    released: i64,
}

const MINUTES: i64 = 60;

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>) -> Answer {
    let view = overview(&console).await.map_err(|e| ctx.fail(e))?;
    Ok(ctx.render("Overview", &view, body))
}

async fn overview(console: &Console) -> Result<Overview, super::Problem> {
    let now = OffsetDateTime::now_utc();
    let first =
        now.replace_second(0).unwrap_or(now).replace_nanosecond(0).unwrap_or(now) - Duration::minutes(MINUTES - 1);
    // Independent reads, each on a connection of its own, at once: the page
    // takes as long as the slowest, not the sum.
    let depths = async {
        let mut queues = Vec::new();
        for lane in Lane::ALL {
            for queue in [console.topology.queue(*lane), console.topology.dead_letter_queue(*lane)] {
                let messages = console.ops.queue_depth(&queue).await;
                queues.push(QueueDepth { queue, messages });
            }
        }
        queues
    };
    let window = ListQuery { offset: 0, limit: RUNNING_SHOWN, running_only: true };
    let (minutes, queues, parked, running) = tokio::join!(
        per_minute(&console.store, first),
        depths,
        parked(&console.store),
        lijian_producer::campaign::list_page(&console.store, &window)
    );
    let (minutes, parked, (running, more_running)) = (minutes?, parked?, running?);
    let campaigns = running
        .into_iter()
        .map(|(c, orders, finished)| RunningCampaign {
            name: c.name,
            merchant_id: c.merchant_id,
            state: c.state,
            orders,
            finished,
            released: c.released,
        })
        .collect();
    Ok(Overview { since: rfc3339_seconds(first), minutes, queues, parked, campaigns, more_running })
}

/// Parked issue jobs and reports, counted (the same predicates as `dlq list`;
/// `orders_parked` and `reports_unclosed` hold only such rows).
async fn parked(store: &Store) -> Result<Parked, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders WHERE dead_at IS NOT NULL AND status = ANY($1)),
                    (SELECT count(*) FROM reports WHERE outcome = $2)",
            &[&&OrderStatus::OPEN[..], &ReportOutcome::Parked],
        )
        .await?;
    Ok(Parked { issue: row.get(0), notify: row.get(1) })
}

/// Counts per minute from `first` to now, minutes with nothing included.
async fn per_minute(store: &Store, first: OffsetDateTime) -> Result<Vec<Minute>, StoreError> {
    let (success, failed) = (OrderStatus::Success, OrderStatus::Failed);
    let (since, finish_params): (
        &[&(dyn tokio_postgres::types::ToSql + Sync)],
        &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) = (&[&first], &[&first, &success, &failed]);
    let (accepted, finished, delivered) = tokio::join!(
        rows(
            store,
            "SELECT date_trunc('minute', created_at), count(*), 0::bigint FROM orders WHERE created_at >= $1 GROUP BY 1",
            since
        ),
        rows(
            store,
            "SELECT date_trunc('minute', finished_at), count(*) FILTER (WHERE status = $2),
                    count(*) FILTER (WHERE status = $3)
               FROM orders WHERE finished_at >= $1 GROUP BY 1",
            finish_params
        ),
        rows(
            store,
            "SELECT date_trunc('minute', at), count(*), 0::bigint FROM report_attempts
              WHERE delivered AND at >= $1 GROUP BY 1",
            since
        ),
    );
    let mut by_minute: HashMap<i64, Minute> = HashMap::new();
    let key = |t: OffsetDateTime| (t - first).whole_minutes();
    for (at, n, _) in accepted? {
        by_minute.entry(key(at)).or_default().accepted = n;
    }
    for (at, issued, failed) in finished? {
        let minute = by_minute.entry(key(at)).or_default();
        minute.issued = issued;
        minute.failed = failed;
    }
    for (at, n, _) in delivered? {
        by_minute.entry(key(at)).or_default().delivered = n;
    }
    Ok((0..MINUTES)
        .map(|i| {
            let mut minute = by_minute.remove(&i).unwrap_or_default();
            minute.at = rfc3339_seconds(first + Duration::minutes(i));
            minute
        })
        .collect())
}

/// (minute, two counts) rows of `sql`.
async fn rows(
    store: &Store,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<(OffsetDateTime, i64, i64)>, StoreError> {
    let client = store.client().await?;
    let found = client.query(sql, params).await?;
    Ok(found.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

fn body(v: &Overview) -> Markup {
    let series = |pick: fn(&Minute) -> i64| v.minutes.iter().map(pick).collect::<Vec<i64>>();
    let (accepted, issued, failed, delivered) =
        (series(|m| m.accepted), series(|m| m.issued), series(|m| m.failed), series(|m| m.delivered));
    let labels: Vec<String> = (0..v.minutes.len())
        .map(|i| {
            let ago = MINUTES - 1 - i as i64;
            match ago {
                0 => "now".to_string(),
                a if a % 10 == 0 => format!("−{a} min"),
                _ => String::new(),
            }
        })
        .collect();
    let svg = lines(
        "Orders per minute, last hour",
        &[
            Series { name: "accepted", colour: "#2b4a7d", values: &accepted },
            Series { name: "issued", colour: "#1b7f3b", values: &issued },
            Series { name: "failed", colour: "#b3261e", values: &failed },
            Series { name: "reports delivered", colour: "#a15c00", values: &delivered },
        ],
        &labels,
    );
    let total = |s: &[i64]| s.iter().sum::<i64>();
    html! {
        div.cards {
            div.card { div.figure { (total(&accepted)) } div.what { "accepted, last hour" } }
            div.card { div.figure { (total(&issued)) } div.what { "issued, last hour" } }
            div.card { div.figure { (total(&failed)) } div.what { "failed, last hour" } }
            div.card { div.figure { (total(&delivered)) } div.what { "reports delivered, last hour" } }
            div.card.alert[v.parked.issue + v.parked.notify > 0] {
                div.figure { (v.parked.issue + v.parked.notify) }
                div.what { a href="/dlq" { "parked (" (v.parked.issue) " issue, " (v.parked.notify) " reports)" } }
            }
        }
        div.chart { (trusted(svg)) }
        p.muted { "Per minute since " (v.since) " (UTC)." }
        h2 { "Queues" }
        table {
            thead { tr { th { "queue" } th.num { "messages" } } }
            tbody {
                @for q in &v.queues {
                    tr {
                        td.code { (q.queue) }
                        td.num { @match q.messages { Some(n) => (n), None => span.muted { "not reachable" } } }
                    }
                }
            }
        }
        h2 { "Campaigns running" }
        @if v.campaigns.is_empty() {
            p.muted { "None: every campaign is finished, cancelled or empty." }
        } @else {
            table {
                thead { tr { th { "campaign" } th { "merchant" } th { "state" } th { "final orders" } th.num { "released" } } }
                tbody {
                    @for c in &v.campaigns {
                        tr {
                            td { a href={ "/campaigns/" (c.name) } { (c.name) } }
                            td { a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
                            td { span class={ "state " (c.state) } { (c.state) } }
                            td { (progress(c.finished, c.orders, "final")) }
                            td.num { (c.released) }
                        }
                    }
                }
            }
            @if v.more_running { p { a href="/campaigns" { "More are running: all campaigns" } } }
        }
        p.muted { "As of " (rfc3339_seconds(OffsetDateTime::now_utc())) " UTC; reload for fresh figures." }
    }
}
