//! What the CLI says when input is wrong: our words, not the database's or the
//! argument parser's, each said once; times shown as RFC 3339.

use crate::helpers::*;

/// Runs `lijian ARGS`; it must fail. Its stderr.
fn refused(app: &TestApp, args: &[&str]) -> String {
    let out = lijian_command(&app.settings).args(args).output().expect("run lijian");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "lijian {args:?} must exit 1 with our refusal: {stderr}");
    stderr
}

fn activity_args<'a>(id: &'a str, merchant: &'a str, starts: &'a str, ends: &'a str) -> Vec<&'a str> {
    vec![
        "activity",
        "add",
        "--activity-id",
        id,
        "--merchant-id",
        merchant,
        "--stock-id",
        "9856000",
        "--stock-creator-mchid",
        "1900000001",
        "--appid",
        "wx1234567890abcdef",
        "--face-value",
        "10",
        "--budget",
        "100",
        "--starts",
        starts,
        "--ends",
        ends,
    ]
}

#[tokio::test]
async fn refusals_speak_our_words_once() {
    let app = spawn_app().await;

    let stderr = refused(&app, &activity_args("a-nobody", "nobody", "now", "now+30d"));
    assert_eq!(stderr.trim(), "error: merchant nobody does not exist");

    // A negative amount reaches our validation instead of clap's "unexpected argument".
    let stderr = refused(&app, &["product", "add", "--product-code", "p-neg", "--face-value", "10", "--price", "-1"]);
    assert!(stderr.contains("--price") && stderr.contains("must not be negative"), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    let stderr = refused(&app, &["merchant", "topup", "--merchant-id", MERCHANT, "--amount", "-5"]);
    assert!(stderr.contains("--amount") && stderr.contains("must not be negative"), "{stderr}");

    // A bare date is explained once, with what to write instead.
    let stderr = refused(&app, &activity_args("a-date", MERCHANT, "2026-12-01", "2027-01-15T00:00:00Z"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--starts \"2026-12-01\" is a date without a time of day"), "{stderr}");
    assert!(stderr.contains("2026-12-01T00:00:00+08:00"), "{stderr}");
    assert!(!stderr.contains("component could not be parsed"), "{stderr}");
    let stderr = refused(&app, &["load", "missing.csv", "--merchant-id", MERCHANT, "--at", "2026-12-01"]);
    assert!(stderr.contains("--at \"2026-12-01\" is a date without a time of day"), "{stderr}");

    // Nothing was stored by the refusals.
    assert_eq!(app.count("SELECT count(*) FROM activities WHERE activity_id IN ('a-nobody', 'a-date')").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM products WHERE product_code = 'p-neg'").await, 0);

    // `now` and `now+DURATION` work, and the answer shows RFC 3339 times.
    let added = lijian_ok(&app, &activity_args("a-now", MERCHANT, "now", "now+60d"));
    let times: Vec<&str> = added.split(['(', ',', ')', ' ']).filter(|w| w.ends_with('Z')).collect();
    assert_eq!(times.len(), 2, "{added}");
    for t in times {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{t} in {added:?} is not RFC 3339: {e}"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_campaign_with_another_schedule_names_its_time_in_rfc3339() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("promo.csv");
    std::fs::write(&csv, "openId,bizCode\noA,promo-1\n").expect("csv");
    let csv = csv.to_string_lossy().into_owned();
    let load = |at: &str| {
        lijian_command(&app.settings)
            .args(["load", &csv, "--merchant-id", MERCHANT, "--activity-id", ACTIVITY, "--product-code", PRODUCT])
            .args(["--at", at])
            .output()
            .expect("run lijian")
    };
    assert!(load("2030-01-01T10:00:00+08:00").status.success());
    let out = load("2030-01-02T10:00:00+08:00");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("release at 2030-01-01T02:00:00Z"), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn client_orders_finds_the_gateway_and_fails_loudly() {
    let app = spawn_app().await;
    let client = |product: &str, biz: &str| {
        let mut command = lijian_command(&app.settings);
        command
            .args(["client", "orders", "--merchant-id", MERCHANT, "--business-id", BUSINESS])
            .args(["--key", &fixture_path("merchant-test-private.pem"), "--product-code", product])
            .args(["--activity-id", ACTIVITY, "--biz-code", biz, "--count", "2"])
            // No --gateway: the address `lijian gateway` listens on.
            .env("LIJIAN_HTTP_ADDR", app.addr.to_string());
        // Not blocking: the gateway it calls runs on this test's runtime.
        tokio::process::Command::from(command).output()
    };
    let placed = client(PRODUCT, "cli-ok").await.expect("run lijian");
    assert!(placed.status.success(), "{}", String::from_utf8_lossy(&placed.stderr));
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE biz_code LIKE 'cli-ok-%'").await, 2);

    let refused = client("no-such-product", "cli-bad").await.expect("run lijian");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 of 2 orders were not placed") && stderr.contains("product"), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn an_old_schema_and_queues_not_declared_yet_are_said_plainly() {
    let app = spawn_app().await;
    // No role has declared this prefix's queues: nothing is parked on the broker.
    let mut fresh = app.settings.clone();
    fresh.broker.queue_prefix = format!("{}x", app.settings.broker.queue_prefix);
    let out = lijian_command(&fresh)
        .args(["dlq", "fail", "--order", "LJ-NONE"])
        .env_remove("RUST_LOG") // the command's own default
        .output()
        .expect("run lijian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not parked, left alone: LJ-NONE"));

    // A binary newer than its database: say what to run, not "db error".
    let client = app.store.client().await.expect("client");
    client.batch_execute("DROP TABLE replays").await.expect("drop");
    let stderr = refused(&app, &["dlq", "replay", "--all"]);
    assert_eq!(
        stderr.trim(),
        "error: relation \"replays\" does not exist (PostgreSQL 42P01); the database is older than this lijian: run `lijian migrate`"
    );
    app.stop().await;
}
