//! Admin commands: keys, merchants, products, activities, WeChat Pay accounts. Every input is checked
//! before anything is stored; a refusal exits non-zero with the reason.
//!
//! `keys` the platform's RSA key pair; `merchants` merchant accounts and
//! balances; `merchant_keys` their request keys and rotation; `catalogue` products and activities; `accounts` the WeChat Pay
//! accounts we send from; here, the flag parsing they share, and the audit
//! line each change leaves (`lijian audit list`).

mod accounts;
mod catalogue;
mod keys;
mod merchant_keys;
mod merchants;

pub use accounts::{wxpay_account, AccountCommand};
pub use catalogue::{activity, product, ActivityCommand, ProductCommand};
pub use keys::keygen;
pub use merchants::{merchant, MerchantCommand};

use anyhow::Context;
use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::store::Store;
use time::OffsetDateTime;

pub(super) fn yuan(flag: &str, text: &str) -> anyhow::Result<Fen> {
    Fen::parse_yuan(text).with_context(|| format!("--{flag}"))
}

pub(super) fn store(settings: &Settings) -> anyhow::Result<Store> {
    crate::command_store(settings)
}

/// The audit line of a done admin change, by the person at this CLI.
pub(super) async fn audit(
    store: &Store,
    action: lijian_core::vocab::AuditAction,
    target: &str,
    detail: String,
) -> anyhow::Result<()> {
    lijian_console::actions::admin::changed(store, &lijian_console::Actor::cli(), action, target, detail).await?;
    Ok(())
}

pub(super) fn timestamp(flag: &str, text: &str) -> anyhow::Result<OffsetDateTime> {
    lijian_core::times::parse_time(text, OffsetDateTime::now_utc()).map_err(|e| anyhow::anyhow!("--{flag} {e}"))
}

/// `12 issued (status 2)`: a count of orders by the status's name, its number beside.
pub(super) fn status_count(status: i16, n: i64) -> String {
    match lijian_core::status::OrderStatus::try_from(status) {
        Ok(s) => format!("{n} {} (status {status})", s.operator_word()),
        Err(_) => format!("{n} with status {status}"),
    }
}

/// A stored time for operators: UTC, RFC 3339, whole seconds.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    lijian_core::times::rfc3339_seconds(at)
}
