//! Issue 14, point 3: `lijian doctor` checks an installation line by line — OK,
//! WARN or FAIL with what to do — and exits non-zero on any FAIL, within one
//! connect timeout however the servers misbehave.

use std::process::Output;
use std::time::{Duration, Instant};

use lijian_core::config::Settings;

use crate::helpers::silent::SilentListener;
use crate::helpers::wxpay::PUBLIC_KEY_ID;
use crate::helpers::*;

const STORED_MCHID: &str = "1900000888";

fn doctor(settings: &Settings, args: &[&str]) -> (Output, String) {
    let out = lijian_command(settings)
        .arg("doctor")
        .args(args)
        .env("LIJIAN_AMQP_CONNECT_TIMEOUT", "1s")
        .env("LIJIAN_DB_CONNECT_TIMEOUT", "1s")
        .output()
        .expect("run lijian doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The report's line of one check at one level, e.g. ("FAIL", "rabbitmq").
fn line<'a>(report: &'a str, level: &str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(&format!("{level:<4}  {check} ")))
        .unwrap_or_else(|| panic!("no {level} {check} line in:\n{report}"))
}

/// The report's line that mentions `text`.
fn line_with<'a>(report: &'a str, text: &str) -> &'a str {
    report.lines().find(|l| l.contains(text)).unwrap_or_else(|| panic!("no line with {text:?} in:\n{report}"))
}

fn add_stored_account(app: &TestApp, private_key: &str) {
    lijian_ok(
        app,
        &[
            "wxpay-account",
            "add",
            "--mchid",
            STORED_MCHID,
            "--serial-no",
            "SERIAL888",
            "--private-key",
            private_key,
            "--public-key",
            &fixture_path("wxpay-platform-public.pem"),
            "--public-key-id",
            PUBLIC_KEY_ID,
        ],
    );
}

#[tokio::test]
async fn a_good_installation_passes() {
    let app = spawn_app().await;
    add_stored_account(&app, &fixture_path("wxpay-merchant-private.pem"));
    let (out, report) = doctor(&app.settings, &[]);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!report.contains("FAIL  "), "{report}");
    assert!(line(&report, "OK", "postgresql").contains("PostgreSQL 1"), "{report}");
    assert!(line(&report, "OK", "migrations").contains("all 19 applied"));
    assert!(line(&report, "OK", "clock").contains("round trip"));
    assert!(line(&report, "OK", "rabbitmq").contains("RabbitMQ 3."), "{report}");
    let quorum = line(&report, "OK", "quorum queues");
    let declared =
        format!("prefix {} has {} quorum queues", app.settings.broker.queue_prefix, app.topology.queues().len());
    assert!(quorum.contains(&declared), "{quorum}");
    assert!(line(&report, "OK", "wxpay accounts").contains("1 stored (1 enabled with readable keys"));
    assert!(line(&report, "OK", "merchant keys").contains("all 1 live RSA public keys parse"));
    assert!(line(&report, "OK", "callback urls").contains("allows all"));
    assert!(line(&report, "OK", "platform key").contains("platform-private.pem"));
    assert!(line(&report, "OK", "wxpay default").contains("both key files readable"));
    // Tests open 127.0.0.0/8 for their receivers: said, not failed.
    assert!(line(&report, "WARN", "ssrf guard").contains("127.0.0.0/8"));
    // Whether the management plugin is on depends on the broker; either way a line.
    assert!(report.lines().any(|l| l.contains(" file handles ")), "{report}");
    assert!(report.lines().last().is_some_and(|l| l.ends_with("0 FAIL")), "{report}");

    // The quorum probe leaves no queue behind.
    let connection = lijian_core::queue::connect(&app.amqp_url, "lijian-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let probe = format!("{}.doctor-probe", app.settings.broker.queue_prefix);
    assert!(channel.queue_declare(probe.as_str().into(), passive, Default::default()).await.is_err());
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_broken_installation_fails_naming_every_fault_within_the_connect_timeout() {
    let app = spawn_app().await;
    let silent = SilentListener::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = app.settings.clone();
    settings.database.url = format!("postgres://postgres@{closed}/lijian");
    settings.broker.url = silent.route(&settings.broker.url);
    settings.notifier.platform_private_key = Some(dir.path().join("missing.pem"));
    settings.wxpay.serial_no = None;
    settings.wxpay.private_key = None;
    settings.wxpay.public_key = None;

    let started = Instant::now();
    let management = format!("http://{}", silent.addr);
    let (out, report) = doctor(&settings, &["--management-url", &management]);
    let took = started.elapsed();
    println!("doctor against a broken installation took {took:?}:\n{report}");
    assert!(!out.status.success(), "{report}");
    assert!(took < Duration::from_secs(4), "one 1 s timeout, not one per check: took {took:?}\n{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("checks failed"));

    let postgres = line(&report, "FAIL", "postgresql");
    assert!(postgres.contains(&closed.to_string()) && postgres.contains("LIJIAN_DATABASE_URL"), "{postgres}");
    assert!(line(&report, "WARN", "migrations").contains("not checked: PostgreSQL is unreachable"));
    let broker = line(&report, "FAIL", "rabbitmq");
    assert!(broker.contains("did not answer the AMQP handshake within 1s"), "{broker}");
    assert!(broker.contains(&silent.addr.to_string()) && broker.contains("rabbitmq-diagnostics status"), "{broker}");
    // No management API answering is a warning with what to run instead.
    let handles = line(&report, "WARN", "file handles");
    assert!(handles.contains("rabbitmq-diagnostics status"), "{handles}");
    let key = line(&report, "FAIL", "platform key");
    assert!(key.contains("missing.pem") && key.contains("No such file"), "{key}");
    // Every missing setting of the default account in one line.
    let wxpay = line(&report, "FAIL", "wxpay default");
    assert!(
        wxpay.contains("LIJIAN_WXPAY_SERIAL_NO, LIJIAN_WXPAY_PRIVATE_KEY and LIJIAN_WXPAY_PUBLIC_KEY are missing"),
        "{wxpay}"
    );
    assert!(!wxpay.contains("LIJIAN_WXPAY_MCHID,"), "set ones are not named: {wxpay}");
    app.stop().await;
}

#[tokio::test]
async fn stored_faults_are_found_before_orders_park() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("gone.pem");
    std::fs::copy(fixture_path("wxpay-merchant-private.pem"), &private).expect("copy key");
    add_stored_account(&app, private.to_str().expect("path"));
    std::fs::remove_file(&private).expect("remove key");
    // An activity sending from an mchid with no account, and no default account.
    let now = time::OffsetDateTime::now_utc();
    let mut orphan = activity("a-orphan", MERCHANT, 10, now, now + time::Duration::days(1));
    orphan.stock_creator_mchid = "1900000999".into();
    app.store.add_activity(&orphan).await.expect("activity");
    // A default callback URL fine under today's allowlist, refused without it.
    lijian_ok(&app, &["merchant", "set", "--merchant-id", MERCHANT, "--callback-url", "http://127.0.0.1:9999/cb"]);
    let mut settings = app.settings.clone();
    settings.notifier.allow_cidrs = None;
    settings.wxpay.mchid = None;
    settings.wxpay.serial_no = None;
    settings.wxpay.private_key = None;
    settings.wxpay.public_key = None;
    settings.wxpay.public_key_id = None;

    let (out, report) = doctor(&settings, &[]);
    assert!(!out.status.success(), "{report}");
    let unreadable = line_with(&report, &format!("{STORED_MCHID}: cannot read"));
    assert!(unreadable.starts_with("FAIL  wxpay account") && unreadable.contains("gone.pem"), "{unreadable}");
    let orphaned = line_with(&report, "a-orphan");
    assert!(orphaned.starts_with("FAIL  wxpay account"), "{orphaned}");
    assert!(orphaned.contains("no account sends for mchid 1900000999") && orphaned.contains("wxpay-account add"));
    let callbacks = line(&report, "WARN", "callback urls");
    assert!(callbacks.contains(&format!("{MERCHANT} (http://127.0.0.1:9999/cb)")), "{callbacks}");
    assert!(line(&report, "OK", "wxpay default").contains("stored accounts only"));
    assert!(line(&report, "OK", "ssrf guard").contains("no range opened"));

    // A migration not applied: named, and the stored data is left alone until it is.
    let client = app.store.client().await.expect("client");
    client.execute("DELETE FROM lijian_migrations WHERE version = 12", &[]).await.expect("forget 12");
    let (_, report) = doctor(&app.settings, &[]);
    assert!(line(&report, "FAIL", "migrations").contains("1 pending: 0012_edits"), "{report}");
    assert!(line(&report, "WARN", "stored data").contains("migrations pending"));
    app.stop().await;
}
