//! `/merchants` and `/merchants/{id}`: balance, recent ledger entries, orders
//! by status, and a top-up with a note for admins (`lijian merchant topup`'s
//! action, [`crate::actions::merchants`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use lijian_core::money::Fen;
use lijian_core::store::{Store, StoreError};
use lijian_core::vocab::LedgerKind;
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;

use super::i18n::{self, M};
use super::layout::{at, yuan};
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

pub(super) async fn list(ctx: Ctx, State(console): State<Arc<Console>>) -> Answer {
    let rows = merchants(&console.store).await.map_err(|e| ctx.fail(e))?;
    Ok(ctx.render(ctx.t(M::Merchants), &rows, |rows| {
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
        }
    }))
}

async fn merchants(store: &Store) -> Result<Vec<MerchantRow>, StoreError> {
    let client = store.client().await?;
    let rows =
        client.query("SELECT merchant_id, name, enabled, balance_fen FROM merchants ORDER BY merchant_id", &[]).await?;
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
    ledger: Vec<LedgerEntry>,
}

#[derive(Serialize)]
struct LedgerEntry {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    kind: LedgerKind,
    amount: String,
    balance_after: String,
    order_code: Option<String>,
    #[serde(skip)]
    amounts: (Fen, Fen),
}

async fn ledger(store: &Store, merchant_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT created_at, kind, amount_fen, balance_after_fen, order_code FROM balance_ledger
              WHERE merchant_id = $1 ORDER BY id DESC LIMIT $2",
            &[&merchant_id, &LEDGER_ROWS],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LedgerEntry {
            at: r.get(0),
            kind: r.get(1),
            amount: Fen(r.get(2)).to_string(),
            balance_after: Fen(r.get(3)).to_string(),
            order_code: r.get(4),
            amounts: (Fen(r.get(2)), Fen(r.get(3))),
        })
        .collect())
}

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>, Path(id): Path<String>) -> Answer {
    let m = console.store.show_merchant(&id).await.map_err(|e| ctx.fail(e))?;
    let view = MerchantPage {
        ledger: ledger(&console.store, &id).await.map_err(|e| ctx.fail(e))?,
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
        h2 { (ctx.t(M::RecentLedger)) }
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
    }
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
    let amount = Fen::parse_yuan(&text).map_err(|e| ctx.fail(Problem(StatusCode::BAD_REQUEST, e.to_string())))?;
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
