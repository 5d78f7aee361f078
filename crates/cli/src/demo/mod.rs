//! `lijian demo`: the whole system in one command, on the PostgreSQL and
//! RabbitMQ at the configured addresses. A fresh `lijian_demo` database and
//! `lijian-demo.*` queues (so it is safe to run again), freshly generated keys,
//! the WeChat Pay simulator, every role, and a merchant endpoint that verifies
//! each report; orders through the signed open API and a CSV campaign; a summary
//! once every order is final and every report delivered.

mod preflight;
mod receiver;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::queue::{Publisher, Topology};
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::{NewActivity, NewMerchant, NewProduct, Store};
use lijian_producer::bulk::{self, LoadSpec, Progress};
use lijian_producer::campaign::CampaignSpec;
use lijian_producer::scheduler::Scheduler;
use tokio_util::sync::CancellationToken;

use crate::client::{place_orders, OrderBatch};

#[derive(Args)]
pub struct DemoArgs {
    /// Orders to place: one in ten through the signed open API, the rest from a generated CSV.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// Give up if not everything is final and reported after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The demo's database (dropped and created afresh on every run).
    #[arg(long, default_value = "lijian_demo")]
    pub database: String,
    /// The demo's queue prefix (its queues are deleted before and after).
    #[arg(long, default_value = "lijian-demo")]
    pub queue_prefix: String,
}

const MERCHANT: &str = "demo-m";
const BUSINESS: &str = "demo-b";
const PRICE: Fen = Fen(950);
const MCHID: &str = "1900000001";
const KEY_ID: &str = "PUB_KEY_ID_DEMO";

fn demo_settings(base: &Settings, args: &DemoArgs) -> Settings {
    let mut s = base.clone();
    s.database_url = lijian_core::store::with_database(&base.database_url, &args.database);
    s.queue_prefix = args.queue_prefix.clone();
    s.http_addr = "127.0.0.1:0".into();
    s.relay_grace = Duration::from_secs(2);
    // Short schedules: few retry queues, and a fault clears within the demo.
    s.issue_retry_schedule = vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(20)];
    s.notify_schedule = vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(20)];
    s.wxpay_rate = 2_000;
    s.wxpay_mchid = MCHID.into();
    s.wxpay_serial_no = "DEMO".into();
    s.wxpay_public_key_id = KEY_ID.into();
    s.notify_allow_cidrs = "127.0.0.0/8".into();
    s
}

pub async fn run(base: &Settings, args: DemoArgs) -> anyhow::Result<()> {
    if args.orders == 0 {
        bail!("--orders must be at least 1");
    }
    preflight::check(base).await?;
    let mut settings = demo_settings(base, &args);
    println!("lijian demo: {} orders", args.orders);
    Topology::from_settings(&settings).remove(&settings.amqp_url).await;
    lijian_core::store::drop_database(&settings.database_url).await?;
    lijian_core::store::migrate(&settings.database_url).await?;
    println!("  fresh database {}, queues {}.*", args.database, args.queue_prefix);

    let keys = tempfile::tempdir()?;
    let merchant_key = RsaPrivateKey::generate()?;
    let wxpay_merchant = RsaPrivateKey::generate()?;
    let wxpay_platform = RsaPrivateKey::generate()?;
    let platform = RsaPrivateKey::generate()?;
    settings.wxpay_private_key = write(keys.path(), "wxpay-merchant.pem", &wxpay_merchant.to_pkcs8_pem()?)?;
    settings.wxpay_public_key = write(keys.path(), "wxpay-platform-public.pem", &wxpay_platform.public_key_pem()?)?;
    settings.platform_private_key = write(keys.path(), "platform.pem", &platform.to_pkcs8_pem()?)?;
    println!("  generated keys: merchant, WeChat Pay merchant and platform, lijian platform");

    let stop = CancellationToken::new();
    let mut sim_config = wxpay_sim::SimConfig::new(
        "127.0.0.1:0",
        &wxpay_merchant.public_key_pem()?,
        &wxpay_platform.to_pkcs8_pem()?,
        KEY_ID,
    );
    sim_config.max_per_user = u32::MAX;
    let sim = wxpay_sim::start(sim_config, stop.clone()).await?;
    settings.wxpay_base_url = format!("http://{}", sim.addr);
    let receiver = receiver::start(&platform.public_key_pem()?, stop.clone()).await?;
    let callback = format!("http://{}/callback", receiver.addr);

    let store = Store::connect(&settings.database_url, 4)?;
    seed(&store, &merchant_key, &callback, args.orders).await?;
    let (gateway_addr, gateway_task) = crate::roles::gateway_on_own_runtime(settings.clone(), stop.clone()).await?;
    let consumer = lijian_consumer::start(&settings, stop.clone())?;
    let notifier = lijian_notifier::start(&settings, stop.clone())?;
    let publisher = Publisher::new(&settings.amqp_url, "lijian-demo-load", Topology::from_settings(&settings));
    let scheduler = Scheduler::new(store.clone(), publisher.clone());
    let scheduler_task = tokio::spawn(scheduler.run(stop.clone()));
    println!(
        "  running: WeChat Pay simulator http://{}, gateway http://{}, consumer, notifier, scheduler, merchant {callback}",
        sim.addr, gateway_addr
    );

    let started = Instant::now();
    let api = if args.orders >= 10 { args.orders / 10 } else { args.orders };
    let csv = args.orders - api;
    let batch = OrderBatch {
        gateway: format!("http://{gateway_addr}"),
        merchant_id: MERCHANT.into(),
        business_id: BUSINESS.into(),
        product_code: "demo-p".into(),
        activity_id: "demo-a".into(),
        biz_code: "api".into(),
        open_id: "oApi".into(),
        callback_url: None,
    };
    // The merchants are outside our walls: their client gets threads of its own
    // rather than queueing behind our issuing tasks.
    let merchant_pem = merchant_key.to_pkcs8_pem()?;
    let merchants = std::thread::spawn(move || -> anyhow::Result<_> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let key = RsaPrivateKey::from_pem(&merchant_pem)?;
        let answers = runtime.block_on(place_orders(&reqwest::Client::new(), &key, &batch, api, 32));
        Ok((answers, started.elapsed()))
    });
    let (loaded, csv_took) = (load_csv(&store, &publisher, csv, keys.path()).await, started.elapsed());
    let (answers, api_took) = tokio::task::spawn_blocking(move || merchants.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the merchant client panicked"))??;
    let accepted_api = answers.iter().filter(|a| matches!(a, Ok(v) if v["status"] == 0)).count();
    let loaded = loaded?;
    println!(
        "  placed {accepted_api} orders through the signed open API ({:.1} s) and loaded {loaded} from a CSV campaign ({:.1} s)",
        api_took.as_secs_f64(),
        csv_took.as_secs_f64()
    );
    if accepted_api + loaded as usize != args.orders {
        bail!("only {} of {} orders were accepted", accepted_api + loaded as usize, args.orders);
    }

    let outcome = wait_for_everything(&store, &receiver, args.orders as i64, Duration::from_secs(args.timeout)).await;
    let elapsed = started.elapsed();
    let summary = summarise(&store, &receiver, &format!("http://{}", sim.addr), elapsed, api, csv).await;

    stop.cancel();
    let grace = Duration::from_secs(10);
    let _ = tokio::time::timeout(grace, gateway_task).await;
    let _ = tokio::time::timeout(grace, consumer.task).await;
    let _ = tokio::time::timeout(grace, notifier.task).await;
    let _ = tokio::time::timeout(grace, scheduler_task).await;
    Topology::from_settings(&settings).remove(&settings.amqp_url).await;
    outcome?;
    summary?;
    println!(
        "inspect: LIJIAN_DATABASE_URL={} lijian campaign status demo | lijian order show <orderCode>",
        settings.database_url
    );
    Ok(())
}

fn write(dir: &Path, name: &str, pem: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path.display().to_string())
}

async fn seed(store: &Store, key: &RsaPrivateKey, callback: &str, orders: usize) -> anyhow::Result<()> {
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
    store.add_product(&NewProduct { product_code: "demo-p".into(), face_value: Fen(1000), price: PRICE }).await?;
    store
        .add_activity(&NewActivity {
            activity_id: "demo-a".into(),
            merchant_id: MERCHANT.into(),
            stock_id: "9856000".into(),
            stock_creator_mchid: MCHID.into(),
            appid: "wxd000000000000001".into(),
            face_value: Fen(1000),
            budget: orders as i64 * 2,
            starts: now - time::Duration::hours(1),
            ends: now + time::Duration::days(30),
        })
        .await?;
    Ok(())
}

/// Generates `rows` openIds and loads them as campaign `demo`; the orders accepted.
async fn load_csv(store: &Store, publisher: &Arc<Publisher>, rows: usize, dir: &Path) -> anyhow::Result<u64> {
    if rows == 0 {
        return Ok(0);
    }
    let path = dir.join("demo.csv");
    let mut text = String::from("openId\n");
    for i in 0..rows {
        text.push_str(&format!("oCsv{i}\n"));
    }
    std::fs::write(&path, text)?;
    let spec = LoadSpec {
        campaign: CampaignSpec { name: "demo".into(), merchant_id: MERCHANT.into(), release_at: None, rate: None },
        activity_id: Some("demo-a".into()),
        product_code: Some("demo-p".into()),
        callback_url: None,
    };
    let file = std::fs::File::open(&path)?;
    let rejects = std::fs::File::create(dir.join("demo.rejects.csv"))?;
    let summary = bulk::load_csv(store, publisher, &spec, file, rejects, Arc::new(Progress::default()))
        .await
        .context("loading the demo campaign")?;
    Ok(summary.accepted)
}

struct Counts {
    finals: i64,
    issued: i64,
    failed: i64,
    delivered: i64,
}

async fn counts(store: &Store) -> anyhow::Result<Counts> {
    let client = store.client().await?;
    let r = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders WHERE status >= 2), (SELECT count(*) FROM orders WHERE status = 2),
                    (SELECT count(*) FROM orders WHERE status = 3),
                    (SELECT count(*) FROM reports WHERE outcome = 'delivered')",
            &[],
        )
        .await?;
    Ok(Counts { finals: r.get(0), issued: r.get(1), failed: r.get(2), delivered: r.get(3) })
}

/// Progress once a second until every order is final and reported (verified).
async fn wait_for_everything(
    store: &Store,
    receiver: &receiver::Receiver,
    orders: i64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut shown = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = counts(store).await?;
        let verified = receiver.seen.lock().map(|s| s.verified.len()).unwrap_or(0) as i64;
        let done = c.finals == orders && c.delivered == orders && verified == orders;
        if !done && shown.elapsed() < Duration::from_secs(1) {
            continue;
        }
        shown = Instant::now();
        println!(
            "  [{:>5.1}s] final {}/{orders} (issued {}, failed {}) · reports delivered {} · verified by the merchant {verified}",
            started.elapsed().as_secs_f64(),
            c.finals,
            c.issued,
            c.failed,
            c.delivered
        );
        if done {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "gave up after {}s: {} of {orders} orders final, {} reports delivered, {verified} verified",
                timeout.as_secs(),
                c.finals,
                c.delivered
            );
        }
    }
}

async fn summarise(
    store: &Store,
    receiver: &receiver::Receiver,
    sim_url: &str,
    elapsed: Duration,
    api: usize,
    csv: usize,
) -> anyhow::Result<()> {
    let c = counts(store).await?;
    let client = store.client().await?;
    let failures = client
        .query(
            "SELECT coalesce(last_error, '?'), count(*) FROM orders WHERE status = 3 GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .await?;
    let latency = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.delivered_at - o.created_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.delivered_at - o.created_at))
               FROM reports r JOIN orders o USING (order_code) WHERE r.outcome = 'delivered'",
            &[],
        )
        .await?;
    let (p50, p99): (Option<f64>, Option<f64>) = (latency.get(0), latency.get(1));
    let ledger: Vec<serde_json::Value> = reqwest::get(format!("{sim_url}/__sim/ledger")).await?.json().await?;
    let distinct: std::collections::HashSet<&str> =
        ledger.iter().filter_map(|c| c["out_request_no"].as_str()).collect();
    let (verified, bad) = receiver.seen.lock().map(|s| (s.verified.len(), s.bad_signatures)).unwrap_or((0, 0));
    let total = api + csv;
    println!("summary:");
    println!("  orders      {total} ({api} through the signed open API, {csv} from CSV campaign \"demo\")");
    println!(
        "  coupons     {} issued; the simulator issued {} to {} distinct orders",
        c.issued,
        ledger.len(),
        distinct.len()
    );
    println!("  failed      {}", c.failed);
    for row in &failures {
        println!("              {:>6}  {}", row.get::<_, i64>(1), row.get::<_, String>(0));
    }
    println!("  reports     {} delivered, {verified} signatures verified by the merchant, {bad} bad", c.delivered);
    println!(
        "  throughput  {:.0} orders/s, acceptance to last report ({:.1} s)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency     acceptance → report delivered: p50 {:.2} s, p99 {:.2} s",
        p50.unwrap_or(f64::NAN),
        p99.unwrap_or(f64::NAN)
    );
    if ledger.len() != distinct.len() || distinct.len() as i64 != c.issued || bad > 0 || verified as i64 != c.delivered
    {
        bail!("the summary does not add up (see above)");
    }
    Ok(())
}
