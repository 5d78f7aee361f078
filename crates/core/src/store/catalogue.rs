//! Products (what a coupon costs the merchant) and activities (a WeChat stock the
//! platform created for a merchant, with a window and a budget).

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::money::Fen;

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub product_code: String,
    pub face_value: Fen,
    /// What the merchant is charged per order (`settlementPrice`).
    pub price: Fen,
}

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub activity_id: String,
    pub merchant_id: String,
    pub stock_id: String,
    pub stock_creator_mchid: String,
    pub appid: String,
    pub face_value: Fen,
    pub budget: i64,
    pub starts: OffsetDateTime,
    pub ends: OffsetDateTime,
    /// The WeChat Pay account (a stored one) that sends its coupons, when not the
    /// one whose mchid is `stock_creator_mchid`.
    pub issuer_mchid: Option<String>,
}

/// The platform's rules for an activity (a WeChat stock): at most 90 days long,
/// at least 1 yuan off, a positive budget.
pub fn validate_activity(a: &NewActivity) -> Result<(), String> {
    if a.ends <= a.starts {
        return Err("--ends must be after --starts".into());
    }
    if a.ends - a.starts > time::Duration::days(90) {
        return Err("an activity lasts at most 90 days (ends - starts > 90 days)".into());
    }
    if a.face_value.0 < 100 {
        return Err("the face value of an activity is at least 1 yuan".into());
    }
    if a.budget <= 0 {
        return Err("--budget must be a positive number of coupons".into());
    }
    Ok(())
}

impl Store {
    pub async fn add_product(&self, p: &NewProduct) -> Result<(), StoreError> {
        if p.face_value.0 <= 0 {
            return Err(StoreError::Invalid("--face-value must be positive".into()));
        }
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO products (product_code, face_value_fen, price_fen) VALUES ($1, $2, $3)",
                &[&p.product_code, &p.face_value.0, &p.price.0],
            )
            .await
            .map_err(|e| StoreError::from_db(e, &format!("product {} already exists", p.product_code)))?;
        Ok(())
    }

    pub async fn add_activity(&self, a: &NewActivity) -> Result<(), StoreError> {
        validate_activity(a).map_err(StoreError::Invalid)?;
        self.check_issuer(a).await?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO activities (activity_id, merchant_id, stock_id, stock_creator_mchid, appid, face_value_fen, budget, starts_at, ends_at, issuer_mchid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&a.activity_id, &a.merchant_id, &a.stock_id, &a.stock_creator_mchid, &a.appid, &a.face_value.0, &a.budget, &a.starts, &a.ends, &a.issuer_mchid],
            )
            .await
            .map_err(|e| StoreError::from_db(e, &format!("activity {} already exists", a.activity_id)))?;
        Ok(())
    }

    /// An explicit issuer must be a stored account; the sending account, when
    /// stored and limited to some appids, must allow the activity's appid.
    async fn check_issuer(&self, a: &NewActivity) -> Result<(), StoreError> {
        let mchid = a.issuer_mchid.as_deref().unwrap_or(&a.stock_creator_mchid);
        match self.account(mchid).await? {
            None if a.issuer_mchid.is_some() => Err(StoreError::NotFound(format!(
                "--issuer {mchid}: no WeChat Pay account {mchid}; add it first with lijian wxpay-account add"
            ))),
            Some(row) if !row.account.appids.is_empty() && !row.account.appids.contains(&a.appid) => {
                Err(StoreError::Invalid(format!(
                    "WeChat Pay account {mchid} may send for appids {} only, not {}",
                    row.account.appids.join(", "),
                    a.appid
                )))
            }
            _ => Ok(()),
        }
    }
}
