//! `/`: the last hour per minute (accepted, issued, failed, reports
//! delivered), the broker's queue depths, what is parked, the send rate of
//! each WeChat Pay account against its limit, the campaigns running. Live: the
//! page refreshes itself.

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
use super::i18n::{self, Lang, M};
use super::layout::{at, progress, trusted};
use super::rates;
use super::{Answer, Ctx, Explain};
use crate::Console;

#[derive(Serialize)]
pub(super) struct Overview {
    /// The first minute shown (UTC); one entry per minute up to now.
    since: String,
    minutes: Vec<Minute>,
    queues: Vec<QueueDepth>,
    parked: Parked,
    /// Each WeChat Pay account's sends per second now, against its limit.
    accounts: Vec<rates::AccountRate>,
    /// The newest running campaigns, at most [`RUNNING_SHOWN`].
    campaigns: Vec<RunningCampaign>,
    /// More are running than shown (all of them are on /campaigns).
    more_running: bool,
    #[serde(skip)]
    first: OffsetDateTime,
    #[serde(skip)]
    now: OffsetDateTime,
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
    let view = overview(&console, ctx.lang).await.map_err(|e| ctx.fail(e))?;
    Ok(ctx.render_live(ctx.t(M::Overview), &view, |v| body(&ctx, v)))
}

async fn overview(console: &Console, l: Lang) -> Result<Overview, super::Problem> {
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
    let (minutes, queues, parked, accounts, running) = tokio::join!(
        per_minute(&console.store, first),
        depths,
        parked(&console.store),
        rates::accounts(&console.store, &console.settings),
        lijian_producer::campaign::list_page(&console.store, &window)
    );
    let (minutes, parked, accounts, (running, more_running)) =
        (minutes?, parked?, accounts?, running.map_err(|e| e.explain(l))?);
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
    Ok(Overview {
        since: rfc3339_seconds(first),
        minutes,
        queues,
        parked,
        accounts,
        campaigns,
        more_running,
        first,
        now,
    })
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

fn body(ctx: &Ctx, v: &Overview) -> Markup {
    let l = ctx.lang;
    let series = |pick: fn(&Minute) -> i64| v.minutes.iter().map(pick).collect::<Vec<i64>>();
    let (accepted, issued, failed, delivered) =
        (series(|m| m.accepted), series(|m| m.issued), series(|m| m.failed), series(|m| m.delivered));
    let labels: Vec<String> = (0..v.minutes.len())
        .map(|i| {
            let ago = MINUTES - 1 - i as i64;
            match ago {
                0 => ctx.t(M::Now).to_string(),
                a if a % 10 == 0 => i18n::minutes_ago(l, a),
                _ => String::new(),
            }
        })
        .collect();
    let svg = lines(
        ctx.t(M::ChartTitle),
        &[
            Series { name: ctx.t(M::SeriesAccepted), colour: "#2b4a7d", values: &accepted },
            Series { name: ctx.t(M::SeriesIssued), colour: "#1b7f3b", values: &issued },
            Series { name: ctx.t(M::SeriesFailed), colour: "#b3261e", values: &failed },
            Series { name: ctx.t(M::SeriesDelivered), colour: "#a15c00", values: &delivered },
        ],
        &labels,
    );
    let total = |s: &[i64]| s.iter().sum::<i64>();
    html! {
        div.cards {
            div.card { div.figure { (total(&accepted)) } div.what { (ctx.t(M::AcceptedLastHour)) } }
            div.card { div.figure { (total(&issued)) } div.what { (ctx.t(M::IssuedLastHour)) } }
            div.card { div.figure { (total(&failed)) } div.what { (ctx.t(M::FailedLastHour)) } }
            div.card { div.figure { (total(&delivered)) } div.what { (ctx.t(M::DeliveredLastHour)) } }
            div.card.alert[v.parked.issue + v.parked.notify > 0] {
                div.figure { (v.parked.issue + v.parked.notify) }
                div.what { a href="/dlq" { (i18n::parked_card(l, v.parked.issue, v.parked.notify)) } }
            }
        }
        div.chart { (trusted(svg)) }
        p.muted { (i18n::per_minute_since(l)) " " (at(ctx, v.first)) }
        h2 { (ctx.t(M::SendRates)) }
        (rates::table(ctx, &v.accounts))
        h2 { (ctx.t(M::Queues)) }
        table {
            thead { tr { th { (ctx.t(M::Queue)) } th.num { (ctx.t(M::Messages)) } } }
            tbody {
                @for q in &v.queues {
                    tr {
                        td.code { (q.queue) }
                        td.num { @match q.messages { Some(n) => (n), None => span.muted { (ctx.t(M::NotReachable)) } } }
                    }
                }
            }
        }
        h2 { (ctx.t(M::CampaignsRunning)) }
        @if v.campaigns.is_empty() {
            p.muted { (ctx.t(M::NoneRunning)) }
        } @else {
            table {
                thead { tr {
                    th { (ctx.t(M::Campaign)) } th { (ctx.t(M::Merchant)) } th { (ctx.t(M::State)) }
                    th { (ctx.t(M::FinalOrders)) } th.num { (ctx.t(M::Released)) }
                } }
                tbody {
                    @for c in &v.campaigns {
                        tr {
                            td { a href={ "/campaigns/" (c.name) } { (c.name) } }
                            td { a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
                            td { span class={ "state " (c.state) } { (i18n::state_word(l, c.state.as_str())) } }
                            td { (progress(c.finished, c.orders, ctx.t(M::Final))) }
                            td.num { (c.released) }
                        }
                    }
                }
            }
            @if v.more_running { p { a href="/campaigns" { (ctx.t(M::MoreRunning)) } } }
        }
        p.muted.as-of { (i18n::as_of(l)) " " (at(ctx, v.now)) }
    }
}
