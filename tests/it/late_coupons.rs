//! Issue 12, point 2: a late coupon is never silent. A coupon that arrives for
//! an order already failed and refunded is recorded on it, charged again (as a
//! debt when the balance cannot cover it), reported again and counted; `dlq
//! fail` will not refund an order whose last call's outcome is unknown without
//! `--force`; a stray duplicate job leaves a parked order alone.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use lijian_core::config::Settings;
use lijian_core::queue::runner::REDELIVERY_LIMIT;
use lijian_core::queue::{IssueJob, Lane, Publisher};
use tokio_util::sync::CancellationToken;

use crate::helpers::receiver::Receiver;
use crate::helpers::wxpay::{self, spawn_sim, Sim};
use crate::helpers::*;

/// An in-process consumer whose `/metrics` is served on a port of its own.
struct MeteredConsumer {
    running: lijian_consumer::RunningConsumer,
    metrics_url: String,
    stop: CancellationToken,
}

impl MeteredConsumer {
    async fn start(settings: &Settings) -> MeteredConsumer {
        let stop = CancellationToken::new();
        let deps = lijian_core::deps::Deps::connect(settings, "lijian-test-consumer").expect("deps");
        let running = lijian_consumer::start(&deps, stop.clone()).expect("start consumer");
        let listener = lijian_core::telemetry::bind_ops("127.0.0.1:0").await.expect("bind ops");
        let (addr, _) = lijian_core::telemetry::serve_ops(
            listener,
            deps.ops.clone(),
            lijian_core::telemetry::LogTarget::Consumer,
            stop.clone(),
        )
        .expect("serve ops");
        MeteredConsumer { running, metrics_url: format!("http://{addr}/metrics"), stop }
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics_url).await.expect("metrics").text().await.expect("metrics text");
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.running.task).await;
    }
}

/// Publishes the issue job of `order_code` as RabbitMQ delivers a job a worker
/// keeps crashing on: the consumer gives it up (parks the order) unseen.
async fn publish_crash_looping_job(app: &TestApp, order_code: &str) {
    let publisher = Publisher::for_settings(&app.settings, "lijian-test", app.topology.clone());
    let mut headers = FieldTable::default();
    headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(REDELIVERY_LIMIT));
    let job = IssueJob::V1 { order_code: order_code.into() }.to_bytes();
    publisher
        .publish(&app.topology.issue_exchange(), Lane::Issue.routing_key(), &job, Some(headers))
        .await
        .expect("publish");
}

async fn wait_until(app: &TestApp, sql: &str) {
    assert_eq!(app.wait_for_count(sql, 1, Duration::from_secs(20)).await, 1, "{sql}");
}

/// `lijian ARGS`: success, stdout and stderr.
fn lijian(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = lijian_command(&app.settings).args(args).output().expect("run lijian");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// What a late-coupon run left behind.
struct Late {
    app: TestApp,
    sim: Sim,
    receiver: Receiver,
    consumer: MeteredConsumer,
    notifier: wxpay::NotifierHandle,
    order: String,
}

/// The race that makes a coupon late: the job's call is in flight (held by the
/// simulator) when a copy of the job, crash-looping, parks the order; an
/// operator forces `dlq fail` (the outcome is unknown, so without --force it is
/// refused), the order fails and is refunded; then the held call gets its
/// coupon. `between` runs after the refund, before the coupon.
async fn coupon_after_a_forced_fail(merchant: &str, balance_fen: i64, between: impl AsyncFnOnce(&TestApp)) -> Late {
    let app = spawn_app().await;
    app.add_merchant(merchant, balance_fen, &[], 10).await;
    let receiver = Receiver::healthy().await;
    app.set_callback(merchant, &receiver.url()).await;
    let sim = spawn_sim(|_| {}).await;
    sim.hold().await;
    let mut settings = app.consumer_settings(&sim);
    settings.wxpay.timeout = Duration::from_secs(60);
    let consumer = MeteredConsumer::start(&settings).await;
    let notifier = app.start_notifier(&app.settings);

    let placed = app.order_for(merchant, "late-1").await;
    assert_eq!(placed["status"], 0, "{placed}");
    let order = placed["data"]["orderCode"].as_str().expect("orderCode").to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sim.stats().await.requests == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the call never reached the simulator");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish_crash_looping_job(&app, &order).await;
    wait_until(&app, &format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND dead_at IS NOT NULL"))
        .await;

    let (ok, _, stderr) = lijian(&app, &["dlq", "fail", "--order", &order]);
    assert!(!ok, "dlq fail refunded an order whose call is in flight");
    assert!(stderr.contains(&format!("refused to fail {order}")), "{stderr}");
    assert!(stderr.contains("outcome of its last WeChat Pay call is unknown"), "{stderr}");
    assert!(stderr.contains("attempt 1 got no answer (outcome never recorded: delivered"), "{stderr}");
    assert!(stderr.contains("lijian dlq replay --order") && stderr.contains("--force"), "{stderr}");
    assert_eq!(app.count(&format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND status = 1")).await, 1);
    assert_eq!(app.balance(merchant).await, balance_fen - PRICE_FEN, "nothing refunded");

    let forced = lijian_ok(&app, &["dlq", "fail", "--force", "--order", &order]);
    assert!(forced.contains("failed 1 orders"), "{forced}");
    assert_eq!(app.balance(merchant).await, balance_fen, "refunded");
    between(&app).await;
    sim.release().await;
    wait_until(&app, &format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND status = 2")).await;
    Late { app, sim, receiver, consumer, notifier, order }
}

impl Late {
    /// One coupon for the order at WeChat, the same one on the order.
    async fn one_coupon(&self) -> String {
        let ledger = self.sim.ledger().await;
        let coupons: Vec<&str> =
            ledger.iter().filter(|c| c.out_request_no == self.order).map(|c| c.coupon_id.as_str()).collect();
        assert_eq!(coupons.len(), 1, "exactly one coupon for the order: {coupons:?}");
        let client = self.app.store.client().await.expect("client");
        let row = client
            .query_one("SELECT coupon_id, issued_late_at IS NOT NULL FROM orders WHERE order_code = $1", &[&self.order])
            .await
            .expect("order");
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(coupons[0]));
        assert!(row.get::<_, bool>(1), "marked as issued late");
        coupons[0].to_string()
    }

    /// The order's ledger rows (kind, amount) and whether the merchant's ledger
    /// sums to its balance.
    async fn ledger(&self, merchant: &str) -> Vec<(String, i64)> {
        let client = self.app.store.client().await.expect("client");
        let rows = client
            .query("SELECT kind, amount_fen FROM balance_ledger WHERE order_code = $1 ORDER BY id", &[&self.order])
            .await
            .expect("ledger");
        let sum = self.app.store.ledger_sum(merchant).await.expect("ledger sum");
        assert_eq!(sum.0, self.app.balance(merchant).await, "the ledger sums to the balance");
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// The failure report, then the corrected one with the coupon, both signed.
    async fn corrected_report(&self, coupon: &str, reports: usize) {
        assert_eq!(self.receiver.wait_for(reports, Duration::from_secs(20)).await, reports);
        let first = format!("N{}", self.order);
        let late = format!("N{}-late", self.order);
        let received = self.receiver.received();
        let body = |id: &str| {
            let r = received.iter().find(|r| r.json()["notifyId"] == id).unwrap_or_else(|| panic!("no report {id}"));
            assert!(r.verifies(None), "report {id} is signed");
            r.json()
        };
        let failed = body(&first);
        assert_eq!(failed["status"], 3, "{failed}");
        assert!(failed.get("couponId").is_none(), "{failed}");
        let corrected = body(&late);
        assert_eq!(corrected["status"], 2, "{corrected}");
        assert_eq!(corrected["couponId"], coupon, "{corrected}");
        assert_eq!(corrected["corrects"], first.as_str(), "{corrected}");
        assert_eq!(corrected["settlementPrice"], 9.5, "{corrected}");
        assert!(corrected["message"].as_str().unwrap_or_default().starts_with("issued late"), "{corrected}");
    }

    async fn stop(self) {
        self.consumer.stop().await;
        self.notifier.stop().await;
        self.app.stop().await;
    }
}

#[tokio::test]
async fn a_coupon_for_a_failed_and_refunded_order_is_recorded_charged_again_and_reported() {
    let late = coupon_after_a_forced_fail("m-late", 100_000, async |_| {}).await;
    let coupon = late.one_coupon().await;
    let charges = [("debit".to_string(), -PRICE_FEN), ("refund".into(), PRICE_FEN), ("late_charge".into(), -PRICE_FEN)];
    assert_eq!(late.ledger("m-late").await, charges, "charged again with a ledger row of its own");
    assert_eq!(late.app.balance("m-late").await, 100_000 - PRICE_FEN);
    late.corrected_report(&coupon, 2).await;
    assert_eq!(late.consumer.metric("lijian_coupons_issued_late_total").await, Some(1.0));

    let story = lijian_ok(&late.app, &["order", "show", &late.order]);
    assert!(story.contains("status:   2 (success)") && story.contains(&format!("coupon:   {coupon}")), "{story}");
    assert!(story.contains("LATE:     issued late at") && story.contains("(lijian dlq fail --force)"), "{story}");
    assert!(
        story.contains(&format!("coupon {coupon} issued late: charged 9.50 yuan again; balance 990.50")),
        "{story}"
    );
    assert!(story.contains(&format!("status report N{}-late (status 2) queued", late.order)), "{story}");
    late.stop().await;
}

#[tokio::test]
async fn a_late_coupon_the_balance_cannot_cover_is_held_as_a_debt() {
    // The refunded 9.50 is spent on another order before the coupon arrives.
    let spend = async |app: &TestApp| assert_eq!(app.order_for("m-poor", "late-2").await["status"], 0);
    let late = coupon_after_a_forced_fail("m-poor", PRICE_FEN, spend).await;
    let coupon = late.one_coupon().await;
    assert_eq!(late.ledger("m-poor").await.last(), Some(&("late_charge".to_string(), -PRICE_FEN)));
    assert_eq!(late.app.balance("m-poor").await, -PRICE_FEN, "the debt");
    late.corrected_report(&coupon, 3).await;
    assert_eq!(late.consumer.metric("lijian_coupons_issued_late_total").await, Some(1.0));
    let story = lijian_ok(&late.app, &["order", "show", &late.order]);
    assert!(story.contains("balance -9.50 yuan (below zero: a debt the next top-up repays)"), "{story}");
    // Nothing new until a top-up repays the debt.
    assert_eq!(late.app.order_for("m-poor", "late-3").await["status"], 9);
    assert_eq!(
        late.app.store.topup("m-poor", lijian_core::money::Fen(2 * PRICE_FEN)).await.expect("topup").0,
        PRICE_FEN
    );
    assert_eq!(late.app.order_for("m-poor", "late-4").await["status"], 0);
    late.stop().await;
}

/// A simulator that never answers, a consumer that waits 300 ms and retries once.
async fn parked_by_timeouts(app: &TestApp) -> (Sim, wxpay::Consumer, String) {
    let sim = spawn_sim(|c| {
        c.timeout_rate = 1.0;
        c.timeout_hold = Duration::from_secs(2);
    })
    .await;
    let mut settings = app.consumer_settings(&sim);
    settings.wxpay.timeout = Duration::from_millis(300);
    settings.consumer.retry_schedule = vec![Duration::from_millis(50)];
    let consumer = app.start_consumer(&settings);
    let placed = app.order("timeout-1").await;
    let order = placed["data"]["orderCode"].as_str().expect("orderCode").to_string();
    wait_until(app, &format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND dead_at IS NOT NULL")).await;
    (sim, consumer, order)
}

#[tokio::test]
async fn dlq_fail_refuses_an_order_whose_last_attempt_timed_out_unless_forced() {
    let app = spawn_app().await;
    let (_sim, consumer, order) = parked_by_timeouts(&app).await;
    let before = app.balance(MERCHANT).await;

    let (ok, stdout, stderr) = lijian(&app, &["dlq", "fail", "--order", &order]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("failed 0 orders"), "{stdout}");
    assert!(stderr.contains(&format!("refused to fail {order}")), "{stderr}");
    assert!(stderr.contains("unknown (attempt 2 got no answer") && stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("re-sends the same out_request_no"), "{stderr}");
    assert_eq!(app.balance(MERCHANT).await, before, "nothing refunded");
    assert!(lijian_ok(&app, &["dlq", "list"]).contains(&order), "still parked");

    let forced = lijian_ok(&app, &["dlq", "fail", "--force", "--order", &order]);
    assert!(forced.contains("failed 1 orders"), "{forced}");
    assert_eq!(app.count(&format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND status = 3")).await, 1);
    assert_eq!(app.balance(MERCHANT).await, before + PRICE_FEN, "refunded");
    assert!(lijian_ok(&app, &["dlq", "list"]).contains("nothing parked"));
    consumer.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_stray_duplicate_job_leaves_a_parked_order_alone() {
    let app = spawn_app().await;
    // WeChat refuses the merchant number: parked at the first answer.
    let sim = spawn_sim(|c| c.mchid = Some("1900009999".into())).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let placed = app.order("stray-1").await;
    let order = placed["data"]["orderCode"].as_str().expect("orderCode").to_string();
    wait_until(&app, &format!("SELECT count(*) FROM orders WHERE order_code = '{order}' AND dead_at IS NOT NULL"))
        .await;
    assert_eq!(sim.requests().await.len(), 1);

    let skipped = || consumer.running.handler.counters.skipped.load(std::sync::atomic::Ordering::Relaxed);
    let publisher = Publisher::for_settings(&app.settings, "lijian-test", app.topology.clone());
    publisher.publish_issue(&IssueJob::V1 { order_code: order.clone() }).await.expect("publish");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while skipped() == 0 && sim.requests().await.len() == 1 {
        assert!(tokio::time::Instant::now() < deadline, "the duplicate job was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<String> = sim.requests().await.into_iter().map(|r| r.out_request_no).collect();
    assert_eq!(sent, std::slice::from_ref(&order), "the duplicate sent nothing to WeChat");
    assert_eq!(app.count(&format!("SELECT count(*) FROM upstream_attempts WHERE order_code = '{order}'")).await, 1);
    assert!(lijian_ok(&app, &["dlq", "list"]).contains(&order), "still parked for an operator");
    consumer.stop().await;
    app.stop().await;
}
