//! What operators do, one function each, for the console's pages and the CLI
//! alike (`lijian dlq`, `lijian campaign`, `lijian load`, `lijian merchant topup`, `lijian
//! operator`): the action itself (whose rules live in the store and the
//! producer), then its line in the audit log. The CLI's other admin commands
//! (merchants, keys, products, activities, WeChat Pay accounts) record theirs
//! through [`admin`].
//!
//! The line is written once the action succeeded, not in its transaction: the
//! actions keep the transactions they have (a replay publishes to the broker
//! between two). Should the audit insert fail, the caller is told the action
//! was done but not recorded, and the error is logged.

pub mod admin;
pub mod campaigns;
pub mod dlq;
pub mod loads;
pub mod merchants;
pub mod operators;

use lijian_core::store::{NewAudit, Store, StoreError};
use lijian_core::vocab::AuditAction;

/// Who acts: a console operator, or a person at the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Operator(String),
    /// The unix user running `lijian`.
    Cli(String),
}

impl Actor {
    /// The person running this process, as the audit log names them.
    pub fn cli() -> Actor {
        Actor::Cli(unix_user())
    }

    /// As the audit log shows it: the operator's name, or `cli:<unix user>`.
    pub fn name(&self) -> String {
        match self {
            Actor::Operator(name) => name.clone(),
            Actor::Cli(user) => format!("cli:{user}"),
        }
    }

    /// Where the action came from, in the words stored with it (a failed
    /// order's reason says who gave up on it).
    pub fn door(&self, command: &str) -> String {
        match self {
            Actor::Operator(name) => format!("console, operator {name}"),
            Actor::Cli(_) => format!("lijian {command}"),
        }
    }
}

/// The user this process runs as: the owner of `/proc/self` named through
/// `/etc/passwd` (what `id -un` says, and not an environment variable anyone
/// can set), else `$USER`, else the uid.
fn unix_user() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let named = uid.and_then(|uid| {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    named
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| uid.map(|u| format!("uid {u}")).unwrap_or_else(|| "unknown".into()))
}

/// Why an action did not happen (or happened without its audit line).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Campaign(#[from] lijian_producer::campaign::CampaignError),
    #[error(transparent)]
    Replay(#[from] lijian_producer::ReplayError),
    #[error(transparent)]
    Load(#[from] lijian_producer::bulk::LoadError),
    #[error(transparent)]
    Queue(#[from] lijian_core::queue::QueueError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// Refused before anything changed (bad input, a rule).
    #[error("{0}")]
    Refused(String),
    #[error("{done}, but recording it in the audit log failed: {source}")]
    Unrecorded { done: String, source: StoreError },
}

impl ActionError {
    /// Whether the operator asked for something that cannot be (as opposed to
    /// the system failing): the console answers 400/404/409 rather than 500.
    pub fn is_refusal(&self) -> bool {
        use lijian_producer::bulk::LoadError;
        match self {
            ActionError::Refused(_) | ActionError::Load(LoadError::Csv(_) | LoadError::NoHeader) => true,
            ActionError::Store(e) => {
                matches!(e, StoreError::NotFound(_) | StoreError::Invalid(_) | StoreError::Conflict(_))
            }
            ActionError::Campaign(e) | ActionError::Load(LoadError::Campaign(e)) => e.is_refusal(),
            _ => false,
        }
    }
}

/// Records a done action. `done` says what happened, for the error when the
/// record cannot be written.
async fn record(
    store: &Store,
    actor: &Actor,
    action: AuditAction,
    target: &str,
    count: i64,
    detail: String,
) -> Result<(), ActionError> {
    let entry = NewAudit { actor: actor.name(), action, target: target.to_string(), count, detail };
    store.audit(&entry).await.map_err(|source| {
        tracing::error!(actor = %entry.actor, action = %action, target, count, error = %source, "action done but not recorded in the audit log");
        ActionError::Unrecorded { done: format!("{action} {target} done"), source }
    })
}

/// A list of order codes as an audit target: the first few and how many more.
fn codes_target(codes: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = codes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(" ");
    if codes.len() > SHOWN {
        text.push_str(&format!(" and {} more", codes.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_actor_is_the_unix_user() {
        let actor = Actor::cli();
        let name = actor.name();
        assert!(name.starts_with("cli:") && name.len() > 4, "{name}");
        assert_eq!(Actor::Operator("ana".into()).name(), "ana");
    }

    #[test]
    fn long_selections_are_summarised() {
        let codes: Vec<String> = (0..7).map(|i| format!("LJ{i}")).collect();
        assert_eq!(codes_target(&codes), "LJ0 LJ1 LJ2 LJ3 LJ4 and 2 more");
        assert_eq!(codes_target(&codes[..2]), "LJ0 LJ1");
    }
}
