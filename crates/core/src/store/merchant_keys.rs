//! A merchant's request keys (`lijian merchant key …`): several may be live at
//! once, so a rotation has an overlap — the new key is added beside the old,
//! the merchant switches, the old is retired. Nothing here returns key material
//! to a caller that shows keys: [`MerchantKey`] carries an RSA key's fingerprint
//! only, and no trace of an MD5 key.

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::signing::{public_key_fingerprint, SignType};

/// A key to add; validated by the caller (an RSA key parses, an MD5 key is long enough).
#[derive(Clone)]
pub struct NewKey {
    pub sign_type: SignType,
    /// The RSA public key as handed in, or the MD5 shared secret.
    pub key_text: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey").field("sign_type", &self.sign_type).field("key_text", &"<redacted>").finish()
    }
}

/// A key as operators see it.
#[derive(Debug, Clone)]
pub struct MerchantKey {
    pub key_id: i64,
    pub sign_type: SignType,
    pub added_at: OffsetDateTime,
    /// None while the key is live.
    pub retired_at: Option<OffsetDateTime>,
    /// SHA256-RSA keys only: tells two public keys apart without printing them.
    pub fingerprint: Option<String>,
}

/// What [`Store::retire_merchant_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    Now,
    /// Retired before, at this time; nothing changed.
    Already(OffsetDateTime),
}

fn sign_type_of(text: &str) -> SignType {
    // The table's CHECK allows only these two.
    if text == SignType::Md5.as_str() {
        SignType::Md5
    } else {
        SignType::Sha256Rsa
    }
}

/// Locks the merchant's row, so two key changes for one merchant run one after
/// the other (the last-live-key rule below cannot be raced).
async fn lock_merchant(tx: &tokio_postgres::Transaction<'_>, merchant_id: &str) -> Result<(), StoreError> {
    tx.query_opt("SELECT 1 FROM merchants WHERE merchant_id = $1 FOR UPDATE", &[&merchant_id])
        .await?
        .map(drop)
        .ok_or_else(|| StoreError::NotFound(format!("merchant {merchant_id} does not exist")))
}

impl Store {
    /// Adds a live key beside the merchant's others; returns its id. Gateways
    /// accept it within their credential cache TTL.
    pub async fn add_merchant_key(&self, merchant_id: &str, key: &NewKey) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_merchant(&tx, merchant_id).await?;
        let twin = tx
            .query_opt(
                "SELECT key_id FROM merchant_keys
                  WHERE merchant_id = $1 AND sign_type = $2 AND key_text = $3 AND retired_at IS NULL",
                &[&merchant_id, &key.sign_type.as_str(), &key.key_text],
            )
            .await?;
        if let Some(row) = twin {
            let key_id: i64 = row.get(0);
            return Err(StoreError::Conflict(format!(
                "merchant {merchant_id} already has this key live, as key {key_id}"
            )));
        }
        let row = tx
            .query_one(
                "INSERT INTO merchant_keys (merchant_id, sign_type, key_text) VALUES ($1, $2, $3) RETURNING key_id",
                &[&merchant_id, &key.sign_type.as_str(), &key.key_text],
            )
            .await?;
        tx.commit().await?;
        Ok(row.get(0))
    }

    /// Every key the merchant ever had, newest first.
    pub async fn merchant_keys(&self, merchant_id: &str) -> Result<Vec<MerchantKey>, StoreError> {
        let client = self.client().await?;
        if client.query_opt("SELECT 1 FROM merchants WHERE merchant_id = $1", &[&merchant_id]).await?.is_none() {
            return Err(StoreError::NotFound(format!("merchant {merchant_id} does not exist")));
        }
        let rows = client
            .query(
                "SELECT key_id, sign_type, added_at, retired_at, key_text FROM merchant_keys
                  WHERE merchant_id = $1 ORDER BY key_id DESC",
                &[&merchant_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let sign_type = sign_type_of(r.get(1));
                let text: &str = r.get(4);
                MerchantKey {
                    key_id: r.get(0),
                    sign_type,
                    added_at: r.get(2),
                    retired_at: r.get(3),
                    fingerprint: (sign_type == SignType::Sha256Rsa).then(|| public_key_fingerprint(text)).flatten(),
                }
            })
            .collect())
    }

    /// Retires one of the merchant's keys: requests signed with it are refused
    /// (status 2) once gateways' caches expire. The merchant's last live key
    /// cannot go — it could not sign anything — so a rotation adds first.
    pub async fn retire_merchant_key(&self, merchant_id: &str, key_id: i64) -> Result<Retired, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_merchant(&tx, merchant_id).await?;
        let row = tx
            .query_opt(
                "SELECT retired_at, (SELECT count(*) FROM merchant_keys o
                                      WHERE o.merchant_id = k.merchant_id AND o.retired_at IS NULL AND o.key_id <> k.key_id)
                   FROM merchant_keys k WHERE k.merchant_id = $1 AND k.key_id = $2",
                &[&merchant_id, &key_id],
            )
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "merchant {merchant_id} has no key {key_id} (lijian merchant key list --merchant-id {merchant_id})"
                ))
            })?;
        if let Some(at) = row.get::<_, Option<OffsetDateTime>>(0) {
            return Ok(Retired::Already(at));
        }
        let others: i64 = row.get(1);
        if others == 0 {
            return Err(StoreError::Invalid(format!(
                "key {key_id} is merchant {merchant_id}'s last live key: without it the merchant could not sign any \
                 request; add the new key first (lijian merchant key add)"
            )));
        }
        tx.execute("UPDATE merchant_keys SET retired_at = now() WHERE key_id = $1", &[&key_id]).await?;
        tx.commit().await?;
        Ok(Retired::Now)
    }
}
