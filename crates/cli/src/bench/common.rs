//! What every benchmark shares: its own database and queue prefix (created and
//! dropped), the seeded merchant/product/activity, and raw baselines measured in
//! the same run so results read as ratios on this noisy machine.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use lapin::options::ConfirmSelectOptions;
use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::queue::{connect, Topology};
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use lijian_core::store::{migrate, NewActivity, NewMerchant, NewProduct, Store};

/// A benchmark's private installation.
pub struct BenchEnv {
    pub settings: Settings,
    pub store: Store,
}

impl BenchEnv {
    /// Creates `lijian_bench_<ts>` and prefix `bench<ts>`, seeded with merchant
    /// `bench-m` (business `bench-b`, RSA key `merchant_public_pem`), product
    /// `bench-p` and activity `bench-a` with budgets that never run out.
    pub async fn create(base: &Settings, merchant_public_pem: &str) -> anyhow::Result<BenchEnv> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut settings = base.clone();
        settings.database.url = with_dbname(&base.database.url, &format!("lijian_bench_{stamp}"));
        settings.broker.queue_prefix = format!("bench{stamp}");
        settings.gateway.http_addr = "127.0.0.1:0".into();
        migrate(&settings.database.url).await?;
        let store = Store::connect(&settings.database.url, 4)?;
        store
            .add_merchant(&NewMerchant {
                merchant_id: "bench-m".into(),
                business_id: "bench-b".into(),
                name: "bench".into(),
                rsa_public_key: Some(merchant_public_pem.to_string()),
                opening_balance: Fen(i64::MAX / 4),
                ..Default::default()
            })
            .await?;
        store
            .add_product(&NewProduct { product_code: "bench-p".into(), face_value: Fen(500), price: Fen(450) })
            .await?;
        store.add_activity(&bench_activity("bench-a", "bench-m", "9856000")).await?;
        Ok(BenchEnv { settings, store })
    }

    /// Deletes the queues and drops the database.
    pub async fn destroy(self) {
        let BenchEnv { settings, store } = self;
        drop(store);
        cleanup(&settings).await;
    }
}

pub use lijian_core::store::with_database as with_dbname;

/// A bench activity of `merchant` on the default account: 5-yuan coupons (the
/// `bench-p` face value), a budget and a window that never run out.
pub fn bench_activity(activity_id: &str, merchant: &str, stock_id: &str) -> NewActivity {
    let now = time::OffsetDateTime::now_utc();
    NewActivity {
        activity_id: activity_id.into(),
        merchant_id: merchant.into(),
        stock_id: stock_id.into(),
        stock_creator_mchid: "1900000001".into(),
        appid: "wx0000000000000000".into(),
        face_value: Fen(500),
        budget: 100_000_000,
        starts: now - time::Duration::hours(1),
        ends: now + time::Duration::days(30),
        issuer_mchid: None,
    }
}

pub fn rsa_verify_per_sec(key: &RsaPrivateKey, public_pem: &str) -> anyhow::Result<f64> {
    let public = RsaPublicKey::parse(public_pem)?;
    let message = b"businessId=b&nonce=n&timestamp=1{\"merchantId\":\"m\"}";
    let sign = key.sign_base64(message)?;
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        public.verify_base64(message, &sign)?;
        n += 1;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}

pub async fn publish_confirm_per_sec(settings: &Settings, n: usize) -> anyhow::Result<f64> {
    let connection = connect(&settings.broker.url, "lijian-bench").await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let topology = Topology::from_settings(settings);
    topology.declare(&channel).await?;
    let payload = vec![b'x'; 64];
    let started = Instant::now();
    let confirms = stream::iter(0..n)
        .map(|_| {
            let (channel, payload, exchange) = (channel.clone(), payload.clone(), topology.issue_exchange());
            async move {
                let props = lapin::BasicProperties::default().with_delivery_mode(2);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        lijian_core::queue::Lane::Issue.routing_key().into(),
                        Default::default(),
                        &payload,
                        props,
                    )
                    .await?;
                confirm.await
            }
        })
        .buffer_unordered(512)
        .filter(|c| std::future::ready(matches!(c, Ok(c) if c.is_ack())))
        .count()
        .await;
    let rate = confirms as f64 / started.elapsed().as_secs_f64();
    channel.queue_purge(topology.issue_queue().as_str().into(), Default::default()).await?;
    Ok(rate)
}

pub async fn insert_tx_per_sec(store: &Store, concurrency: usize, n: usize) -> anyhow::Result<f64> {
    store.client().await?.batch_execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, v text NOT NULL)").await?;
    let started = Instant::now();
    let done = stream::iter(0..n)
        .map(|i| async move {
            let mut client = store.client().await?;
            let tx = client.transaction().await?;
            tx.execute("INSERT INTO bench_raw (v) VALUES ($1)", &[&i.to_string()]).await?;
            tx.commit().await?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

async fn cleanup(settings: &Settings) {
    Topology::from_settings(settings).remove(&settings.broker.url).await;
    let _ = lijian_core::store::drop_database_after(&settings.database.url, Duration::from_secs(3)).await;
}

/// RSA-2048 signatures per second on one core, for one second.
pub fn rsa_sign_per_sec(key: &RsaPrivateKey) -> anyhow::Result<f64> {
    let message = b"businessId=b&nonce=n&signType=SHA256-RSA&timestamp=1{\"status\":2}";
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        key.sign_base64(message)?;
        n += 1;
    }
    Ok(f64::from(n) / started.elapsed().as_secs_f64())
}
