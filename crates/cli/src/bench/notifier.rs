//! `lijian bench notifier`: status reports delivered per second to local merchant
//! receivers (RSA-signed), first to 20 healthy receivers, then to the same 20
//! while a 21st endpoint is black-holed (accepts, never answers). Report rows are
//! written before the clock starts, as the consumer would have written them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use lijian_core::config::Settings;
use lijian_core::signing::RsaPrivateKey;
use tokio_util::sync::CancellationToken;

use super::common::{rsa_sign_per_sec, BenchEnv};

const HEALTHY: usize = 20;

pub async fn run(base: &Settings, reports: usize) -> anyhow::Result<()> {
    let platform = RsaPrivateKey::generate()?;
    let keys = tempfile::tempdir()?;
    let key_path = keys.path().join("platform.pem");
    std::fs::write(&key_path, platform.to_pkcs8_pem()?)?;
    let env = BenchEnv::create(base, &platform.public_key_pem()?).await?;
    let outcome = async {
        let stop = CancellationToken::new();
        let mut healthy = Vec::new();
        for _ in 0..HEALTHY {
            healthy.push(receiver(false, stop.clone()).await?);
        }
        let black_hole = receiver(true, stop.clone()).await?;

        println!("baselines (same machine, same run):");
        let sign = rsa_sign_per_sec(&platform)?;
        println!("  RSA-2048 sign, one core                 {sign:>10.0} /s");
        let raw = raw_posts_per_sec(&healthy, reports.min(20_000)).await?;
        println!("  raw POST → SUCCESS (c=64, no DB, unsigned) {raw:>7.0} /s");

        let mut settings = env.settings.clone();
        settings.notifier.platform_private_key = Some(key_path.clone());
        settings.notifier.allow_cidrs = Some("127.0.0.0/8".into());
        settings.notifier.relay_interval = Duration::from_millis(50);

        let urls: Vec<String> = healthy.iter().map(|r| r.0.clone()).collect();
        let alone = deliver(&env, &settings, "a", reports, &urls, None).await?;
        println!("notifier, {HEALTHY} healthy receivers:");
        println!("  delivered {reports} in {alone:.2}s = {:.0} reports/s  (goal ≥ 1500; {:.2}× one core's RSA signs)", reports as f64 / alone, reports as f64 / alone / sign);
        let with_dead = deliver(&env, &settings, "b", reports, &urls, Some(&black_hole.0)).await?;
        let slowdown = (with_dead / alone - 1.0) * 100.0;
        println!("notifier, {HEALTHY} healthy receivers + 1 black-holed (5% of reports):");
        println!(
            "  healthy {reports} delivered in {with_dead:.2}s = {:.0} reports/s  (cost of the dead endpoint: {slowdown:+.1}%, goal < 10%)",
            reports as f64 / with_dead
        );
        stop.cancel();
        Ok::<(), anyhow::Error>(())
    }
    .await;
    env.destroy().await;
    outcome
}

/// Writes `n` final orders with reports to the healthy receivers (round robin),
/// plus 5% more to `dead` if given, then runs a notifier until the healthy ones are
/// delivered. Returns the seconds that took.
async fn deliver(
    env: &BenchEnv,
    settings: &Settings,
    tag: &str,
    n: usize,
    urls: &[String],
    dead: Option<&str>,
) -> anyhow::Result<f64> {
    let client = env.store.client().await?;
    let n_i = n as i64;
    client
        .execute(
            "INSERT INTO orders (order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id,
                                 settlement_fen, status, coupon_id, callback_url, finished_at, enqueued_at)
             SELECT $1 || lpad(i::text, 10, '0'), 'bench-m', $1 || i, 'oBench' || i, 'wx0', 'bench-p', 'bench-a',
                    450, 2, 'C' || i, ($2::text[])[1 + i % cardinality($2::text[])], now(), now()
               FROM generate_series(0::bigint, $3::bigint - 1) AS i",
            &[&format!("LJ{tag}"), &urls, &n_i],
        )
        .await?;
    if let Some(dead) = dead {
        let extra = (n / 20).max(1) as i64;
        client
            .execute(
                "INSERT INTO orders (order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id,
                                     settlement_fen, status, coupon_id, callback_url, finished_at, enqueued_at)
                 SELECT $1 || lpad(i::text, 10, '0'), 'bench-m', $1 || i, 'oDead' || i, 'wx0', 'bench-p', 'bench-a',
                        450, 2, 'D' || i, $2, now(), now()
                   FROM generate_series(0::bigint, $3::bigint - 1) AS i",
                &[&format!("LJ{tag}dead"), &dead, &extra],
            )
            .await?;
    }
    client
        .execute(
            "INSERT INTO reports (notify_id, order_code, status)
             SELECT lijian_notify_id(order_code), order_code, $2 FROM orders WHERE order_code LIKE $1 || '%'",
            &[&format!("LJ{tag}"), &lijian_core::status::OrderStatus::Success],
        )
        .await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let notifier = lijian_notifier::start(&lijian_core::deps::Deps::connect(settings, "lijian-bench")?, stop.clone())?;
    let healthy_prefix = format!("NLJ{tag}0");
    loop {
        let delivered: i64 = client
            .query_one(
                "SELECT count(*) FROM reports WHERE outcome = $2 AND notify_id LIKE $1 || '%'",
                &[&healthy_prefix, &lijian_core::vocab::ReportOutcome::Delivered],
            )
            .await?
            .get(0);
        if delivered as usize >= n || started.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), notifier.task).await;
    Ok(elapsed)
}

/// A local merchant endpoint; (url, answered count).
async fn receiver(black_hole: bool, stop: CancellationToken) -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/callback", listener.local_addr()?);
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            if black_hole {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            count.fetch_add(1, Ordering::Relaxed);
            "SUCCESS"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok((url, answered))
}

async fn raw_posts_per_sec(receivers: &[(String, Arc<AtomicU64>)], n: usize) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let ok = stream::iter(0..n)
        .map(|i| {
            let (http, url) = (&http, &receivers[i % receivers.len()].0);
            async move { http.post(url).body("{}").send().await.ok().map(|r| r.status().is_success()) }
        })
        .buffer_unordered(64)
        .filter(|r| std::future::ready(*r == Some(true)))
        .count()
        .await;
    Ok(ok as f64 / started.elapsed().as_secs_f64())
}
