//! `/activities`: each WeChat coupon stock with its budget used and left, its
//! window, and the WeChat Pay account it sends from (a stored account, or the
//! consumer's `LIJIAN_WXPAY_*` default when none is stored for its mchid).

use std::sync::Arc;

use axum::extract::{Query, State};
use lijian_core::store::{Store, StoreError};
use maud::html;
use serde::Serialize;
use time::OffsetDateTime;

use super::i18n::{self, M};
use super::layout::{at, progress};
use super::paging::{PageQuery, Pager, ROWS};
use super::{Answer, Ctx};
use crate::Console;

#[derive(Serialize)]
pub(super) struct ActivityRow {
    activity_id: String,
    merchant_id: String,
    stock_id: String,
    face_value: String,
    #[serde(skip)]
    face_value_fen: lijian_core::money::Fen,
    budget: i64,
    /// Coupons counted against the budget (orders accepted and not refunded).
    used: i64,
    left: i64,
    #[serde(with = "time::serde::rfc3339")]
    starts: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    ends: OffsetDateTime,
    enabled: bool,
    /// The mchid it sends from (`--issuer`, else the stock creator).
    sends_from: String,
    /// That stored account's rate per second, or None: no stored account, so
    /// the consumer's `LIJIAN_WXPAY_*` default sends (if it is this mchid).
    account_rate: Option<i32>,
    account_enabled: Option<bool>,
}

/// A page of activities from `offset` (newest window first), one more than a page.
async fn activities(store: &Store, offset: i64) -> Result<Vec<ActivityRow>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT a.activity_id, a.merchant_id, a.stock_id, a.face_value_fen, a.budget, a.issued, a.starts_at,
                    a.ends_at, a.enabled, coalesce(a.issuer_mchid, a.stock_creator_mchid), w.rate, w.enabled
               FROM activities a LEFT JOIN wxpay_accounts w ON w.mchid = coalesce(a.issuer_mchid, a.stock_creator_mchid)
              ORDER BY a.ends_at DESC, a.activity_id LIMIT $1 OFFSET $2",
            &[&(ROWS + 1), &offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (budget, used): (i64, i64) = (r.get(4), r.get(5));
            let face = lijian_core::money::Fen(r.get(3));
            ActivityRow {
                activity_id: r.get(0),
                merchant_id: r.get(1),
                stock_id: r.get(2),
                face_value: face.to_string(),
                face_value_fen: face,
                budget,
                used,
                left: budget - used,
                starts: r.get(6),
                ends: r.get(7),
                enabled: r.get(8),
                sends_from: r.get(9),
                account_rate: r.get(10),
                account_enabled: r.get(11),
            }
        })
        .collect())
}

/// A page of activities.
#[derive(Serialize)]
pub(super) struct ActivityList {
    activities: Vec<ActivityRow>,
    #[serde(flatten)]
    pager: Pager,
}

pub(super) async fn list(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<PageQuery>) -> Answer {
    let page = q.number();
    let mut rows = activities(&console.store, Pager::offset(page, ROWS)).await.map_err(|e| ctx.fail(e))?;
    let more = rows.len() as i64 > ROWS;
    rows.truncate(ROWS as usize);
    let view = ActivityList { activities: rows, pager: Pager::numbered("/activities", "", page, more) };
    let now = OffsetDateTime::now_utc();
    let l = ctx.lang;
    Ok(ctx.render(ctx.t(M::Activities), &view, |v| {
        let rows = &v.activities;
        html! {
            table {
                thead { tr {
                    th { (ctx.t(M::Activity)) } th { (ctx.t(M::Merchant)) } th { (ctx.t(M::Coupon)) }
                    th { (ctx.t(M::BudgetUsed)) } th { (ctx.t(M::Window)) } th { (ctx.t(M::SendsFrom)) }
                } }
                tbody {
                    @for a in rows {
                        tr {
                            td {
                                (a.activity_id) @if !a.enabled { " " span.problem { (ctx.t(M::Disabled)) } }
                                br; span.muted.code { (ctx.t(M::Stock)) " " (a.stock_id) }
                            }
                            td { a href={ "/merchants/" (a.merchant_id) } { (a.merchant_id) } }
                            td { span.money { (i18n::face_off(l, a.face_value_fen)) } }
                            td { (progress(a.used, a.budget, ctx.t(M::Used))) br; span.muted { (i18n::left_count(l, a.left)) } }
                            td {
                                (at(&ctx, a.starts)) " → " (at(&ctx, a.ends))
                                @if now < a.starts { br; span.muted { (ctx.t(M::NotStarted)) } }
                                @else if now > a.ends { br; span.muted { (ctx.t(M::Ended)) } }
                            }
                            td {
                                span.code { (a.sends_from) }
                                br;
                                @match (a.account_rate, a.account_enabled) {
                                    (Some(rate), Some(true)) => span.muted { (i18n::stored_account_rate(l, rate)) },
                                    (Some(_), _) => span.problem { (ctx.t(M::AccountDisabled)) },
                                    _ => span.muted { (ctx.t(M::NoStoredAccount)) },
                                }
                            }
                        }
                    }
                }
            }
            (v.pager.nav(l))
        }
    }))
}
