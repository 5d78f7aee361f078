//! Merchants and their balance. Every balance change writes a ledger row in the
//! same transaction, so sum(ledger) = balance holds at all times.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Store, StoreError};
use crate::money::Fen;
use crate::vocab::LedgerKind;

/// What `lijian merchant add` registers.
#[derive(Clone, Default)]
pub struct NewMerchant {
    pub merchant_id: String,
    pub business_id: String,
    pub name: String,
    /// As handed in (PEM or Base64 DER); validated by the caller.
    pub rsa_public_key: Option<String>,
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
            .field("rsa_public_key", &self.rsa_public_key.as_ref().map(|_| "<public key>"))
            .field("md5_key", &format_args!("{}", secret(&self.md5_key)))
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
    pub has_rsa_key: bool,
    pub has_md5_key: bool,
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
    pub rsa_public_key: Option<String>,
    pub md5_key: Option<String>,
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
            "INSERT INTO merchants (merchant_id, business_id, name, rsa_public_key, md5_key, callback_url, allow_ips, balance_fen)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text[]::cidr[], $8)",
            &[&m.merchant_id, &m.business_id, &m.name, &m.rsa_public_key, &m.md5_key, &m.callback_url, &ips, &m.opening_balance.0],
        )
        .await
        .map_err(|e| StoreError::from_db(e, &format!("merchant {} already exists", m.merchant_id)))?;
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
                "SELECT merchant_id, business_id, name, enabled, rsa_public_key IS NOT NULL, md5_key IS NOT NULL,
                        callback_url, allow_ips::text[], balance_fen
                   FROM merchants WHERE merchant_id = $1",
                &[&merchant_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("merchant {merchant_id} not found")))?;
        let counts = client
            .query(
                "SELECT status, count(*) FROM orders WHERE merchant_id = $1 GROUP BY status ORDER BY status",
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
            orders_by_status: counts.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }

    /// The merchant's credentials and allowlist, for authenticating its requests.
    pub async fn merchant_auth(&self, merchant_id: &str) -> Result<Option<MerchantAuth>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT business_id, enabled, rsa_public_key, md5_key, allow_ips::text[] FROM merchants WHERE merchant_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&merchant_id]).await? else { return Ok(None) };
        let allow: Vec<String> = row.get(4);
        Ok(Some(MerchantAuth {
            business_id: row.get(0),
            enabled: row.get(1),
            rsa_public_key: row.get(2),
            md5_key: row.get(3),
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
        let key = Some("a-very-secret-md5-key".to_string());
        let new = NewMerchant { merchant_id: "m1".into(), md5_key: key.clone(), ..Default::default() };
        let auth = MerchantAuth {
            business_id: "b1".into(),
            enabled: true,
            rsa_public_key: None,
            md5_key: key,
            allow_ips: Vec::new(),
        };
        for shown in [format!("{new:?}"), format!("{auth:?}")] {
            assert!(!shown.contains("a-very-secret"), "{shown}");
            assert!(shown.contains("md5_key: Some(<redacted>)"), "{shown}");
        }
    }
}
