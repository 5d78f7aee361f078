//! `/audit`: what operators did, newest first, through the console and the
//! CLI alike; filtered by actor or action, a page of 100 at a time.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use lijian_core::store::{AuditEntry, AuditFilter};
use lijian_core::vocab::AuditAction;
use maud::html;
use serde::Serialize;

use super::i18n::{self, M};
use super::layout::at;
use super::{Answer, Ctx, Problem};
use crate::Console;

const PAGE: i64 = 100;

#[derive(serde::Deserialize, Default)]
pub(super) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// `before` for the next (older) page, when there is one.
    older: Option<i64>,
}

pub(super) async fn page(ctx: Ctx, State(console): State<Arc<Console>>, Query(q): Query<AuditQuery>) -> Answer {
    let action = q
        .action
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(str::parse::<AuditAction>)
        .transpose()
        .map_err(|e| ctx.fail(Problem(StatusCode::BAD_REQUEST, i18n::unknown_word(ctx.lang, &e))))?;
    let actor = q.actor.clone().filter(|a| !a.is_empty());
    let filter = AuditFilter { actor: actor.clone(), action, before: q.before, limit: PAGE };
    let entries = console.store.audit_entries(&filter).await.map_err(|e| ctx.fail(e))?;
    let older = (entries.len() as i64 == PAGE).then(|| entries.last().map(|e| e.id)).flatten();
    let view = AuditPage { entries, older };
    Ok(ctx.render(ctx.t(M::AuditLog), &view, |v| {
        html! {
            form.inline method="get" action="/audit" {
                label { (ctx.t(M::Actor)) input name="actor" value=(actor.clone().unwrap_or_default()) placeholder=(ctx.t(M::ActorHint)); }
                label { (ctx.t(M::Action))
                    select name="action" {
                        option value="" { (ctx.t(M::Any)) }
                        @for a in AuditAction::ALL { option value=(a) selected[Some(*a) == action] { (a) } }
                    }
                }
                button.secondary type="submit" { (ctx.t(M::Filter)) }
            }
            table {
                thead { tr {
                    th { (ctx.t(M::At)) } th { (ctx.t(M::Who)) } th { (ctx.t(M::ActionCol)) } th { (ctx.t(M::Target)) }
                    th.num { (ctx.t(M::Count)) } th { (ctx.t(M::Detail)) }
                } }
                tbody {
                    @for e in &v.entries {
                        tr { td { (at(&ctx, e.at)) } td { (e.actor) } td { (e.action) } td { (e.target) } td.num { (e.count) } td { (e.detail) } }
                    }
                }
            }
            @if let Some(before) = v.older {
                nav.pages { a href={ "/audit?before=" (before) "&actor=" (actor.clone().unwrap_or_default()) "&action=" (action.map(|a| a.as_str()).unwrap_or_default()) } { (ctx.t(M::Older)) } }
            }
        }
    }))
}
