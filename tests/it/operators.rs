//! An operator's day, through the real binary: jobs parked by a configuration
//! fault are listed, replayed once fixed (one coupon each, no second charge),
//! or failed with a refund; parked reports are replayed; `order show` tells the
//! whole story.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

async fn dlq_depth(app: &TestApp) -> u32 {
    let connection = lijian_core::queue::connect(&app.amqp_url, "lijian-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let queue = app.topology.issue_dead_letter_queue();
    let n = channel
        .queue_declare(queue.as_str().into(), passive, Default::default())
        .await
        .expect("declare")
        .message_count();
    let _ = connection.close(200, "done".into()).await;
    n
}

#[tokio::test]
async fn parked_by_a_wrong_key_then_replayed_once_fixed_or_failed_with_a_refund() {
    let app = Arc::new(spawn_app().await);
    // The simulator expects another merchant key: every call is SIGN_ERROR.
    let wrong = spawn_sim(|c| c.merchant_public_key = fixture("merchant-test-public.pem")).await;
    let orders = app.place_orders("fault", 3, 3).await;
    let balance = app.balance(MERCHANT).await;
    let consumer = app.start_consumer(&app.consumer_settings(&wrong));
    let dead = "SELECT count(*) FROM orders WHERE dead_at IS NOT NULL";
    assert_eq!(app.wait_for_count(dead, 3, Duration::from_secs(20)).await, 3);
    consumer.stop().await;

    let listed = lijian_ok(&app, &["dlq", "list"]);
    for code in &orders {
        assert!(listed.contains(code.as_str()), "{listed}");
    }
    assert!(listed.contains("SIGN_ERROR") && listed.contains("3 parked"), "{listed}");
    assert!(lijian_ok(&app, &["dlq", "list", "--kind", "notify"]).contains("nothing parked"));
    assert_eq!(dlq_depth(&app).await, 3);

    // One is given up on: failed, refunded, reported.
    let failed = lijian_ok(&app, &["dlq", "fail", "--order", &orders[0]]);
    assert!(failed.contains("failed 1 orders"), "{failed}");
    let order0 = format!("SELECT count(*) FROM orders WHERE order_code = '{}' AND status = 3", orders[0]);
    assert_eq!(app.count(&order0).await, 1);
    assert_eq!(app.balance(MERCHANT).await, balance + PRICE_FEN, "refunded");
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE status = 3").await, 1);
    assert_eq!(dlq_depth(&app).await, 2, "its message left the dead-letter queue");

    // The key is fixed (a simulator with the right one); the rest are replayed.
    let right = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&right));
    let replayed = lijian_ok(&app, &["dlq", "replay", "--reason", "sign_error"]);
    assert!(replayed.contains("replayed 2 issue jobs"), "{replayed}");
    let issued = "SELECT count(*) FROM orders WHERE status = 2";
    assert_eq!(app.wait_for_count(issued, 2, Duration::from_secs(20)).await, 2);
    let again = lijian_ok(&app, &["dlq", "replay", "--all"]);
    assert!(again.contains("replayed 0 issue jobs"), "{again}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = right.ledger().await;
    let coupons: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(ledger.len(), 2, "exactly one coupon per replayed order");
    assert_eq!(coupons, orders[1..].iter().map(String::as_str).collect());
    assert!(wrong.ledger().await.is_empty());
    assert_eq!(app.balance(MERCHANT).await, balance + PRICE_FEN, "nothing charged again");
    assert_eq!(dlq_depth(&app).await, 0);
    assert!(lijian_ok(&app, &["dlq", "list"]).contains("nothing parked"));

    let story = lijian_ok(&app, &["order", "show", &orders[1]]);
    for expected in ["accepted", "attempt 1 → parked", "SIGN_ERROR", "attempt 2 → issued", "issued (status 2)"] {
        assert!(story.contains(expected), "order show lacks {expected:?}:\n{story}");
    }
    let client = app.store.client().await.expect("client");
    let biz: String =
        client.query_one("SELECT biz_code FROM orders WHERE order_code = $1", &[&orders[0]]).await.expect("biz").get(0);
    let by_biz = lijian_ok(&app, &["order", "show", "--merchant-id", MERCHANT, "--biz-code", &biz]);
    assert!(by_biz.contains("failed (status 3)") && by_biz.contains("yuan back"), "{by_biz}");
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn a_parked_report_is_replayed_and_delivered() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    // Down for four attempts (3 retries configured: parked), then healthy.
    let receiver = Receiver::start(vec![Answer::Reply(503, "busy"); 4], Answer::Reply(200, "SUCCESS")).await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let settings = app.consumer_settings(&sim);
    let consumer = app.start_consumer(&settings);
    let notifier = app.start_notifier(&settings);
    let orders = app.place_orders("report", 1, 1).await;
    let parked = "SELECT count(*) FROM reports WHERE outcome = 'parked'";
    assert_eq!(app.wait_for_count(parked, 1, Duration::from_secs(20)).await, 1);
    let listed = lijian_ok(&app, &["dlq", "list", "--kind", "notify"]);
    assert!(listed.contains(&orders[0]) && listed.contains("retries exhausted"), "{listed}");

    let replayed = lijian_ok(&app, &["dlq", "replay", "--kind", "notify"]);
    assert!(replayed.contains("and 1 reports"), "{replayed}");
    let delivered = "SELECT count(*) FROM reports WHERE outcome = 'delivered'";
    assert_eq!(app.wait_for_count(delivered, 1, Duration::from_secs(20)).await, 1);
    assert_eq!(receiver.received().len(), 5);
    let story = lijian_ok(&app, &["order", "show", &orders[0]]);
    assert!(story.contains("report attempt 5") && story.contains("delivered"), "{story}");
    let replay = story.find("report sent again by an operator").unwrap_or_else(|| panic!("no replay:\n{story}"));
    assert!(story[..replay].contains("report attempt 4") && story[replay..].contains("report attempt 5"), "{story}");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

/// A replay clears an order's parking in a transaction that commits only after
/// the broker confirmed the job, so a fast consumer can take the job first. It
/// must wait for that commit and begin the attempt, not drop the job as a stray
/// duplicate for a parked order (which left the order open with no job at all).
#[tokio::test]
async fn a_replayed_job_that_arrives_before_the_replay_commits_is_begun() {
    let app = spawn_app().await;
    let code = app.order("race-1").await["data"]["orderCode"].as_str().expect("orderCode").to_string();
    let mut client = app.store.client().await.expect("client");
    client
        .execute(
            "UPDATE orders SET status = 1, dead_at = now(), dead_reason = 'parked' WHERE order_code = $1",
            &[&code],
        )
        .await
        .expect("park");
    // The replay's transaction, between publishing and committing.
    let replay = client.transaction().await.expect("tx");
    replay
        .execute("UPDATE orders SET dead_at = NULL, dead_reason = NULL WHERE order_code = $1", &[&code])
        .await
        .expect("revive");
    let store = app.store.clone();
    let job = vec![code.clone()];
    let begin = tokio::spawn(async move { store.begin_attempts(&job).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!begin.is_finished(), "the job waits for the replay to commit");
    replay.commit().await.expect("commit");
    let begun = begin.await.expect("task").expect("begin");
    assert!(matches!(begun[0], lijian_core::store::Begun::Attempt { attempt: 1, .. }), "{begun:?}");
    drop(client);
    app.stop().await;
}
