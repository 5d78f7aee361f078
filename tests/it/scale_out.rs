//! Scale-out: several `lijian consumer` processes (real child processes, all with
//! the same configuration) against a simulator with a hard limit. WeChat's
//! contract must hold for the cluster: the account's rate in every sliding
//! second, each order issued once, and the work shared — also after a SIGKILL
//! and with a backlog queued before a consumer started.
//!
//! Each test runs alone (`spawn_app_alone`): two or three debug-build
//! consumers, a scheduler, the simulator and PostgreSQL share two cores.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::store::NewAccount;
use wxpay_sim::{busiest_second, RequestRecord};

use crate::helpers::wxpay::{spawn_strict_sim, Sim, TestAccount, PUBLIC_KEY_ID, TEST_HEADROOM_PERCENT};
use crate::helpers::*;

/// The account's limit in these tests: low enough for a busy CI machine to
/// keep up with, high enough that a second over it is not noise.
const LIMIT: u32 = 200;

/// What the consumers aim at together: the limit less the tests' headroom.
const AIM: u32 = LIMIT * (100 - TEST_HEADROOM_PERCENT) / 100;

/// A consumer child process with its metrics address.
struct ConsumerProcess {
    child: Child,
    metrics: String,
}

impl ConsumerProcess {
    fn spawn(settings: &Settings) -> ConsumerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = lijian_command(settings)
            .arg("consumer")
            .env("LIJIAN_OPS_ADDR", format!("127.0.0.1:{port}"))
            .env("LIJIAN_WXPAY_RATE", LIMIT.to_string())
            .env("LIJIAN_WXPAY_HEADROOM", TEST_HEADROOM_PERCENT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn lijian consumer");
        ConsumerProcess { child, metrics: format!("http://127.0.0.1:{port}/metrics") }
    }

    /// Sends this process let through (its `lijian_wxpay_sends_total`).
    async fn sends(&self) -> u64 {
        let Ok(answer) = reqwest::get(&self.metrics).await else { return 0 };
        let text = answer.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("lijian_wxpay_sends_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    async fn stop(self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let mut this = self;
        // Once reaped, the Drop below has nothing left to kill.
        let status = tokio::task::spawn_blocking(move || this.child.wait()).await.expect("join").expect("wait");
        assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    }
}

/// A test that fails half-way must not leave consumers running.
impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backlog of `n` campaign orders of `activity`, three per user, so that
/// consumers meet the same user at the same time; returns the codes of all
/// orders stored so far. A scheduler releases them (start one).
async fn load_backlog(app: &TestApp, activity: &str, n: usize) -> HashSet<String> {
    app.store.topup(MERCHANT, Fen(PRICE_FEN * n as i64)).await.expect("top up");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backlog.csv");
    let mut file = std::fs::File::create(&path).expect("file");
    writeln!(file, "openId,bizCode").expect("write");
    for i in 0..n {
        writeln!(file, "o{activity}{},{activity}-{i}", i % (n / 3).max(1)).expect("write");
    }
    drop(file);
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&path)
        .args(["--merchant-id", MERCHANT, "--activity-id", activity, "--product-code", PRODUCT])
        .output()
        .expect("run lijian load");
    assert!(out.status.success(), "load failed: {}", String::from_utf8_lossy(&out.stderr));
    let client = app.store.client().await.expect("client");
    client.query("SELECT order_code FROM orders", &[]).await.expect("orders").iter().map(|r| r.get(0)).collect()
}

/// A simulator that answers a second concurrent request for one user with
/// RULE_LIMIT (and counts it), with a hard limit.
async fn strict_sim() -> Sim {
    spawn_strict_sim(|c| {
        c.rate = Some(LIMIT);
        c.latency_ms = 50;
    })
    .await
}

/// Waits until all `n` orders are issued; otherwise fails with what the rest
/// are doing (status, last answer) and the simulator's counts.
async fn wait_all_issued(app: &TestApp, sim: &Sim, n: usize) {
    let done =
        app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", n as i64, Duration::from_secs(90)).await;
    if done == n as i64 {
        return;
    }
    let client = app.store.client().await.expect("client");
    let rows = client
        .query(
            "SELECT o.status::text || ' ' || coalesce(a.code, '-') || ' ' || coalesce(a.message, '-') || ' ×' || count(*) \
             FROM orders o LEFT JOIN upstream_attempts a ON a.order_code = o.order_code \
             WHERE o.status <> 2 GROUP BY o.status, a.code, a.message",
            &[],
        )
        .await
        .expect("the orders not issued");
    let rest: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    panic!(
        "{done} of {n} orders issued; the rest (status, code, message): {rest:?}; simulator: {:?}",
        sim.stats().await
    );
}

/// Requests per whole second.
fn per_second(requests: &[RequestRecord]) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.time_ms / 1000).or_insert(0) += 1;
    }
    counts
}

/// What every scale-out run must show at the simulator: each order one coupon,
/// no 429, no two sends to one user at once, no sliding second over the limit.
async fn assert_contract_held(sim: &Sim, orders: &HashSet<String>) -> Vec<RequestRecord> {
    assert_contract_held_by(None, sim, orders).await
}

/// Like [`assert_contract_held`]; with the app, also prints the worst sliding
/// second by our own send instants (the attempts' start), beside the simulator's.
async fn assert_contract_held_by(app: Option<&TestApp>, sim: &Sim, orders: &HashSet<String>) -> Vec<RequestRecord> {
    if let Some(app) = app {
        let ours = app.our_send_instants().await;
        eprintln!("our send instants: worst sliding second {}", busiest_second(&ours));
    }
    assert_eq!(sim.stats().await.overlaps, 0, "never two sends to one user at once");
    let ledger = sim.ledger().await;
    let issued: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(issued.len(), ledger.len(), "no order issued twice");
    assert_eq!(issued, orders.iter().map(String::as_str).collect(), "every order issued");
    let requests = sim.requests().await;
    let throttled = requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(throttled, 0, "no request answered 429");
    let worst = busiest_second(&requests);
    eprintln!("scale-out: {} requests, worst sliding second {worst} at a {LIMIT}/s limit", requests.len());
    if worst > LIMIT as usize {
        let mut times: Vec<i64> = requests.iter().map(|r| r.time_ms).collect();
        times.sort_unstable();
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let zero = gaps.iter().filter(|g| **g == 0).count();
        let max_gap = gaps.iter().max().copied().unwrap_or(0);
        eprintln!("gaps: {zero} zero, max {max_gap} ms; first 40 gaps {:?}", &gaps[..gaps.len().min(40)]);
        let start = times
            .iter()
            .position(|t| times.iter().filter(|u| **u >= *t && **u < t + 1000).count() == worst)
            .unwrap_or(0);
        let from = times[start];
        let tenths: Vec<usize> = (0..10)
            .map(|k| times.iter().filter(|t| **t >= from + k * 100 && **t < from + (k + 1) * 100).count())
            .collect();
        eprintln!("worst window from {from}: per 100 ms {tenths:?}");
        if let Some(app) = app {
            // Where the excess came from: transit of each request in the worst window.
            let client = app.store.client().await.expect("client");
            let ours: std::collections::HashMap<String, i64> = client
                .query("SELECT order_code, max((extract(epoch FROM started_at) * 1000)::bigint) FROM upstream_attempts GROUP BY order_code", &[])
                .await
                .expect("attempts")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut rows: Vec<(i64, i64)> = requests
                .iter()
                .filter(|r| r.time_ms >= from && r.time_ms < from + 1000)
                .map(|r| (r.time_ms - from, r.time_ms - ours.get(&r.out_request_no).copied().unwrap_or(r.time_ms)))
                .collect();
            rows.sort_unstable();
            eprintln!(
                "worst window, per request (ms into it, arrival − our send start): {:?}",
                &rows[..rows.len().min(80)]
            );
        }
    }
    assert!(worst <= LIMIT as usize, "{worst} requests in one second at a {LIMIT}/s limit");
    requests
}

async fn same_configuration_shares_the_limit(consumers: usize) {
    let app = Arc::new(spawn_app_alone().await);
    let sim = strict_sim().await;
    let settings = app.consumer_settings(&sim);
    let orders = load_backlog(&app, ACTIVITY, 1200).await;
    let scheduler = app.start_scheduler();
    let processes: Vec<ConsumerProcess> = (0..consumers).map(|_| ConsumerProcess::spawn(&settings)).collect();
    wait_all_issued(&app, &sim, 1200).await;
    assert_contract_held_by(Some(&app), &sim, &orders).await;
    for p in &processes {
        assert!(p.sends().await > 0, "every consumer took part");
    }
    for p in processes {
        p.stop().await;
    }
    scheduler.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn two_consumers_with_one_configuration_keep_the_accounts_limit_together() {
    same_configuration_shares_the_limit(2).await;
}

#[tokio::test]
async fn three_consumers_with_one_configuration_keep_the_accounts_limit_together() {
    same_configuration_shares_the_limit(3).await;
}

#[tokio::test]
async fn a_backlog_queued_before_the_second_consumer_starts_is_shared() {
    const BACKLOG: usize = 2000;
    let app = Arc::new(spawn_app_alone().await);
    let sim = strict_sim().await;
    let settings = app.consumer_settings(&sim);
    let orders = load_backlog(&app, ACTIVITY, BACKLOG).await;
    let scheduler = app.start_scheduler();
    let first = ConsumerProcess::spawn(&settings);
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 150, Duration::from_secs(30)).await;
    let second = ConsumerProcess::spawn(&settings);
    // A debug build starting beside a busy consumer takes a second or two
    // before it sends: the share is judged from its first send on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.sends().await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_before = first.sends().await;
    wait_all_issued(&app, &sim, BACKLOG).await;
    assert_contract_held(&sim, &orders).await;
    let (a, b) = (first.sends().await, second.sends().await);
    let together = a + b - first_before;
    eprintln!("backlog shared: first consumer {a} sends ({first_before} before the second sent), second {b}");
    assert!(
        b * 10 >= together * 3,
        "once sending, the consumer started later took at least 30% of the backlog's sends ({b} of {together})"
    );
    first.stop().await;
    second.stop().await;
    scheduler.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn a_sigkilled_consumer_leaves_the_whole_limit_to_the_survivor() {
    let app = Arc::new(spawn_app_alone().await);
    let sim = strict_sim().await;
    let settings = app.consumer_settings(&sim);
    let orders = load_backlog(&app, ACTIVITY, 2000).await;
    let scheduler = app.start_scheduler();
    let mut victim = ConsumerProcess::spawn(&settings);
    let survivor = ConsumerProcess::spawn(&settings);
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 500, Duration::from_secs(30)).await;
    let killed_at = now_ms() / 1000;
    victim.kill();
    wait_all_issued(&app, &sim, 2000).await;
    // Whole seconds from 3 s after the kill to the one before the last.
    let seconds = per_second(&sim.requests().await);
    eprintln!(
        "around the kill (second {killed_at}): {:?}",
        seconds.range(killed_at - 2..killed_at + 4).collect::<Vec<_>>()
    );
    assert_contract_held_by(Some(&app), &sim, &orders).await;
    let last = seconds.keys().next_back().copied().unwrap_or_default();
    let after: Vec<usize> = seconds.range(killed_at + 3..last).map(|(_, n)| *n).collect();
    eprintln!("survivor: sends per second from 3 s after the kill: {after:?}");
    assert!(after.len() >= 2, "enough run after the kill to judge ({after:?})");
    // Seen: the aim in every such second (194 of 194 at the default headroom).
    let floor = (f64::from(AIM) * 0.95) as usize;
    assert!(after.iter().all(|n| *n >= floor), "the survivor alone holds ≥ 95% of the aim ({AIM}/s): {after:?}");
    survivor.stop().await;
    scheduler.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn two_accounts_are_each_held_to_their_own_limit() {
    let app = Arc::new(spawn_app_alone().await);
    let accounts = [(TestAccount::generate("1900000301"), 120u32), (TestAccount::generate("1900000302"), 80u32)];
    let sim = spawn_strict_sim(|c| {
        c.latency_ms = 50;
        c.accounts = accounts.iter().map(|(a, rate)| a.sim_account(Some(*rate))).collect();
    })
    .await;
    let keys = tempfile::tempdir().expect("tempdir");
    let now = time::OffsetDateTime::now_utc();
    for (account, rate) in &accounts {
        let private = keys.path().join(format!("{}.pem", account.mchid));
        std::fs::write(&private, account.key.to_pkcs8_pem().expect("pem")).expect("write key");
        app.store
            .add_account(&NewAccount {
                mchid: account.mchid.clone(),
                serial_no: format!("SERIAL{}", account.mchid),
                private_key_path: private,
                public_key_path: fixture_path("wxpay-platform-public.pem").into(),
                public_key_id: PUBLIC_KEY_ID.into(),
                appids: Vec::new(),
                rate: *rate,
                base_url: Some(sim.url()),
            })
            .await
            .expect("add account");
        let mut a = activity(
            &format!("a{}", account.mchid),
            MERCHANT,
            100_000,
            now - time::Duration::hours(1),
            now + time::Duration::days(30),
        );
        a.stock_creator_mchid = account.mchid.clone();
        app.store.add_activity(&a).await.expect("add activity");
    }
    load_backlog(&app, "a1900000301", 720).await;
    let orders = load_backlog(&app, "a1900000302", 480).await;
    let scheduler = app.start_scheduler();
    let settings = app.consumer_settings(&sim);
    let processes: Vec<ConsumerProcess> = (0..2).map(|_| ConsumerProcess::spawn(&settings)).collect();
    wait_all_issued(&app, &sim, 1200).await;
    let ledger = sim.ledger().await;
    let issued: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(issued.len(), ledger.len(), "no order issued twice");
    assert_eq!(issued, orders.iter().map(String::as_str).collect(), "every order issued");
    let stats = sim.stats().await;
    assert_eq!((stats.overlaps, stats.throttled), (0, 0), "no overlapping sends to a user, no 429");
    let requests = sim.requests().await;
    for (account, rate) in &accounts {
        let own: Vec<RequestRecord> = requests.iter().filter(|r| r.mchid == account.mchid).cloned().collect();
        let worst = busiest_second(&own);
        eprintln!("account {}: {} requests, worst sliding second {worst} at {rate}/s", account.mchid, own.len());
        assert!(worst <= *rate as usize, "{worst} requests in one second from {} at {rate}/s", account.mchid);
        let seconds = per_second(&own);
        let busiest = seconds.values().max().copied().unwrap_or(0);
        assert!(
            busiest * 10 >= *rate as usize * 9,
            "{} used its own limit ({busiest} in its busiest second)",
            account.mchid
        );
    }
    for p in processes {
        p.stop().await;
    }
    scheduler.stop().await;
    stop_shared(app).await;
}
