//! `lijian bench consumer`: how fast accepted orders become coupons. Orders are
//! stored and their jobs published before the clock starts; the clock runs from
//! consumer start until every order is status 2. The WeChat Pay simulator runs
//! in the same process (zero latency, no rate limit), so the machine's two cores
//! do both sides of every RSA signature.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lijian_core::config::Settings;
use lijian_core::queue::{connect, IssueJob, Publisher, Topology};
use lijian_core::signing::RsaPrivateKey;
use tokio_util::sync::CancellationToken;
use wxpay_sim::SimConfig;

use super::common::{rsa_sign_per_sec, BenchEnv};

pub async fn run(base: &Settings, orders: usize, concurrency: usize) -> anyhow::Result<()> {
    let keys = WxpayKeys::generate()?;
    let env = BenchEnv::create(base, &keys.merchant.public_key_pem()?).await?;
    // Whatever happens below, the bench database and queues are removed.
    let outcome = async {

    println!("baselines (same machine, same run):");
    let sign = rsa_sign_per_sec(&keys.merchant)?;
    println!("  RSA-2048 sign, one core            {sign:>10.0} /s");
    let consume = consume_ack_per_sec(&env.settings, 20_000).await?;
    println!("  quorum consume+ack (prefetch 256)  {consume:>10.0} /s");

    let stop = CancellationToken::new();
    let sim = wxpay_sim::start(keys.sim_config()?, stop.clone()).await?;

    let mut settings = keys.settings_for(&env.settings, sim.addr)?;
    settings.wxpay.rate = 0;
    settings.consumer.concurrency = concurrency;
    settings.consumer.prefetch = concurrency * 2;

    queue_backlog(&env, &settings, "LJB", orders).await?;

    let started = Instant::now();
    let consumer = lijian_consumer::start(&lijian_core::deps::Deps::connect(&settings, "lijian-bench")?, stop.clone())?;
    // Progress from the worker's own counter: polling count(*) over the orders
    // table would cost PostgreSQL more CPU than the consumer's writes.
    while started.elapsed() < Duration::from_secs(600) {
        if consumer.handler.counters.issued.load(std::sync::atomic::Ordering::Relaxed) as usize >= orders {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let issued = env.store.status_counts().await?.orders(lijian_core::status::OrderStatus::Success);
    let rate = issued as f64 / elapsed;
    println!("consumer, concurrency {concurrency}, simulator in-process (zero latency, no limit):");
    println!(
        "  issued {issued}/{orders} in {elapsed:.2}s = {rate:.0} orders/s  (goal ≥ 1500; {:.2}× one core's RSA signs, {:.3}× raw consume+ack)",
        rate / sign,
        rate / consume
    );
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer.task).await;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    env.destroy().await;
    outcome
}

/// The merchant key lijian signs WeChat Pay requests with and the simulator's
/// own key, generated per run and written where the settings can name them.
pub(super) struct WxpayKeys {
    pub merchant: RsaPrivateKey,
    pub platform: RsaPrivateKey,
    dir: tempfile::TempDir,
}

impl WxpayKeys {
    pub fn generate() -> anyhow::Result<WxpayKeys> {
        Ok(WxpayKeys {
            merchant: RsaPrivateKey::generate()?,
            platform: RsaPrivateKey::generate()?,
            dir: tempfile::tempdir()?,
        })
    }

    /// A simulator that knows the merchant key: no latency, no limit, no per-user maximum.
    pub fn sim_config(&self) -> anyhow::Result<SimConfig> {
        let mut sim = SimConfig::new(
            "127.0.0.1:0",
            &self.merchant.public_key_pem()?,
            &self.platform.to_pkcs8_pem()?,
            "PUB_KEY_ID_BENCH",
        );
        sim.max_per_user = u32::MAX;
        Ok(sim)
    }

    /// `base` with the consumer pointed at the simulator at `sim`.
    pub fn settings_for(&self, base: &Settings, sim: std::net::SocketAddr) -> anyhow::Result<Settings> {
        let write = |name: &str, text: String| -> anyhow::Result<std::path::PathBuf> {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let mut settings = base.clone();
        settings.wxpay.base_url = format!("http://{sim}");
        settings.wxpay.mchid = Some("1900000001".into());
        settings.wxpay.serial_no = Some("BENCH".into());
        settings.wxpay.private_key = Some(write("merchant.pem", self.merchant.to_pkcs8_pem()?)?);
        settings.wxpay.public_key = Some(write("platform.pem", self.platform.public_key_pem()?)?);
        settings.wxpay.public_key_id = Some("PUB_KEY_ID_BENCH".into());
        Ok(settings)
    }
}

/// `n` accepted orders (codes `{prefix}000000000000`…) stored directly, as the
/// gateway would have, and their issue jobs published.
pub(super) async fn queue_backlog(env: &BenchEnv, settings: &Settings, prefix: &str, n: usize) -> anyhow::Result<()> {
    store_orders(env, prefix, n).await?;
    let publisher = Publisher::new(&settings.broker.url, "lijian-bench", Topology::from_settings(settings));
    let published = stream::iter(0..n)
        .map(|i| {
            let publisher = &publisher;
            async move { publisher.publish_issue(&IssueJob::V1 { order_code: format!("{prefix}{i:012}") }).await }
        })
        .buffer_unordered(512)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    anyhow::ensure!(published == n, "only {published} of {n} jobs published");
    Ok(())
}

async fn store_orders(env: &BenchEnv, prefix: &str, n: usize) -> anyhow::Result<()> {
    let client = env.store.client().await?;
    let n = n as i64;
    client
        .execute(
            "INSERT INTO orders (order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id, settlement_fen, enqueued_at)
             SELECT $2 || lpad(i::text, 12, '0'), 'bench-m', $2 || i, 'oBench' || i, 'wx0000000000000000', 'bench-p', 'bench-a', 450, now()
               FROM generate_series(0::bigint, $1::bigint - 1) AS i",
            &[&n, &prefix],
        )
        .await?;
    Ok(())
}

/// Publishes `n` small persistent messages to a scratch quorum queue, then
/// consumes and acks them one by one: the broker's side of every job.
async fn consume_ack_per_sec(settings: &Settings, n: usize) -> anyhow::Result<f64> {
    let connection = connect(&settings.broker.url, "lijian-bench-raw").await?;
    let channel = connection.create_channel().await?;
    let queue = format!("{}.rawbench", settings.broker.queue_prefix);
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), lapin::types::AMQPValue::LongString("quorum".into()));
    channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args).await?;
    channel.confirm_select(Default::default()).await?;
    let payload = vec![b'x'; 64];
    stream::iter(0..n)
        .map(|_| {
            let (channel, payload, queue) = (channel.clone(), payload.clone(), queue.clone());
            async move {
                let props = lapin::BasicProperties::default().with_delivery_mode(2);
                channel
                    .basic_publish("".into(), queue.as_str().into(), Default::default(), &payload, props)
                    .await?
                    .await
            }
        })
        .buffer_unordered(512)
        .count()
        .await;
    channel.basic_qos(256, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "raw".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
        match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                delivery.ack(BasicAckOptions::default()).await?;
                seen += 1;
            }
            _ => break,
        }
    }
    let rate = seen as f64 / started.elapsed().as_secs_f64();
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(rate)
}
