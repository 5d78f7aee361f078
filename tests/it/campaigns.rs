//! Campaigns through the real `lijian` binary: CSV loads (malformed files,
//! re-loads, a killed load, the balance running out), scheduled releases (time,
//! pace, two schedulers), pause/resume/cancel, and the consumer issuing bulk jobs.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write csv");
    path
}

/// `lijian load FILE --merchant-id M` with the seeded activity and product as defaults.
fn load(app: &TestApp, file: &Path, merchant: &str, extra: &[&str]) -> Output {
    let activity = if merchant == MERCHANT { ACTIVITY.to_string() } else { format!("a-{merchant}") };
    lijian_command(&app.settings)
        .arg("load")
        .arg(file)
        .args(["--merchant-id", merchant, "--activity-id", &activity, "--product-code", PRODUCT])
        .args(extra)
        .output()
        .expect("run lijian load")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "lijian failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rejects file as (line, reason) pairs, checking each keeps the original row.
fn rejects(path: &Path) -> Vec<(u64, String)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).expect("rejects file");
    let header = reader.byte_headers().expect("header").clone();
    assert_eq!(&header[0], b"line");
    assert_eq!(&header[1], b"reason");
    reader
        .byte_records()
        .map(|r| {
            let r = r.expect("rejects record");
            (String::from_utf8_lossy(&r[0]).parse().expect("line"), String::from_utf8_lossy(&r[1]).into_owned())
        })
        .collect()
}

fn summary_count(stdout: &str, label: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(label)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"))
}

async fn codes(app: &TestApp, sql: &str) -> HashSet<String> {
    let client = app.store.client().await.expect("client");
    client.query(sql, &[]).await.expect(sql).iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn malformed_csv_rows_are_rejected_by_line_and_the_rest_loads_once() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = "o".repeat(10 << 20);
    let long_biz = "x".repeat(65);
    let mut csv: Vec<u8> = b"\xEF\xBB\xBFnote,bizCode,openId,productCode\r\n".to_vec(); // 1: BOM, CRLF, reordered + extra column
    csv.extend_from_slice(b"\"a, quoted\",B1,oUser1,\r\n"); // 2 ok (productCode from the flag)
    csv.extend_from_slice(b"\r\n"); // 3 blank
    csv.extend_from_slice(b"\"two\r\nlines\",B2,oUser2,\r\n"); // 4-5 ok, quoted newline
    csv.extend_from_slice(b"x,B3,,\r\n"); // 6 no openId
    csv.extend_from_slice(b"x,B4,o\xffbad,\r\n"); // 7 invalid UTF-8
    csv.extend_from_slice(format!("x,{long_biz},oUser5,\r\n").as_bytes()); // 8 bizCode too long
    csv.extend_from_slice(b"x,B1,oUser9,\r\n"); // 9 repeats line 2's bizCode
    csv.extend_from_slice(format!("x,B6,{huge},\r\n").as_bytes()); // 10 a 10 MB openId
    csv.extend_from_slice(format!("{huge},B7,oUser7,\r\n").as_bytes()); // 11 ok: a 10 MB field we ignore
    csv.extend_from_slice(b"x,B8,oUser8,no-such-product\r\n"); // 12 unknown product
    csv.extend_from_slice(b"x,B9,oUser9"); // 13 ok: short row, no final newline
    let file = write(dir.path(), "spring.csv", &csv);
    let balance = app.balance(MERCHANT).await;

    let first = ok(&load(&app, &file, MERCHANT, &[]));
    let expected: Vec<u64> = vec![6, 7, 8, 9, 10, 12];
    let refused = rejects(&dir.path().join("spring.rejects.csv"));
    assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), expected, "{refused:?}");
    let reasons: BTreeMap<u64, String> = refused.into_iter().collect();
    assert_eq!(reasons[&6], "openId is required");
    assert!(reasons[&7].contains("UTF-8"), "{}", reasons[&7]);
    assert_eq!(reasons[&8], "bizCode is longer than 64 characters");
    assert_eq!(reasons[&9], "bizCode repeats line 2");
    assert_eq!(reasons[&10], "openId is longer than 128 characters");
    assert_eq!(reasons[&12], "product not found");
    // Refused by the database or by the reader alike, the row is kept as it was.
    let raw = std::fs::read(dir.path().join("spring.rejects.csv")).expect("rejects");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("12,product not found,x,B8,oUser8,no-such-product\n"), "{}", &raw[..raw.len().min(600)]);
    assert!(raw.contains("6,openId is required,x,B3,,\n"));
    assert_eq!(summary_count(&first, "accepted:"), 4, "{first}");
    assert_eq!(summary_count(&first, "rejected:"), 6, "{first}");
    let stored = codes(&app, "SELECT biz_code FROM orders WHERE campaign = 'spring'").await;
    assert_eq!(stored, ["B1", "B2", "B7", "B9"].iter().map(|s| s.to_string()).collect());
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE campaign = 'spring' AND source_line = 4").await, 1);
    assert_eq!(app.balance(MERCHANT).await, balance - 4 * PRICE_FEN);

    // The same file again: nothing new, nothing charged, the same rejects.
    let again = ok(&load(&app, &file, MERCHANT, &[]));
    assert_eq!(summary_count(&again, "accepted:"), 0, "{again}");
    assert_eq!(summary_count(&again, "duplicates:"), 4, "{again}");
    let refused_again: Vec<u64> = rejects(&dir.path().join("spring.rejects.csv")).iter().map(|r| r.0).collect();
    assert_eq!(refused_again, expected);
    assert_eq!(app.balance(MERCHANT).await, balance - 4 * PRICE_FEN);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 4);
    assert_eq!(app.campaign_totals_match().await, 4, "duplicates and rejects are not counted");

    // Without the required column the file is refused whole, storing nothing.
    let bad = write(dir.path(), "nocol.csv", b"bizCode,productCode\nB1,p-test\n");
    let out = load(&app, &bad, MERCHANT, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("openId"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(app.count("SELECT count(*) FROM campaigns WHERE name = 'nocol'").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 4);
    app.stop().await;
}

#[tokio::test]
async fn balance_running_out_rejects_the_rest_and_a_top_up_reload_finishes() {
    let app = spawn_app().await;
    app.add_merchant("m-poor", 10 * PRICE_FEN, &[], 1000).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: String = (0..25).map(|i| format!("oUser{i}\n")).collect();
    let file = write(dir.path(), "poor.csv", format!("openId\n{rows}").as_bytes());
    let ledger_ok = "SELECT count(*) FROM merchants m WHERE m.merchant_id = 'm-poor'
                       AND m.balance_fen = (SELECT sum(amount_fen) FROM balance_ledger WHERE merchant_id = 'm-poor')";

    let first = ok(&load(&app, &file, "m-poor", &[]));
    assert_eq!(summary_count(&first, "accepted:"), 10, "{first}");
    let refused = rejects(&dir.path().join("poor.rejects.csv"));
    assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), (12..=26).collect::<Vec<u64>>());
    assert!(refused.iter().all(|r| r.1 == "insufficient balance"), "{refused:?}");
    assert_eq!(app.balance("m-poor").await, 0);
    assert_eq!(app.count(ledger_ok).await, 1, "ledger sums to the balance");

    lijian_ok(&app, &["merchant", "topup", "--merchant-id", "m-poor", "--amount", "47.50"]);
    let second = ok(&load(&app, &file, "m-poor", &[]));
    assert_eq!(summary_count(&second, "accepted:"), 5, "{second}");
    assert_eq!(summary_count(&second, "duplicates:"), 10, "{second}");
    assert_eq!(summary_count(&second, "rejected:"), 10, "{second}");
    assert_eq!(app.balance("m-poor").await, 0);
    assert_eq!(app.count(ledger_ok).await, 1, "ledger sums to the balance");
    assert_eq!(app.campaign_totals_match().await, 15, "rows refused for the balance are not counted");
    // Generated bizCodes are stable: the first rows are the same orders.
    let bizs = codes(&app, "SELECT biz_code FROM orders WHERE merchant_id = 'm-poor'").await;
    assert_eq!(bizs, (2..=16).map(|l| format!("poor-{l}")).collect());
    app.stop().await;
}

#[tokio::test]
async fn a_sigkilled_load_run_again_completes_without_charging_twice() {
    let app = spawn_app().await;
    let rows = 200_000i64;
    app.add_merchant("m-big", rows * PRICE_FEN, &[], rows).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("openId,bizCode\n");
    for i in 0..rows {
        text.push_str(&format!("oUser{i},K{i}\n"));
    }
    let file = write(dir.path(), "big.csv", text.as_bytes());

    let mut child = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", "m-big", "--activity-id", "a-m-big", "--product-code", PRODUCT])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn load");
    let stored = "SELECT count(*) FROM orders";
    let before_kill = app.wait_for_count(stored, 1, Duration::from_secs(60)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let after_kill = app.count(stored).await;
    assert!(before_kill > 0 && after_kill < rows, "the load must die mid-file ({after_kill} of {rows} stored)");
    assert_eq!(app.balance("m-big").await, (rows - after_kill) * PRICE_FEN, "only stored rows were charged");

    let resumed = ok(&load(&app, &file, "m-big", &[]));
    assert_eq!(summary_count(&resumed, "accepted:"), rows - after_kill, "{resumed}");
    assert_eq!(summary_count(&resumed, "duplicates:"), after_kill, "{resumed}");
    assert_eq!(app.count(stored).await, rows);
    assert_eq!(app.balance("m-big").await, 0, "every row charged exactly once");
    // The killed load's last batch rolled back its count with its orders.
    assert_eq!(app.campaign_totals_match().await, rows);
    // A load only stores: every order is held for the scheduler, nothing is on the broker.
    assert_eq!(app.count("SELECT count(*) FROM issue_outbox").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE enqueued_at IS NULL AND status = 0").await, rows);
    assert!(app.take_issue_jobs().await.is_empty(), "a load publishes nothing");
    app.stop().await;
}

fn spawn_scheduler(app: &TestApp) -> std::process::Child {
    lijian_command(&app.settings)
        .arg("scheduler")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scheduler")
}

fn sigterm(mut child: std::process::Child) {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn two_schedulers_release_on_time_at_the_pace_and_never_twice() {
    // Timing is measured: run alone, like the rate-limit test.
    let app = Arc::new(spawn_app_alone().await);
    // Orders are released as fast as they finish (the release window): a
    // consumer issues them.
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: String = (0..150).map(|i| format!("oUser{i}\n")).collect();
    let file = write(dir.path(), "paced.csv", format!("openId\n{rows}").as_bytes());
    let at = OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let out = ok(&load(&app, &file, MERCHANT, &["--at", &at.format(&Rfc3339).expect("time"), "--rate", "50"]));
    assert!(out.contains("scheduled"), "{out}");
    let schedulers = [spawn_scheduler(&app), spawn_scheduler(&app)];

    let released = "SELECT count(*) FROM orders WHERE enqueued_at IS NOT NULL";
    assert_eq!(app.wait_for_count(released, 150, Duration::from_secs(20)).await, 150);
    for s in schedulers {
        sigterm(s);
    }
    let client = app.store.client().await.expect("client");
    let times: Vec<OffsetDateTime> = client
        .query("SELECT enqueued_at FROM orders ORDER BY enqueued_at", &[])
        .await
        .expect("times")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(first >= at, "nothing released before the time ({first} < {at})");
    assert!(first - at < time::Duration::milliseconds(500), "released on time ({first} vs {at})");
    let span = (last - first).as_seconds_f64();
    assert!((149.0 / span - 50.0).abs() <= 2.5, "paced at 50/s ± 5%: 150 orders over {span:.2}s");
    for second in 0..2 {
        let from = at + time::Duration::seconds(second);
        let n = times.iter().filter(|t| **t >= from && **t < from + time::Duration::seconds(1)).count();
        // Loose per second (a busy CI machine delays single steps); a burst
        // would show as a whole second's worth or more.
        assert!((40..=60).contains(&n), "second {second} released {n}, not about 50 (no bursts)");
    }
    // Each confirmed release counts its orders once: twice released would be more.
    assert_eq!(app.count("SELECT released FROM campaigns WHERE name = 'paced'").await, 150, "no order released twice");
    assert_eq!(
        app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 150, Duration::from_secs(20)).await,
        150
    );
    let ledger = sim.ledger().await;
    let issued: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!((issued.len(), ledger.len()), (150, 150), "each order issued once");
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn pause_resume_and_cancel_with_refunds_and_reports() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: String = (0..100).map(|i| format!("oUser{i}\n")).collect();
    let file = write(dir.path(), "promo.csv", format!("openId\n{rows}").as_bytes());
    let balance = app.balance(MERCHANT).await;
    ok(&load(&app, &file, MERCHANT, &["--rate", "20"]));
    assert_eq!(app.balance(MERCHANT).await, balance - 100 * PRICE_FEN);
    let scheduler = spawn_scheduler(&app);
    let released = "SELECT count(*) FROM orders WHERE enqueued_at IS NOT NULL";

    app.wait_for_count(released, 10, Duration::from_secs(10)).await;
    assert!(lijian_ok(&app, &["campaign", "pause", "promo"]).contains("paused"));
    let at_pause = app.count(released).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.count(released).await, at_pause, "nothing released while paused");

    lijian_ok(&app, &["campaign", "resume", "promo"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_resume = app.count(released).await - at_pause;
    assert!((10..=30).contains(&after_resume), "resumed at the pace, no catch-up burst: {after_resume} in 1 s");

    let cancelled = lijian_ok(&app, &["campaign", "cancel", "promo"]);
    sigterm(scheduler);
    let released_total = app.count(released).await;
    let unreleased = 100 - released_total;
    assert!(cancelled.contains(&format!("{unreleased} unreleased orders")), "{cancelled}");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 4").await, unreleased);
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE status = 4").await, unreleased);
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'refund'").await, unreleased);
    assert_eq!(app.balance(MERCHANT).await, balance - released_total * PRICE_FEN);
    assert_eq!(app.campaign_totals_match().await, 100, "cancelled orders still count");
    let status = lijian_ok(&app, &["campaign", "status", "promo"]);
    assert!(status.contains("cancelled") && status.contains(&format!("4 cancelled   {unreleased}")), "{status}");
    // A cancelled campaign takes no more rows; a second cancel is refused.
    assert!(!load(&app, &file, MERCHANT, &[]).status.success());
    assert!(!lijian_command(&app.settings)
        .args(["campaign", "cancel", "promo"])
        .output()
        .expect("run")
        .status
        .success());
    app.stop().await;
}

#[tokio::test]
async fn a_loaded_campaign_is_issued_once_per_order_from_bulk_jobs() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("bulk.csv")).expect("file");
    writeln!(file, "openId").expect("write");
    for i in 0..300 {
        writeln!(file, "oBulk{i}").expect("write");
    }
    drop(file);
    ok(&load(&app, &dir.path().join("bulk.csv"), MERCHANT, &[]));
    let scheduler = app.start_scheduler();
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let issued = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 300, Duration::from_secs(60)).await;
    assert_eq!(issued, 300);
    let ledger = sim.ledger().await;
    let unique: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(unique.len(), ledger.len(), "no out_request_no issued twice");
    assert_eq!(
        unique.into_iter().map(str::to_string).collect::<HashSet<_>>(),
        codes(&app, "SELECT order_code FROM orders").await
    );
    consumer.stop().await;
    scheduler.stop().await;
    drop(sim);
    stop_shared(app).await;
}

#[tokio::test]
async fn a_load_needs_no_broker_and_the_scheduler_releases_what_it_stored() {
    let app = Arc::new(spawn_app().await);
    let broker = crate::helpers::proxy::TcpProxy::in_front_of(&app.settings.broker.url).await;
    let mut settings = app.settings.clone();
    settings.broker.url = broker.route(&settings.broker.url);
    broker.cut();
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: String = (0..250).map(|i| format!("oOut{i}\n")).collect();
    let file = write(dir.path(), "outage.csv", format!("openId\n{rows}").as_bytes());
    // Awaited, not blocking: the proxy runs on this test's runtime.
    let mut command = tokio::process::Command::from(lijian_command(&settings));
    command.arg("load").arg(&file).args([
        "--merchant-id",
        MERCHANT,
        "--activity-id",
        ACTIVITY,
        "--product-code",
        PRODUCT,
    ]);
    let loaded = ok(&command.output().await.expect("run load"));
    assert_eq!(summary_count(&loaded, "accepted:"), 250, "{loaded}");
    assert!(loaded.contains("lijian scheduler"), "{loaded}");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE enqueued_at IS NULL AND status = 0").await, 250);

    let sim = spawn_sim(|_| {}).await;
    let scheduler = app.start_scheduler();
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let issued = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 250, Duration::from_secs(60)).await;
    assert_eq!(issued, 250);
    let ledger = sim.ledger().await;
    let unique: HashSet<String> = ledger.iter().map(|c| c.out_request_no.clone()).collect();
    assert_eq!(unique.len(), ledger.len(), "no order issued twice");
    assert_eq!(unique, codes(&app, "SELECT order_code FROM orders").await);
    consumer.stop().await;
    scheduler.stop().await;
    stop_shared(app).await;
}
