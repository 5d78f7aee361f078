//! `/campaigns` and `/campaigns/{name}`: progress, state, pace, ETA, counts by
//! status and failure reason; pause, resume and cancel behind a confirmation
//! that says how many orders and how much money they touch. The actions are
//! `lijian campaign`'s ([`crate::actions::campaigns`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lijian_core::money::Fen;
use lijian_core::status::OrderStatus;
use lijian_core::vocab::CampaignState;
use lijian_producer::campaign::{self, Campaign};
use maud::{html, Markup};
use serde::Serialize;

use super::layout::{at, confirmation, duration_words, progress, yuan};
use super::paging::{PageQuery, Pager, ROWS};
use super::{Answer, Ctx, Form, Problem};
use crate::actions::campaigns as act;
use crate::Console;

#[derive(Serialize)]
pub(super) struct CampaignRow {
    name: String,
    merchant_id: String,
    /// As operators see it: active, paused, cancelled, finished or empty.
    state: &'static str,
    release_at: Option<String>,
    rate: Option<i32>,
    orders: i64,
    finished: i64,
    released: i64,
}

impl CampaignRow {
    fn of(c: &Campaign, orders: i64, finished: i64) -> CampaignRow {
        CampaignRow {
            name: c.name.clone(),
            merchant_id: c.merchant_id.clone(),
            state: c.shown_state(),
            release_at: c.release_at.map(lijian_core::times::rfc3339_seconds),
            rate: c.rate,
            orders,
            finished,
            released: c.released,
        }
    }
}

/// A page of campaigns, newest first.
#[derive(Serialize)]
pub(super) struct CampaignList {
    campaigns: Vec<CampaignRow>,
    #[serde(flatten)]
    pager: Pager,
}

pub(super) async fn list(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<PageQuery>) -> Answer {
    let page = q.number();
    let window = campaign::ListQuery { offset: Pager::offset(page, ROWS), limit: ROWS, running_only: false };
    let (found, more) = campaign::list_page(&console.store, &window).await.map_err(|e| ctx.fail(e))?;
    let campaigns = found.iter().map(|(c, orders, done)| CampaignRow::of(c, *orders, *done)).collect();
    let view = CampaignList { campaigns, pager: Pager::numbered("/campaigns", "", page, more) };
    Ok(ctx.render("Campaigns", &view, |v| {
        let rows = &v.campaigns;
        html! {
            @if rows.is_empty() && page == 1 { p.muted { "No campaigns yet: `lijian load FILE.csv …` creates one." } }
            @else {
                table {
                    thead { tr { th { "campaign" } th { "merchant" } th { "state" } th { "release" } th { "final orders" } th { "released" } } }
                    tbody {
                        @for c in rows {
                            tr {
                                td { a href={ "/campaigns/" (c.name) } { (c.name) } }
                                td { a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
                                td { span class={ "state " (c.state) } { (c.state) } }
                                td {
                                    (c.release_at.as_deref().unwrap_or("as loaded"))
                                    @if let Some(rate) = c.rate { " at " (rate) "/s" }
                                }
                                td { (progress(c.finished, c.orders, "final")) }
                                td { @if c.release_at.is_some() { (progress(c.released, c.orders, "released")) } @else { span.muted { "all" } } }
                            }
                        }
                    }
                }
            }
            (v.pager.nav())
        }
    }))
}

#[derive(Serialize)]
pub(super) struct Detail {
    campaign: CampaignRow,
    /// Orders per status code.
    by_status: Vec<StatusCount>,
    unreleased: Unreleased,
    parked: i64,
    failures: Vec<(String, i64)>,
    finishing_per_sec: f64,
    eta_secs: Option<f64>,
    /// Yuan charged (orders issued or in progress) and refunded.
    charged: String,
    refunded: String,
}

#[derive(Serialize)]
struct StatusCount {
    status: i16,
    label: &'static str,
    orders: i64,
}

/// Orders a pause holds, a resume releases and a cancel refunds.
#[derive(Serialize, Clone, Copy)]
struct Unreleased {
    orders: i64,
    #[serde(serialize_with = "as_yuan")]
    money: Fen,
}

fn as_yuan<S: serde::Serializer>(amount: &Fen, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&amount.to_string())
}

fn unreleased(s: &campaign::CampaignStatus) -> Unreleased {
    Unreleased { orders: s.unreleased, money: s.unreleased_money }
}

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>, Path(name): Path<String>) -> Answer {
    let s = campaign::status(&console.store, &name).await.map_err(|e| ctx.fail(e))?;
    let waiting = unreleased(&s);
    let detail = Detail {
        campaign: CampaignRow::of(&s.campaign, s.total(), s.total() - s.open()),
        by_status: OrderStatus::ALL
            .iter()
            .map(|st| StatusCount { status: st.code(), label: st.operator_word(), orders: s.count(*st) })
            .collect(),
        unreleased: waiting,
        parked: s.parked,
        failures: s.failures.clone(),
        finishing_per_sec: s.finishing_per_sec,
        eta_secs: s.eta_secs(),
        charged: s.charged.to_string(),
        refunded: s.refunded.to_string(),
    };
    let state = s.campaign.state;
    Ok(ctx.render(&format!("Campaign {name}"), &detail, |d| detail_body(&ctx, d, state)))
}

fn detail_body(ctx: &Ctx, d: &Detail, state: CampaignState) -> Markup {
    let c = &d.campaign;
    let actions: &[(&str, &str)] = match (state, c.state) {
        (_, "finished" | "empty") | (CampaignState::Cancelled, _) => &[],
        (CampaignState::Active, _) => &[("pause", "Pause…"), ("cancel", "Cancel…")],
        (CampaignState::Paused, _) => &[("resume", "Resume…"), ("cancel", "Cancel…")],
    };
    html! {
        section {
            p { span class={ "state " (c.state) } { (c.state) } " · merchant " a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
            p { (progress(c.finished, c.orders, "orders final")) }
            @if c.release_at.is_some() { p { (progress(c.released, c.orders, "released")) } }
            p {
                "Release: " (c.release_at.as_deref().unwrap_or("as loaded"))
                @if let Some(rate) = c.rate { " at " (rate) " orders/s" }
                " · finishing " (format!("{:.1}", d.finishing_per_sec)) " orders/s (last 10 s) · ETA "
                @match d.eta_secs { Some(secs) => (duration_words(secs)), None => "unknown (nothing finishing now)" }
            }
            p { "Unreleased: " (d.unreleased.orders) " orders, " (yuan(d.unreleased.money)) " · parked: " (d.parked)
                " · charged ¥" (d.charged) " · refunded ¥" (d.refunded) }
            @if ctx.is_admin() && !actions.is_empty() {
                div.actions {
                    @for (action, label) in actions {
                        form method="post" action={ "/campaigns/" (c.name) "/" (action) } {
                            input type="hidden" name="csrf" value=(ctx.csrf());
                            button.secondary type="submit" { (label) }
                        }
                    }
                }
            }
        }
        h2 { "Orders by status" }
        table {
            thead { tr { th { "status" } th.num { "orders" } } }
            tbody { @for s in &d.by_status { tr { td { (s.status) " " (s.label) } td.num { (s.orders) } } } }
        }
        @if !d.failures.is_empty() {
            h2 { "Failures by reason" }
            table {
                thead { tr { th { "reason" } th.num { "orders" } } }
                tbody { @for (reason, n) in &d.failures { tr { td { (reason) } td.num { (n) } } } }
            }
        }
    }
}

/// What an action did, for its result page and JSON.
#[derive(Serialize)]
struct Done {
    campaign: String,
    action: String,
    orders: i64,
    refunded: Option<String>,
}

pub(super) async fn act(
    ctx: Ctx,
    State(console): State<Arc<Console>>,
    Path((name, action)): Path<(String, String)>,
    form: Form,
) -> Answer {
    ctx.check_admin(&form)?;
    let store = &console.store;
    let status = campaign::status(store, &name).await.map_err(|e| ctx.fail(e))?;
    let waiting = unreleased(&status);
    let (question, button) = match action.as_str() {
        "pause" => (
            format!(
                "Pause campaign {name}? Its {} unreleased orders ({} yuan) wait until it is resumed; orders already released are still issued.",
                waiting.orders, waiting.money
            ),
            "Pause",
        ),
        "resume" => (
            format!(
                "Resume campaign {name}? Its {} unreleased orders ({} yuan) are released from now{}.",
                waiting.orders,
                waiting.money,
                status.campaign.rate.map(|r| format!(" at {r} orders/s")).unwrap_or_default()
            ),
            "Resume",
        ),
        "cancel" => (
            format!(
                "Cancel campaign {name}? Its {} unreleased orders end as cancelled (status 4) and {} yuan goes back to merchant {}. This cannot be undone.",
                waiting.orders, waiting.money, status.campaign.merchant_id
            ),
            "Cancel the campaign",
        ),
        other => return Err(ctx.fail(Problem(StatusCode::NOT_FOUND, format!("no campaign action {other}")))),
    };
    if !form.confirmed() {
        #[derive(Serialize)]
        struct Preview {
            confirmed: bool,
            question: String,
            unreleased: Unreleased,
        }
        let preview = Preview { confirmed: false, question: question.clone(), unreleased: waiting };
        let back = format!("/campaigns/{name}");
        let path = format!("/campaigns/{name}/{action}");
        return Ok(ctx.render(&format!("{button} {name}"), &preview, |_| {
            confirmation(&ctx, &path, &question, html! {}, button, &back)
        }));
    }
    let actor = ctx.actor();
    let done = match action.as_str() {
        "pause" => act::pause(store, &name, &actor).await.map(|n| (n, None)),
        "resume" => act::resume(store, &name, &actor).await.map(|n| (n, None)),
        _ => act::cancel(store, &name, &actor).await.map(|(n, refunded)| (n, Some(refunded.to_string()))),
    }
    .map_err(|e| ctx.fail(e))?;
    let done = Done { campaign: name.clone(), action: action.clone(), orders: done.0, refunded: done.1 };
    Ok(ctx.render(&format!("Campaign {name}"), &done, |d| {
        html! {
            p.done {
                @match d.action.as_str() {
                    "pause" => { "Paused: " (d.orders) " unreleased orders wait." }
                    "resume" => { "Resumed: " (d.orders) " unreleased orders are released from now." }
                    _ => { "Cancelled: " (d.orders) " orders, " (d.refunded.as_deref().unwrap_or("0.00")) " yuan refunded." }
                }
            }
            p { a href={ "/campaigns/" (d.campaign) } { "Back to the campaign" } " · " (at(time::OffsetDateTime::now_utc())) }
        }
    }))
}
