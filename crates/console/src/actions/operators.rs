//! Operator accounts: add (a generated password, shown once), issue an API
//! token (shown once), disable. Each is audited; secrets never are.

use lijian_core::store::{CredentialKind, OperatorRow, Store};
use lijian_core::vocab::{AuditAction, OperatorRole};

use super::{record, ActionError, Actor};
use crate::secrets;

/// Registers an operator; returns the row and its password, which is stored
/// only as an argon2 hash and never shown again.
pub async fn add(
    store: &Store,
    name: &str,
    role: OperatorRole,
    actor: &Actor,
) -> Result<(OperatorRow, String), ActionError> {
    lijian_core::store::check_operator_name(name)?;
    let password = secrets::new_password()?;
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || secrets::hash_password(&password)
    })
    .await
    .map_err(|e| ActionError::Refused(format!("hashing the password: {e}")))??;
    let row = store.add_operator(name, role, &hash).await?;
    record(store, actor, AuditAction::OperatorAdd, name, 1, format!("role {role}")).await?;
    Ok((row, password))
}

/// Issues a new API token to an enabled operator; returns it (stored only hashed).
pub async fn token(store: &Store, name: &str, actor: &Actor) -> Result<String, ActionError> {
    let made = secrets::new_credential()?;
    store.add_credential(CredentialKind::Token, name, &made.selector, &made.secret_hash, None).await?;
    record(store, actor, AuditAction::OperatorToken, name, 1, format!("token {}…", &made.selector[..8])).await?;
    Ok(format!("{}{}", secrets::TOKEN_PREFIX, made.text))
}

/// Disables an operator: sessions and tokens end at once.
pub async fn disable(store: &Store, name: &str, actor: &Actor) -> Result<(), ActionError> {
    store.disable_operator(name).await?;
    record(store, actor, AuditAction::OperatorDisable, name, 1, "sessions and tokens revoked".into()).await
}
