//! The audit log: every action an operator took, through the console or the
//! CLI, with who, when, what and how many. Written after the action succeeded
//! (the actions keep their own transactions); read by `lijian audit list` and
//! the console's `/audit`.

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::vocab::AuditAction;

/// One action as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// An operator's name, or `cli:<unix user>`.
    pub actor: String,
    pub action: AuditAction,
    /// What it acted on: an order selection, a campaign, a merchant, an operator.
    pub target: String,
    /// How many things it changed (orders replayed, fen topped up…).
    pub count: i64,
    /// Anything else worth knowing (a note, the money involved).
    pub detail: String,
}

/// One recorded action.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: AuditAction,
    pub target: String,
    pub count: i64,
    pub detail: String,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    /// Only entries older than this id (the next page).
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Records an action.
    pub async fn audit(&self, entry: &NewAudit) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO audit_log (actor, action, target, count, detail) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.actor,
                    &entry.action,
                    &super::storable(&entry.target),
                    &entry.count,
                    &super::storable(&entry.detail),
                ],
            )
            .await?;
        Ok(())
    }

    /// Entries matching `filter`, newest first.
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, at, actor, action, target, count, detail FROM audit_log
                  WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
                    AND ($3::bigint IS NULL OR id < $3)
                  ORDER BY id DESC LIMIT $4",
                &[&filter.actor, &filter.action, &filter.before, &filter.limit.clamp(1, 1000)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                count: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }
}
