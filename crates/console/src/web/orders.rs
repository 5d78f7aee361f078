//! `/orders/{orderCode}` and the search by code or merchant + bizCode: the same
//! timeline, in the same words, as `lijian order show`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use lijian_core::store::Timeline;
use lijian_core::timeline_text;
use lijian_core::times::rfc3339_millis;
use maud::{html, Markup};
use serde::Serialize;

use super::i18n::{self, Lang, M};
use super::layout::{at_millis, yuan};
use super::{Answer, Ctx, Problem};
use crate::Console;

#[derive(Serialize)]
pub(super) struct Story {
    order_code: String,
    merchant_id: String,
    biz_code: String,
    status: i16,
    status_label: &'static str,
    coupon_id: Option<String>,
    attempts: i32,
    campaign: Option<String>,
    #[serde(skip)]
    status_code: lijian_core::status::OrderStatus,
    /// Why its issue job is parked, while it is.
    parked: Option<String>,
    /// Yuan charged for it.
    charged: String,
    #[serde(skip)]
    settlement: lijian_core::money::Fen,
    events: Vec<Line>,
    /// The story exactly as `lijian order show` prints it.
    text: Vec<String>,
}

#[derive(Serialize)]
struct Line {
    at: String,
    kind: &'static str,
    detail: String,
    #[serde(skip)]
    time: time::OffsetDateTime,
}

impl Story {
    fn of(t: &Timeline) -> Story {
        let o = &t.order;
        Story {
            order_code: o.order_code.clone(),
            merchant_id: o.merchant_id.clone(),
            biz_code: o.biz_code.clone(),
            status: o.status.code(),
            status_label: o.status.label(),
            coupon_id: o.coupon_id.clone(),
            attempts: o.attempts,
            campaign: t.campaign.clone(),
            status_code: o.status,
            parked: t.dead_reason.clone(),
            charged: o.settlement.to_string(),
            settlement: o.settlement,
            events: t
                .events
                .iter()
                .map(|e| Line {
                    at: rfc3339_millis(e.at()),
                    kind: timeline_text::kind(e),
                    detail: timeline_text::detail(e),
                    time: e.at(),
                })
                .collect(),
            text: timeline_text::render(t),
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct SearchQuery {
    code: Option<String>,
    merchant: Option<String>,
    biz: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(super) async fn search(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<SearchQuery>) -> Answer {
    let (code, merchant, biz) = (given(&q.code), given(&q.merchant), given(&q.biz));
    let by_biz = merchant.zip(biz);
    if code.is_none() && by_biz.is_none() {
        if ctx.json {
            return Err(ctx.fail(Problem(StatusCode::BAD_REQUEST, ctx.t(M::GiveCodeOrBiz).into())));
        }
        return Ok(ctx.render(ctx.t(M::Orders), &(), |_| search_form(ctx.lang, &q, None)));
    }
    let found = console.store.order_timeline(code, by_biz).await.map_err(|e| ctx.fail(e))?;
    match found {
        Some(t) if ctx.json => Ok(ctx.render("", &Story::of(&t), |_| html! {})),
        Some(t) => Ok(Redirect::to(&format!("/orders/{}", url_part(&t.order.order_code))).into_response()),
        None => {
            let l = ctx.lang;
            let what = match (code, by_biz) {
                (Some(code), _) => i18n::no_order(l, code),
                (None, Some((m, b))) => i18n::no_order_biz(l, m, b),
                (None, None) => String::new(),
            };
            if ctx.json {
                return Err(ctx.fail(Problem(StatusCode::NOT_FOUND, what)));
            }
            let mut page = ctx.render(ctx.t(M::Orders), &(), |_| search_form(ctx.lang, &q, Some(&what)));
            *page.status_mut() = StatusCode::NOT_FOUND;
            Ok(page)
        }
    }
}

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>, Path(code): Path<String>) -> Answer {
    let found = console.store.order_timeline(Some(&code), None).await.map_err(|e| ctx.fail(e))?;
    let t = found.ok_or_else(|| ctx.fail(Problem(StatusCode::NOT_FOUND, i18n::no_order(ctx.lang, &code))))?;
    let story = Story::of(&t);
    Ok(ctx.render(&i18n::order_title(ctx.lang, &story.order_code), &story, |s| story_body(&ctx, s)))
}

fn url_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn search_form(l: Lang, q: &SearchQuery, problem: Option<&str>) -> Markup {
    html! {
        @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
        section {
            form.inline method="get" action="/orders" {
                label { (l.t(M::OrderCode)) input name="code" value=(q.code.clone().unwrap_or_default()) placeholder="LJ…"; }
                button type="submit" { (l.t(M::Show)) }
            }
        }
        section {
            form.inline method="get" action="/orders" {
                label { (l.t(M::MerchantLabel)) input name="merchant" value=(q.merchant.clone().unwrap_or_default()); }
                label { "bizCode" input name="biz" value=(q.biz.clone().unwrap_or_default()); }
                button type="submit" { (l.t(M::Find)) }
            }
        }
    }
}

fn story_body(ctx: &Ctx, s: &Story) -> Markup {
    let l = ctx.lang;
    html! {
        section {
            table {
                tbody {
                    tr { th { (ctx.t(M::Merchant)) } td { a href={ "/merchants/" (s.merchant_id) } { (s.merchant_id) } } }
                    tr { th { "bizCode" } td.code { (s.biz_code) } }
                    tr { th { (ctx.t(M::Status)) } td { (s.status) " (" (i18n::status_word(l, s.status_code)) ")" } }
                    @if let Some(coupon) = &s.coupon_id { tr { th { (ctx.t(M::Coupon)) } td.code { (coupon) } } }
                    @if let Some(campaign) = &s.campaign {
                        tr { th { (ctx.t(M::Campaign)) } td { a href={ "/campaigns/" (campaign) } { (campaign) } } }
                    }
                    tr { th { (ctx.t(M::Charged)) } td { (yuan(s.settlement)) } }
                    tr { th { (ctx.t(M::WxpayAttempts)) } td { (s.attempts) } }
                }
            }
            @if let Some(reason) = &s.parked {
                p.problem { (i18n::parked_because(l, reason)) }
                @if ctx.is_admin() {
                    div.actions {
                        @for (action, label) in [("/dlq/replay", ctx.t(M::ReplayOne)), ("/dlq/fail", ctx.t(M::FailRefund))] {
                            form method="post" action=(action) {
                                input type="hidden" name="csrf" value=(ctx.csrf());
                                input type="hidden" name="lane" value="issue";
                                input type="hidden" name="order" value=(s.order_code);
                                button.secondary type="submit" { (label) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t(M::Timeline)) }
        table.timeline {
            thead { tr { th { (ctx.t(M::At)) } th { (ctx.t(M::What)) } th { (ctx.t(M::Detail)) } } }
            tbody {
                @for line in &s.events {
                    tr { td { (at_millis(ctx, line.time)) } td.kind { (line.kind) } td { (line.detail) } }
                }
            }
        }
        @if l != Lang::En { p.muted { (ctx.t(M::TimelineWords)) } }
    }
}
