//! The WeChat Pay accounts one consumer sends from: the default account of
//! `LIJIAN_WXPAY_*` (when configured; keys checked at start) and every account
//! stored with `lijian wxpay-account`, each client built once from its key files.
//!
//! Stored accounts are re-read every few seconds, and at once whenever an order
//! would be parked for its account, so `wxpay-account add/enable/disable/set-rate`
//! take effect without a restart and a replay right after `enable` finds it.
//! Key contents never leave this module: errors name the file and what is wrong.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lijian_core::config::{Settings, WxPaySettings};
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use lijian_core::store::{AccountRow, Store};

use crate::wxpay::WxPayClient;
use crate::ConsumerError;

/// How old the stored accounts may get before a lookup re-reads them.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// One account ready to send.
pub struct Account {
    pub mchid: String,
    /// Requests per second WeChat allows it (0 = unlimited).
    pub rate: u32,
    /// appid when neither the order nor its activity has one.
    pub default_appid: String,
    pub client: WxPayClient,
}

/// Why an order cannot be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// An operator must act (add, enable or fix the account): park with this reason.
    Park(String),
    /// The stored accounts could not be read: try the job again later.
    Retry(String),
}

/// A stored account as built: usable, or why not.
#[derive(Clone)]
enum Entry {
    Usable(Arc<Account>),
    Disabled,
    Unusable(String),
}

#[derive(Default)]
struct Snapshot {
    /// When the stored accounts were last read; None = never.
    loaded_at: Option<Instant>,
    /// Counts reads, so callers queued behind one read do not repeat it.
    generation: u64,
    accounts: HashMap<String, (AccountRow, Entry)>,
}

pub struct Accounts {
    default: Option<Arc<Account>>,
    store: Store,
    /// For stored accounts without a base URL of their own, and the call timeout.
    base_url: String,
    timeout: Duration,
    snapshot: RwLock<Snapshot>,
    reading: tokio::sync::Mutex<()>,
}

/// Reads and parses an account's two key files; errors name the file, never its contents.
pub fn load_keys(private: &Path, public: &Path) -> Result<(RsaPrivateKey, RsaPublicKey), ConsumerError> {
    load_named_keys(("private key", private), ("WeChat Pay public key", public))
}

fn load_named_keys(
    (private_what, private): (&'static str, &Path),
    (public_what, public): (&'static str, &Path),
) -> Result<(RsaPrivateKey, RsaPublicKey), ConsumerError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ConsumerError::ReadKey { what, path: path.into(), source })
    };
    let bad = |what: &'static str, path: &Path, e: lijian_core::signing::SignError| ConsumerError::BadKey {
        what,
        path: path.into(),
        reason: e.to_string(),
    };
    let key = RsaPrivateKey::from_pem(&read(private_what, private)?).map_err(|e| bad(private_what, private, e))?;
    let platform_key = RsaPublicKey::parse(&read(public_what, public)?).map_err(|e| bad(public_what, public, e))?;
    Ok((key, platform_key))
}

/// The settings of the default account, by variable: whether each is set.
fn default_account_settings(w: &WxPaySettings) -> [(&'static str, bool); 5] {
    [
        ("LIJIAN_WXPAY_MCHID", w.mchid.is_some()),
        ("LIJIAN_WXPAY_SERIAL_NO", w.serial_no.is_some()),
        ("LIJIAN_WXPAY_PRIVATE_KEY", w.private_key.is_some()),
        ("LIJIAN_WXPAY_PUBLIC_KEY", w.public_key.is_some()),
        ("LIJIAN_WXPAY_PUBLIC_KEY_ID", w.public_key_id.is_some()),
    ]
}

/// Every setting the default account lacks, all at once; empty when it is
/// complete or not configured at all (no `LIJIAN_WXPAY_*` account set).
pub fn missing_default_settings(w: &WxPaySettings) -> Vec<&'static str> {
    let settings = default_account_settings(w);
    if !settings.iter().any(|(_, set)| *set) {
        return Vec::new();
    }
    settings.iter().filter(|(_, set)| !set).map(|(name, _)| *name).collect()
}

/// "A is" / "A and B are" / "A, B and C are".
pub fn missing_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
    }
}

/// The account `LIJIAN_WXPAY_*` describes, if any of it is set; all of it must be then.
pub fn default_account(settings: &Settings) -> Result<Option<Account>, ConsumerError> {
    let w = &settings.wxpay;
    let missing = missing_default_settings(w);
    if !missing.is_empty() {
        return Err(ConsumerError::Missing(missing));
    }
    let (Some(mchid), Some(serial_no), Some(public_key_id), Some(private), Some(public)) = (
        w.mchid.as_deref(),
        w.serial_no.as_deref(),
        w.public_key_id.as_deref(),
        w.private_key.as_deref(),
        w.public_key.as_deref(),
    ) else {
        return Ok(None);
    };
    let (key, platform_key) =
        load_named_keys(("LIJIAN_WXPAY_PRIVATE_KEY", private), ("LIJIAN_WXPAY_PUBLIC_KEY", public))?;
    let client = WxPayClient::new(&w.base_url, mchid, serial_no, key, platform_key, public_key_id, w.timeout)?;
    Ok(Some(Account {
        mchid: mchid.to_string(),
        rate: w.rate,
        default_appid: w.appid.clone().unwrap_or_default(),
        client,
    }))
}

impl Accounts {
    pub fn new(default: Option<Account>, store: Store, wxpay: &WxPaySettings) -> Accounts {
        Accounts {
            default: default.map(Arc::new),
            store,
            base_url: wxpay.base_url.clone(),
            timeout: wxpay.timeout,
            snapshot: RwLock::new(Snapshot::default()),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The account that sends for `issuer`: the stored account of that mchid, else
    /// the default account, else none (park).
    pub async fn resolve(&self, issuer: &str) -> Result<Arc<Account>, Unresolved> {
        let (loaded_at, generation) = self.seen();
        match loaded_at {
            // Never read: a miss would wrongly fall back to the default account.
            None => {
                let _reading = self.reading.lock().await;
                self.read_stored(generation).await.map_err(Unresolved::Retry)?;
            }
            // Stale: whoever reads first refreshes; the others use what we have meanwhile.
            Some(t) if t.elapsed() >= REFRESH_EVERY => {
                if let Ok(_reading) = self.reading.try_lock() {
                    let _ = self.read_stored(generation).await;
                }
            }
            Some(_) => {}
        }
        match self.lookup(issuer) {
            Ok(account) => Ok(account),
            Err(_) => {
                // About to park: make sure an operator's fix of a moment ago is seen.
                let (_, generation) = self.seen();
                let _reading = self.reading.lock().await;
                self.read_stored(generation).await.map_err(Unresolved::Retry)?;
                self.lookup(issuer).map_err(Unresolved::Park)
            }
        }
    }

    fn seen(&self) -> (Option<Instant>, u64) {
        let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        (s.loaded_at, s.generation)
    }

    fn lookup(&self, issuer: &str) -> Result<Arc<Account>, String> {
        let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        match (s.accounts.get(issuer), &self.default) {
            (Some((_, Entry::Usable(account))), _) => Ok(account.clone()),
            (Some((_, Entry::Disabled)), _) => {
                Err(format!("WeChat Pay account {issuer} is disabled (lijian wxpay-account enable --mchid {issuer})"))
            }
            (Some((_, Entry::Unusable(reason))), _) => {
                Err(format!("WeChat Pay account {issuer} is not usable: {reason}"))
            }
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => {
                Err(format!("no WeChat Pay account for mchid {issuer} (lijian wxpay-account add --mchid {issuer} …)"))
            }
        }
    }

    /// Re-reads the stored accounts unless someone did since `generation`. Call
    /// with `reading` held. Rows unchanged since the last read keep their client.
    async fn read_stored(&self, generation: u64) -> Result<(), String> {
        if self.seen().1 != generation {
            return Ok(());
        }
        let rows = self.store.accounts().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read the WeChat Pay accounts");
            format!("cannot read the WeChat Pay accounts: {e}")
        })?;
        let mut accounts = HashMap::with_capacity(rows.len());
        for row in rows {
            let kept = {
                let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
                s.accounts.get(&row.account.mchid).filter(|(old, _)| *old == row).map(|(_, entry)| entry.clone())
            };
            let entry = kept.unwrap_or_else(|| self.build(&row));
            accounts.insert(row.account.mchid.clone(), (row, entry));
        }
        let mut s = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        s.accounts = accounts;
        s.loaded_at = Some(Instant::now());
        s.generation += 1;
        Ok(())
    }

    fn build(&self, row: &AccountRow) -> Entry {
        if !row.enabled {
            return Entry::Disabled;
        }
        let row = &row.account;
        let built = load_keys(&row.private_key_path, &row.public_key_path).and_then(|(key, platform_key)| {
            let base_url = row.base_url.as_deref().unwrap_or(&self.base_url);
            Ok(WxPayClient::new(
                base_url,
                &row.mchid,
                &row.serial_no,
                key,
                platform_key,
                &row.public_key_id,
                self.timeout,
            )?)
        });
        match built {
            Ok(client) => {
                tracing::info!(mchid = %row.mchid, rate = row.rate, "WeChat Pay account ready");
                Entry::Usable(Arc::new(Account {
                    mchid: row.mchid.clone(),
                    rate: row.rate,
                    default_appid: row.appids.first().cloned().unwrap_or_default(),
                    client,
                }))
            }
            Err(e) => {
                let reason = crate::wxpay::error_chain(&e);
                tracing::warn!(mchid = %row.mchid, %reason, "WeChat Pay account not usable");
                Entry::Unusable(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_default_setting_is_named_at_once() {
        let mut w = Settings::default().wxpay;
        assert!(missing_default_settings(&w).is_empty(), "no default account configured is fine");
        w.mchid = Some("1900000001".into());
        w.public_key_id = Some("PUB_KEY_ID_X".into());
        let missing = missing_default_settings(&w);
        assert_eq!(missing, ["LIJIAN_WXPAY_SERIAL_NO", "LIJIAN_WXPAY_PRIVATE_KEY", "LIJIAN_WXPAY_PUBLIC_KEY"]);
        assert_eq!(
            missing_list(&missing),
            "LIJIAN_WXPAY_SERIAL_NO, LIJIAN_WXPAY_PRIVATE_KEY and LIJIAN_WXPAY_PUBLIC_KEY are"
        );
        assert_eq!(missing_list(&missing[..1]), "LIJIAN_WXPAY_SERIAL_NO is");
    }
}
