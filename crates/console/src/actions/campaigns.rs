//! Campaign actions (pause, resume, cancel, delete, priority), audited; the
//! rules are `lijian_producer::campaign`'s. A load is [`super::loads`].

use lijian_core::money::Fen;
use lijian_core::store::Store;
use lijian_core::vocab::AuditAction;
use lijian_producer::campaign;

use super::{record, ActionError, Actor};

/// Stops releasing a scheduled campaign; returns its unreleased orders (they wait).
pub async fn pause(store: &Store, name: &str, actor: &Actor) -> Result<i64, ActionError> {
    campaign::pause(store, name).await?;
    let waiting = campaign::status(store, name).await?.unreleased;
    record(store, actor, AuditAction::CampaignPause, name, waiting, format!("{waiting} unreleased orders wait"))
        .await?;
    Ok(waiting)
}

/// Releases again, pacing from now; returns the unreleased orders.
pub async fn resume(store: &Store, name: &str, actor: &Actor) -> Result<i64, ActionError> {
    campaign::resume(store, name).await?;
    let waiting = campaign::status(store, name).await?.unreleased;
    let detail = format!("{waiting} unreleased orders released from now");
    record(store, actor, AuditAction::CampaignResume, name, waiting, detail).await?;
    Ok(waiting)
}

/// Cancels every unreleased order (status 4, refunded, reported); returns how
/// many and the money given back.
pub async fn cancel(store: &Store, name: &str, actor: &Actor) -> Result<(i64, Fen), ActionError> {
    let (n, refunded) = campaign::cancel(store, name).await?;
    let detail = format!("{n} unreleased orders cancelled, {refunded} yuan refunded");
    record(store, actor, AuditAction::CampaignCancel, name, n, detail).await?;
    Ok((n, refunded))
}

/// Deletes a campaign without orders.
pub async fn delete(store: &Store, name: &str, actor: &Actor) -> Result<(), ActionError> {
    campaign::delete_empty(store, name).await?;
    record(store, actor, AuditAction::CampaignDelete, name, 0, "empty campaign deleted".into()).await
}

/// Sets a campaign's priority among its merchant's campaigns.
pub async fn priority(store: &Store, name: &str, priority: u32, actor: &Actor) -> Result<(), ActionError> {
    campaign::set_priority(store, name, priority).await?;
    record(store, actor, AuditAction::CampaignPriority, name, 1, format!("priority {priority}")).await
}
