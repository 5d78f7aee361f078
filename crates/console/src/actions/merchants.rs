//! Money an operator adds to a merchant's balance, audited with a note.

use lijian_core::money::Fen;
use lijian_core::store::Store;
use lijian_core::vocab::AuditAction;

use super::{record, ActionError, Actor};

/// The longest note a top-up may carry.
pub const MAX_NOTE: usize = 500;

/// Adds `amount` to the merchant's balance (ledger row and all); returns the
/// new balance. The note goes into the audit log.
pub async fn topup(
    store: &Store,
    merchant_id: &str,
    amount: Fen,
    note: &str,
    actor: &Actor,
) -> Result<Fen, ActionError> {
    if note.chars().count() > MAX_NOTE {
        return Err(ActionError::Refused(format!("a note is at most {MAX_NOTE} characters")));
    }
    let balance = store.topup(merchant_id, amount).await?;
    let mut detail = format!("{amount} yuan added; balance {balance} yuan");
    if !note.trim().is_empty() {
        detail.push_str(&format!("; note: {}", note.trim()));
    }
    record(store, actor, AuditAction::Topup, merchant_id, amount.0, detail).await?;
    Ok(balance)
}
