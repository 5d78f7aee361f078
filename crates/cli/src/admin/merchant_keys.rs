//! `lijian merchant key …`: rotating a merchant's request keys with an overlap.
//! A new key is added beside the old (both verify), the merchant switches, the
//! old is retired. Key material is read from files or stdin and never printed.

use anyhow::bail;
use clap::Subcommand;
use lijian_core::config::Settings;
use lijian_core::signing::SignType;
use lijian_core::store::{MerchantKey, NewKey, Retired};

use super::merchants::{check_md5_key, read_public_key, read_secret};
use lijian_core::vocab::AuditAction;

use super::{audit, rfc3339, store};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add a key beside the merchant's live ones: requests signed with any live key
    /// are accepted until the old one is retired.
    Add {
        #[arg(long)]
        merchant_id: String,
        /// A new SHA256-RSA public key file: PEM SPKI, PEM PKCS#1 or bare Base64 DER.
        #[arg(long, value_name = "FILE", conflicts_with = "md5_key_file", required_unless_present = "md5_key_file")]
        public_key: Option<std::path::PathBuf>,
        /// A new MD5 key: the first line of FILE, or standard input when FILE is `-`.
        #[arg(long, value_name = "FILE")]
        md5_key_file: Option<std::path::PathBuf>,
    },
    /// The merchant's keys, newest first: id, signType, when added, live or retired,
    /// and an RSA key's fingerprint (never the key).
    List {
        #[arg(long)]
        merchant_id: String,
    },
    /// Stop accepting a key (its id from `list`); the merchant's last live key cannot be retired.
    Retire {
        #[arg(long)]
        merchant_id: String,
        #[arg(long)]
        key_id: i64,
    },
}

pub async fn merchant_key(settings: &Settings, cmd: KeyCommand) -> anyhow::Result<()> {
    let store = store(settings)?;
    match cmd {
        KeyCommand::Add { merchant_id, public_key, md5_key_file } => {
            let key = match (public_key, md5_key_file) {
                (Some(path), _) => NewKey { sign_type: SignType::Sha256Rsa, key_text: read_public_key(&path)? },
                (None, Some(path)) => {
                    let key_text = read_secret(&path)?;
                    check_md5_key(&key_text)?;
                    NewKey { sign_type: SignType::Md5, key_text }
                }
                (None, None) => bail!("give --public-key FILE or --md5-key-file FILE (- for standard input)"),
            };
            let key_id = store.add_merchant_key(&merchant_id, &key).await?;
            let detail = format!("key {key_id} ({})", key.sign_type.as_str());
            audit(&store, AuditAction::MerchantKeyAdd, &merchant_id, detail).await?;
            let keys = store.merchant_keys(&merchant_id).await?;
            println!(
                "key {key_id} ({}) added to merchant {merchant_id}; live keys now {} (gateways accept it within \
                 LIJIAN_MERCHANT_CACHE_TTL)",
                key.sign_type.as_str(),
                live_ids(&keys)
            );
            println!("status reports: {}", report_signing(&keys));
            println!(
                "once the merchant signs with the new key: lijian merchant key retire --merchant-id {merchant_id} \
                 --key-id OLD"
            );
        }
        KeyCommand::List { merchant_id } => {
            let keys = store.merchant_keys(&merchant_id).await?;
            println!("{:<6} {:<11} {:<21} {:<29} fingerprint", "key", "signType", "added", "state");
            for k in &keys {
                let state = match k.retired_at {
                    Some(at) => format!("retired {}", rfc3339(at)),
                    None => "live".to_string(),
                };
                println!(
                    "{:<6} {:<11} {:<21} {:<29} {}",
                    k.key_id,
                    k.sign_type.as_str(),
                    rfc3339(k.added_at),
                    state,
                    k.fingerprint.as_deref().unwrap_or("-")
                );
            }
            println!("status reports: {}", report_signing(&keys));
        }
        KeyCommand::Retire { merchant_id, key_id } => {
            match store.retire_merchant_key(&merchant_id, key_id).await? {
                Retired::Now => {
                    audit(&store, AuditAction::MerchantKeyRetire, &merchant_id, format!("key {key_id}")).await?;
                    println!(
                        "key {key_id} of merchant {merchant_id} retired: requests signed with it get status 2 within \
                     LIJIAN_MERCHANT_CACHE_TTL"
                    )
                }
                Retired::Already(at) => {
                    println!("key {key_id} of merchant {merchant_id} was retired at {}", rfc3339(at))
                }
            }
            let keys = store.merchant_keys(&merchant_id).await?;
            println!("live keys {}; status reports: {}", live_ids(&keys), report_signing(&keys));
        }
    }
    Ok(())
}

fn live_ids(keys: &[MerchantKey]) -> String {
    let live: Vec<String> = keys
        .iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| format!("{} ({})", k.key_id, k.sign_type.as_str()))
        .collect();
    live.join(", ")
}

/// How the notifier signs this merchant's reports (the rule of report_store.rs):
/// with the platform key while any RSA key is live, else with the newest MD5 key.
fn report_signing(keys: &[MerchantKey]) -> String {
    let mut live = keys.iter().filter(|k| k.retired_at.is_none());
    if live.clone().any(|k| k.sign_type == SignType::Sha256Rsa) {
        return "signed SHA256-RSA with the platform key (lijian platform public-key)".into();
    }
    match live.find(|k| k.sign_type == SignType::Md5) {
        Some(k) => format!("signed MD5 with key {}, the newest MD5 key", k.key_id),
        None => "no live key".into(),
    }
}
