//! `lijian bench gateway`: signed open-API orders per second through a real gateway
//! (one merchant, one activity: the hot-row case), and latency at a fixed offered
//! load, beside raw baselines measured in the same run. Requests are signed before
//! the clock starts so the client's RSA work does not compete with the gateway.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use lijian_core::config::Settings;
use lijian_core::signing::{string_to_sign, RsaPrivateKey};
use tokio_util::sync::CancellationToken;

use super::common::{insert_tx_per_sec, publish_confirm_per_sec, rsa_verify_per_sec, BenchEnv};

pub(super) struct Signed {
    headers: Vec<(&'static str, String)>,
    body: String,
}

pub async fn run(base: &Settings, orders: usize, concurrency: usize, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let key = RsaPrivateKey::generate()?;
    let public_pem = key.public_key_pem()?;
    let env = BenchEnv::create(base, &public_pem).await?;
    // Whatever happens below, the bench database and queues are removed.
    let outcome = async {
    println!("baselines (same machine, same run):");
    let verify = rsa_verify_per_sec(&key, &public_pem)?;
    println!("  RSA-2048 verify, one core        {verify:>10.0} /s");
    let publish = publish_confirm_per_sec(&env.settings, 20_000).await?;
    println!("  quorum publish+confirm           {publish:>10.0} /s");
    let inserts = insert_tx_per_sec(&env.store, concurrency.min(32), 5_000).await?;
    println!("  bare insert transaction (c={:<3})  {inserts:>10.0} /s", concurrency.min(32));

    let shutdown = CancellationToken::new();
    let deps = lijian_core::deps::Deps::connect(&env.settings, "lijian-bench")?;
    let gateway = lijian_gateway::start(&deps, shutdown.clone()).await?;
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
    let samples = open_loop(&client, &url, requests, rate).await;
    let ok = samples.iter().filter(|s| s.ok).count();
    let h = histogram(samples.iter())?;
    println!("latency at {rate} orders/s offered for {seconds}s ({ok}/{total} accepted):");
    println!("  {}  (goal p99 < 20 ms)", percentiles(&h));

    shutdown.cancel();
    let _ = gateway.task.await;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    env.destroy().await;
    outcome
}

/// One request of an open-loop run.
pub(super) struct Sample {
    /// When it was due, from the start of the schedule.
    pub due: Duration,
    /// From when it was due until its answer, so a stalled server cannot hide
    /// its queueing delay (no coordinated omission).
    pub latency: Duration,
    pub ok: bool,
}

/// Sends `requests` at `rate` per second on a fixed schedule, each on its own task.
pub(super) async fn open_loop(client: &reqwest::Client, url: &str, requests: Vec<Signed>, rate: u64) -> Vec<Sample> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let due = start + interval * i as u32;
            let (client, url) = (client.clone(), url.to_string());
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                let ok = matches!(send(&client, &url, request).await, Ok((0, _)));
                Sample { due: due - start, latency: due.elapsed(), ok }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(sample) = t.await {
            samples.push(sample);
        }
    }
    samples
}

pub(super) fn histogram<'a>(samples: impl Iterator<Item = &'a Sample>) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    for s in samples {
        h.record(s.latency.as_micros() as u64)?;
    }
    Ok(h)
}

/// `p50 … p90 … p99 … max …` in milliseconds.
pub(super) fn percentiles(h: &Histogram<u64>) -> String {
    let ms = |micros: u64| micros as f64 / 1000.0;
    format!(
        "p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

pub(super) fn sign_all(key: &RsaPrivateKey, offset: usize, n: usize) -> anyhow::Result<Vec<Signed>> {
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

pub(super) async fn send(client: &reqwest::Client, url: &str, r: Signed) -> anyhow::Result<(i64, serde_json::Value)> {
    let mut req = client.post(url).header("Content-Type", "application/json; charset=utf-8").body(r.body);
    for (k, v) in r.headers {
        req = req.header(k, v);
    }
    let answer: serde_json::Value = req.send().await?.json().await?;
    Ok((answer["status"].as_i64().unwrap_or(-1), answer))
}
