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

use super::campaign_more::{self as more, LastLoad, RateChart};
use super::i18n::{self, Lang, M};
use super::layout::{at, confirmation, progress};
use super::paging::{PageQuery, Pager, ROWS};
use super::upload::{self, UploadView};
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
    #[serde(skip)]
    release_time: Option<time::OffsetDateTime>,
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
            release_time: c.release_at,
        }
    }

    /// When it releases, in the operator's zone (or as loaded), and at what rate.
    fn release(&self, ctx: &Ctx) -> Markup {
        html! {
            @match self.release_time { Some(t) => (at(ctx, t)), None => (ctx.t(M::AsLoaded)) }
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
    let l = ctx.lang;
    let loading = console.uploads.all();
    Ok(ctx.render_live(ctx.t(M::Campaigns), &view, |v| {
        let rows = &v.campaigns;
        html! {
            @for (name, u) in &loading { (upload::progress_box(l, name, u)) }
            (upload::form(&ctx))
            @if rows.is_empty() && page == 1 { p.muted { (ctx.t(M::NoCampaigns)) } }
            @else {
                table {
                    thead { tr {
                        th { (ctx.t(M::Campaign)) } th { (ctx.t(M::Merchant)) } th { (ctx.t(M::State)) }
                        th { (ctx.t(M::Release)) } th { (ctx.t(M::FinalOrders)) } th { (ctx.t(M::Released)) }
                    } }
                    tbody {
                        @for c in rows {
                            tr {
                                td { a href={ "/campaigns/" (c.name) } { (c.name) } }
                                td { a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
                                td { span class={ "state " (c.state) } { (i18n::state_word(l, c.state)) } }
                                td {
                                    (c.release(&ctx))
                                    @if let Some(rate) = c.rate { " · " (i18n::per_sec(l, rate)) }
                                }
                                td { (progress(c.finished, c.orders, ctx.t(M::Final))) }
                                td { @if c.release_at.is_some() { (progress(c.released, c.orders, ctx.t(M::Released))) } @else { span.muted { (ctx.t(M::All)) } } }
                            }
                        }
                    }
                }
            }
            (v.pager.nav(l))
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
    /// An upload loading into the campaign now (in this console process).
    loading: Option<UploadView>,
    last_load: Option<LastLoad>,
    /// The rejects file of the last load, if it refused a row.
    rejects: Option<String>,
    rate: RateChart,
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
    let store = &console.store;
    // Independent reads at once, each on a connection of its own: the page
    // takes as long as the slowest (the counts or the rate chart), not the sum.
    let (s, more) = tokio::join!(campaign::status(store, &name), async {
        tokio::try_join!(
            more::rate_minutes(store, &name),
            more::last_load(store, &name),
            more::rejects_link(store, &name)
        )
    });
    let s = s.map_err(|e| ctx.fail(e))?;
    let (rate, last_load, rejects) = more.map_err(|e| ctx.fail(e))?;
    let rate = rate.chart(s.open() > 0);
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
        loading: console.uploads.view(&name),
        last_load,
        rejects,
        rate,
    };
    let state = s.campaign.state;
    Ok(ctx.render_live(&i18n::campaign_title(ctx.lang, &name), &detail, |d| detail_body(&ctx, d, state)))
}

fn detail_body(ctx: &Ctx, d: &Detail, state: CampaignState) -> Markup {
    let c = &d.campaign;
    let l = ctx.lang;
    let actions: &[(&str, M)] = match (state, c.state) {
        (_, "finished" | "empty") | (CampaignState::Cancelled, _) => &[],
        (CampaignState::Active, _) => &[("pause", M::PauseAsk), ("cancel", M::CancelAsk)],
        (CampaignState::Paused, _) => &[("resume", M::ResumeAsk), ("cancel", M::CancelAsk)],
    };
    let eta = match d.eta_secs {
        Some(secs) => i18n::duration_words(l, secs),
        None => ctx.t(M::EtaUnknown).to_string(),
    };
    html! {
        @if let Some(u) = &d.loading { (upload::progress_box(l, &c.name, u)) }
        section {
            p { span class={ "state " (c.state) } { (i18n::state_word(l, c.state)) } " · " (ctx.t(M::Merchant)) " " a href={ "/merchants/" (c.merchant_id) } { (c.merchant_id) } }
            p { (progress(c.finished, c.orders, ctx.t(M::OrdersFinal))) }
            @if c.release_at.is_some() { p { (progress(c.released, c.orders, ctx.t(M::Released))) } }
            p { (ctx.t(M::ReleaseLabel)) (c.release(ctx)) (i18n::release_rest(l, c.rate, d.finishing_per_sec, &eta)) }
            p { (i18n::money_line(l, d.unreleased.orders, d.unreleased.money, d.parked, &d.charged, &d.refunded)) }
            @if ctx.is_admin() && !actions.is_empty() {
                div.actions {
                    @for (action, label) in actions {
                        form method="post" action={ "/campaigns/" (c.name) "/" (action) } {
                            input type="hidden" name="csrf" value=(ctx.csrf());
                            button.secondary type="submit" { (ctx.t(*label)) }
                        }
                    }
                }
            }
        }
        (more::chart_markup(l, &d.rate))
        (more::load_markup(ctx, d.last_load.as_ref(), d.rejects.as_deref()))
        h2 { (ctx.t(M::OrdersByStatus)) }
        table {
            thead { tr { th { (ctx.t(M::Status)) } th.num { (ctx.t(M::OrdersCol)) } } }
            tbody { @for s in &d.by_status { tr { td { (s.status) " " (i18n::status_code_word(l, s.status)) } td.num { (s.orders) } } } }
        }
        @if !d.failures.is_empty() {
            h2 { (ctx.t(M::FailuresByReason)) }
            table {
                thead { tr { th { (ctx.t(M::Reason)) } th.num { (ctx.t(M::OrdersCol)) } } }
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
    let (orders, money, rate) = (waiting.orders, waiting.money, status.campaign.rate);
    let merchant = status.campaign.merchant_id.clone();
    let button = match action.as_str() {
        "pause" => M::Pause,
        "resume" => M::Resume,
        "cancel" => M::CancelCampaign,
        other => return Err(ctx.fail(Problem(StatusCode::NOT_FOUND, i18n::no_campaign_action(ctx.lang, other)))),
    };
    let question = |l: Lang| match button {
        M::Pause => i18n::pause_question(l, &name, orders, money),
        M::Resume => i18n::resume_question(l, &name, orders, money, rate),
        _ => i18n::cancel_question(l, &name, orders, money, &merchant),
    };
    if !form.confirmed() {
        #[derive(Serialize)]
        struct Preview {
            confirmed: bool,
            question: String,
            unreleased: Unreleased,
        }
        // The JSON's question is in English, like every text the JSON carries.
        let preview = Preview { confirmed: false, question: question(Lang::En), unreleased: waiting };
        let back = format!("/campaigns/{name}");
        let path = format!("/campaigns/{name}/{action}");
        let button = ctx.t(button);
        return Ok(ctx.render(&i18n::action_title(ctx.lang, button, &name), &preview, |_| {
            confirmation(&ctx, &path, &question(ctx.lang), html! {}, button, &back)
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
    let l = ctx.lang;
    Ok(ctx.render(&i18n::campaign_title(l, &name), &done, |d| {
        html! {
            p.done {
                @match d.action.as_str() {
                    "pause" => { (i18n::paused_done(l, d.orders)) }
                    "resume" => { (i18n::resumed_done(l, d.orders)) }
                    _ => { (i18n::cancelled_done(l, d.orders, d.refunded.as_deref().unwrap_or("0.00"))) }
                }
            }
            p { a href={ "/campaigns/" (d.campaign) } { (ctx.t(M::BackToCampaign)) } " · " (at(&ctx, time::OffsetDateTime::now_utc())) }
        }
    }))
}
