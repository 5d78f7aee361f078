//! The demo's world before any order: its settings, freshly generated keys, and
//! one merchant with a product and an activity.

use std::path::Path;
use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::{NewActivity, NewMerchant, NewProduct, Store};

use super::DemoArgs;

pub const MERCHANT: &str = "demo-m";
pub const BUSINESS: &str = "demo-b";
pub const PRODUCT: &str = "demo-p";
pub const ACTIVITY: &str = "demo-a";
const PRICE: Fen = Fen(950);
const MCHID: &str = "1900000001";
pub const KEY_ID: &str = "PUB_KEY_ID_DEMO";

/// The operator's settings pointed at the demo's database and queues, tuned so
/// a fault clears within the demo.
pub fn demo_settings(base: &Settings, args: &DemoArgs) -> Settings {
    let mut s = base.clone();
    s.database.url = lijian_core::store::with_database(&base.database.url, &args.database);
    s.broker.queue_prefix = args.queue_prefix.clone();
    s.gateway.http_addr = "127.0.0.1:0".into();
    s.producer.relay_grace = Duration::from_secs(2);
    // Short schedules: few retry queues, and a fault clears within the demo.
    s.consumer.retry_schedule = vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(20)];
    s.notifier.schedule = vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(20)];
    s.wxpay.rate = 2_000;
    s.wxpay.mchid = Some(MCHID.into());
    s.wxpay.serial_no = Some("DEMO".into());
    s.wxpay.public_key_id = Some(KEY_ID.into());
    s.notifier.allow_cidrs = Some("127.0.0.0/8".into());
    s
}

/// Every key the demo's parties hold, generated for this run.
pub struct Keys {
    pub merchant: RsaPrivateKey,
    /// Our WeChat Pay merchant API key (the simulator verifies it).
    pub wxpay_merchant: RsaPrivateKey,
    /// WeChat Pay's own key (the simulator signs with it).
    pub wxpay_platform: RsaPrivateKey,
    /// The key our reports are signed with (the merchant verifies it).
    pub platform: RsaPrivateKey,
}

impl Keys {
    pub fn generate() -> anyhow::Result<Keys> {
        Ok(Keys {
            merchant: RsaPrivateKey::generate()?,
            wxpay_merchant: RsaPrivateKey::generate()?,
            wxpay_platform: RsaPrivateKey::generate()?,
            platform: RsaPrivateKey::generate()?,
        })
    }

    /// Writes the files the roles read into `dir` and points `settings` at them.
    pub fn install(&self, dir: &Path, settings: &mut Settings) -> anyhow::Result<()> {
        settings.wxpay.private_key = Some(write(dir, "wxpay-merchant.pem", &self.wxpay_merchant.to_pkcs8_pem()?)?);
        settings.wxpay.public_key =
            Some(write(dir, "wxpay-platform-public.pem", &self.wxpay_platform.public_key_pem()?)?);
        settings.notifier.platform_private_key = Some(write(dir, "platform.pem", &self.platform.to_pkcs8_pem()?)?);
        Ok(())
    }
}

fn write(dir: &Path, name: &str, pem: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path)
}

/// The merchant (funded for twice the orders), its product and activity.
pub async fn seed(store: &Store, key: &RsaPrivateKey, callback: &str, orders: usize) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    store
        .add_merchant(&NewMerchant {
            merchant_id: MERCHANT.into(),
            business_id: BUSINESS.into(),
            name: "Demo Shop".into(),
            rsa_public_key: Some(key.public_key_pem()?),
            callback_url: Some(callback.into()),
            opening_balance: Fen(PRICE.0 * orders as i64 * 2),
            ..Default::default()
        })
        .await?;
    store.add_product(&NewProduct { product_code: PRODUCT.into(), face_value: Fen(1000), price: PRICE }).await?;
    store
        .add_activity(&NewActivity {
            activity_id: ACTIVITY.into(),
            merchant_id: MERCHANT.into(),
            stock_id: "9856000".into(),
            stock_creator_mchid: MCHID.into(),
            appid: "wxd000000000000001".into(),
            face_value: Fen(1000),
            budget: orders as i64 * 2,
            starts: now - time::Duration::hours(1),
            ends: now + time::Duration::days(30),
            issuer_mchid: None,
        })
        .await?;
    Ok(())
}
