//! `/merchants` and `/merchants/{id}`: balance, recent ledger entries, orders
//! by status, and a top-up with a note for admins (`lijian merchant topup`'s
//! action, [`crate::actions::merchants`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lijian_core::money::Fen;
use lijian_core::store::{Store, StoreError};
use lijian_core::vocab::LedgerKind;
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;

use super::i18n::{self, M};
use super::layout::{at, yuan};
use super::paging::{PageQuery, Pager, ROWS};
use super::{Answer, Ctx, Form, Problem};
use crate::actions::merchants as act;
use crate::Console;

/// Ledger entries shown on a merchant's page.
const LEDGER_ROWS: i64 = 50;

#[derive(Serialize)]
pub(super) struct MerchantRow {
    merchant_id: String,
    name: String,
    enabled: bool,
    balance: String,
    #[serde(skip)]
    balance_fen: Fen,
}

/// A page of merchants, by id.
#[derive(Serialize)]
pub(super) struct MerchantList {
    merchants: Vec<MerchantRow>,
    #[serde(flatten)]
    pager: Pager,
}

pub(super) async fn list(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<PageQuery>) -> Answer {
    let page = q.number();
    let mut rows = merchants(&console.store, Pager::offset(page, ROWS)).await.map_err(|e| ctx.fail(e))?;
    let more = rows.len() as i64 > ROWS;
    rows.truncate(ROWS as usize);
    let view = MerchantList { merchants: rows, pager: Pager::numbered("/merchants", "", page, more) };
    let l = ctx.lang;
    Ok(ctx.render(ctx.t(M::Merchants), &view, |v| {
        let rows = &v.merchants;
        html! {
            table {
                thead { tr {
                    th { (ctx.t(M::MerchantId)) } th { (ctx.t(M::Name)) } th { (ctx.t(M::Enabled)) } th.num { (ctx.t(M::BalanceYuan)) }
                } }
                tbody {
                    @for m in rows {
                        tr {
                            td { a href={ "/merchants/" (m.merchant_id) } { (m.merchant_id) } }
                            td { (m.name) }
                            td { @if m.enabled { (ctx.t(M::Yes)) } @else { span.problem { (ctx.t(M::Disabled)) } } }
                            td.num { (yuan(m.balance_fen)) }
                        }
                    }
                }
            }
            (v.pager.nav(l))
        }
    }))
}

/// A page of merchants from `offset`, and the first of the next page if any.
async fn merchants(store: &Store, offset: i64) -> Result<Vec<MerchantRow>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT merchant_id, name, enabled, balance_fen FROM merchants ORDER BY merchant_id LIMIT $1 OFFSET $2",
            &[&(ROWS + 1), &offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MerchantRow {
            merchant_id: r.get(0),
            name: r.get(1),
            enabled: r.get(2),
            balance: Fen(r.get(3)).to_string(),
            balance_fen: Fen(r.get(3)),
        })
        .collect())
}

#[derive(Serialize)]
pub(super) struct MerchantPage {
    merchant_id: String,
    business_id: String,
    name: String,
    enabled: bool,
    balance: String,
    #[serde(skip)]
    balance_fen: Fen,
    orders_by_status: Vec<(i16, i64)>,
    /// Newest first, [`LEDGER_ROWS`] a page; `next` reads older entries.
    ledger: Vec<LedgerEntry>,
    #[serde(flatten)]
    pager: Pager,
}

#[derive(Serialize)]
struct LedgerEntry {
    #[serde(skip)]
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    kind: LedgerKind,
    amount: String,
    balance_after: String,
    order_code: Option<String>,
    #[serde(skip)]
    amounts: (Fen, Fen),
}

/// Entries older than `before` (all when None), newest first, one more than a page.
async fn ledger(store: &Store, merchant_id: &str, before: Option<i64>) -> Result<Vec<LedgerEntry>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT created_at, kind, amount_fen, balance_after_fen, order_code, id FROM balance_ledger
              WHERE merchant_id = $1 AND id < coalesce($3, 9223372036854775807) ORDER BY id DESC LIMIT $2",
            &[&merchant_id, &(LEDGER_ROWS + 1), &before],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LedgerEntry {
            id: r.get(5),
            at: r.get(0),
            kind: r.get(1),
            amount: Fen(r.get(2)).to_string(),
            balance_after: Fen(r.get(3)).to_string(),
            order_code: r.get(4),
            amounts: (Fen(r.get(2)), Fen(r.get(3))),
        })
        .collect())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct LedgerQuery {
    before: Option<i64>,
}

pub(super) async fn page(
    ctx: Ctx,
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Answer {
    let m = console.store.show_merchant(&id).await.map_err(|e| ctx.fail(e))?;
    let mut entries = ledger(&console.store, &id, q.before).await.map_err(|e| ctx.fail(e))?;
    let more = entries.len() as i64 > LEDGER_ROWS;
    entries.truncate(LEDGER_ROWS as usize);
    let path = format!("/merchants/{}", url_part(&id));
    let pager = Pager::keyset(&path, "", q.before, entries.last().map(|e| e.id), more);
    let view = MerchantPage {
        ledger: entries,
        pager,
        merchant_id: m.merchant_id,
        business_id: m.business_id,
        name: m.name,
        enabled: m.enabled,
        balance: m.balance.to_string(),
        balance_fen: m.balance,
        orders_by_status: m.orders_by_status,
    };
    Ok(ctx.render(&i18n::merchant_title(ctx.lang, &id), &view, |v| body(&ctx, v)))
}

fn body(ctx: &Ctx, m: &MerchantPage) -> Markup {
    let l = ctx.lang;
    html! {
        div.cards {
            div.card { div.figure { (yuan(m.balance_fen)) } div.what { (ctx.t(M::Balance)) } }
            @for (status, n) in &m.orders_by_status {
                div.card { div.figure { (n) } div.what { (i18n::orders_with_status(l, *status)) } }
            }
        }
        section {
            p {
                (m.name) " · " (ctx.t(M::Business)) " " span.code { (m.business_id) } " · "
                @if m.enabled { (ctx.t(M::Enabled)) } @else { span.problem { (ctx.t(M::Disabled)) } }
            }
            @if ctx.is_admin() {
                form.inline method="post" action={ "/merchants/" (m.merchant_id) "/topup" } {
                    input type="hidden" name="csrf" value=(ctx.csrf());
                    label { (ctx.t(M::TopupYuan)) input name="amount" inputmode="decimal" required placeholder="1000.00"; }
                    label { (ctx.t(M::Note)) input name="note" maxlength=(act::MAX_NOTE) placeholder=(ctx.t(M::NoteHint)); }
                    button type="submit" { (ctx.t(M::TopUp)) }
                }
            }
        }
        h2 { @if m.pager.prev.is_some() { (ctx.t(M::OlderLedger)) } @else { (ctx.t(M::RecentLedger)) } }
        table {
            thead { tr {
                th { (ctx.t(M::At)) } th { (ctx.t(M::Kind)) } th.num { (ctx.t(M::Amount)) }
                th.num { (ctx.t(M::BalanceAfter)) } th { (ctx.t(M::Order)) }
            } }
            tbody {
                @for e in &m.ledger {
                    tr {
                        td { (at(ctx, e.at)) }
                        td { (i18n::ledger_word(l, e.kind.as_str())) }
                        td.num { (yuan(e.amounts.0)) }
                        td.num { (yuan(e.amounts.1)) }
                        td.code { @if let Some(code) = &e.order_code { a href={ "/orders/" (code) } { (code) } } }
                    }
                }
            }
        }
        (m.pager.nav(l))
    }
}

fn url_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Serialize)]
struct ToppedUp {
    merchant_id: String,
    amount: String,
    balance: String,
}

pub(super) async fn topup(ctx: Ctx, State(console): State<Arc<Console>>, Path(id): Path<String>, form: Form) -> Answer {
    ctx.check_admin(&form)?;
    let text = form.text("amount").unwrap_or_default();
    let amount = Fen::parse_yuan(&text)
        .map_err(|e| ctx.fail(Problem(StatusCode::BAD_REQUEST, i18n::money_wrong(ctx.lang, &e))))?;
    let note = form.text("note").unwrap_or_default();
    let balance = act::topup(&console.store, &id, amount, &note, &ctx.actor()).await.map_err(|e| ctx.fail(e))?;
    let done = ToppedUp { merchant_id: id, amount: amount.to_string(), balance: balance.to_string() };
    Ok(ctx.render(ctx.t(M::ToppedUp), &done, |d| {
        html! {
            p.done { (i18n::topped_up(ctx.lang, amount, &d.merchant_id, balance)) }
            p { a href={ "/merchants/" (d.merchant_id) } { (ctx.t(M::BackToMerchant)) } }
        }
    }))
}
