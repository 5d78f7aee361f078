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

/// What `lijian activity set` changes; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ActivityEdit {
    pub budget: Option<i64>,
    pub starts: Option<OffsetDateTime>,
    pub ends: Option<OffsetDateTime>,
    /// `Some(false)` refuses new orders (status 11) until enabled again.
    pub enabled: Option<bool>,
}

/// An activity as operators see it after an edit.
#[derive(Debug, Clone)]
pub struct ActivityView {
    pub activity_id: String,
    pub budget: i64,
    /// Coupons counted against the budget: orders accepted and not refunded.
    pub issued: i64,
    pub starts: OffsetDateTime,
    pub ends: OffsetDateTime,
    pub enabled: bool,
}

/// An activity's window: it ends after it starts, at most 90 days later.
fn validate_window(starts: OffsetDateTime, ends: OffsetDateTime) -> Result<(), String> {
    if ends <= starts {
        return Err("--ends must be after --starts".into());
    }
    if ends - starts > time::Duration::days(90) {
        return Err("an activity lasts at most 90 days (ends - starts > 90 days)".into());
    }
    Ok(())
}

/// The platform's rules for an activity (a WeChat stock): at most 90 days long,
/// at least 1 yuan off, a positive budget.
pub fn validate_activity(a: &NewActivity) -> Result<(), String> {
    validate_window(a.starts, a.ends)?;
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

    /// Applies an edit under the activity's row lock, so the budget cannot fall
    /// below what an accepting transaction counts at the same moment. The budget
    /// may be lowered, but never below the coupons already accepted: those orders
    /// are stored and charged, and the rule `issued <= budget` would refuse it anyway.
    pub async fn edit_activity(&self, activity_id: &str, edit: &ActivityEdit) -> Result<ActivityView, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT budget, issued, starts_at, ends_at, enabled FROM activities WHERE activity_id = $1 FOR UPDATE",
                &[&activity_id],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("activity {activity_id} does not exist")))?;
        let issued: i64 = row.get(1);
        let view = ActivityView {
            activity_id: activity_id.to_string(),
            budget: edit.budget.unwrap_or(row.get(0)),
            issued,
            starts: edit.starts.unwrap_or(row.get(2)),
            ends: edit.ends.unwrap_or(row.get(3)),
            enabled: edit.enabled.unwrap_or(row.get(4)),
        };
        if view.budget <= 0 {
            return Err(StoreError::Invalid("--budget must be a positive number of coupons".into()));
        }
        if view.budget < issued {
            return Err(StoreError::Invalid(format!(
                "activity {activity_id} has {issued} coupons accepted already (orders stored and charged); \
                 its budget cannot go below {issued}"
            )));
        }
        validate_window(view.starts, view.ends).map_err(StoreError::Invalid)?;
        tx.execute(
            "UPDATE activities SET budget = $2, starts_at = $3, ends_at = $4, enabled = $5 WHERE activity_id = $1",
            &[&activity_id, &view.budget, &view.starts, &view.ends, &view.enabled],
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    /// A product's face value and price, for checking a new price against it.
    pub async fn product(&self, product_code: &str) -> Result<NewProduct, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT face_value_fen, price_fen FROM products WHERE product_code = $1", &[&product_code])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("product {product_code} does not exist")))?;
        Ok(NewProduct { product_code: product_code.to_string(), face_value: Fen(row.get(0)), price: Fen(row.get(1)) })
    }

    /// Changes what new orders of a product cost; orders already accepted keep the
    /// price they were charged.
    pub async fn set_product_price(&self, product_code: &str, price: Fen) -> Result<(), StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("UPDATE products SET price_fen = $2 WHERE product_code = $1", &[&product_code, &price.0])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("product {product_code} does not exist")));
        }
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
