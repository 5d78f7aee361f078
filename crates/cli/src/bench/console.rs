//! `lijian bench console`: every console page at a million orders. The
//! database is written straight in SQL (`console_seed.sql`: merchants,
//! activities, campaigns, orders over every status, reports, attempts, the
//! ledger, the audit log), vacuumed as autovacuum would, then the console runs
//! in this process and each page is asked for several times, as HTML and as
//! JSON with a Bearer token. Per page: p50 and max on the client's clock over
//! loopback and on the server's own (`Server-Timing`), and p50 as a ratio of
//! `/healthz` measured the same way in the same run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lijian_console::actions::operators;
use lijian_console::Actor;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::vocab::OperatorRole;
use tokio_util::sync::CancellationToken;

use super::common::BenchEnv;

const SEED: &str = include_str!("console_seed.sql");

/// What to seed and how often to ask.
pub struct Size {
    pub orders: u64,
    pub campaigns: u32,
    pub merchants: u32,
    pub repeat: usize,
}

pub async fn run(base: &lijian_core::config::Settings, size: Size) -> anyhow::Result<()> {
    if size.campaigns < 2 || size.merchants < 1 || size.orders < 1000 {
        bail!("need at least 2 campaigns, 1 merchant and 1000 orders");
    }
    let key = RsaPrivateKey::generate()?;
    let env = BenchEnv::create(base, &key.public_key_pem()?).await?;
    let outcome = measure(&env, &size).await;
    env.destroy().await;
    outcome
}

async fn measure(env: &BenchEnv, size: &Size) -> anyhow::Result<()> {
    let started = Instant::now();
    let sql = SEED
        .replace("__ORDERS__", &size.orders.to_string())
        .replace("__CAMPAIGNS__", &size.campaigns.to_string())
        .replace("__MERCHANTS__", &size.merchants.to_string());
    let client = env.store.client().await?;
    client.batch_execute(&sql).await.context("seeding")?;
    let seeded = started.elapsed();
    client.batch_execute("VACUUM ANALYZE").await.context("vacuum")?;
    let rows = |table: &str| format!("SELECT count(*) FROM {table}");
    let mut counts = Vec::new();
    for table in ["orders", "campaigns", "merchants", "activities", "reports", "upstream_attempts", "balance_ledger"] {
        counts.push(format!("{table} {}", client.query_one(&rows(table), &[]).await?.get::<_, i64>(0)));
    }
    println!(
        "seeded in {:.1} s (+ VACUUM ANALYZE, {:.1} s in all): {}",
        seeded.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        counts.join(", ")
    );

    // The overview reads the queues' depths: they exist, as in any installation.
    let connection = lijian_core::queue::connect(&env.settings.broker.url, "lijian-bench").await?;
    lijian_core::queue::Topology::from_settings(&env.settings).declare(&connection.create_channel().await?).await?;
    let (operator, _) = operators::add(&env.store, "bench", OperatorRole::Admin, &Actor::Cli("bench".into())).await?;
    let token = operators::token(&env.store, &operator.name, &Actor::Cli("bench".into())).await?;
    let mut settings = env.settings.clone();
    settings.console.addr = "127.0.0.1:0".into();
    let deps = lijian_core::deps::Deps::connect(&settings, "lijian-bench-console")?;
    let stop = CancellationToken::new();
    let running = lijian_console::start(&deps, stop.clone()).await?;
    let outcome = ask_every_page(env, &format!("http://{}", running.addr), &token, size.repeat).await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running.task).await;
    outcome
}

/// Pages named from the data: the big and a small campaign, an issued and a
/// parked order, the biggest dead-letter group, the busiest merchant.
async fn pages(env: &BenchEnv) -> anyhow::Result<Vec<String>> {
    let client = env.store.client().await?;
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.map(|r| r.get::<_, String>(0)) }
    };
    let issued = one(
        "SELECT order_code FROM orders WHERE status = 2 AND id > (SELECT max(id) / 2 FROM orders) ORDER BY id LIMIT 1",
    )
    .await?;
    let parked = one("SELECT order_code FROM orders WHERE dead_at IS NOT NULL ORDER BY id LIMIT 1").await?;
    let biz = client
        .query_one("SELECT merchant_id, biz_code FROM orders WHERE campaign IS NULL ORDER BY id DESC LIMIT 1", &[])
        .await?;
    let reason = one("SELECT dead_reason FROM orders WHERE dead_at IS NOT NULL AND status IN (0, 1)
          GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    .await?;
    let reason: String = form_urlencoded(&reason);
    let (merchant, biz_code): (String, String) = (biz.get(0), biz.get(1));
    let small = one("SELECT name FROM campaigns WHERE name <> 'c-big' ORDER BY created_at LIMIT 1").await?;
    Ok(vec![
        "/".into(),
        "/campaigns".into(),
        "/campaigns?page=19".into(),
        "/campaigns/c-big".into(),
        format!("/campaigns/{small}"),
        format!("/orders?merchant={merchant}&biz={biz_code}"),
        format!("/orders/{issued}"),
        format!("/orders/{parked}"),
        "/dlq".into(),
        format!("/dlq?lane=issue&reason={reason}"),
        format!("/dlq?lane=issue&reason={reason}&page=10"),
        "/merchants".into(),
        "/merchants/m-0001".into(),
        "/merchants/m-0001?before=1000".into(),
        "/activities".into(),
        "/activities?page=2".into(),
        "/audit".into(),
        "/audit?before=500".into(),
        "/audit?action=topup".into(),
    ])
}

fn form_urlencoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One page's timings, in ms: the client's and the server's.
#[derive(Default)]
struct Timings {
    client: Vec<f64>,
    server: Vec<f64>,
}

impl Timings {
    fn p50(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn max(v: &[f64]) -> f64 {
        v.iter().copied().fold(f64::NAN, f64::max)
    }
}

async fn time_page(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    json: bool,
    repeat: usize,
) -> anyhow::Result<Timings> {
    let mut t = Timings::default();
    // The first answer warms the pool's connections and the prepared statements.
    for round in 0..=repeat {
        let mut request = http.get(url).bearer_auth(token);
        if json {
            request = request.header(reqwest::header::ACCEPT, "application/json");
        }
        let started = Instant::now();
        let answer = request.send().await?;
        let status = answer.status();
        let server = answer
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("dur=").nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        let body = answer.bytes().await?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        // A search that finds its order answers a redirect to the order's page.
        if !status.is_success() && !status.is_redirection() {
            bail!("{url}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        if round > 0 {
            t.client.push(elapsed);
            t.server.push(server.unwrap_or(f64::NAN));
        }
    }
    Ok(t)
}

async fn ask_every_page(env: &BenchEnv, base: &str, token: &str, repeat: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let client = env.store.client().await?;
    let mut select_one = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        client.query_one("SELECT 1", &[]).await?;
        select_one.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(client);
    let healthz = time_page(&http, &format!("{base}/healthz"), token, false, 50).await?;
    let base_p50 = Timings::p50(&healthz.client);
    println!(
        "baselines (same run): SELECT 1 round trip p50 {:.2} ms; GET /healthz p50 {base_p50:.2} ms",
        Timings::p50(&select_one)
    );
    println!(
        "{:<48} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "page", "as", "p50 ms", "max ms", "srv p50", "srv max", "×healthz"
    );
    let mut worst: f64 = 0.0;
    for page in pages(env).await? {
        for json in [false, true] {
            let t = time_page(&http, &format!("{base}{page}"), token, json, repeat).await?;
            let (p50, max) = (Timings::p50(&t.client), Timings::max(&t.client));
            let (sp50, smax) = (Timings::p50(&t.server), Timings::max(&t.server));
            worst = worst.max(smax);
            let shown: String = page.chars().take(48).collect();
            println!(
                "{shown:<48} {:>5} {p50:>9.1} {max:>9.1} {sp50:>9.1} {smax:>9.1} {:>8.0}",
                if json { "json" } else { "html" },
                p50 / base_p50
            );
        }
    }
    println!(
        "  [{}] every page under 100 ms on the server (slowest answer {worst:.1} ms)",
        if worst < 100.0 { "ok" } else { "FAILED" }
    );
    Ok(())
}
