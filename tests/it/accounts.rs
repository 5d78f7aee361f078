//! WeChat Pay accounts we send from (`lijian wxpay-account`): checked keys, no
//! key material printed, each activity sent from its own account by one consumer,
//! and a job whose account is disabled or missing parked with the reason and
//! replayed to exactly one coupon once the account is fixed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;

use crate::helpers::wxpay::{spawn_sim, Sim, MCHID, PUBLIC_KEY_ID};
use crate::helpers::*;

/// The stored account of these tests: another merchant number with its own key.
const OTHER_MCHID: &str = "1900000777";

/// A fresh merchant API key pair in `dir` (private.pem, public.pem).
fn keygen(app: &TestApp, dir: &Path) {
    lijian_ok(app, &["keygen", "--out", dir.to_str().expect("utf-8 path")]);
}

/// `wxpay-account add` for OTHER_MCHID with these key files.
fn add_args(private_key: &str, public_key: &str) -> Vec<String> {
    [
        "wxpay-account",
        "add",
        "--mchid",
        OTHER_MCHID,
        "--serial-no",
        "SERIAL777",
        "--private-key",
        private_key,
        "--public-key",
        public_key,
        "--public-key-id",
        PUBLIC_KEY_ID,
    ]
    .map(str::to_string)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Adds OTHER_MCHID signing with `dir/private.pem`, at `sim`.
fn add_other_account(app: &TestApp, dir: &Path, sim: &Sim) {
    let private = dir.join("private.pem");
    let mut args = add_args(private.to_str().expect("utf-8 path"), &fixture_path("wxpay-platform-public.pem"));
    args.extend(["--base-url".to_string(), sim.url()]);
    lijian_ok(app, &strs(&args));
}

/// `activity add` through the CLI for the seeded merchant; `extra` adds flags.
fn add_activity(app: &TestApp, id: &str, stock_creator: &str, extra: &[&str]) -> Result<String, String> {
    let now = time::OffsetDateTime::now_utc();
    let starts = (now - time::Duration::hours(1)).format(&Rfc3339).expect("format");
    let ends = (now + time::Duration::days(30)).format(&Rfc3339).expect("format");
    let mut args = vec![
        "activity",
        "add",
        "--activity-id",
        id,
        "--merchant-id",
        MERCHANT,
        "--stock-id",
        "9856000",
        "--stock-creator-mchid",
        stock_creator,
        "--face-value",
        "10",
        "--budget",
        "1000",
        "--starts",
        &starts,
        "--ends",
        &ends,
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--appid") {
        args.extend(["--appid", "wxtestappid0000001"]);
    }
    let out = lijian_command(&app.settings).args(&args).output().expect("run lijian");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Places `n` orders for `activity`; their order codes.
async fn place_for(app: &TestApp, activity: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut codes = Vec::new();
    for i in 0..n {
        let body = order_body_full(MERCHANT, BUSINESS, activity, &format!("{prefix}-{i}"));
        let answer = app.send("/v1/openapi/order/wechat/coupons", &Req::new(&body).signed_rsa(&app.signer)).await;
        assert_eq!(answer["status"], 0, "{answer}");
        codes.push(answer["data"]["orderCode"].as_str().unwrap_or_default().to_string());
    }
    codes
}

/// Settings of a consumer with no `LIJIAN_WXPAY_*` account: stored accounts only.
fn without_default(app: &TestApp, sim: &Sim) -> lijian_core::config::Settings {
    let mut settings = app.consumer_settings(sim);
    let w = &mut settings.wxpay;
    (w.mchid, w.serial_no, w.private_key, w.public_key, w.public_key_id) = (None, None, None, None, None);
    settings
}

#[tokio::test]
async fn accounts_are_added_with_checked_keys_and_managed_without_printing_them() {
    let app = spawn_app().await;
    let keys = tempfile::tempdir().expect("tempdir");
    keygen(&app, keys.path());
    let private = keys.path().join("private.pem");
    let private = private.to_str().expect("utf-8 path");
    let platform = fixture_path("wxpay-platform-public.pem");
    let add = add_args;
    let secret_line = std::fs::read_to_string(private).expect("key").lines().nth(1).expect("a body line").to_string();
    let run_err = |args: Vec<String>| lijian_fails(&app, &strs(&args));

    let missing = run_err(add("/nonexistent/private.pem", &platform));
    assert!(missing.contains("cannot read private key /nonexistent/private.pem"), "{missing}");
    // A public key where the private key belongs, and the reverse: named, not printed.
    let swapped = run_err(add(&platform, &platform));
    assert!(swapped.contains("private key") && swapped.contains("is not usable"), "{swapped}");
    let swapped = run_err(add(private, private));
    assert!(swapped.contains("WeChat Pay public key") && swapped.contains("is not usable"), "{swapped}");
    assert!(!swapped.contains(&secret_line) && !swapped.contains("BEGIN"), "key material in an error: {swapped}");
    assert_eq!(app.count("SELECT count(*) FROM wxpay_accounts").await, 0, "nothing stored");

    let mut ok = add(private, &platform);
    ok.extend(["--appid", "wxtestappid0000001", "--rate", "300"].map(str::to_string));
    let added = lijian_ok(&app, &strs(&ok));
    assert!(added.contains("account 1900000777 added (300 requests/s)"), "{added}");
    assert!(run_err(ok).contains("already exists"));

    let listed = lijian_ok(&app, &["wxpay-account", "list"]);
    assert!(listed.contains(OTHER_MCHID) && listed.contains("enabled") && listed.contains("300/s"), "{listed}");
    let shown = lijian_ok(&app, &["wxpay-account", "show", "--mchid", OTHER_MCHID]);
    for expected in
        ["SERIAL777", private, &platform, PUBLIC_KEY_ID, "wxtestappid0000001", "300/s", "enabled        true"]
    {
        assert!(shown.contains(expected), "show lacks {expected:?}:\n{shown}");
    }
    for output in [&listed, &shown] {
        assert!(!output.contains(&secret_line) && !output.contains("BEGIN"), "key material printed: {output}");
    }
    let stored: String = app
        .store
        .client()
        .await
        .expect("client")
        .query_one("SELECT row_to_json(a)::text FROM wxpay_accounts a", &[])
        .await
        .expect("row")
        .get(0);
    assert!(!stored.contains(&secret_line) && !stored.contains("BEGIN"), "key material stored: {stored}");

    lijian_ok(&app, &["wxpay-account", "set-rate", "--mchid", OTHER_MCHID, "--rate", "200"]);
    assert!(lijian_ok(&app, &["wxpay-account", "show", "--mchid", OTHER_MCHID]).contains("200/s"));
    assert!(
        lijian_fails(&app, &["wxpay-account", "set-rate", "--mchid", OTHER_MCHID, "--rate", "0"]).contains("positive")
    );
    lijian_ok(&app, &["wxpay-account", "disable", "--mchid", OTHER_MCHID]);
    assert!(lijian_ok(&app, &["wxpay-account", "show", "--mchid", OTHER_MCHID]).contains("enabled        false"));
    lijian_ok(&app, &["wxpay-account", "enable", "--mchid", OTHER_MCHID]);
    assert!(lijian_ok(&app, &["wxpay-account", "show", "--mchid", OTHER_MCHID]).contains("enabled        true"));
    assert!(lijian_fails(&app, &["wxpay-account", "enable", "--mchid", "1900000999"]).contains("no WeChat Pay account"));

    // --issuer must name a stored account, and the account's appids bind.
    let refused = add_activity(&app, "a-nobody", MCHID, &["--issuer", "1900000999"]).expect_err("unknown issuer");
    assert!(refused.contains("no WeChat Pay account 1900000999"), "{refused}");
    add_activity(&app, "a-other", MCHID, &["--issuer", OTHER_MCHID]).expect("issuer stored");
    let refused = add_activity(&app, "a-appid", OTHER_MCHID, &["--appid", "wxother"]).expect_err("appid not allowed");
    assert!(refused.contains("may send for appids wxtestappid0000001 only, not wxother"), "{refused}");
    add_activity(&app, "a-appid", OTHER_MCHID, &[]).expect("the account's appid");
    assert_eq!(
        app.count("SELECT count(*) FROM activities WHERE issuer_mchid = '1900000777' AND activity_id = 'a-other'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn each_activity_is_sent_from_its_own_account_by_one_consumer() {
    let app = Arc::new(spawn_app().await);
    let keys = tempfile::tempdir().expect("tempdir");
    keygen(&app, keys.path());
    // Two WeChat Pay merchants, each knowing only its own mchid and key.
    let default_sim = spawn_sim(|c| c.mchid = Some(MCHID.into())).await;
    let other_sim = spawn_sim(|c| {
        c.mchid = Some(OTHER_MCHID.into());
        c.merchant_public_key = std::fs::read_to_string(keys.path().join("public.pem")).expect("public key");
    })
    .await;
    add_other_account(&app, keys.path(), &other_sim);
    add_activity(&app, "a-other", MCHID, &["--issuer", OTHER_MCHID]).expect("activity");

    let consumer = app.start_consumer(&app.consumer_settings(&default_sim));
    let other = place_for(&app, "a-other", "other", 4).await;
    let default = place_for(&app, ACTIVITY, "default", 3).await;
    let issued = "SELECT count(*) FROM orders WHERE status = 2";
    assert_eq!(app.wait_for_count(issued, 7, Duration::from_secs(20)).await, 7);
    consumer.stop().await;

    let coupons = |ledger: Vec<wxpay_sim::IssuedCoupon>| -> HashSet<String> {
        ledger.into_iter().map(|c| c.out_request_no).collect()
    };
    assert_eq!(coupons(other_sim.ledger().await), other.iter().cloned().collect(), "sent with the stored account");
    assert_eq!(coupons(default_sim.ledger().await), default.iter().cloned().collect(), "sent with the default");
    assert_eq!(other_sim.ledger().await.len() + default_sim.ledger().await.len(), 7, "one coupon per order");
    let by_account = |mchid: &str| {
        format!(
            "SELECT count(DISTINCT order_code) FROM upstream_attempts WHERE mchid = '{mchid}' AND outcome = 'issued'"
        )
    };
    assert_eq!(app.count(&by_account(OTHER_MCHID)).await, 4);
    assert_eq!(app.count(&by_account(MCHID)).await, 3);
    let story = lijian_ok(&app, &["order", "show", &other[0]]);
    assert!(story.contains("attempt 1 → issued") && story.contains("from account 1900000777"), "{story}");
    stop_shared(app).await;
}

#[tokio::test]
async fn a_job_for_a_disabled_or_missing_account_parks_and_replays_to_one_coupon() {
    let app = Arc::new(spawn_app().await);
    let keys = tempfile::tempdir().expect("tempdir");
    keygen(&app, keys.path());
    let sim = spawn_sim(|c| {
        c.merchant_public_key = std::fs::read_to_string(keys.path().join("public.pem")).expect("public key")
    })
    .await;
    add_other_account(&app, keys.path(), &sim);
    lijian_ok(&app, &["wxpay-account", "disable", "--mchid", OTHER_MCHID]);
    // Sent from the account named by stock_creator_mchid (no --issuer).
    add_activity(&app, "a-other", OTHER_MCHID, &[]).expect("activity");
    add_activity(&app, "a-missing", "1900000888", &[]).expect("activity");

    // No LIJIAN_WXPAY_* account: the consumer starts and serves stored accounts only.
    let consumer = app.start_consumer(&without_default(&app, &sim));
    let disabled = place_for(&app, "a-other", "off", 2).await;
    let missing = place_for(&app, "a-missing", "none", 1).await;
    let dead = "SELECT count(*) FROM orders WHERE dead_at IS NOT NULL";
    assert_eq!(app.wait_for_count(dead, 3, Duration::from_secs(20)).await, 3);
    let reason = |code: &str| {
        let app = app.clone();
        let code = code.to_string();
        async move {
            let client = app.store.client().await.expect("client");
            let row = client.query_one("SELECT dead_reason FROM orders WHERE order_code = $1", &[&code]).await;
            row.expect("order").get::<_, String>(0)
        }
    };
    assert_eq!(
        reason(&disabled[0]).await,
        "WeChat Pay account 1900000777 is disabled (lijian wxpay-account enable --mchid 1900000777)"
    );
    assert!(reason(&missing[0]).await.starts_with("no WeChat Pay account for mchid 1900000888"));
    assert!(sim.requests().await.is_empty(), "nothing was sent");
    assert_eq!(app.count("SELECT count(*) FROM upstream_attempts").await, 0);
    let listed = lijian_ok(&app, &["dlq", "list"]);
    assert!(listed.contains("is disabled") && listed.contains("3 parked"), "{listed}");

    let story = lijian_ok(&app, &["order", "show", &disabled[0]]);
    assert!(story.contains("PARKED:   WeChat Pay account 1900000777 is disabled"), "{story}");

    // Fixed while the consumer runs: no restart.
    lijian_ok(&app, &["wxpay-account", "enable", "--mchid", OTHER_MCHID]);
    let replayed = lijian_ok(&app, &["dlq", "replay", "--reason", OTHER_MCHID]);
    assert!(replayed.contains("replayed 2 issue jobs"), "{replayed}");
    let issued = "SELECT count(*) FROM orders WHERE status = 2";
    assert_eq!(app.wait_for_count(issued, 2, Duration::from_secs(20)).await, 2);
    let again = lijian_ok(&app, &["dlq", "replay", "--reason", OTHER_MCHID]);
    assert!(again.contains("replayed 0 issue jobs"), "{again}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = sim.ledger().await;
    let coupons: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(ledger.len(), 2, "exactly one coupon per replayed order");
    assert_eq!(coupons, disabled.iter().map(String::as_str).collect());
    assert_eq!(app.count(dead).await, 1, "the order of the missing account still waits");
    let story = lijian_ok(&app, &["order", "show", &disabled[0]]);
    assert!(story.contains("attempt 2 → issued") && story.contains("from account 1900000777"), "{story}");
    consumer.stop().await;
    stop_shared(app).await;
}
