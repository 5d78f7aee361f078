//! `/audit`: what operators did, newest first, through the console and the
//! CLI alike; filtered by actor or action, a page of 100 at a time.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use lijian_core::store::{AuditEntry, AuditFilter};
use lijian_core::vocab::AuditAction;
use maud::html;
use serde::Serialize;

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
        .map_err(|e| ctx.fail(Problem(StatusCode::BAD_REQUEST, e.to_string())))?;
    let actor = q.actor.clone().filter(|a| !a.is_empty());
    let filter = AuditFilter { actor: actor.clone(), action, before: q.before, limit: PAGE };
    let entries = console.store.audit_entries(&filter).await.map_err(|e| ctx.fail(e))?;
    let older = (entries.len() as i64 == PAGE).then(|| entries.last().map(|e| e.id)).flatten();
    let view = AuditPage { entries, older };
    Ok(ctx.render("Audit log", &view, |v| {
        html! {
            form.inline method="get" action="/audit" {
                label { "Actor" input name="actor" value=(actor.clone().unwrap_or_default()) placeholder="name or cli:user"; }
                label { "Action"
                    select name="action" {
                        option value="" { "any" }
                        @for a in AuditAction::ALL { option value=(a) selected[Some(*a) == action] { (a) } }
                    }
                }
                button.secondary type="submit" { "Filter" }
            }
            table {
                thead { tr { th { "at (UTC)" } th { "who" } th { "action" } th { "target" } th.num { "count" } th { "detail" } } }
                tbody {
                    @for e in &v.entries {
                        tr { td { (at(e.at)) } td { (e.actor) } td { (e.action) } td { (e.target) } td.num { (e.count) } td { (e.detail) } }
                    }
                }
            }
            @if let Some(before) = v.older {
                nav.pages { a href={ "/audit?before=" (before) "&actor=" (actor.clone().unwrap_or_default()) "&action=" (action.map(|a| a.as_str()).unwrap_or_default()) } { "Older entries" } }
            }
        }
    }))
}
