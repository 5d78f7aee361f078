//! Parked work, acted on: replay (a fresh retry budget) and fail (status 3 with
//! a refund, or a parked report dismissed). `lijian dlq` and the console's
//! `/dlq` both come here; afterwards both dead-letter queues are swept to hold
//! exactly what the database says is parked.

use std::collections::HashSet;

use lijian_core::config::Settings;
use lijian_core::queue::{sweep_dead_letters, IssueJob, Lane, NotifyJob, Publisher};
use lijian_core::store::{DeadFilter, DeadJob, FailedParked, Store};
use lijian_core::vocab::AuditAction;

use super::{codes_target, record, ActionError, Actor};

/// What a replay or fail of a filter would touch: shown before acting.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Selection {
    /// Orders whose issue job is parked.
    pub issue_orders: Vec<String>,
    /// Orders whose report is parked, and the report ids.
    pub report_orders: Vec<String>,
    #[serde(skip)]
    pub notify_ids: Vec<String>,
}

impl Selection {
    pub fn of(jobs: &[DeadJob]) -> Selection {
        let mut s = Selection::default();
        for j in jobs {
            match &j.notify_id {
                Some(id) => {
                    s.report_orders.push(j.order_code.clone());
                    s.notify_ids.push(id.clone());
                }
                None => s.issue_orders.push(j.order_code.clone()),
            }
        }
        s
    }

    pub fn len(&self) -> usize {
        self.issue_orders.len() + self.report_orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every order named, once.
    pub fn orders(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.issue_orders.iter().chain(&self.report_orders).filter(|c| seen.insert(*c)).cloned().collect()
    }
}

/// What `filter` matches right now.
pub async fn select(store: &Store, filter: &DeadFilter) -> Result<Selection, ActionError> {
    Ok(Selection::of(&store.dead_jobs(filter).await?))
}

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Replayed {
    pub issue_jobs: usize,
    pub reports: usize,
    /// Reports pointed at another callback URL first.
    pub retargeted: Option<u64>,
}

/// Puts the parked jobs `filter` matches back in line with a fresh retry budget
/// (never a second coupon, never a second charge); with `callback_url`, their
/// reports go there instead (checked like any callbackUrl).
pub async fn replay(
    settings: &Settings,
    store: &Store,
    publisher: &Publisher,
    filter: &DeadFilter,
    callback_url: Option<&str>,
    actor: &Actor,
) -> Result<Replayed, ActionError> {
    let selection = select(store, filter).await?;
    let mut done = Replayed::default();
    if let Some(url) = callback_url {
        let guard = lijian_core::ssrf::Guard::from_settings(settings).map_err(ActionError::Refused)?;
        lijian_producer::check_callback_url(url, &guard)
            .map_err(|e| ActionError::Refused(format!("--callback-url: {e}")))?;
        done.retargeted = Some(store.retarget_reports(&selection.report_orders, url).await?);
    }
    done.issue_jobs = lijian_producer::replay_orders(store, publisher, &selection.issue_orders).await?.len();
    done.reports = store.revive_reports(&selection.notify_ids).await?.len();
    sweep(store, publisher).await?;
    let mut detail = format!("{} issue jobs, {} reports", done.issue_jobs, done.reports);
    if let Some(url) = callback_url {
        detail.push_str(&format!("; reports re-targeted to {url}"));
    }
    let target = describe(filter, &selection);
    record(store, actor, AuditAction::Replay, &target, (done.issue_jobs + done.reports) as i64, detail).await?;
    Ok(done)
}

/// What a fail did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Failed {
    /// Orders finished as failed: status 3, refunded, report queued.
    pub failed: Vec<String>,
    /// Orders whose parked report was dismissed.
    pub dismissed: Vec<String>,
    /// Named but not parked: left alone.
    pub skipped: Vec<String>,
    /// Left parked because their last WeChat Pay call's outcome is unknown, and why.
    pub unknown: Vec<(String, String)>,
}

/// Gives up on the parked work of `orders` (see `lijian dlq fail`). An order
/// whose last WeChat Pay call left the outcome unknown stays parked unless `force`.
pub async fn fail(
    store: &Store,
    publisher: &Publisher,
    orders: &[String],
    force: bool,
    actor: &Actor,
) -> Result<Failed, ActionError> {
    let command = if force { "dlq fail --force" } else { "dlq fail" };
    let reason = format!("failed by an operator ({})", actor.door(command));
    let FailedParked { failed, unknown } = store.fail_parked_orders(orders, &reason, force).await?;
    let held: Vec<&String> = unknown.iter().map(|(code, _)| code).collect();
    // What the list shows as parked, fail acts on: reports too.
    let report_orders: Vec<String> = orders.iter().filter(|o| !held.contains(o)).cloned().collect();
    let dismissed = store.dismiss_reports(&report_orders).await?;
    sweep(store, publisher).await?;
    let skipped = report_orders.into_iter().filter(|o| !failed.contains(o) && !dismissed.contains(o)).collect();
    let done = Failed { failed, dismissed, skipped, unknown };
    let mut detail =
        format!("{} orders failed and refunded, {} reports dismissed", done.failed.len(), done.dismissed.len());
    if !done.unknown.is_empty() {
        detail.push_str(&format!("; {} left parked (outcome unknown)", done.unknown.len()));
    }
    if force {
        detail.push_str("; forced");
    }
    let count = (done.failed.len() + done.dismissed.len()) as i64;
    record(store, actor, AuditAction::Fail, &codes_target(orders), count, detail).await?;
    Ok(done)
}

/// The filter as an audit target: its terms, or the orders it selected.
fn describe(filter: &DeadFilter, selection: &Selection) -> String {
    let mut terms = Vec::new();
    if let Some(lane) = filter.lane {
        terms.push(format!("kind {lane}"));
    }
    if let Some(reason) = &filter.reason {
        terms.push(format!("reason {reason:?}"));
    }
    if let Some(campaign) = &filter.campaign {
        terms.push(format!("campaign {campaign}"));
    }
    if !filter.order_codes.is_empty() {
        terms.push(format!("orders {}", codes_target(&filter.order_codes)));
    }
    if terms.is_empty() {
        terms.push(format!("all parked ({})", codes_target(&selection.orders())));
    }
    terms.join(", ")
}

/// Makes both dead-letter queues hold exactly what the database says is parked.
pub async fn sweep(store: &Store, publisher: &Publisher) -> Result<(), ActionError> {
    let parked = store.dead_jobs(&DeadFilter::default()).await?;
    let orders: HashSet<String> =
        parked.iter().filter(|j| j.lane == Lane::Issue).map(|j| j.order_code.clone()).collect();
    let reports: HashSet<String> = parked.iter().filter_map(|j| j.notify_id.clone()).collect();
    sweep_dead_letters(publisher, Lane::Issue, |payload| match IssueJob::from_bytes(payload) {
        Ok(job) => job.order_codes().iter().any(|c| orders.contains(c)),
        Err(_) => true,
    })
    .await?;
    sweep_dead_letters(publisher, Lane::Notify, |payload| match NotifyJob::from_bytes(payload) {
        Ok(job) => reports.contains(job.notify_id()),
        Err(_) => true,
    })
    .await?;
    Ok(())
}
