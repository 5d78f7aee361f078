//! Merchants and their balance. Every balance change writes a ledger row in the
//! same transaction, so sum(ledger) = balance holds at all times.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Store, StoreError};
use crate::money::Fen;
use crate::signing::SignType;
use crate::vocab::LedgerKind;

/// What `lijian merchant add` registers.
#[derive(Clone, Default)]
pub struct NewMerchant {
    pub merchant_id: String,
    pub business_id: String,
    pub name: String,
    /// As handed in (PEM or Base64 DER); validated by the caller. Stored as the
    /// merchant's first SHA256-RSA key (more with `merchant key add`).
    pub rsa_public_key: Option<String>,
    /// Stored as its first MD5 key.
    pub md5_key: Option<String>,
    pub callback_url: Option<String>,
    pub allow_ips: Vec<IpNet>,
    pub opening_balance: Fen,
}

/// What `merchant set` changes; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct MerchantEdit {
    pub name: Option<String>,
    /// `Some(None)` removes the default callback URL.
    pub callback_url: Option<Option<String>>,
    /// `Some(empty)` allows any address.
    pub allow_ips: Option<Vec<ipnet::IpNet>>,
}

/// The MD5 key is a shared secret: a `{:?}` in a log line must not print it.
fn secret(key: &Option<String>) -> &'static str {
    if key.is_some() {
        "Some(<redacted>)"
    } else {
        "None"
    }
}

/// How many keys, never which.
fn key_count(keys: &[String]) -> String {
    format!("<{} keys>", keys.len())
}

impl std::fmt::Debug for NewMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMerchant")
            .field("merchant_id", &self.merchant_id)
            .field("business_id", &self.business_id)
            .field("name", &self.name)
            .field("rsa_public_key", &self.rsa_public_key.as_ref().map(|_| "<public key>"))
            .field("md5_key", &format_args!("{}", secret(&self.md5_key)))
            .field("callback_url", &self.callback_url)
            .field("allow_ips", &self.allow_ips)
            .field("opening_balance", &self.opening_balance)
            .finish()
    }
}

impl std::fmt::Debug for MerchantAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantAuth")
            .field("business_id", &self.business_id)
            .field("enabled", &self.enabled)
            .field("rsa_public_keys", &format_args!("{}", key_count(&self.rsa_public_keys)))
            .field("md5_keys", &format_args!("{}", key_count(&self.md5_keys)))
            .field("allow_ips", &self.allow_ips)
            .finish()
    }
}

/// A merchant as operators see it (no secrets).
#[derive(Debug, Clone)]
pub struct MerchantView {
    pub merchant_id: String,
    pub business_id: String,
    pub name: String,
    pub enabled: bool,
    /// Whether a live key of each signType exists.
    pub has_rsa_key: bool,
    pub has_md5_key: bool,
    /// Live keys of both kinds (`merchant key list` shows them).
    pub live_keys: i64,
    pub callback_url: Option<String>,
    pub allow_ips: Vec<String>,
    pub balance: Fen,
    pub orders_by_status: Vec<(i16, i64)>,
}

/// What the gateway needs to authenticate one request.
#[derive(Clone)]
pub struct MerchantAuth {
    pub business_id: String,
    pub enabled: bool,
    /// Every live SHA256-RSA public key, newest first: during a rotation a request
    /// signed with any of them is accepted.
    pub rsa_public_keys: Vec<String>,
    /// Every live MD5 key, newest first.
    pub md5_keys: Vec<String>,
    /// Addresses allowed to call; empty means any.
    pub allow_ips: Vec<IpNet>,
}

impl MerchantAuth {
    /// Whether `caller` passes the allowlist (IPv4-mapped IPv6 counts as IPv4).
    pub fn allows(&self, caller: IpAddr) -> bool {
        let caller = caller.to_canonical();
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|net| net.contains(&caller))
    }
}

impl Store {
    pub async fn add_merchant(&self, m: &NewMerchant) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ips: Vec<String> = m.allow_ips.iter().map(|n| n.trunc().to_string()).collect();
        tx.execute(
            "INSERT INTO merchants (merchant_id, business_id, name, callback_url, allow_ips, balance_fen)
             VALUES ($1, $2, $3, $4, $5::text[]::cidr[], $6)",
            &[&m.merchant_id, &m.business_id, &m.name, &m.callback_url, &ips, &m.opening_balance.0],
        )
        .await
        .map_err(|e| StoreError::from_db(e, &format!("merchant {} already exists", m.merchant_id)))?;
        for (sign_type, key) in [(SignType::Sha256Rsa, &m.rsa_public_key), (SignType::Md5, &m.md5_key)] {
            if let Some(key) = key {
                tx.execute(
                    "INSERT INTO merchant_keys (merchant_id, sign_type, key_text) VALUES ($1, $2, $3)",
                    &[&m.merchant_id, &sign_type.as_str(), key],
                )
                .await?;
            }
        }
        tx.execute(
            "INSERT INTO balance_ledger (merchant_id, kind, amount_fen, balance_after_fen) VALUES ($1, $3, $2, $2)",
            &[&m.merchant_id, &m.opening_balance.0, &LedgerKind::Opening],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds money to a balance; returns the new balance.
    pub async fn topup(&self, merchant_id: &str, amount: Fen) -> Result<Fen, StoreError> {
        if amount.0 <= 0 {
            return Err(StoreError::Invalid("top-up amount must be positive".into()));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE merchants SET balance_fen = balance_fen + $2, updated_at = now() WHERE merchant_id = $1 RETURNING balance_fen",
                &[&merchant_id, &amount.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("merchant {merchant_id} not found")))?;
        let balance: i64 = row.get(0);
        tx.execute(
            "INSERT INTO balance_ledger (merchant_id, kind, amount_fen, balance_after_fen) VALUES ($1, $4, $2, $3)",
            &[&merchant_id, &amount.0, &balance, &LedgerKind::Topup],
        )
        .await?;
        tx.commit().await?;
        Ok(Fen(balance))
    }

    /// Changes what an operator set up with `merchant add`; `None` leaves a field
    /// as it is, `Some(None)` clears the callback URL, an empty list allows any
    /// address. Gateways pick it up within their credential cache TTL.
    pub async fn edit_merchant(&self, merchant_id: &str, edit: &MerchantEdit) -> Result<(), StoreError> {
        let client = self.client().await?;
        let ips: Option<Vec<String>> =
            edit.allow_ips.as_ref().map(|nets| nets.iter().map(|n| n.trunc().to_string()).collect());
        let n = client
            .execute(
                "UPDATE merchants SET name = coalesce($2, name),
                        callback_url = CASE WHEN $3 THEN $4 ELSE callback_url END,
                        allow_ips = coalesce($5::text[]::cidr[], allow_ips),
                        updated_at = now()
                  WHERE merchant_id = $1",
                &[&merchant_id, &edit.name, &edit.callback_url.is_some(), &edit.callback_url.clone().flatten(), &ips],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("merchant {merchant_id} does not exist")));
        }
        Ok(())
    }

    pub async fn set_merchant_enabled(&self, merchant_id: &str, enabled: bool) -> Result<(), StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE merchants SET enabled = $2, updated_at = now() WHERE merchant_id = $1",
                &[&merchant_id, &enabled],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("merchant {merchant_id} not found")));
        }
        Ok(())
    }

    pub async fn show_merchant(&self, merchant_id: &str) -> Result<MerchantView, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT m.merchant_id, m.business_id, m.name, m.enabled,
                        EXISTS (SELECT 1 FROM merchant_keys k WHERE k.merchant_id = m.merchant_id
                                   AND k.retired_at IS NULL AND k.sign_type = 'SHA256-RSA'),
                        EXISTS (SELECT 1 FROM merchant_keys k WHERE k.merchant_id = m.merchant_id
                                   AND k.retired_at IS NULL AND k.sign_type = 'MD5'),
                        m.callback_url, m.allow_ips::text[], m.balance_fen,
                        (SELECT count(*) FROM merchant_keys k WHERE k.merchant_id = m.merchant_id AND k.retired_at IS NULL)
                   FROM merchants m WHERE m.merchant_id = $1",
                &[&merchant_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("merchant {merchant_id} not found")))?;
        // Open-API orders from `orders_api_merchant`, campaign orders through the
        // merchant's campaigns (a load only ever fills its merchant's campaign):
        // index-only scans, where a scan of the merchant's orders read the table.
        let counts = client
            .query(
                "SELECT status, sum(n)::bigint FROM (
                    SELECT status, count(*) AS n FROM orders
                     WHERE merchant_id = $1 AND campaign IS NULL GROUP BY status
                    UNION ALL
                    SELECT o.status, count(*) FROM campaigns c JOIN orders o ON o.campaign = c.name
                     WHERE c.merchant_id = $1 GROUP BY o.status) t
                  GROUP BY status ORDER BY status",
                &[&merchant_id],
            )
            .await?;
        Ok(MerchantView {
            merchant_id: row.get(0),
            business_id: row.get(1),
            name: row.get(2),
            enabled: row.get(3),
            has_rsa_key: row.get(4),
            has_md5_key: row.get(5),
            callback_url: row.get(6),
            allow_ips: row.get(7),
            balance: Fen(row.get(8)),
            live_keys: row.get(9),
            orders_by_status: counts.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }

    /// The merchant's credentials and allowlist, for authenticating its requests.
    pub async fn merchant_auth(&self, merchant_id: &str) -> Result<Option<MerchantAuth>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT m.business_id, m.enabled, m.allow_ips::text[],
                        array(SELECT k.key_text FROM merchant_keys k WHERE k.merchant_id = m.merchant_id
                                 AND k.retired_at IS NULL AND k.sign_type = 'SHA256-RSA' ORDER BY k.key_id DESC),
                        array(SELECT k.key_text FROM merchant_keys k WHERE k.merchant_id = m.merchant_id
                                 AND k.retired_at IS NULL AND k.sign_type = 'MD5' ORDER BY k.key_id DESC)
                   FROM merchants m WHERE m.merchant_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&merchant_id]).await? else { return Ok(None) };
        let allow: Vec<String> = row.get(2);
        Ok(Some(MerchantAuth {
            business_id: row.get(0),
            enabled: row.get(1),
            rsa_public_keys: row.get(3),
            md5_keys: row.get(4),
            allow_ips: allow.iter().filter_map(|c| c.parse().ok()).collect(),
        }))
    }

    /// The merchants registered under a businessId (at most two: enough to tell
    /// whether it names one merchant), for requests that name only the header.
    pub async fn merchants_of_business(&self, business_id: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT merchant_id FROM merchants WHERE business_id = $1 ORDER BY merchant_id LIMIT 2")
            .await?;
        Ok(client.query(&stmt, &[&business_id]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// Sum of the merchant's ledger, which must always equal its balance.
    pub async fn ledger_sum(&self, merchant_id: &str) -> Result<Fen, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(amount_fen), 0)::bigint FROM balance_ledger WHERE merchant_id = $1",
                &[&merchant_id],
            )
            .await?;
        Ok(Fen(row.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_md5_key() {
        let key = "a-very-secret-md5-key".to_string();
        let new = NewMerchant { merchant_id: "m1".into(), md5_key: Some(key.clone()), ..Default::default() };
        let auth = MerchantAuth {
            business_id: "b1".into(),
            enabled: true,
            rsa_public_keys: Vec::new(),
            md5_keys: vec![key.clone(), key],
            allow_ips: Vec::new(),
        };
        let (new, auth) = (format!("{new:?}"), format!("{auth:?}"));
        assert!(!new.contains("a-very-secret") && !auth.contains("a-very-secret"), "{new} {auth}");
        assert!(new.contains("md5_key: Some(<redacted>)"), "{new}");
        assert!(auth.contains("md5_keys: <2 keys>"), "{auth}");
    }
}
