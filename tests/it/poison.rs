//! Issue 12, point 1: no job loops for ever. An answer PostgreSQL cannot store
//! is stored escaped; a write the database keeps refusing parks the job (known
//! as parked in the database) instead of spinning and holding a slot; a job
//! redelivered close to RabbitMQ 4's delivery limit is parked the same way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

#[tokio::test]
async fn a_callback_answer_with_a_nul_is_stored_counted_and_parked() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::start(Vec::new(), Answer::Reply(200, "x\0")).await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    app.place_orders("nul", 1, 1).await;
    let parked = app
        .wait_for_count(
            "SELECT count(*) FROM reports WHERE outcome = 'parked' AND last_error LIKE 'retries exhausted after 4%'",
            1,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(parked, 1, "3 retries configured: parked after the 4th attempt");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 4, "every attempt counted, none repeated");
    let client = app.store.client().await.expect("client");
    let answers: Vec<String> = client
        .query("SELECT answer FROM report_attempts", &[])
        .await
        .expect("attempts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(answers, vec!["x\\0"; 4], "the NUL is stored escaped");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

/// WeChat's refusal with a NUL in its message: the order fails once, with the
/// message stored escaped, instead of being sent again every second.
#[tokio::test]
async fn a_wechat_message_with_a_nul_fails_the_order_once() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let wechat = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (axum::http::StatusCode::FORBIDDEN, r#"{"code":"NOT_ENOUGH","message":"stock\u0000empty"}"#)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, wechat).await });
    let mut settings = app.consumer_settings(&sim);
    settings.wxpay.base_url = format!("http://{addr}");
    let consumer = app.start_consumer(&settings);
    let orders = app.place_orders("nulwx", 1, 1).await;
    let failed = app
        .wait_for_count(
            "SELECT count(*) FROM orders WHERE status = 3 AND last_error LIKE '%NOT_ENOUGH: stock\\\\0empty'",
            1,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(failed, 1, "order {orders:?} failed with the message stored escaped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once, not again and again");
    consumer.stop().await;
    stop_shared(app).await;
}

/// A report whose attempt the database refuses every time (here a trigger;
/// in the field a value it cannot store) is parked after the configured number
/// of refusals, with the database's reason, and meanwhile holds no slot: a
/// healthy merchant's report goes out at once.
#[tokio::test]
async fn a_report_the_database_keeps_refusing_is_parked_and_holds_no_slot() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    let client = app.store.client().await.expect("client");
    client
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.url LIKE '%/poison' THEN RAISE EXCEPTION 'poisoned attempt'; END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON report_attempts
               FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .await
        .expect("trigger");
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let poison = format!("http://{}/poison", receiver.addr);
    app.place_orders_to("poison", 10, 5, Some(&poison)).await;
    app.wait_for_count("SELECT count(*) FROM reports", 10, Duration::from_secs(15)).await;
    let mut settings = app.settings.clone();
    settings.notifier.concurrency = 2;
    settings.process.requeue_limit = 2;
    let notifier = app.start_notifier(&settings);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    app.place_orders_to("healthy", 1, 1, Some(&receiver.url())).await;
    let delivered = app
        .wait_for_count("SELECT count(*) FROM reports WHERE outcome = 'delivered'", 1, Duration::from_secs(20))
        .await;
    let took = started.elapsed();
    assert_eq!(delivered, 1);
    println!("healthy report delivered {took:?} after the order, beside 10 refused reports");
    assert!(took < Duration::from_secs(3), "refused reports held the slots: {took:?}");
    let parked = app
        .wait_for_count(
            "SELECT count(*) FROM reports WHERE outcome = 'parked'
               AND last_error LIKE 'refused 3 times by the database; last: poisoned attempt%'",
            10,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(parked, 10, "each refused report parked after its 3rd refusal");
    let posts = receiver.received().iter().filter(|r| r.json()["orderCode"].is_string()).count();
    assert_eq!(posts, 10 * 3 + 1, "three POSTs per refused report, one for the healthy one");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

/// RabbitMQ 4 dead-letters a quorum-queue message after 20 deliveries by
/// itself; we give such a job up first, so the database knows it as parked.
#[tokio::test]
async fn a_job_redelivered_near_the_broker_limit_is_parked_in_the_database() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let orders = app.place_orders("redelivered", 1, 1).await;
    assert_eq!(app.wait_for_count("SELECT count(*) FROM reports", 1, Duration::from_secs(15)).await, 1);
    // The relay must not queue it: the test publishes the job itself, as
    // RabbitMQ would deliver it the 21st time.
    let client = app.store.client().await.expect("client");
    client.execute("UPDATE reports SET enqueued_at = now()", &[]).await.expect("enqueued");
    let connection = lijian_core::queue::connect(&app.amqp_url, "lijian-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    app.topology.declare(&channel).await.expect("declare");
    let mut headers = FieldTable::default();
    headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(20));
    let job = format!(r#"{{"v":1,"notifyId":"N{}"}}"#, orders[0]);
    channel
        .basic_publish(
            app.topology.exchange(lijian_core::queue::Lane::Notify).as_str().into(),
            "notify".into(),
            BasicPublishOptions::default(),
            job.as_bytes(),
            BasicProperties::default().with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let _ = connection.close(200, "done".into()).await;
    let notifier = app.start_notifier(&app.settings);
    let parked = app
        .wait_for_count(
            "SELECT count(*) FROM reports WHERE outcome = 'parked' AND last_error LIKE 'delivered 21 times%'",
            1,
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(parked, 1, "parked in the database, not only in the dead-letter queue");
    assert!(receiver.received().is_empty(), "nothing sent for a job given up");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
