//! A campaign says when it is done: `finished` once every order is final and
//! every report closed; and its ETA counts the wait for a start still ahead.

use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;

use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn load(app: &TestApp, file: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "load".to_string(),
        file.display().to_string(),
        "--merchant-id".into(),
        MERCHANT.into(),
        "--activity-id".into(),
        ACTIVITY.into(),
        "--product-code".into(),
        PRODUCT.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    lijian_ok(app, &refs)
}

fn eta_secs(status: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("ETA:")?.trim().strip_suffix('s')?.parse().ok())
        .unwrap_or_else(|| panic!("no ETA in:\n{status}"))
}

#[tokio::test]
async fn a_campaign_is_finished_once_every_order_is_final_and_reported() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("autumn.csv");
    std::fs::write(&file, "openId\noF1\noF2\noF3\n").expect("csv");
    load(&app, &file, &[]);
    let scheduler = app.start_scheduler();
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    let closed = "SELECT count(*) FROM reports WHERE outcome IS NOT NULL";
    assert_eq!(app.wait_for_count(closed, 3, Duration::from_secs(30)).await, 3);

    let status = lijian_ok(&app, &["campaign", "status", "autumn"]);
    assert!(status.lines().next().unwrap_or_default().ends_with(": finished"), "{status}");
    let list = lijian_ok(&app, &["campaign", "list"]);
    let row = list.lines().find(|l| l.starts_with("autumn")).unwrap_or_default();
    assert!(row.contains("finished"), "{list}");

    // Scheduled to start in 70 s at 10/s: five orders take 70.5 s, not 0.5 s.
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(70);
    let file = dir.path().join("winter.csv");
    std::fs::write(&file, "openId\noW1\noW2\noW3\noW4\noW5\n").expect("csv");
    load(&app, &file, &["--at", &later.format(&Rfc3339).expect("time"), "--rate", "10"]);
    let status = lijian_ok(&app, &["campaign", "status", "winter"]);
    let eta = eta_secs(&status);
    assert!((60.0..=72.0).contains(&eta), "ETA counts the wait for the start: {status}");
    assert!(status.lines().next().unwrap_or_default().ends_with(": active"), "{status}");

    // Cancelled before its start: the summary says in plain words where the money went.
    lijian_ok(&app, &["campaign", "cancel", "winter"]);
    let status = lijian_ok(&app, &["campaign", "status", "winter"]);
    assert!(
        status.contains("0.00 yuan charged") && status.contains("47.50 yuan refunded (failed and cancelled orders)"),
        "{status}"
    );

    consumer.stop().await;
    notifier.stop().await;
    scheduler.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn a_load_that_accepted_nothing_leaves_an_empty_campaign_that_can_be_deleted() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("nothing.csv");
    std::fs::write(&file, "openId\nnot valid!\nalso bad?\n").expect("csv");
    let summary = load(&app, &file, &[]);
    assert!(summary.contains("accepted:   0"), "{summary}");
    let list = lijian_ok(&app, &["campaign", "list"]);
    let row = list.lines().find(|l| l.starts_with("nothing")).unwrap_or_default();
    assert!(row.contains("empty"), "{list}");
    assert!(lijian_ok(&app, &["campaign", "status", "nothing"])
        .lines()
        .next()
        .unwrap_or_default()
        .ends_with(": empty"));
    assert!(lijian_ok(&app, &["campaign", "delete", "nothing"]).contains("campaign nothing deleted"));
    assert_eq!(app.count("SELECT count(*) FROM campaigns WHERE name = 'nothing'").await, 0);

    // A campaign with orders is not deleted.
    std::fs::write(&file, "openId\noKept1\n").expect("csv");
    load(&app, &file, &[]);
    let out = lijian_command(&app.settings).args(["campaign", "delete", "nothing"]).output().expect("run lijian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("only an empty campaign can be deleted"), "{stderr}");
    app.stop().await;
}
