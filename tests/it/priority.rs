//! Who gets the account's next send (issue 15), with real processes: two
//! `lijian consumer`s and a `lijian scheduler` against a simulator with a hard
//! per-account limit. API orders placed while campaigns saturate the limit are
//! issued within a second; campaigns of two merchants share the account alike,
//! so a small one loaded later finishes long before a big one; pause stops a
//! campaign's sends within a second. Throughout: no sliding second over the
//! limit at the simulator and no 429, every order issued exactly once.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lijian_core::config::Settings;
use lijian_core::money::Fen;
use wxpay_sim::busiest_second;

use crate::helpers::roles::{spawn_role_with, Role};
use crate::helpers::wxpay::{spawn_strict_sim, Sim, TEST_HEADROOM_PERCENT};
use crate::helpers::*;

/// The account's limit: modest, so a busy CI host keeps up with it.
const LIMIT: u32 = 200;
/// WeChat's processing time, as the issue measures.
const LATENCY_MS: u64 = 100;

/// A scheduler and two consumers, all with the test's configuration.
struct Cluster {
    roles: Vec<Role>,
}

impl Cluster {
    fn start(app: &TestApp, sim: &Sim) -> Cluster {
        Cluster::start_with_window(app, sim, "500ms")
    }

    /// With `LIJIAN_RELEASE_WINDOW=window`.
    fn start_with_window(app: &TestApp, sim: &Sim, window: &str) -> Cluster {
        let settings: Settings = app.consumer_settings(sim);
        // `lijian_command` does not carry the rate (the default is WeChat's 500).
        let (rate, headroom) = (LIMIT.to_string(), TEST_HEADROOM_PERCENT.to_string());
        let env = [
            ("LIJIAN_WXPAY_RATE", rate.as_str()),
            ("LIJIAN_WXPAY_HEADROOM", headroom.as_str()),
            ("LIJIAN_RELEASE_WINDOW", window),
        ];
        let roles = vec![
            // The scheduler sizes the account's release window from its limit.
            spawn_role_with(&settings, "scheduler", &env),
            spawn_role_with(&settings, "consumer", &env),
            spawn_role_with(&settings, "consumer", &env),
        ];
        Cluster { roles }
    }

    /// The sum over the cluster's processes of the metric line starting with `series`.
    async fn metric(&self, series: &str) -> f64 {
        let mut total = 0.0;
        for role in &self.roles {
            let text =
                reqwest::get(format!("{}/metrics", role.ops)).await.expect("metrics").text().await.expect("text");
            total += text
                .lines()
                .filter(|l| l.starts_with(series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }

    fn stop(self) {
        for role in self.roles {
            let stopped = role.terminate(Duration::from_secs(30));
            assert!(stopped.clean, "graceful exit");
        }
    }
}

async fn limited_sim() -> Sim {
    spawn_strict_sim(|c| {
        c.rate = Some(LIMIT);
        c.latency_ms = LATENCY_MS;
    })
    .await
}

/// Loads campaign `name` of `n` orders (one user each) for `merchant` (whose
/// activity is `activity`), topping its balance up first; its order codes.
async fn load(app: &TestApp, merchant: &str, activity: &str, name: &str, n: usize) -> HashSet<String> {
    app.store.topup(merchant, Fen(PRICE_FEN * n as i64)).await.expect("top up");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{name}.csv"));
    let mut file = std::fs::File::create(&path).expect("file");
    writeln!(file, "openId").expect("write");
    for i in 0..n {
        writeln!(file, "o{name}{i}").expect("write");
    }
    drop(file);
    let out = tokio::process::Command::from(lijian_command(&app.settings))
        .arg("load")
        .arg(&path)
        .args(["--merchant-id", merchant, "--activity-id", activity, "--product-code", PRODUCT, "--campaign", name])
        .output()
        .await
        .expect("run lijian load");
    assert!(out.status.success(), "load failed: {}", String::from_utf8_lossy(&out.stderr));
    let client = app.store.client().await.expect("client");
    let rows = client.query("SELECT order_code FROM orders WHERE campaign = $1", &[&name]).await.expect("orders");
    rows.iter().map(|r| r.get(0)).collect()
}

async fn issued_in(app: &TestApp, campaign: &str) -> i64 {
    app.count(&format!("SELECT count(*) FROM orders WHERE campaign = '{campaign}' AND status = 2")).await
}

/// When the first and the last order of `campaign` became final (seconds
/// since the epoch).
async fn finished_span(app: &TestApp, campaign: &str) -> (f64, f64) {
    let client = app.store.client().await.expect("client");
    let sql = "SELECT extract(epoch FROM min(finished_at))::float8, extract(epoch FROM max(finished_at))::float8
                 FROM orders WHERE campaign = $1";
    let row = client.query_one(sql, &[&campaign]).await.expect("finished");
    (row.get::<_, Option<f64>>(0).unwrap_or(0.0), row.get::<_, Option<f64>>(1).unwrap_or(0.0))
}

fn now_secs() -> f64 {
    now_ms() as f64 / 1000.0
}

/// What every run must show: every order issued exactly once, never two sends
/// to one user at once, no sliding second over the limit where WeChat counts
/// (the simulator's arrivals) and so no 429.
async fn assert_contract_held(app: &TestApp, sim: &Sim, orders: &HashSet<String>) {
    let ledger = sim.ledger().await;
    let issued: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(issued.len(), ledger.len(), "no order issued twice");
    assert_eq!(issued, orders.iter().map(String::as_str).collect(), "every order issued");
    assert_eq!(sim.stats().await.overlaps, 0, "never two sends to one user at once");
    let ours = app.our_send_instants().await;
    let requests = sim.requests().await;
    let (worst, theirs) = (busiest_second(&ours), busiest_second(&requests));
    let throttled = requests.iter().filter(|r| r.status == 429).count();
    eprintln!(
        "worst sliding second: {worst} by our send instants, {theirs} at the simulator ({throttled} answered 429)"
    );
    assert_eq!(throttled, 0, "no request answered 429");
    assert!(theirs <= LIMIT as usize, "{theirs} requests in one second at a {LIMIT}/s limit (ours: {worst})");
}

#[tokio::test]
async fn api_orders_get_their_coupons_within_a_second_while_a_campaign_saturates_the_account() {
    let app = Arc::new(spawn_app_alone().await);
    let sim = limited_sim().await;
    let mut orders = load(&app, MERCHANT, ACTIVITY, "flood", 1600).await;
    // Five seconds of campaign sends released at a time, waiting in the
    // consumers for their slots: API orders still go first.
    let cluster = Cluster::start_with_window(&app, &sim, "5s");
    // The campaign runs at the limit before the first API order.
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 300, Duration::from_secs(30)).await;

    // Open loop, 10 a second: a user tapping "claim" does not wait for the last one.
    let mut placing = tokio::time::interval(Duration::from_millis(100));
    let mut placed = Vec::new();
    for i in 0..30 {
        placing.tick().await;
        let app = app.clone();
        placed.push(tokio::spawn(async move { app.place_orders(&format!("tap{i}"), 1, 1).await }));
    }
    let mut api = Vec::new();
    for p in placed {
        api.extend(p.await.expect("placed"));
    }
    assert_eq!(api.len(), 30, "every API order accepted");
    let done = app
        .wait_for_count(
            "SELECT count(*) FROM orders WHERE campaign IS NULL AND status = 2",
            30,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done, 30);
    let flood_left = 1600 - issued_in(&app, "flood").await;
    assert!(flood_left > 0, "the campaign was still saturating the account when the last API order was issued");

    let client = app.store.client().await.expect("client");
    let mut waits: Vec<f64> = client
        .query("SELECT extract(epoch FROM finished_at - created_at)::float8 FROM orders WHERE campaign IS NULL", &[])
        .await
        .expect("waits")
        .iter()
        .map(|r| r.get(0))
        .collect();
    waits.sort_by(f64::total_cmp);
    eprintln!(
        "API acceptance → coupon: p50 {:.3}s, max {:.3}s ({flood_left} campaign orders still to go)",
        waits[15], waits[29]
    );
    assert!(waits[29] <= 1.0, "every API order issued within 1 s of acceptance: {waits:?}");

    // The same story in /metrics: per lane, and the campaign's release pace.
    let interactive = r#"lijian_issue_latency_seconds_bucket{lane="interactive",le="1"} "#;
    assert_eq!(cluster.metric(interactive).await, 30.0, "all 30 within 1 s by the consumers' histogram");
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1630, Duration::from_secs(60)).await;
    // A release is counted when its step settles, which may be a moment after
    // a consumer already issued its orders.
    let released = r#"lijian_campaign_released_total{campaign="flood"} "#;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.metric(released).await < 1600.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.metric(released).await, 1600.0, "the scheduler counts what it released");
    assert!(cluster.metric(r#"lijian_issue_latency_seconds_count{lane="campaign"} "#).await >= 1600.0);
    assert_eq!(cluster.metric(r#"lijian_queue_depth{lane="campaign"} "#).await, 0.0, "the campaign queue is empty");
    orders.extend(api);
    assert_contract_held(&app, &sim, &orders).await;
    cluster.stop();
    stop_shared(app).await;
}

#[tokio::test]
async fn two_merchants_share_the_account_alike_and_a_small_campaign_loaded_later_finishes_long_before() {
    // Six seconds of half the account: judged over its middle three, the
    // progress ratio is a matter of ~290 orders each, not a few 16-order jobs
    // (with 300 orders, 1.5 s judged, it ranged 0.49–1.64 over runs).
    const SMALL: usize = 600;
    let app = Arc::new(spawn_app_alone().await);
    app.add_merchant("m-small", 0, &[], 100_000).await;
    let sim = limited_sim().await;
    let mut orders = load(&app, MERCHANT, ACTIVITY, "big", 2000).await;
    let cluster = Cluster::start(&app, &sim);
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 200, Duration::from_secs(30)).await;

    orders.extend(load(&app, "m-small", "a-m-small", "small", SMALL).await);
    let loaded_at = now_secs();
    // Half the account each, as `campaign status` says, with an ETA from it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for name in ["big", "small"] {
        let status = lijian_ok(&app, &["campaign", "status", name]);
        let share: f64 = status
            .lines()
            .find_map(|l| l.trim().strip_prefix("share:")?.trim().split('%').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no share in:\n{status}"));
        assert!((40.0..=60.0).contains(&share), "{name} has half the account: {status}");
        assert!(status.lines().any(|l| l.trim().starts_with("ETA:") && l.trim().ends_with('s')), "{status}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while issued_in(&app, "small").await < SMALL as i64 {
        assert!(Instant::now() < deadline, "the small campaign did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (first, last) = finished_span(&app, "small").await;
    let small_took = last - loaded_at;
    // Both merchants' progress over the middle of the small one's run: after
    // the big one's orders released before it went out, before its own last
    // orders leave the window to the big one.
    let (from, to) = (first + (last - first) / 4.0, last - (last - first) / 4.0);
    let client = app.store.client().await.expect("client");
    let counts = client
        .query_one(
            "SELECT count(*) FILTER (WHERE campaign = 'big'), count(*) FILTER (WHERE campaign = 'small')
               FROM orders WHERE status = 2 AND finished_at BETWEEN to_timestamp($1) AND to_timestamp($2)",
            &[&from, &to],
        )
        .await
        .expect("count");
    let (big, small): (i64, i64) = (counts.get(0), counts.get(1));
    // Half of what the consumers aim at each.
    let fair = SMALL as f64 / (f64::from(LIMIT) * f64::from(100 - TEST_HEADROOM_PERCENT) / 100.0 / 2.0);
    eprintln!(
        "small campaign: {SMALL} orders {small_took:.2}s after its load (fair share {fair:.2}s); over the middle {:.2}s of its run the big one issued {big}, the small one {small}",
        to - from
    );
    // Measured 0.81–1.22 in seven runs, 1.55 once with a build loading the
    // host (2026-11-26). First come, first served — what this guards
    // against — gives the small one nothing until the big one is done.
    let ratio = big as f64 / small.max(1) as f64;
    assert!((0.6..=1.6).contains(&ratio), "both merchants progressed alike: big {big} vs small {small}");
    assert!(small_took <= 2.0 * fair, "the small campaign took {small_took:.2}s, fair share {fair:.2}s");
    assert!(issued_in(&app, "big").await < 2000 * 8 / 10, "the big campaign was far from done");

    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 2000 + SMALL as i64, Duration::from_secs(60))
        .await;
    assert_contract_held(&app, &sim, &orders).await;
    cluster.stop();
    stop_shared(app).await;
}

#[tokio::test]
async fn pause_stops_a_campaigns_sends_within_a_second_and_resume_finishes_it_once() {
    let app = Arc::new(spawn_app_alone().await);
    let sim = limited_sim().await;
    let orders = load(&app, MERCHANT, ACTIVITY, "pausable", 1200).await;
    let cluster = Cluster::start(&app, &sim);
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 300, Duration::from_secs(30)).await;

    // From the moment the operator asks (the command's own start-up included).
    let paused_ms = now_ms();
    let out = lijian_command(&app.settings).args(["campaign", "pause", "pausable"]).output().expect("pause");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent: Vec<i64> = sim.requests().await.iter().map(|r| r.time_ms).collect();
    let last = sent.iter().max().copied().unwrap_or(0);
    let issued = issued_in(&app, "pausable").await;
    eprintln!("paused with {issued} of 1200 issued; last send {} ms after the pause", last - paused_ms);
    assert!(issued < 1200, "paused mid-campaign");
    assert!(last - paused_ms <= 1000, "no send more than 1 s after the pause ({} ms)", last - paused_ms);

    let out = lijian_command(&app.settings).args(["campaign", "resume", "pausable"]).output().expect("resume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1200, Duration::from_secs(60)).await;
    assert_eq!(done, 1200);
    assert_contract_held(&app, &sim, &orders).await;
    cluster.stop();
    stop_shared(app).await;
}

#[tokio::test]
async fn a_release_step_never_takes_the_merchant_row_after_the_campaign_row() {
    // A load's batch locks the merchant's row, then the campaign's
    // (lijian_accept_batch); a release step locks the campaign's row. Were the
    // step to take the merchant's row after it — PostgreSQL's foreign-key check
    // does, for a row the transaction updates a second time — the two would
    // deadlock (seen in `bench priority`). Here a batch's two locks are taken
    // over and over for four seconds while the scheduler releases the campaign
    // and writes its share.
    let app = Arc::new(spawn_app().await);
    let sim = crate::helpers::wxpay::spawn_sim(|_| {}).await;
    load(&app, MERCHANT, ACTIVITY, "steady", 20_000).await;
    let scheduler = app.start_scheduler();
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let mut client = app.store.client().await.expect("client");
    let (mut rounds, mut deadlocks) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let tx = client.transaction().await.expect("begin");
        let locked = async {
            tx.query_one("SELECT 1 FROM merchants WHERE merchant_id = $1 FOR UPDATE", &[&MERCHANT]).await?;
            tx.query_one("SELECT 1 FROM campaigns WHERE name = 'steady' FOR UPDATE", &[]).await
        }
        .await;
        match locked {
            Ok(_) => tx.commit().await.expect("commit"),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) => deadlocks += 1,
            Err(e) => panic!("locking like a load: {e}"),
        }
        rounds += 1;
    }
    let released = app.count("SELECT released FROM campaigns WHERE name = 'steady'").await;
    consumer.stop().await;
    scheduler.stop().await;
    // The scheduler's side of a deadlock is its failed step: count both.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let in_database = app.count("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").await;
    eprintln!("{rounds} rounds of a load's locks; {released} orders released meanwhile; deadlocks {deadlocks} / {in_database}");
    assert!(released > 0, "the scheduler released the campaign meanwhile");
    assert_eq!((deadlocks, in_database), (0, 0), "no deadlock between a load and a release step");
    stop_shared(app).await;
}

#[tokio::test]
async fn a_campaign_order_back_from_a_retry_tier_is_still_served_as_a_campaigns() {
    // Retry tiers dead-letter every job to the interactive queue (their routing
    // key cannot change); the job's own lane says it is a campaign's.
    let app = Arc::new(spawn_app().await);
    let sim = crate::helpers::wxpay::spawn_sim(|_| {}).await;
    let codes = load(&app, MERCHANT, ACTIVITY, "returning", 3).await;
    let job = lijian_core::queue::IssueJob::for_orders(codes.iter().cloned().collect());
    let publisher = lijian_core::queue::Publisher::new(&app.amqp_url, "lijian-test", app.topology.clone());
    let retry_tier_key = lijian_core::queue::Lane::Issue.routing_key();
    let payload = job.to_bytes_in(lijian_core::queue::IssueLane::Campaign);
    publisher.publish(&app.topology.issue_exchange(), retry_tier_key, &payload, None).await.expect("publish");
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    assert_eq!(app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 3, Duration::from_secs(20)).await, 3);
    let mut metrics = lijian_core::telemetry::Exposition::default();
    lijian_core::telemetry::MetricsSource::render(&*consumer.running.handler, &mut metrics);
    let text = metrics.into_text();
    for (lane, n) in [("campaign", 3), ("interactive", 0)] {
        let line = format!("lijian_send_wait_seconds_count{{lane=\"{lane}\"}} {n}\n");
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    consumer.stop().await;
    stop_shared(app).await;
}
