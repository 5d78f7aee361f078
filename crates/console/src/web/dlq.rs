//! `/dlq`: parked work grouped by lane and reason (count, oldest), each group's
//! jobs, and replay or fail of a selection or a whole reason, after a
//! confirmation that says how many. The actions are `lijian dlq`'s
//! ([`crate::actions::dlq`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use lijian_core::queue::Lane;
use lijian_core::status::OrderStatus;
use lijian_core::store::DeadFilter;
use lijian_core::vocab::ReportOutcome;
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;

use super::i18n::{self, M};
use super::layout::{age, at, confirmation, hidden};
use super::paging::{term, Pager};
use super::{Answer, Ctx, Form, Problem};
use crate::actions::dlq::{self as act, Selection};
use crate::Console;

/// Jobs listed on a group's page (an action on the whole reason takes all).
const SHOWN: i64 = 100;

#[derive(Serialize)]
pub(super) struct DeadLetters {
    groups: Vec<Group>,
    /// The group asked for with `?lane=…&reason=…`, with its jobs.
    group: Option<GroupJobs>,
}

#[derive(Serialize)]
struct Group {
    lane: Lane,
    reason: String,
    count: usize,
    #[serde(with = "time::serde::rfc3339")]
    oldest: OffsetDateTime,
    oldest_age_secs: i64,
}

#[derive(Serialize)]
struct GroupJobs {
    lane: Lane,
    reason: String,
    total: usize,
    /// Oldest first, [`SHOWN`] a page.
    jobs: Vec<Job>,
    #[serde(flatten)]
    pager: Pager,
}

#[derive(Serialize)]
struct Job {
    order_code: String,
    merchant_id: String,
    campaign: Option<String>,
    attempts: i32,
    attempts_since_replay: i32,
    #[serde(with = "time::serde::rfc3339")]
    parked_at: OffsetDateTime,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct GroupQuery {
    lane: Option<String>,
    reason: Option<String>,
    page: Option<i64>,
}

/// Parked work per lane and reason, counted in SQL from the indexes that hold
/// only parked rows (`orders_parked`, `reports_unclosed`); the same predicates
/// as `Store::dead_jobs`, grouped on the exact reason.
const GROUPS: &str =
    "SELECT * FROM (SELECT 'issue' AS lane, coalesce(dead_reason, '') AS reason, count(*), min(dead_at) FROM orders
                        WHERE dead_at IS NOT NULL AND status = ANY($1) GROUP BY 2
                      UNION ALL
                      SELECT 'notify', coalesce(last_error, ''), count(*), min(dead_at) FROM reports
                        WHERE outcome = $2 GROUP BY 2) g
                      ORDER BY lane, reason COLLATE \"C\"";

/// A page of one group's jobs, oldest first.
const ISSUE_JOBS: &str =
    "SELECT order_code, merchant_id, campaign, attempts, attempts - attempts_before_replay, dead_at
                            FROM orders
                           WHERE dead_at IS NOT NULL AND status = ANY($1) AND coalesce(dead_reason, '') = $2
                           ORDER BY dead_at, id LIMIT $3 OFFSET $4";
const NOTIFY_JOBS: &str = "SELECT o.order_code, o.merchant_id, o.campaign, r.attempts,
                                  r.attempts - r.attempts_before_replay, r.dead_at
                             FROM reports r JOIN orders o ON o.order_code = r.order_code
                            WHERE r.outcome = $1 AND coalesce(r.last_error, '') = $2
                            ORDER BY r.dead_at, r.id LIMIT $3 OFFSET $4";

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<GroupQuery>) -> Answer {
    let now = OffsetDateTime::now_utc();
    let lane = q
        .lane
        .as_deref()
        .map(str::parse::<Lane>)
        .transpose()
        .map_err(|e| ctx.fail(bad(i18n::unknown_word(ctx.lang, &e))))?;
    let client = console.store.client().await.map_err(|e| ctx.fail(e))?;
    let open = &OrderStatus::OPEN[..];
    let rows = client.query(GROUPS, &[&open, &ReportOutcome::Parked]).await.map_err(|e| ctx.fail(db(e)))?;
    let groups: Vec<Group> = rows
        .iter()
        .map(|r| {
            let oldest = r.get::<_, Option<OffsetDateTime>>(3).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Group {
                lane: if r.get::<_, &str>(0) == "issue" { Lane::Issue } else { Lane::Notify },
                reason: r.get(1),
                count: r.get::<_, i64>(2) as usize,
                oldest,
                oldest_age_secs: (now - oldest).whole_seconds(),
            }
        })
        .collect();
    let group = match (lane, q.reason) {
        (Some(lane), Some(reason)) => {
            let total = groups.iter().find(|g| g.lane == lane && g.reason == reason).map(|g| g.count).unwrap_or(0);
            let page = q.page.unwrap_or(1).max(1);
            let offset = Pager::offset(page, SHOWN);
            let rows = match lane {
                Lane::Issue => client.query(ISSUE_JOBS, &[&open, &reason, &SHOWN, &offset]).await,
                Lane::Notify => client.query(NOTIFY_JOBS, &[&ReportOutcome::Parked, &reason, &SHOWN, &offset]).await,
            }
            .map_err(|e| ctx.fail(db(e)))?;
            let jobs = rows.iter().map(job).collect();
            let terms = format!("{}&{}", term("lane", &lane.to_string()), term("reason", &reason));
            let pager = Pager::numbered("/dlq", &terms, page, (offset + SHOWN) < total as i64);
            Some(GroupJobs { lane, total, jobs, reason, pager })
        }
        _ => None,
    };
    let view = DeadLetters { groups, group };
    Ok(ctx.render_live(ctx.t(M::DeadLetters), &view, |v| body(&ctx, v, now)))
}

fn job(r: &tokio_postgres::Row) -> Job {
    Job {
        order_code: r.get(0),
        merchant_id: r.get(1),
        campaign: r.get(2),
        attempts: r.get(3),
        attempts_since_replay: r.get(4),
        parked_at: r.get::<_, Option<OffsetDateTime>>(5).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }
}

fn db(e: tokio_postgres::Error) -> Problem {
    Problem::from(lijian_core::store::StoreError::Db(e))
}

fn bad(message: String) -> Problem {
    Problem(StatusCode::BAD_REQUEST, message)
}

fn group_link(lane: Lane, reason: &str) -> String {
    let reason: String = form_urlencoded::byte_serialize(reason.as_bytes()).collect();
    format!("/dlq?lane={lane}&reason={reason}")
}

fn body(ctx: &Ctx, v: &DeadLetters, now: OffsetDateTime) -> Markup {
    let l = ctx.lang;
    html! {
        @if v.groups.is_empty() {
            p.done { (ctx.t(M::NothingParked)) }
        } @else {
            table {
                thead { tr {
                    th { (ctx.t(M::Kind)) } th { (ctx.t(M::Reason)) } th.num { (ctx.t(M::Jobs)) } th { (ctx.t(M::Oldest)) } th { "" }
                } }
                tbody {
                    @for g in &v.groups {
                        tr {
                            td { (i18n::lane_word(l, g.lane)) }
                            td { a href=(group_link(g.lane, &g.reason)) { (g.reason) } }
                            td.num { (g.count) }
                            td { span title=(i18n::utc_title(g.oldest)) { (i18n::ago(l, &age(l, g.oldest, now))) } }
                            td {
                                @if ctx.is_admin() {
                                    div.actions {
                                        (whole_reason(ctx, "/dlq/replay", g, ctx.t(M::ReplayAll)))
                                        (whole_reason(ctx, "/dlq/fail", g, ctx.t(M::FailAll)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(g) = &v.group { (group_body(ctx, g)) }
    }
}

fn whole_reason(ctx: &Ctx, action: &str, g: &Group, label: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(ctx.csrf());
            input type="hidden" name="lane" value=(g.lane);
            input type="hidden" name="reason" value=(g.reason);
            button.secondary type="submit" { (label) }
        }
    }
}

fn group_body(ctx: &Ctx, g: &GroupJobs) -> Markup {
    let l = ctx.lang;
    let rows = html! {
        table {
            thead { tr {
                th { "" } th { (ctx.t(M::Order)) } th { (ctx.t(M::Merchant)) } th { (ctx.t(M::Campaign)) }
                th.num { (ctx.t(M::Attempts)) } th { (ctx.t(M::ParkedAt)) }
            } }
            tbody {
                @for j in &g.jobs {
                    tr {
                        td { @if ctx.is_admin() { input type="checkbox" name="order" value=(j.order_code) aria-label=(i18n::select_label(l, &j.order_code)); } }
                        td.code { a href={ "/orders/" (j.order_code) } { (j.order_code) } }
                        td { (j.merchant_id) }
                        td { (j.campaign.as_deref().unwrap_or("—")) }
                        td.num { (j.attempts_since_replay) " / " (j.attempts) }
                        td { (at(ctx, j.parked_at)) }
                    }
                }
            }
        }
    };
    html! {
        h2 { (i18n::group_heading(l, i18n::lane_word(l, g.lane), &g.reason)) }
        p.muted { (i18n::group_note(l, g.total, g.jobs.len())) }
        @if ctx.is_admin() {
            form method="post" action="/dlq/replay" {
                input type="hidden" name="csrf" value=(ctx.csrf());
                input type="hidden" name="lane" value=(g.lane);
                (rows)
                div.actions {
                    button type="submit" { (ctx.t(M::ReplaySelected)) }
                    button.danger type="submit" formaction="/dlq/fail" { (ctx.t(M::FailSelected)) }
                }
            }
        } @else {
            (rows)
        }
        (g.pager.nav(l))
    }
}

/// What a replay or fail would touch: the orders ticked, or every job parked
/// for the reason given.
async fn selection(ctx: &Ctx, console: &Console, form: &Form) -> Result<(Lane, Selection), super::Failure> {
    let lane: Lane = form
        .text("lane")
        .ok_or_else(|| ctx.fail(bad(ctx.t(M::SayLane).into())))?
        .parse()
        .map_err(|e: lijian_core::vocab::UnknownWord| ctx.fail(bad(i18n::unknown_word(ctx.lang, &e))))?;
    let mut codes = form.all("order");
    if codes.is_empty() {
        let Some(reason) = form.get("reason") else {
            return Err(ctx.fail(bad(ctx.t(M::SelectJobs).into())));
        };
        let filter = DeadFilter { lane: Some(lane), reason: Some(reason.to_string()), ..Default::default() };
        let jobs = console.store.dead_jobs(&filter).await.map_err(|e| ctx.fail(e))?;
        codes = jobs.into_iter().filter(|j| j.reason == reason).map(|j| j.order_code).collect();
    }
    if codes.is_empty() {
        return Err(ctx.fail(Problem(StatusCode::CONFLICT, ctx.t(M::NoneParked).into())));
    }
    let filter = DeadFilter { lane: Some(lane), order_codes: codes, ..Default::default() };
    let picked = act::select(&console.store, &filter).await.map_err(|e| ctx.fail(e))?;
    if picked.is_empty() {
        return Err(ctx.fail(Problem(StatusCode::CONFLICT, ctx.t(M::NoneParked).into())));
    }
    Ok((lane, picked))
}

/// The confirmation as JSON: nothing done yet, and what would be.
#[derive(Serialize)]
struct Preview<'a> {
    confirmed: bool,
    action: &'a str,
    would: &'a Selection,
}

pub(super) async fn replay(ctx: Ctx, State(console): State<Arc<Console>>, form: Form) -> Answer {
    ctx.check_admin(&form)?;
    let (lane, picked) = selection(&ctx, &console, &form).await?;
    if !form.confirmed() {
        let question = i18n::replay_question(ctx.lang, picked.issue_orders.len(), picked.report_orders.len());
        let preview = Preview { confirmed: false, action: "replay", would: &picked };
        return Ok(ctx.render(ctx.t(M::ReplayTitle), &preview, |p| {
            let carried = html! { input type="hidden" name="lane" value=(lane); (hidden("order", &p.would.orders())) };
            confirmation(&ctx, "/dlq/replay", &question, carried, ctx.t(M::Replay), "/dlq")
        }));
    }
    let filter = DeadFilter { lane: Some(lane), order_codes: picked.orders(), ..Default::default() };
    let done = act::replay(&console.settings, &console.store, &console.publisher, &filter, None, &ctx.actor())
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ctx.render(ctx.t(M::Replayed), &done, |d| {
        html! {
            p.done { (i18n::replayed_done(ctx.lang, d.issue_jobs, d.reports)) }
            p { a href="/dlq" { (ctx.t(M::BackToDlq)) } }
        }
    }))
}

pub(super) async fn fail(ctx: Ctx, State(console): State<Arc<Console>>, form: Form) -> Answer {
    ctx.check_admin(&form)?;
    let (lane, picked) = selection(&ctx, &console, &form).await?;
    if !form.confirmed() {
        let question = i18n::fail_question(ctx.lang, picked.issue_orders.len(), picked.report_orders.len());
        let preview = Preview { confirmed: false, action: "fail", would: &picked };
        return Ok(ctx.render(ctx.t(M::FailTitle), &preview, |p| {
            let carried = html! { input type="hidden" name="lane" value=(lane); (hidden("order", &p.would.orders())) };
            confirmation(&ctx, "/dlq/fail", &question, carried, ctx.t(M::FailThem), "/dlq")
        }));
    }
    let done = act::fail(&console.store, &console.publisher, &picked.orders(), false, &ctx.actor())
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ctx.render(ctx.t(M::Failed), &done, |d| {
        html! {
            p.done { (i18n::failed_done(ctx.lang, d.failed.len(), d.dismissed.len())) }
            @for (code, why) in &d.unknown {
                p.problem { (i18n::left_parked(ctx.lang, code, why)) }
            }
            p { a href="/dlq" { (ctx.t(M::BackToDlq)) } }
        }
    }))
}
