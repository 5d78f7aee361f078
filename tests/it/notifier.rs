//! Status reports: signed, retried on schedule, never lost, never stuck behind a
//! dead endpoint, never sent into our own network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

const DELIVERED: &str = "SELECT count(*) FROM reports WHERE outcome = 'delivered'";

#[tokio::test]
async fn final_orders_are_reported_signed_and_verifiable() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    let orders = app.place_orders("n", 20, 8).await;
    assert_eq!(app.wait_for_count(DELIVERED, 20, Duration::from_secs(30)).await, 20);
    assert_eq!(receiver.notify_ids().len(), 20);
    for report in receiver.received() {
        assert!(report.verifies(None), "report signature must verify: {:?}", report.headers);
        assert_eq!(report.header("businessId"), BUSINESS);
        assert!(report.header("content-type").starts_with("application/json"));
        let body = report.json();
        assert_eq!(body["status"], 2);
        assert_eq!(body["settlementPrice"].as_f64(), Some(9.5));
        assert!(body["couponId"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(orders.contains(&body["orderCode"].as_str().unwrap_or_default().to_string()));
        assert_eq!(body["notifyId"], format!("N{}", body["orderCode"].as_str().unwrap_or_default()));
        assert!(body["finishTime"].as_i64().unwrap_or(0) > 1_700_000_000_000, "finishTime in ms");
    }
    assert_eq!(app.count("SELECT count(*) FROM report_attempts WHERE delivered").await, 20);
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn failed_attempts_are_retried_until_success_and_each_is_logged() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver =
        Receiver::start(vec![Answer::Reply(500, "oops"), Answer::Reply(200, "OK")], Answer::Reply(200, "  success\n"))
            .await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    app.place_orders("r", 1, 1).await;
    assert_eq!(app.wait_for_count(DELIVERED, 1, Duration::from_secs(20)).await, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 3, "500, then a 200 without SUCCESS, then success");
    assert_eq!(receiver.notify_ids().len(), 1, "notifyId is stable across attempts");
    let nonces: std::collections::HashSet<&str> = received.iter().map(|r| r.header("nonce")).collect();
    assert_eq!(nonces.len(), 3, "a new nonce per attempt");
    assert!(received.iter().all(|r| r.verifies(None)));
    let client = app.store.client().await.expect("client");
    let rows = client
        .query("SELECT http_status, answer, delivered FROM report_attempts ORDER BY id", &[])
        .await
        .expect("attempts");
    let log: Vec<(Option<i32>, Option<String>, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        log,
        vec![
            (Some(500), Some("oops".into()), false),
            (Some(200), Some("OK".into()), false),
            (Some(200), Some("  success\n".into()), true)
        ]
    );
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn exhausted_reports_park_and_missing_callbacks_are_recorded() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    // No callbackUrl anywhere: nothing is sent, and that is recorded.
    app.place_orders("none", 2, 2).await;
    assert_eq!(
        app.wait_for_count("SELECT count(*) FROM reports WHERE outcome = 'no_callback'", 2, Duration::from_secs(20))
            .await,
        2
    );

    let down = Receiver::start(Vec::new(), Answer::Reply(503, "busy")).await;
    app.set_callback(MERCHANT, &down.url()).await;
    app.place_orders("down", 1, 1).await;
    let parked = app
        .wait_for_count("SELECT count(*) FROM reports WHERE outcome = 'parked' AND last_error LIKE 'retries exhausted after 4 attempts%'", 1, Duration::from_secs(20))
        .await;
    assert_eq!(parked, 1, "3 retries configured: parked after the 4th attempt");
    assert_eq!(down.received().len(), 4);
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn targets_inside_our_network_are_refused_once_not_retried() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let mut strict = app.settings.clone();
    strict.notifier.allow_cidrs = None;
    let notifier = app.start_notifier(&strict);
    let port = receiver.addr.port();
    // The gateway allows 127.0.0.0/8 (the test's allowlist), so these pass the
    // door; the stricter notifier must still refuse them at connect time.
    let targets = [
        format!("http://127.0.0.1:{port}/cb"),
        format!("http://localhost:{port}/cb"),
        format!("http://[::ffff:127.0.0.1]:{port}/cb"),
    ];
    for (i, target) in targets.iter().enumerate() {
        let body =
            order_body(&format!("ssrf-{i}")).replace(r#""bizCode""#, &format!(r#""callbackUrl":"{target}","bizCode""#));
        let answer = app.post_signed("/v1/openapi/order/wechat/coupons", &body).await;
        assert_eq!(answer["status"], 0, "{answer}");
    }
    // Literal addresses outside the allowlist never get that far (tests/it/undeliverable.rs).
    for (i, target) in
        [format!("http://[::1]:{port}/cb"), "http://169.254.169.254/".into(), "http://10.0.0.1/cb".into()]
            .iter()
            .enumerate()
    {
        let body =
            order_body(&format!("door-{i}")).replace(r#""bizCode""#, &format!(r#""callbackUrl":"{target}","bizCode""#));
        let answer = app.post_signed("/v1/openapi/order/wechat/coupons", &body).await;
        assert_eq!(answer["status"], 3, "{answer}");
    }
    let refused = app
        .wait_for_count(
            "SELECT count(*) FROM reports WHERE outcome = 'parked' AND last_error LIKE 'refused target%'",
            3,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(refused, 3);
    assert_eq!(app.count("SELECT count(*) FROM report_attempts").await, 0, "nothing was sent, nothing retried");
    assert!(receiver.received().is_empty());
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let elsewhere = Receiver::healthy().await;
    let redirecting = Receiver::start(Vec::new(), Answer::Redirect(elsewhere.url())).await;
    app.set_callback(MERCHANT, &redirecting.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    app.place_orders("redir", 1, 1).await;
    assert_eq!(
        app.wait_for_count("SELECT count(*) FROM reports WHERE outcome = 'parked'", 1, Duration::from_secs(20)).await,
        1
    );
    assert!(elsewhere.received().is_empty(), "the redirect target never hears from us");
    assert_eq!(app.count("SELECT count(*) FROM report_attempts WHERE http_status = 302").await, 4);
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn a_black_holed_endpoint_does_not_hold_up_other_merchants() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let dead = Receiver::start(Vec::new(), Answer::BlackHole).await;
    let healthy = Receiver::healthy().await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let mut settings = app.settings.clone();
    settings.notifier.per_endpoint = 2;
    settings.notifier.concurrency = 8;
    settings.notifier.timeout = Duration::from_secs(5);
    let notifier = app.start_notifier(&settings);
    app.place_orders_to("dead", 30, 8, Some(&dead.url())).await;
    app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 30, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let healthy_orders = app.place_orders_to("alive", 30, 8, Some(&healthy.url())).await;
    assert_eq!(healthy_orders.len(), 30);
    let delivered = healthy.wait_for(30, Duration::from_secs(4)).await;
    assert_eq!(delivered, 30, "every healthy report delivered while the dead endpoint holds its 2 slots");
    let expected: std::collections::HashSet<String> = healthy_orders.iter().map(|c| format!("N{c}")).collect();
    assert_eq!(healthy.notify_ids(), expected);
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(app.count("SELECT count(*) FROM reports r JOIN orders o USING (order_code) WHERE o.biz_code LIKE 'dead-%' AND r.outcome IS NULL").await, 30, "the dead endpoint's reports are still pending");
    assert!(dead.received().len() <= 2 + 2, "the dead endpoint never gets more than its slots at once");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn md5_merchants_get_md5_signed_reports() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    let client = app.store.client().await.expect("client");
    client.execute("UPDATE merchants SET callback_url = $1", &[&receiver.url()]).await.expect("callback");
    client.execute("DELETE FROM merchant_keys WHERE sign_type = 'SHA256-RSA'", &[]).await.expect("md5 only");
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    let body = order_body("md5-report");
    let answer = app.send("/v1/openapi/order/wechat/coupons", &Req::new(&body).signed_md5(MD5_KEY)).await;
    assert_eq!(answer["status"], 0, "{answer}");
    assert_eq!(receiver.wait_for(1, Duration::from_secs(20)).await, 1);
    let report = &receiver.received()[0];
    assert_eq!(report.header("signType"), "MD5");
    assert!(report.verifies(Some(MD5_KEY)));
    assert!(!report.verifies(Some("another-key-0000000")));
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
