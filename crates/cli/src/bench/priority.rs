//! `lijian bench priority`: who gets the account's next send (issue 15).
//!
//! A `lijian scheduler` and `--consumers` `lijian consumer` child processes
//! against the simulator's hard per-account limit (`--limit`, `--latency-ms`),
//! the gateway in this process, the simulator and the merchant client on
//! runtimes of their own. Two runs:
//!
//! 1. A `--campaign`-order campaign saturates the account, alone for 5 s (the
//!    baseline: what this host and the limit allow now), then with signed API
//!    orders arriving open-loop at `--api-rate` for `--seconds`: their
//!    acceptance → coupon p50/p99 (from the database: created → finished), and
//!    the campaign's rate meanwhile as a ratio of what the API leaves (limit −
//!    API rate; what the consumers aim at, the limit less
//!    `LIJIAN_WXPAY_HEADROOM`, − API rate; and the baseline − API rate).
//! 2. Two merchants' campaigns: a `--campaign`-order one, and `--delay` seconds
//!    later a `--small`-order one: the time from the small one's load to its
//!    last coupon against its fair-share time (half the limit).
//!
//! Each campaign's remainder is cancelled once measured, so a 100,000-order
//! run takes about a minute.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::money::Fen;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::{NewMerchant, Store};
use lijian_producer::bulk::{self, LoadSpec, Progress};
use lijian_producer::campaign::{self, CampaignSpec};
use tokio_util::sync::CancellationToken;

use super::colocated::on_own_runtime;
use super::common::BenchEnv;
use super::consumer::WxpayKeys;
use super::gateway::{open_loop, sign_all};
use super::rate::{slot_use, spawn_role, stop_children, RoleChild};

/// What `lijian bench priority` runs.
pub struct Priority {
    pub limit: u32,
    pub latency_ms: u64,
    pub campaign: usize,
    pub small: usize,
    pub api_rate: u64,
    pub seconds: u64,
    pub delay: u64,
    pub consumers: usize,
}

/// How long the first run measures the campaign alone, as its baseline.
const ALONE_SECONDS: u64 = 5;

pub async fn run(base: &Settings, p: Priority) -> anyhow::Result<()> {
    let keys = WxpayKeys::generate()?;
    let api_key = RsaPrivateKey::generate()?;
    let env = BenchEnv::create(base, &api_key.public_key_pem()?).await?;
    let stop = CancellationToken::new();
    let outcome = async {
        let mut sim = keys.sim_config()?;
        sim.rate = Some(p.limit);
        sim.latency_ms = p.latency_ms;
        let sim_addr = wxpay_sim::start_on_own_thread(sim, stop.clone()).await?;
        let mut settings = keys.settings_for(&env.settings, sim_addr)?;
        settings.wxpay.rate = p.limit;
        add_second_merchant(&env.store).await?;
        let deps = Deps::connect(&settings, "lijian-bench")?;
        let gateway = lijian_gateway::start(&deps, stop.clone()).await?;
        let mut children = vec![spawn_role(&settings, "scheduler")?];
        for _ in 0..p.consumers {
            children.push(spawn_role(&settings, "consumer")?);
        }
        println!(
            "limit {}/s (simulator answers 429 beyond it), latency {} ms, {} consumer(s), release window {}",
            p.limit,
            p.latency_ms,
            p.consumers,
            lijian_core::config::format_duration(settings.producer.release_window)
        );
        let measured = async {
            interactive(&env, &p, &api_key, gateway.addr, &children).await?;
            fairness(&env, &p).await
        }
        .await;
        stop_children(&mut children);
        measured
    }
    .await;
    stop.cancel();
    env.destroy().await;
    outcome
}

/// Run 1: API orders while a campaign saturates the account. `children` are
/// the scheduler, then the consumers.
async fn interactive(
    env: &BenchEnv,
    p: &Priority,
    api_key: &RsaPrivateKey,
    gateway: std::net::SocketAddr,
    children: &[RoleChild],
) -> anyhow::Result<()> {
    load(&env.store, "bench-m", "bench-a", "flood", p.campaign).await?;
    // Saturated: a second of the limit issued.
    wait_until(env, "SELECT count(*) FROM orders WHERE status = 2", i64::from(p.limit), 60).await?;
    // The baseline: the campaign alone, what this host and the limit allow now.
    let from = db_now(&env.store).await?;
    tokio::time::sleep(Duration::from_secs(ALONE_SECONDS)).await;
    let to = db_now(&env.store).await?;
    let alone = finished_between(&env.store, "flood", (from, to)).await? as f64 / (to - from);
    let slots_before = slot_use(&children[1..]).await;
    let n = (p.api_rate * p.seconds) as usize;
    let requests = sign_all(api_key, 0, n)?;
    let (url, rate) = (format!("http://{gateway}/v1/openapi/order/wechat/coupons"), p.api_rate);
    let client = on_own_runtime("bench-client", 1, move || async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(open_loop(&client, &url, requests, rate).await)
    })?;
    let samples =
        tokio::task::spawn_blocking(move || client.join()).await?.map_err(|_| anyhow::anyhow!("client panicked"))??;
    let accepted = samples.iter().filter(|s| s.ok).count() as i64;
    wait_until(env, "SELECT count(*) FROM orders WHERE campaign IS NULL AND status = 2", accepted, 60).await?;
    let db = env.store.client().await?;
    let mut waits: Vec<f64> = db
        .query("SELECT extract(epoch FROM finished_at - created_at)::float8 FROM orders WHERE campaign IS NULL", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| waits.get(((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1))).copied();
    let span = db
        .query_one(
            "SELECT extract(epoch FROM min(created_at))::float8, extract(epoch FROM max(finished_at))::float8
               FROM orders WHERE campaign IS NULL",
            &[],
        )
        .await?;
    let (from, to): (f64, f64) = (span.get(0), span.get(1));
    let campaign = finished_between(&env.store, "flood", (from, to)).await? as f64 / (to - from);
    let left = f64::from(p.limit) - p.api_rate as f64;
    let unfinished = p.campaign as i64 - issued(&env.store, "flood").await?;
    let slots = slot_use(&children[1..]).await;
    let window = children[0].metric("lijian_release_window{").await;
    println!(
        "1. a {}-order campaign saturating the account, API orders open-loop at {}/s for {} s:",
        p.campaign, p.api_rate, p.seconds
    );
    println!(
        "   baseline, the campaign alone for {ALONE_SECONDS} s before: {alone:.1} orders/s = {:.3} × the limit",
        alone / f64::from(p.limit)
    );
    println!(
        "   API acceptance → coupon ({accepted} orders): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms   (goal p99 ≤ 1000 ms)",
        at(0.5).unwrap_or(0.0) * 1000.0,
        at(0.99).unwrap_or(0.0) * 1000.0,
        waits.last().copied().unwrap_or(0.0) * 1000.0
    );
    let headroom = env.settings.wxpay.headroom;
    let aim = f64::from(p.limit) * (1.0 - headroom / 100.0);
    println!(
        "   campaign meanwhile: {campaign:.1} orders/s = {:.3} × (limit − API rate) = {:.3} × (the limit less {headroom}% headroom − API rate)   (goal ≥ 0.95×); {unfinished} still to go",
        campaign / left,
        campaign / (aim - p.api_rate as f64)
    );
    println!(
        "   = {:.3} × (the baseline − API rate); release window now {window:.0} orders; sends {}, slots thrown away late {}",
        campaign / (alone - p.api_rate as f64),
        slots.0 - slots_before.0,
        slots.1 - slots_before.1
    );
    finish(&env.store, "flood").await
}

/// Run 2: a small campaign of another merchant loaded after a big one.
async fn fairness(env: &BenchEnv, p: &Priority) -> anyhow::Result<()> {
    load(&env.store, "bench-m", "bench-a", "big", p.campaign).await?;
    tokio::time::sleep(Duration::from_secs(p.delay)).await;
    load(&env.store, "bench-m2", "bench-a2", "small", p.small).await?;
    let db = env.store.client().await?;
    let loaded = db_now(&env.store).await?;
    wait_until(env, "SELECT count(*) FROM orders WHERE campaign = 'small' AND status = 2", p.small as i64, 600).await?;
    let span = db
        .query_one("SELECT extract(epoch FROM max(finished_at))::float8 FROM orders WHERE campaign = 'small'", &[])
        .await?;
    let done: f64 = span.get(0);
    let took = done - loaded;
    let fair = p.small as f64 / (f64::from(p.limit) / 2.0);
    let big = finished_between(&env.store, "big", (loaded, done)).await? as f64 / took;
    println!("2. a {}-order campaign, then {} s later another merchant's {}-order one:", p.campaign, p.delay, p.small);
    println!(
        "   the small one finished {took:.2} s after its load; fair share (half the limit) {fair:.2} s: {:.2}×   (goal ≤ 1.5×)",
        took / fair
    );
    let left = p.campaign as i64 - issued(&env.store, "big").await?;
    println!("   the big one meanwhile: {big:.1} orders/s; {left} still to go");
    finish(&env.store, "big").await
}

/// Stores campaign `name` of `n` orders (one user each) through the CSV door.
async fn load(store: &Store, merchant: &str, activity: &str, name: &str, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("{name}.csv"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(file, "openId")?;
    for i in 0..n {
        writeln!(file, "o{name}{i}")?;
    }
    file.flush()?;
    drop(file);
    let spec = LoadSpec {
        campaign: CampaignSpec {
            name: name.into(),
            merchant_id: merchant.into(),
            release_at: None,
            rate: None,
            priority: None,
        },
        activity_id: Some(activity.into()),
        product_code: Some("bench-p".into()),
        callback_url: None,
        callback_guard: Default::default(),
    };
    let rejects = std::io::sink();
    let input = std::io::BufReader::new(std::fs::File::open(&path)?);
    let summary = bulk::load_csv(store, &spec, input, rejects, Arc::new(Progress::default())).await?;
    anyhow::ensure!(summary.accepted as usize == n, "only {} of {n} orders of {name} accepted", summary.accepted);
    Ok(())
}

/// Cancels what is left of `name` and waits until none of its orders is in flight.
async fn finish(store: &Store, name: &str) -> anyhow::Result<()> {
    campaign::cancel(store, name).await?;
    let sql = format!(
        "SELECT count(*) FROM orders WHERE campaign = '{name}' AND {}",
        lijian_core::store::predicates::IN_FLIGHT
    );
    let started = Instant::now();
    while store.client().await?.query_one(&sql, &[]).await?.get::<_, i64>(0) > 0 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "campaign {name} did not drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn issued(store: &Store, campaign: &str) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM orders WHERE campaign = $1 AND status = 2";
    Ok(store.client().await?.query_one(sql, &[&campaign]).await?.get(0))
}

/// Orders of `campaign` that became final between two database-clock instants
/// (seconds since the epoch).
async fn finished_between(store: &Store, campaign: &str, (from, to): (f64, f64)) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM orders WHERE campaign = $1 AND status = 2
                  AND finished_at BETWEEN to_timestamp($2) AND to_timestamp($3)";
    let campaign = campaign.to_string();
    Ok(store.client().await?.query_one(sql, &[&campaign, &from, &to]).await?.get(0))
}

/// Polls the count `sql` until it reaches `n`, for at most `secs` seconds.
async fn wait_until(env: &BenchEnv, sql: &str, n: i64, secs: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let count: i64 = env.store.client().await?.query_one(sql, &[]).await?.get(0);
        if count >= n {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(secs), "{count} of {n} after {secs} s: {sql}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second merchant with an activity on the same WeChat Pay account.
async fn add_second_merchant(store: &Store) -> anyhow::Result<()> {
    store
        .add_merchant(&NewMerchant {
            merchant_id: "bench-m2".into(),
            business_id: "bench-b2".into(),
            name: "bench 2".into(),
            md5_key: Some(uuid::Uuid::new_v4().simple().to_string()),
            opening_balance: Fen(i64::MAX / 4),
            ..Default::default()
        })
        .await?;
    store.add_activity(&super::common::bench_activity("bench-a2", "bench-m2", "9856001")).await?;
    Ok(())
}

/// The database clock, seconds since the epoch: every span here is measured on it.
async fn db_now(store: &Store) -> anyhow::Result<f64> {
    let sql = "SELECT extract(epoch FROM clock_timestamp())::float8";
    Ok(store.client().await?.query_one(sql, &[]).await?.get(0))
}
