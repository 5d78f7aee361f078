//! Issue 14, point 4: a merchant's request key rotates with an overlap. `merchant
//! key add` makes a new key valid beside the old, `merchant key retire` ends the
//! old; signed requests through the real gateway show both keys working during
//! the overlap and only the new one after. Reports to an MD5-only merchant are
//! signed with its newest MD5 key.

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::receiver::Receiver;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

const ORDERS: &str = "/v1/openapi/order/wechat/coupons";

/// Longer than the gateway's credential cache (LIJIAN_MERCHANT_CACHE_TTL, 1 s).
const CACHE_EXPIRY: Duration = Duration::from_millis(1200);

/// The key ids `merchant key list` shows as live.
fn live_keys(app: &TestApp) -> Vec<i64> {
    let list = lijian_ok(app, &["merchant", "key", "list", "--merchant-id", MERCHANT]);
    list.lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("live"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The id in "key N (…) added to merchant …".
fn added_id(out: &str) -> i64 {
    out.split_whitespace().nth(1).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no key id in {out:?}"))
}

#[tokio::test]
async fn a_new_rsa_key_works_beside_the_old_until_the_old_is_retired() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("new");
    lijian_ok(&app, &["keygen", "--out", keys.to_str().expect("path")]);
    let new_signer = signer_from_pem(&std::fs::read_to_string(keys.join("private.pem")).expect("new key"));
    let order = |biz: &str, signer: &aws_lc_rs::rsa::KeyPair| Req::new(&order_body(biz)).signed_rsa(signer);

    assert_eq!(app.send(ORDERS, &order("before", &new_signer)).await["status"], 2, "not registered yet");
    let original = live_keys(&app);
    assert_eq!(original.len(), 2, "the seeded RSA and MD5 keys");
    let rsa_old = original[1];

    let public = keys.join("public.pem");
    let out = lijian_ok(
        &app,
        &["merchant", "key", "add", "--merchant-id", MERCHANT, "--public-key", public.to_str().expect("path")],
    );
    let rsa_new = added_id(&out);
    tokio::time::sleep(CACHE_EXPIRY).await;
    assert_eq!(app.send(ORDERS, &order("overlap-old", &app.signer)).await["status"], 0, "old key still valid");
    assert_eq!(app.send(ORDERS, &order("overlap-new", &new_signer)).await["status"], 0, "new key valid");

    // The list tells keys apart without printing them.
    let list = lijian_ok(&app, &["merchant", "key", "list", "--merchant-id", MERCHANT]);
    let body_line = std::fs::read_to_string(&public).expect("public").lines().nth(1).unwrap_or_default().to_string();
    assert!(!list.contains(&body_line) && !list.contains(MD5_KEY), "no key material: {list}");
    assert_eq!(list.matches("SHA256:").count(), 2, "each RSA key has a fingerprint: {list}");

    let out =
        lijian_ok(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &rsa_old.to_string()]);
    assert!(out.contains("retired"), "{out}");
    tokio::time::sleep(CACHE_EXPIRY).await;
    let refused = app.send(ORDERS, &order("after-old", &app.signer)).await;
    assert_eq!(refused["status"], 2, "retired key refused: {refused}");
    assert_eq!(app.send(ORDERS, &order("after-new", &new_signer)).await["status"], 0);
    assert_eq!(live_keys(&app), vec![rsa_new, original[0]]);

    // Retiring again changes nothing; the same key twice and a stranger's key id are refused.
    let again =
        lijian_ok(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &rsa_old.to_string()]);
    assert!(again.contains("was retired at"), "{again}");
    let twice = lijian_fails(
        &app,
        &["merchant", "key", "add", "--merchant-id", MERCHANT, "--public-key", public.to_str().expect("path")],
    );
    assert!(twice.contains(&format!("already has this key live, as key {rsa_new}")), "{twice}");
    let unknown = lijian_fails(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", "999999"]);
    assert!(unknown.contains("has no key 999999"), "{unknown}");
    let nobody = lijian_fails(&app, &["merchant", "key", "list", "--merchant-id", "nobody"]);
    assert!(nobody.contains("merchant nobody does not exist"), "{nobody}");

    // The last live key cannot go: the merchant could not sign anything.
    lijian_ok(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &original[0].to_string()]);
    let last =
        lijian_fails(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &rsa_new.to_string()]);
    assert!(last.contains("last live key") && last.contains("add the new key first"), "{last}");
    assert_eq!(live_keys(&app), vec![rsa_new]);
    app.stop().await;
}

#[tokio::test]
async fn md5_rotation_overlaps_and_reports_use_the_newest_md5_key() {
    let app = Arc::new(spawn_app().await);
    let new_key = "rotated-md5-key-0123456789";
    // The merchant signs with MD5 only: its RSA key retired (the MD5 key stays live).
    let rsa = live_keys(&app)[1];
    lijian_ok(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &rsa.to_string()]);
    let short = lijian_command(&app.settings)
        .args(["merchant", "key", "add", "--merchant-id", MERCHANT, "--md5-key-file", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(b"short\n")?;
            child.wait_with_output()
        })
        .expect("run lijian");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16 characters"));

    let mut child = lijian_command(&app.settings)
        .args(["merchant", "key", "add", "--merchant-id", MERCHANT, "--md5-key-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(format!("{new_key}\n").as_bytes()).expect("write key");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("status reports: signed MD5 with key"), "{stdout}");
    assert!(!stdout.contains(new_key), "the key is never printed: {stdout}");
    tokio::time::sleep(CACHE_EXPIRY).await;

    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    let old = app.send(ORDERS, &Req::new(&order_body("md5-old")).signed_md5(MD5_KEY)).await;
    let new = app.send(ORDERS, &Req::new(&order_body("md5-new")).signed_md5(new_key)).await;
    assert_eq!((old["status"].as_i64(), new["status"].as_i64()), (Some(0), Some(0)), "{old} {new}");
    assert_eq!(receiver.wait_for(2, Duration::from_secs(20)).await, 2);
    for report in receiver.received() {
        assert_eq!(report.header("signType"), "MD5");
        assert!(report.verifies(Some(new_key)), "signed with the newest key");
        assert!(!report.verifies(Some(MD5_KEY)), "not with the old one");
    }
    let old_id = live_keys(&app)[1];
    lijian_ok(&app, &["merchant", "key", "retire", "--merchant-id", MERCHANT, "--key-id", &old_id.to_string()]);
    tokio::time::sleep(CACHE_EXPIRY).await;
    let refused = app.send(ORDERS, &Req::new(&order_body("md5-after")).signed_md5(MD5_KEY)).await;
    assert_eq!(refused["status"], 2, "{refused}");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
