//! `lijian bench gateway`: signed open-API orders per second through a real gateway
//! (one merchant, one activity: the hot-row case), and latency at a fixed offered
//! load, printed beside raw baselines measured in the same run on this machine.
//! Requests are signed before the clock starts so the client's RSA work does not
//! compete with the gateway for the two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use lapin::options::{ConfirmSelectOptions, QueueDeleteOptions};
use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::queue::{connect, Topology};
use lijian_core::signing::{string_to_sign, RsaPrivateKey, RsaPublicKey};
use lijian_core::store::{migrate, NewActivity, NewMerchant, NewProduct, Store};
use tokio_util::sync::CancellationToken;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Gateway throughput and latency (creates and drops its own database and queues).
    Gateway {
        /// Orders in the throughput run.
        #[arg(long, default_value_t = 20_000)]
        orders: usize,
        /// Concurrent client connections in the throughput run.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Offered load of the latency run, orders per second.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Length of the latency run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

struct Signed {
    headers: Vec<(&'static str, String)>,
    body: String,
}

pub async fn run(base: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Gateway { orders, concurrency, rate, seconds } = cmd;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut settings = base.clone();
    settings.database_url = with_dbname(&base.database_url, &format!("lijian_bench_{stamp}"));
    settings.queue_prefix = format!("bench{stamp}");
    settings.http_addr = "127.0.0.1:0".into();
    migrate(&settings.database_url).await.context("creating the bench database")?;
    let store = Store::connect(&settings.database_url, 4)?;
    let key = RsaPrivateKey::generate()?;
    let public_pem = key.public_key_pem()?;
    let now = time::OffsetDateTime::now_utc();
    store
        .add_merchant(&NewMerchant {
            merchant_id: "bench-m".into(),
            business_id: "bench-b".into(),
            name: "bench".into(),
            rsa_public_key: Some(public_pem.clone()),
            opening_balance: Fen(i64::MAX / 4),
            ..Default::default()
        })
        .await?;
    store.add_product(&NewProduct { product_code: "bench-p".into(), face_value: Fen(500), price: Fen(450) }).await?;
    store
        .add_activity(&NewActivity {
            activity_id: "bench-a".into(),
            merchant_id: "bench-m".into(),
            stock_id: "s".into(),
            stock_creator_mchid: "1900000001".into(),
            appid: "wx0000000000000000".into(),
            face_value: Fen(500),
            budget: 100_000_000,
            starts: now - time::Duration::hours(1),
            ends: now + time::Duration::days(30),
        })
        .await?;

    println!("baselines (same machine, same run):");
    let verify = rsa_verify_per_sec(&key, &public_pem)?;
    println!("  RSA-2048 verify, one core        {verify:>10.0} /s");
    let publish = publish_confirm_per_sec(&settings, 20_000).await?;
    println!("  quorum publish+confirm           {publish:>10.0} /s");
    let inserts = insert_tx_per_sec(&store, concurrency.min(32), 5_000).await?;
    println!("  bare insert transaction (c={:<3})  {inserts:>10.0} /s", concurrency.min(32));

    let shutdown = CancellationToken::new();
    let gateway = lijian_gateway::start(&settings, shutdown.clone()).await?;
    let url = format!("http://{}/v1/openapi/order/wechat/coupons", gateway.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;

    let requests = sign_all(&key, 0, orders)?;
    let started = Instant::now();
    let accepted = stream::iter(requests)
        .map(|r| send(&client, &url, r))
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(matches!(r, Ok((0, _)))))
        .count()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let throughput = accepted as f64 / elapsed;
    println!("gateway, one merchant and one activity (hot rows), c={concurrency}:");
    println!("  accepted {accepted}/{orders} in {elapsed:.2}s = {throughput:.0} orders/s  (goal ≥ 3000; {:.2}× bare insert tx)", throughput / inserts);

    let total = (rate * seconds) as usize;
    let requests = sign_all(&key, orders, total)?;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let histogram = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let mut tasks = Vec::with_capacity(total);
    for (i, request) in requests.into_iter().enumerate() {
        let due = start + interval * i as u32;
        let (client, url, histogram) = (client.clone(), url.clone(), histogram.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let ok = matches!(send(&client, &url, request).await, Ok((0, _)));
            // Measured from when the request was due, so a stalled server cannot
            // hide its queueing delay (no coordinated omission).
            let micros = due.elapsed().as_micros() as u64;
            if let Ok(mut h) = histogram.lock() {
                let _ = h.record(micros);
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap_or(false));
    }
    let h = histogram.lock().map_err(|_| anyhow::anyhow!("histogram poisoned"))?.clone();
    println!("latency at {rate} orders/s offered for {seconds}s ({ok}/{total} accepted):");
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (goal p99 < 20 ms)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );

    shutdown.cancel();
    let _ = gateway.task.await;
    cleanup(&settings, base).await;
    Ok(())
}

fn with_dbname(url: &str, dbname: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && i > url.find("://").unwrap_or(0) + 2 => {
            let query = url[i..].find('?').map(|q| &url[i + q..]).unwrap_or("");
            format!("{}/{dbname}{query}", &url[..i])
        }
        _ => format!("{url}/{dbname}"),
    }
}

fn sign_all(key: &RsaPrivateKey, offset: usize, n: usize) -> anyhow::Result<Vec<Signed>> {
    let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    (offset..offset + n)
        .map(|i| {
            let body = format!(
                r#"{{"merchantId":"bench-m","businessId":"bench-b","openId":"oBench{i}","productCode":"bench-p","activityId":"bench-a","bizCode":"bench-{i}"}}"#
            );
            let nonce = uuid::Uuid::new_v4().to_string();
            let message = string_to_sign(&[("businessId", "bench-b"), ("nonce", &nonce), ("timestamp", &ts)], body.as_bytes());
            let sign = key.sign_base64(&message)?;
            Ok(Signed { headers: vec![("businessId", "bench-b".into()), ("nonce", nonce), ("timestamp", ts.clone()), ("sign", sign)], body })
        })
        .collect()
}

async fn send(client: &reqwest::Client, url: &str, r: Signed) -> anyhow::Result<(i64, serde_json::Value)> {
    let mut req = client.post(url).header("Content-Type", "application/json; charset=utf-8").body(r.body);
    for (k, v) in r.headers {
        req = req.header(k, v);
    }
    let answer: serde_json::Value = req.send().await?.json().await?;
    Ok((answer["status"].as_i64().unwrap_or(-1), answer))
}

fn rsa_verify_per_sec(key: &RsaPrivateKey, public_pem: &str) -> anyhow::Result<f64> {
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

async fn publish_confirm_per_sec(settings: &Settings, n: usize) -> anyhow::Result<f64> {
    let connection = connect(&settings.amqp_url, "lijian-bench").await?;
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
                        lijian_core::queue::ISSUE_ROUTING_KEY.into(),
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

async fn insert_tx_per_sec(store: &Store, concurrency: usize, n: usize) -> anyhow::Result<f64> {
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

async fn cleanup(settings: &Settings, base: &Settings) {
    if let Ok(connection) = connect(&settings.amqp_url, "lijian-bench-cleanup").await {
        if let Ok(channel) = connection.create_channel().await {
            let topology = Topology::from_settings(settings);
            for q in topology.queues() {
                let _ = channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
            }
            for e in topology.exchanges() {
                let _ = channel.exchange_delete(e.as_str().into(), Default::default()).await;
            }
        }
    }
    let admin = with_dbname(&base.database_url, "postgres");
    if let Ok(store) = Store::connect(&admin, 1) {
        if let Ok(client) = store.client().await {
            let name =
                settings.database_url.rsplit('/').next().unwrap_or("").split('?').next().unwrap_or("").to_string();
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
}
