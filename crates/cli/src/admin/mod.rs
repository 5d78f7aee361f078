//! Admin commands: keys, merchants, products, activities, WeChat Pay accounts. Every input is checked
//! before anything is stored; a refusal exits non-zero with the reason.
//!
//! `keys` the platform's RSA key pair; `merchants` merchant accounts and
//! balances; `merchant_keys` their request keys and rotation; `catalogue` products and activities; `accounts` the WeChat Pay
//! accounts we send from; here, the flag parsing they share.

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
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub(super) fn yuan(flag: &str, text: &str) -> anyhow::Result<Fen> {
    Fen::parse_yuan(text).with_context(|| format!("--{flag}"))
}

pub(super) fn store(settings: &Settings) -> anyhow::Result<Store> {
    crate::command_store(settings)
}

pub(super) fn timestamp(flag: &str, text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("--{flag} {text:?} is not an RFC 3339 time such as 2026-12-01T00:00:00+08:00"))
}

/// A stored time for operators: UTC, RFC 3339, whole seconds.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0).unwrap_or(at).format(&Rfc3339).unwrap_or_default()
}
