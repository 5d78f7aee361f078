//! The admin commands' audit lines: merchants and their keys, products,
//! activities, WeChat Pay accounts (`lijian merchant|product|activity|
//! wxpay-account`). Each change is the store's, checked by the command before
//! it is made; what this adds is the record, written once the change is done,
//! like every other action's. Details name what changed, never key material.

use lijian_core::store::Store;
use lijian_core::vocab::AuditAction;

use super::{record, ActionError, Actor};

/// Records a done admin change to `target` (a merchant id, product code,
/// activity id or mchid).
pub async fn changed(
    store: &Store,
    actor: &Actor,
    action: AuditAction,
    target: &str,
    detail: String,
) -> Result<(), ActionError> {
    record(store, actor, action, target, 1, detail).await
}
