//! WeChat Pay merchant accounts coupons are sent from (`lijian wxpay-account`).
//! A row names its key files; the keys themselves never enter the database.

use std::path::PathBuf;

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{Store, StoreError};

/// An account: what `lijian wxpay-account add` registers (the caller has
/// checked that both key files parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub mchid: String,
    /// Serial of the merchant API certificate whose private key signs requests.
    pub serial_no: String,
    pub private_key_path: PathBuf,
    /// The WeChat Pay public key that signs answers, and its `Wechatpay-Serial`.
    pub public_key_path: PathBuf,
    pub public_key_id: String,
    pub appids: Vec<String>,
    /// Requests per second WeChat allows it.
    pub rate: u32,
    /// `None` = `LIJIAN_WXPAY_BASE_URL`.
    pub base_url: Option<String>,
}

/// An account as stored: paths to its keys, never their contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub account: NewAccount,
    pub enabled: bool,
    /// Changes with every update, so a cache can tell a row it already built from.
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "mchid, serial_no, private_key_path, public_key_path, public_key_id, appids, rate, base_url, enabled, updated_at";

fn row(r: &Row) -> AccountRow {
    AccountRow {
        account: NewAccount {
            mchid: r.get(0),
            serial_no: r.get(1),
            private_key_path: PathBuf::from(r.get::<_, String>(2)),
            public_key_path: PathBuf::from(r.get::<_, String>(3)),
            public_key_id: r.get(4),
            appids: r.get(5),
            rate: u32::try_from(r.get::<_, i32>(6)).unwrap_or(1),
            base_url: r.get(7),
        },
        enabled: r.get(8),
        updated_at: r.get(9),
    }
}

fn rate_param(rate: u32) -> Result<i32, StoreError> {
    i32::try_from(rate)
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| StoreError::Invalid(format!("--rate {rate}: give a positive number of requests per second")))
}

impl Store {
    pub async fn add_account(&self, a: &NewAccount) -> Result<(), StoreError> {
        let rate = rate_param(a.rate)?;
        let (private, public) = (a.private_key_path.to_string_lossy(), a.public_key_path.to_string_lossy());
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO wxpay_accounts (mchid, serial_no, private_key_path, public_key_path, public_key_id, appids, rate, base_url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&a.mchid, &a.serial_no, &private, &public, &a.public_key_id, &a.appids, &rate, &a.base_url],
            )
            .await
            .map_err(|e| StoreError::from_db(e, &format!("WeChat Pay account {} already exists", a.mchid)))?;
        Ok(())
    }

    /// Every account, by mchid.
    pub async fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {COLUMNS} FROM wxpay_accounts ORDER BY mchid"), &[]).await?;
        Ok(rows.iter().map(row).collect())
    }

    pub async fn account(&self, mchid: &str) -> Result<Option<AccountRow>, StoreError> {
        let client = self.client().await?;
        let found =
            client.query_opt(&format!("SELECT {COLUMNS} FROM wxpay_accounts WHERE mchid = $1"), &[&mchid]).await?;
        Ok(found.as_ref().map(row))
    }

    pub async fn set_account_rate(&self, mchid: &str, rate: u32) -> Result<(), StoreError> {
        let rate = rate_param(rate)?;
        self.update_account(mchid, "UPDATE wxpay_accounts SET rate = $2, updated_at = now() WHERE mchid = $1", &rate)
            .await
    }

    pub async fn set_account_enabled(&self, mchid: &str, enabled: bool) -> Result<(), StoreError> {
        self.update_account(
            mchid,
            "UPDATE wxpay_accounts SET enabled = $2, updated_at = now() WHERE mchid = $1",
            &enabled,
        )
        .await
    }

    async fn update_account(
        &self,
        mchid: &str,
        sql: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        if client.execute(sql, &[&mchid, value]).await? == 0 {
            return Err(StoreError::NotFound(format!("no WeChat Pay account {mchid} (lijian wxpay-account list)")));
        }
        Ok(())
    }
}
