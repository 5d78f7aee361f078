//! `lijian bench rate`: does a cluster of consumer processes keep WeChat Pay's
//! per-account limit, and use it? N `lijian consumer` child processes (1, 2, 4),
//! all with the same configuration, issue a backlog against the simulator at
//! `--latency-ms` with a hard limit (429 beyond it); the simulator's own request
//! log gives the sends per second. Then the survivor case: one of two consumers
//! is SIGKILLed mid-run, and we time how long the other takes to hold the limit
//! alone. Last, two accounts at once, each held to its own limit
//! (`rate_accounts.rs`). The raw baseline is the limit itself: every figure is
//! a ratio to it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lijian_core::config::Settings;
use lijian_core::queue::{IssueJob, Publisher, Topology};
use lijian_core::signing::RsaPrivateKey;
use lijian_core::status::OrderStatus;
use tokio_util::sync::CancellationToken;
use wxpay_sim::{RequestRecord, SimConfig};

use super::common::BenchEnv;

/// Orders per bulk job, as a campaign load publishes them.
const JOB_ORDERS: usize = 100;
/// Whole seconds at the start of a run left out of the steady state: the
/// partial first second and a starting process's 1 s slow start (`pace.rs`,
/// `WarmUp`), which ramps from 10% of the rate on purpose.
const START_SECONDS: usize = 2;
/// Seconds at the end left out: the last, partial one.
const TAIL_SECONDS: usize = 1;

pub async fn run(base: &Settings, limit: u32, latency_ms: u64, seconds: u64) -> anyhow::Result<()> {
    let merchant_key = RsaPrivateKey::generate()?;
    let platform_key = RsaPrivateKey::generate()?;
    let keys = tempfile::tempdir()?;
    let env = BenchEnv::create(base, &merchant_key.public_key_pem()?).await?;
    let stop = CancellationToken::new();
    let outcome = async {
        let mut sim = SimConfig::new(
            "127.0.0.1:0",
            &merchant_key.public_key_pem()?,
            &platform_key.to_pkcs8_pem()?,
            "PUB_KEY_ID_BENCH",
        );
        sim.max_per_user = u32::MAX;
        sim.rate = Some(limit);
        sim.latency_ms = latency_ms;
        let sim_addr = wxpay_sim::start_on_own_thread(sim, stop.clone()).await?;
        let sim_url = format!("http://{sim_addr}");

        let mut settings = env.settings.clone();
        settings.wxpay.base_url = sim_url.clone();
        settings.wxpay.mchid = Some("1900000001".into());
        settings.wxpay.serial_no = Some("BENCH".into());
        let write = |name: &str, text: String| -> anyhow::Result<std::path::PathBuf> {
            let path = keys.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let private_key = write("merchant.pem", merchant_key.to_pkcs8_pem()?)?;
        let public_key = write("platform.pem", platform_key.public_key_pem()?)?;
        settings.wxpay.private_key = Some(private_key.clone());
        settings.wxpay.public_key = Some(public_key.clone());
        settings.wxpay.public_key_id = Some("PUB_KEY_ID_BENCH".into());
        settings.wxpay.rate = limit;
        let backlog = limit as usize * seconds as usize;
        // What the consumers aim at together: the limit less the headroom.
        let aim = f64::from(limit) * (1.0 - settings.wxpay.headroom / 100.0);
        let publisher = Publisher::new(&settings.broker.url, "lijian-bench", Topology::from_settings(&settings));

        println!(
            "baseline: the limit, {limit} requests/s per account (simulator at {latency_ms} ms, 429 beyond it); consumers leave {}% headroom (LIJIAN_WXPAY_HEADROOM)",
            settings.wxpay.headroom
        );
        println!("sends per steady second, all consumers together:");
        println!(
            "  consumers   min  median   max   (× limit: min / median / max)   worst sliding 1 s   429s   slots used / stale"
        );
        let mut next = 0;
        for consumers in [1usize, 2, 4] {
            let codes = store_and_queue(&env, &publisher, "bench-a", next, backlog).await?;
            next += backlog;
            let started_ms = now_ms();
            let mut children: Vec<RoleChild> =
                (0..consumers).map(|_| spawn_consumer(&settings)).collect::<Result<_, _>>()?;
            wait_issued(&env, next as i64, Duration::from_secs(seconds * 4 + 30)).await?;
            let (used, stale) = slot_use(&children).await;
            stop_children(&mut children);
            let run = requests_of(&sim_url, &codes, started_ms).await?;
            let report = Steady::of(&run);
            let transit = Transit::of(&env, &run).await?;
            println!(
                "  {consumers:>9}  {:>4}  {:>6}  {:>4}   ({:.3} / {:.3} / {:.3})           {:>6}       {:>5}   {used:>6} / {stale}",
                report.min,
                report.median,
                report.max,
                report.min as f64 / f64::from(limit),
                report.median as f64 / f64::from(limit),
                report.max as f64 / f64::from(limit),
                report.worst_window,
                report.throttled
            );
            println!(
                "             × the aim ({aim:.0}/s): min {:.3} median {:.3}; by our send instants: worst sliding 1 s {}; send → arrival at the simulator p50 {} ms, p99 {} ms, max {} ms",
                report.min as f64 / aim,
                report.median as f64 / aim,
                transit.worst_window, transit.p50, transit.p99, transit.max
            );
            let seconds: Vec<usize> = per_second(&run).into_iter().map(|(_, n)| n).collect();
            println!("             every second: {seconds:?}");
        }

        // The survivor: two consumers, one SIGKILLed once both are busy.
        let codes = store_and_queue(&env, &publisher, "bench-a", next, backlog).await?;
        next += backlog;
        let started_ms = now_ms();
        let mut children: Vec<RoleChild> = (0..2).map(|_| spawn_consumer(&settings)).collect::<Result<_, _>>()?;
        tokio::time::sleep(Duration::from_secs(seconds / 3 + 2)).await;
        let killed_ms = now_ms();
        children[0].child.kill()?;
        children[0].child.wait()?;
        wait_issued(&env, next as i64, Duration::from_secs(seconds * 4 + 30)).await?;
        stop_children(&mut children[1..]);
        let run = requests_of(&sim_url, &codes, started_ms).await?;
        let per_second = per_second(&run);
        // "Back" is 98% of the aim.
        let floor = (aim * 0.98).ceil() as usize;
        let killed_second = killed_ms / 1000;
        let back = per_second
            .iter()
            .filter(|(second, n)| *second > killed_second && *n >= floor)
            .map(|(second, _)| second - killed_second)
            .next();
        println!(
            "survivor: one of two consumers SIGKILLed; the other held ≥ 98% of the limit less the {}% headroom ({floor}/s) again after {} s (goal ≤ 3 s); 429s {}",
            settings.wxpay.headroom,
            back.map(|s| s.to_string()).unwrap_or_else(|| "never".into()),
            run.iter().filter(|r| r.status == 429).count()
        );
        let seconds_after: Vec<String> = per_second
            .iter()
            .filter(|(second, _)| *second >= killed_second - 1 && *second <= killed_second + 4)
            .map(|(second, n)| format!("{:+}s:{n}", second - killed_second))
            .collect();
        println!("          sends per second around the kill: {}", seconds_after.join(" "));

        let two = super::rate_accounts::TwoAccounts {
            env: &env,
            publisher: &publisher,
            settings: &settings,
            merchant_key: &merchant_key,
            private_key,
            public_key,
            platform_key: &platform_key,
        };
        super::rate_accounts::run(two, next, limit, latency_ms, seconds).await?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    stop.cancel();
    env.destroy().await;
    outcome
}

/// Stores `n` orders of `activity` (distinct users) and queues them as 100-order jobs.
pub(super) async fn store_and_queue(
    env: &BenchEnv,
    publisher: &Publisher,
    activity: &str,
    from: usize,
    n: usize,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let client = env.store.client().await?;
    let (from, to) = (from as i64, (from + n) as i64);
    client
        .execute(
            "INSERT INTO orders (order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id, settlement_fen, enqueued_at)
             SELECT 'LJR' || lpad(i::text, 12, '0'), 'bench-m', 'r' || i, 'oRate' || i, 'wx0000000000000000', 'bench-p', $3, 450, now()
               FROM generate_series($1::bigint, $2::bigint - 1) AS i",
            &[&from, &to, &activity],
        )
        .await?;
    let codes: Vec<String> = (from..to).map(|i| format!("LJR{i:012}")).collect();
    for chunk in codes.chunks(JOB_ORDERS) {
        publisher.publish_issue(&IssueJob::for_orders(chunk.to_vec())).await?;
    }
    Ok(codes.into_iter().collect())
}

/// A role's child process and where its metrics are.
pub(super) struct RoleChild {
    child: Child,
    metrics: String,
}

fn spawn_consumer(settings: &Settings) -> std::io::Result<RoleChild> {
    spawn_role(settings, "consumer")
}

/// `lijian ROLE` as a child process with these settings, its metrics on a free port.
pub(super) fn spawn_role(settings: &Settings, role: &str) -> std::io::Result<RoleChild> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(std::env::current_exe()?)
        .arg(role)
        .envs(settings.to_env())
        .env("LIJIAN_OPS_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(RoleChild { child, metrics: format!("http://127.0.0.1:{port}/metrics") })
}

impl RoleChild {
    /// The sum of the values of the metric lines starting with `series` (0 when
    /// the process does not answer).
    pub(super) async fn metric(&self, series: &str) -> f64 {
        let Ok(answer) = reqwest::get(&self.metrics).await else { return 0.0 };
        let text = answer.text().await.unwrap_or_default();
        text.lines().filter(|l| l.starts_with(series)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

/// Slots the consumers used and threw away (reached too late), summed over
/// processes: where a shortfall against the limit went.
pub(super) async fn slot_use(children: &[RoleChild]) -> (u64, u64) {
    let mut totals = (0, 0);
    for child in children {
        totals.0 += child.metric("lijian_wxpay_sends_total{").await as u64;
        totals.1 += child.metric("lijian_wxpay_slots_stale_total{").await as u64;
    }
    totals
}

pub(super) fn stop_children(children: &mut [RoleChild]) {
    for c in children.iter() {
        let _ = Command::new("kill").args(["-TERM", &c.child.id().to_string()]).status();
    }
    for c in children.iter_mut() {
        let _ = c.child.wait();
    }
}

pub(super) async fn wait_issued(env: &BenchEnv, total: i64, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while env.store.status_counts().await?.orders(OrderStatus::Success) < total {
        anyhow::ensure!(started.elapsed() < timeout, "the backlog was not issued within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The simulator's log of this run's requests (its orders, after it started).
async fn requests_of(
    sim_url: &str,
    codes: &std::collections::HashSet<String>,
    since_ms: i64,
) -> anyhow::Result<Vec<RequestRecord>> {
    let all: Vec<RequestRecord> = reqwest::get(format!("{sim_url}/__sim/requests")).await?.json().await?;
    Ok(all.into_iter().filter(|r| r.time_ms >= since_ms && codes.contains(&r.out_request_no)).collect())
}

/// Requests per whole second (unix second → count), in time order.
fn per_second(run: &[RequestRecord]) -> Vec<(i64, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for r in run {
        *counts.entry(r.time_ms / 1000).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

/// Sends per second over the steady state of one run.
pub(super) struct Steady {
    pub min: usize,
    pub median: usize,
    pub max: usize,
    pub worst_window: usize,
    pub throttled: usize,
}

impl Steady {
    pub(super) fn of(run: &[RequestRecord]) -> Steady {
        let seconds = per_second(run);
        let mut steady: Vec<usize> = if seconds.len() > START_SECONDS + TAIL_SECONDS {
            seconds[START_SECONDS..seconds.len() - TAIL_SECONDS].iter().map(|(_, n)| *n).collect()
        } else {
            seconds.iter().map(|(_, n)| *n).collect()
        };
        steady.sort_unstable();
        Steady {
            min: steady.first().copied().unwrap_or(0),
            median: steady.get(steady.len() / 2).copied().unwrap_or(0),
            max: steady.last().copied().unwrap_or(0),
            worst_window: wxpay_sim::busiest_second(run),
            throttled: run.iter().filter(|r| r.status == 429).count(),
        }
    }
}

pub(super) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Our side of a run: the worst sliding second by the instants the consumers
/// sent at (`upstream_attempts.started_at`), and how long requests took to reach
/// the simulator. When the simulator's worst second is over the limit and ours
/// is not, the excess was made in transit (a stalled runtime or host), not by
/// the send slots.
struct Transit {
    worst_window: usize,
    p50: i64,
    p99: i64,
    max: i64,
}

impl Transit {
    async fn of(env: &BenchEnv, run: &[RequestRecord]) -> anyhow::Result<Transit> {
        let client = env.store.client().await?;
        let rows = client
            .query("SELECT order_code, (extract(epoch FROM started_at) * 1000)::bigint FROM upstream_attempts", &[])
            .await?;
        let sent: std::collections::HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let ours: Vec<RequestRecord> = run
            .iter()
            .filter_map(|r| sent.get(&r.out_request_no).map(|at| RequestRecord { time_ms: *at, ..r.clone() }))
            .collect();
        let mut delays: Vec<i64> =
            run.iter().filter_map(|r| sent.get(&r.out_request_no).map(|at| r.time_ms - at)).collect();
        delays.sort_unstable();
        let at = |q: usize| delays.get((delays.len() * q / 100).min(delays.len().saturating_sub(1))).copied();
        Ok(Transit {
            worst_window: wxpay_sim::busiest_second(&ours),
            p50: at(50).unwrap_or(0),
            p99: at(99).unwrap_or(0),
            max: delays.last().copied().unwrap_or(0),
        })
    }
}
