//! Gateway → queue → consumer → WeChat Pay simulator: exactly one coupon per order,
//! under faults, crashes and rate limits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn assert_one_coupon_per_order(ledger: &[wxpay_sim::IssuedCoupon], orders: &[String]) {
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for c in ledger {
        *per_request.entry(c.out_request_no.as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "coupons issued twice: {doubled:?}");
    let issued: HashSet<&str> = per_request.keys().copied().collect();
    let expected: HashSet<&str> = orders.iter().map(String::as_str).collect();
    assert_eq!(issued, expected, "one coupon for every order, none for anything else");
}

async fn coupons_in_db_match_ledger(app: &TestApp, ledger: &[wxpay_sim::IssuedCoupon]) {
    let client = app.store.client().await.expect("client");
    let rows = client.query("SELECT order_code, coupon_id FROM orders WHERE status = 2", &[]).await.expect("orders");
    let db: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for c in ledger {
        assert_eq!(
            db.get(&c.out_request_no),
            Some(&c.coupon_id),
            "order {} has the simulator's coupon",
            c.out_request_no
        );
    }
}

#[tokio::test]
async fn a_thousand_orders_become_a_thousand_coupons() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let orders = app.place_orders("k", 1000, 32).await;
    assert_eq!(orders.len(), 1000);
    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1000, Duration::from_secs(60)).await;
    assert_eq!(done, 1000, "every order issued");
    let ledger = sim.ledger().await;
    assert_one_coupon_per_order(&ledger, &orders);
    coupons_in_db_match_ledger(&app, &ledger).await;
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE status = 2").await, 1000, "a report is owed for each");
    // Distinct: under load the relay may publish a job twice (at-least-once); the
    // copy re-sends the same out_request_no and records a second attempt, while
    // the ledger above proves there is still one coupon per order.
    assert_eq!(
        app.count("SELECT count(DISTINCT order_code) FROM upstream_attempts WHERE outcome = 'issued'").await,
        1000
    );
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn errors_timeouts_and_dropped_answers_still_give_one_coupon_per_order() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|c| {
        c.error_rate = 0.05;
        c.timeout_rate = 0.02;
        c.drop_after_issue = 0.05;
        c.timeout_hold = Duration::from_millis(600);
    })
    .await;
    let mut settings = app.consumer_settings(&sim);
    settings.wxpay.timeout = Duration::from_millis(300);
    let consumer = app.start_consumer(&settings);
    let orders = app.place_orders("f", 400, 32).await;
    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 400, Duration::from_secs(90)).await;
    assert_eq!(done, 400, "all issued despite faults");
    let ledger = sim.ledger().await;
    assert_one_coupon_per_order(&ledger, &orders);
    coupons_in_db_match_ledger(&app, &ledger).await;
    let retried = app.count("SELECT count(*) FROM upstream_attempts WHERE outcome = 'retry'").await;
    assert!(retried > 0, "faults were injected and retried");
    let drops = sim.requests().await.iter().filter(|r| r.status == 0).count();
    assert!(drops > 0, "some answers were dropped or timed out");
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn the_rate_limit_holds_in_every_second_and_is_used() {
    let app = Arc::new(spawn_app_alone().await);
    let sim = spawn_sim(|_| {}).await;
    let mut settings = app.consumer_settings(&sim);
    settings.wxpay.rate = 200;
    let orders = app.place_orders("r", 800, 32).await;
    let consumer = app.start_consumer(&settings);
    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 800, Duration::from_secs(30)).await;
    assert_eq!(done, orders.len() as i64);
    let mut times: Vec<i64> = sim.requests().await.iter().map(|r| r.time_ms).collect();
    times.sort_unstable();
    let mut worst = 0;
    let mut end = 0;
    for start in 0..times.len() {
        while end < times.len() && times[end] < times[start] + 1000 {
            end += 1;
        }
        worst = worst.max(end - start);
    }
    eprintln!(
        "rate test: worst 1 s window {worst}, achieved {:.1}/s",
        (times.len() - 1) as f64 / ((times[times.len() - 1] - times[0]) as f64 / 1000.0)
    );
    assert!(worst <= 200, "{worst} requests in one second at a 200/s limit");
    let span = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let achieved = (times.len() - 1) as f64 / span;
    // The limiter aims at 97% (194/s). A timed test on a shared 2-core host is no
    // place for that figure (CI saw 189.3/s, a run beside other suites 165/s):
    // `lijian bench rate` measures it. Here: a limiter that wastes most of the
    // rate (half, as per-process limits did) still fails.
    assert!(achieved >= 150.0, "achieved {achieved:.1}/s, expected ≥ 150/s (75% of the limit)");
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn final_business_errors_fail_the_order_with_exactly_one_refund() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|c| {
        c.stocks.insert("9856000".into(), 3);
    })
    .await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let before = app.balance(MERCHANT).await;
    let orders = app.place_orders("b", 8, 1).await;
    let finished =
        app.wait_for_count("SELECT count(*) FROM orders WHERE status IN (2, 3)", 8, Duration::from_secs(30)).await;
    assert_eq!(finished, 8);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 2").await, 3, "the stock had 3 coupons");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 3 AND last_error LIKE '%NOT_ENOUGH%'").await, 5);
    assert_eq!(
        app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'refund'").await,
        5,
        "one refund per failed order"
    );
    assert_eq!(app.balance(MERCHANT).await, before - 3 * PRICE_FEN, "only issued coupons are paid for");
    assert_eq!(app.store.ledger_sum(MERCHANT).await.expect("sum").0, app.balance(MERCHANT).await);
    assert_eq!(app.count("SELECT issued FROM activities WHERE activity_id = 'a-test'").await, 3, "budget given back");
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE status = 3").await, 5);
    assert_eq!(orders.len(), 8);

    // A job for a failed order delivered again changes nothing.
    let failed: String = app
        .store
        .client()
        .await
        .expect("c")
        .query_one("SELECT order_code FROM orders WHERE status = 3 LIMIT 1", &[])
        .await
        .expect("row")
        .get(0);
    let job = lijian_core::queue::IssueJob::V1 { order_code: failed };
    assert_eq!(consumer.running.handler.process(&job.to_bytes()).await, lijian_consumer::Disposition::Ack);
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'refund'").await, 5);
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn rule_limit_for_a_user_at_the_maximum_fails_the_order() {
    let app = spawn_app().await;
    let sim = spawn_sim(|c| c.max_per_user = 1).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    for biz in ["u1", "u2"] {
        let body = order_body(biz).replace(&format!("oUser_{biz}"), "oSameUser");
        assert_eq!(app.post_signed("/v1/openapi/order/wechat/coupons", &body).await["status"], 0);
    }
    app.wait_for_count("SELECT count(*) FROM orders WHERE status IN (2, 3)", 2, Duration::from_secs(20)).await;
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 2").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 3 AND last_error LIKE '%RULE_LIMIT%'").await, 1);
    consumer.stop().await;
    app.stop().await;
}

async fn dlq_reasons(app: &TestApp) -> Vec<String> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let connection = lijian_core::queue::connect(&app.amqp_url, "test-dlq").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let mut reasons = Vec::new();
    while let Some(m) = channel
        .basic_get(app.topology.issue_dead_letter_queue().as_str().into(), BasicGetOptions::default())
        .await
        .expect("get")
    {
        let reason = m
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get("x-lijian-reason") {
                Some(lapin::types::AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            })
            .unwrap_or_default();
        reasons.push(reason);
        m.delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    reasons
}

#[tokio::test]
async fn configuration_faults_park_without_failing_the_order() {
    let app = Arc::new(spawn_app().await);
    // The simulator knows a different merchant key: every signature is refused.
    let sim = spawn_sim(|c| c.merchant_public_key = fixture("merchant-test-public.pem")).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let orders = app.place_orders("p", 5, 5).await;
    let parked =
        app.wait_for_count("SELECT count(*) FROM orders WHERE dead_at IS NOT NULL", 5, Duration::from_secs(20)).await;
    assert_eq!(parked, 5);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 1").await, 5, "still processing for the merchant");
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'refund'").await, 0, "nothing refunded");
    assert_eq!(app.count("SELECT count(*) FROM reports").await, 0, "nothing reported yet");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reasons = dlq_reasons(&app).await;
    assert_eq!(reasons.len(), orders.len());
    assert!(reasons.iter().all(|r| r.contains("SIGN_ERROR")), "{reasons:?}");
    assert!(sim.ledger().await.is_empty());
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn wrong_mchid_parks_and_exhausted_retries_park_with_the_reason() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|c| c.mchid = Some("1999999999".into())).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    app.place_orders("mch", 2, 2).await;
    assert_eq!(
        app.wait_for_count(
            "SELECT count(*) FROM orders WHERE dead_reason LIKE '%MCH_NOT_EXISTS%'",
            2,
            Duration::from_secs(20)
        )
        .await,
        2
    );
    consumer.stop().await;

    let always_down = spawn_sim(|c| c.error_rate = 1.0).await;
    let consumer = app.start_consumer(&app.consumer_settings(&always_down));
    app.place_orders("down", 2, 2).await;
    let exhausted = app
        .wait_for_count(
            "SELECT count(*) FROM orders WHERE dead_reason LIKE 'retries exhausted after 5 attempts%'",
            2,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(exhausted, 2, "4 retries configured: parked after the 5th attempt");
    assert_eq!(app.count("SELECT count(*) FROM upstream_attempts WHERE order_code IN (SELECT order_code FROM orders WHERE biz_code LIKE 'down-%')").await, 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reasons = dlq_reasons(&app).await;
    assert_eq!(reasons.iter().filter(|r| r.contains("retries exhausted")).count(), 2, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("MCH_NOT_EXISTS")).count(), 2, "{reasons:?}");
    consumer.stop().await;
    stop_shared(app).await;
}
