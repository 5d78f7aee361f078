//! `lijian product add` and `lijian activity add`: what an order costs and the
//! WeChat coupon stock it is issued from.

use anyhow::bail;
use clap::Subcommand;
use lijian_core::config::Settings;
use lijian_core::store::{ActivityEdit, NewActivity, NewProduct};

use lijian_core::vocab::AuditAction;

use super::{audit, rfc3339, store, timestamp, yuan};

#[derive(Subcommand)]
pub enum ProductCommand {
    /// Register a product: the coupon's face value and the price charged per order.
    Add {
        #[arg(long)]
        product_code: String,
        /// Face value in yuan.
        #[arg(long)]
        face_value: String,
        /// Settlement price charged to the merchant per order, in yuan: more than
        /// 0 and at most the face value.
        #[arg(long)]
        price: String,
        /// Allow a price above the face value (a fee on top of the coupon).
        #[arg(long)]
        allow_price_above_face: bool,
    },
    /// Change what new orders of a product cost (the same price rules as add).
    /// The face value stays: activities of that coupon amount order it; for
    /// another amount add another product.
    Set {
        #[arg(long)]
        product_code: String,
        /// New settlement price in yuan: more than 0 and at most the face value.
        #[arg(long, allow_hyphen_values = true)]
        price: String,
        /// Allow a price above the face value (a fee on top of the coupon).
        #[arg(long)]
        allow_price_above_face: bool,
    },
}

#[derive(Subcommand)]
pub enum ActivityCommand {
    /// Register an activity: a WeChat coupon stock (at most 90 days, at least 1 yuan).
    Add {
        #[arg(long)]
        activity_id: String,
        #[arg(long)]
        merchant_id: String,
        /// WeChat Pay stock_id (批次号).
        #[arg(long)]
        stock_id: String,
        /// The WeChat Pay merchant number that created the stock.
        #[arg(long)]
        stock_creator_mchid: String,
        /// The appid coupons are issued under unless a request names one.
        #[arg(long)]
        appid: String,
        /// Face value in yuan (at least 1).
        #[arg(long)]
        face_value: String,
        /// How many coupons the activity may issue.
        #[arg(long)]
        budget: i64,
        /// Start: RFC 3339 (e.g. 2026-12-01T00:00:00+08:00), `now`, or `now+DURATION` (e.g. now+1h).
        #[arg(long)]
        starts: String,
        /// End, written like --starts (e.g. now+60d); at most 90 days after --starts.
        #[arg(long)]
        ends: String,
        /// Send its coupons from this stored WeChat Pay account (`lijian wxpay-account`)
        /// instead of the one whose mchid is --stock-creator-mchid.
        #[arg(long, value_name = "MCHID")]
        issuer: Option<String>,
    },
    /// Change an activity: its budget, its window, or switch it off and on. Takes
    /// effect for the next order; orders already accepted are not touched.
    Set {
        #[arg(long)]
        activity_id: String,
        /// New budget (coupons): raise it, or lower it down to what is already accepted.
        #[arg(long, allow_hyphen_values = true)]
        budget: Option<i64>,
        /// New start, RFC 3339.
        #[arg(long)]
        starts: Option<String>,
        /// New end, RFC 3339 (at most 90 days after the start).
        #[arg(long)]
        ends: Option<String>,
        /// Refuse new orders (status 11 "activity is disabled") until --enable.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Accept orders again.
        #[arg(long)]
        enable: bool,
    },
}

/// A free product would issue coupons at the platform's cost; a price above
/// the face value is usually a typo (yuan for fen) unless meant as a fee.
fn check_price(p: &NewProduct, allow_price_above_face: bool) -> anyhow::Result<()> {
    if p.price.0 <= 0 {
        bail!("--price must be more than 0 yuan");
    }
    if p.price > p.face_value && !allow_price_above_face {
        bail!(
            "--price {} yuan is above --face-value {} yuan; pass --allow-price-above-face if that is intended",
            p.price,
            p.face_value
        );
    }
    Ok(())
}

pub async fn product(settings: &Settings, cmd: ProductCommand) -> anyhow::Result<()> {
    match cmd {
        ProductCommand::Add { product_code, face_value, price, allow_price_above_face } => {
            if product_code.trim().is_empty() || product_code.len() > 64 {
                bail!("--product-code must be 1 to 64 characters");
            }
            let p = NewProduct {
                product_code,
                face_value: yuan("face-value", &face_value)?,
                price: yuan("price", &price)?,
            };
            check_price(&p, allow_price_above_face)?;
            let store = store(settings)?;
            store.add_product(&p).await?;
            let detail = format!("face value {} yuan, price {} yuan", p.face_value, p.price);
            audit(&store, AuditAction::ProductAdd, &p.product_code, detail).await?;
            println!("product {} added (face value {} yuan, price {} yuan)", p.product_code, p.face_value, p.price);
        }
        ProductCommand::Set { product_code, price, allow_price_above_face } => {
            let price = yuan("price", &price)?;
            let store = store(settings)?;
            let old = store.product(&product_code).await?;
            check_price(&NewProduct { price, ..old.clone() }, allow_price_above_face)?;
            store.set_product_price(&product_code, price).await?;
            let detail = format!("price {price} yuan (was {} yuan)", old.price);
            audit(&store, AuditAction::ProductSet, &product_code, detail).await?;
            println!(
                "product {product_code}: price {} yuan (was {} yuan; face value {} yuan) for new orders; \
                 orders already accepted keep their price",
                price, old.price, old.face_value
            );
        }
    }
    Ok(())
}

pub async fn activity(settings: &Settings, cmd: ActivityCommand) -> anyhow::Result<()> {
    match cmd {
        ActivityCommand::Add {
            activity_id,
            merchant_id,
            stock_id,
            stock_creator_mchid,
            appid,
            face_value,
            budget,
            starts,
            ends,
            issuer,
        } => {
            if activity_id.trim().is_empty() || activity_id.len() > 64 {
                bail!("--activity-id must be 1 to 64 characters");
            }
            let a = NewActivity {
                activity_id,
                merchant_id,
                stock_id,
                stock_creator_mchid,
                appid,
                face_value: yuan("face-value", &face_value)?,
                budget,
                starts: timestamp("starts", &starts)?,
                ends: timestamp("ends", &ends)?,
                issuer_mchid: issuer,
            };
            lijian_core::store::validate_activity(&a).map_err(anyhow::Error::msg)?;
            let store = store(settings)?;
            store.add_activity(&a).await?;
            let detail = format!(
                "stock {}, {} coupons of {} yuan, {} to {}",
                a.stock_id,
                a.budget,
                a.face_value,
                rfc3339(a.starts),
                rfc3339(a.ends)
            );
            audit(&store, AuditAction::ActivityAdd, &a.activity_id, detail).await?;
            println!(
                "activity {} added ({} coupons, {} to {})",
                a.activity_id,
                a.budget,
                rfc3339(a.starts),
                rfc3339(a.ends)
            );
        }
        ActivityCommand::Set { activity_id, budget, starts, ends, disable, enable } => {
            let edit = ActivityEdit {
                budget,
                starts: starts.as_deref().map(|t| timestamp("starts", t)).transpose()?,
                ends: ends.as_deref().map(|t| timestamp("ends", t)).transpose()?,
                enabled: if disable { Some(false) } else { enable.then_some(true) },
            };
            if edit.budget.is_none() && edit.starts.is_none() && edit.ends.is_none() && edit.enabled.is_none() {
                bail!("nothing to change: give --budget, --starts, --ends, --disable or --enable");
            }
            let store = store(settings)?;
            let a = store.edit_activity(&activity_id, &edit).await?;
            let detail = format!(
                "budget {}, {} to {}, {}",
                a.budget,
                rfc3339(a.starts),
                rfc3339(a.ends),
                if a.enabled { "enabled" } else { "disabled" }
            );
            audit(&store, AuditAction::ActivitySet, &a.activity_id, detail).await?;
            println!(
                "activity {}: budget {} ({} accepted), {} to {}, {}",
                a.activity_id,
                a.budget,
                a.issued,
                rfc3339(a.starts),
                rfc3339(a.ends),
                if a.enabled { "enabled" } else { "disabled: new orders get status 11" }
            );
        }
    }
    Ok(())
}
