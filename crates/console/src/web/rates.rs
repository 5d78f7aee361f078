//! The overview's send rate per WeChat Pay account against its limit: what
//! each account sent in the last 10 seconds, from `upstream_attempts` (one row
//! per call to WeChat Pay, each naming its account).
//!
//! Cheap on a large table: only the newest rows by id are read (a backward scan
//! of the primary key, no index on the time needed), at most 1.5 × what every
//! known limit allows in the window, so the query costs the same with a
//! hundred rows or a hundred million. Ten seconds rather than a minute: the
//! figure is "now" on a page that refreshes every few seconds, and it reads a
//! sixth of the rows.

use lijian_core::config::Settings;
use lijian_core::store::{Store, StoreError};
use maud::{html, Markup};
use serde::Serialize;

use super::i18n::{self, M};
use super::Ctx;

/// The window the rate is measured over.
const WINDOW_SECS: i64 = 10;

#[derive(Serialize)]
pub(super) struct AccountRate {
    mchid: String,
    /// `stored` (`lijian wxpay-account`), `default` (the consumers'
    /// `LIJIAN_WXPAY_*` account) or `unknown` (sending, but neither).
    source: &'static str,
    enabled: bool,
    /// Requests per second WeChat allows it (None: unknown).
    limit: Option<u32>,
    /// Calls in the last `window_secs`.
    sends: i64,
    window_secs: i64,
    sends_per_sec: f64,
    /// The read stopped at its row cap: the rate is at least this.
    at_least: bool,
}

/// Every stored account, the default one, and any other account that sent
/// in the window, with its rate now.
pub(super) async fn accounts(store: &Store, settings: &Settings) -> Result<Vec<AccountRate>, StoreError> {
    let stored = store.accounts().await?;
    let default = settings.wxpay.mchid.clone().filter(|m| !stored.iter().any(|a| &a.account.mchid == m));
    let known_limits: i64 = stored.iter().map(|a| i64::from(a.account.rate)).sum::<i64>()
        + default.as_ref().map(|_| i64::from(settings.wxpay.rate)).unwrap_or(0);
    let cap = (known_limits * WINDOW_SECS * 3 / 2 + 1000).min(200_000);
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT mchid, count(*) FILTER (WHERE started_at >= now() - make_interval(secs => $2)), count(*)
               FROM (SELECT mchid, started_at FROM upstream_attempts ORDER BY id DESC LIMIT $1) newest
              WHERE mchid IS NOT NULL GROUP BY mchid",
            &[&cap, &(WINDOW_SECS as f64)],
        )
        .await?;
    let read: i64 = rows.iter().map(|r| r.get::<_, i64>(2)).sum();
    let at_least = read >= cap;
    let sent =
        |mchid: &str| rows.iter().find(|r| r.get::<_, String>(0) == mchid).map(|r| r.get::<_, i64>(1)).unwrap_or(0);
    let rate = |mchid: String, source, enabled, limit, sends: i64| AccountRate {
        mchid,
        source,
        enabled,
        limit,
        sends,
        window_secs: WINDOW_SECS,
        sends_per_sec: sends as f64 / WINDOW_SECS as f64,
        at_least,
    };
    let mut out: Vec<AccountRate> = stored
        .iter()
        .map(|a| {
            let mchid = a.account.mchid.clone();
            let sends = sent(&mchid);
            rate(mchid, "stored", a.enabled, Some(a.account.rate), sends)
        })
        .collect();
    if let Some(mchid) = default {
        let sends = sent(&mchid);
        out.push(rate(mchid, "default", true, Some(settings.wxpay.rate), sends));
    }
    for row in &rows {
        let mchid: String = row.get(0);
        let sends: i64 = row.get(1);
        if sends > 0 && !out.iter().any(|a| a.mchid == mchid) {
            out.push(rate(mchid, "unknown", true, None, sends));
        }
    }
    Ok(out)
}

/// One row per account: a bar of its rate against its limit, and the figures.
pub(super) fn table(ctx: &Ctx, accounts: &[AccountRate]) -> Markup {
    let l = ctx.lang;
    html! {
        @if accounts.is_empty() {
            p.muted { (ctx.t(M::NoAccounts)) }
        } @else {
            table.rates {
                thead { tr {
                    th { (ctx.t(M::Account)) } th { (ctx.t(M::SendsPerSec)) } th.num { (ctx.t(M::Limit)) } th { "" }
                } }
                tbody {
                    @for a in accounts {
                        tr {
                            td.code { (a.mchid) }
                            td.rate {
                                @let shown = format!("{}{:.1}", if a.at_least { "≥ " } else { "" }, a.sends_per_sec);
                                @match a.limit {
                                    Some(limit) => {
                                        meter min="0" max=(limit.max(1)) value=(format!("{:.1}", a.sends_per_sec))
                                            title=(format!("{shown} / {limit}")) { (shown) " / " (limit) }
                                        " " (shown) " / " (i18n::calls_per_sec(l, limit))
                                        " (" (format!("{:.0}", a.sends_per_sec * 100.0 / f64::from(limit.max(1)))) "%)"
                                    }
                                    None => { (i18n::calls_per_sec(l, shown)) }
                                }
                            }
                            td.num { @match a.limit { Some(limit) => (limit), None => "—" } }
                            td.muted {
                                @match a.source {
                                    "stored" => { (ctx.t(M::StoredAccount)) }
                                    "default" => { (ctx.t(M::DefaultAccount)) }
                                    _ => { (ctx.t(M::UnknownAccount)) }
                                }
                                @if !a.enabled { " · " span.problem { (ctx.t(M::Disabled)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
