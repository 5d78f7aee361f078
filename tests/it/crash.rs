//! The consumer killed with SIGKILL, cut off from RabbitMQ or PostgreSQL: nothing
//! lost, nothing issued twice.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lijian_core::config::Settings;

use crate::helpers::proxy::TcpProxy;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn spawn_consumer_process(settings: &Settings) -> Child {
    lijian_command(settings)
        .arg("consumer")
        .env("LIJIAN_CONSUMER_CONCURRENCY", "16")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lijian consumer")
}

fn issued_once_each(ledger: &[wxpay_sim::IssuedCoupon], orders: &[String]) {
    let unique: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(unique.len(), ledger.len(), "no out_request_no issued twice");
    assert_eq!(unique, orders.iter().map(String::as_str).collect(), "every order has its coupon");
}

#[tokio::test]
async fn sigkilled_consumer_processes_lose_nothing_and_double_nothing() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|c| c.latency_ms = 30).await;
    let settings = app.consumer_settings(&sim);
    let orders = app.place_orders("kill", 1000, 32).await;
    assert_eq!(orders.len(), 1000);
    let mut child = spawn_consumer_process(&settings);
    let mut kills = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if app.count("SELECT count(*) FROM orders WHERE status = 2").await == 1000 {
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        child = spawn_consumer_process(&settings);
    }
    assert!(kills >= 2, "the consumer must be killed mid-run several times (killed {kills})");
    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1000, Duration::from_secs(60)).await;
    // SIGTERM: the last consumer stops by itself, cleanly.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    assert_eq!(done, 1000);
    issued_once_each(&sim.ledger().await, &orders);
    stop_shared(app).await;
}

#[tokio::test]
async fn consumer_rides_out_broker_and_database_outages() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|c| c.latency_ms = 20).await;
    let mut settings = app.consumer_settings(&sim);
    let broker = TcpProxy::in_front_of(&settings.broker.url).await;
    let database = TcpProxy::in_front_of(&settings.database.url).await;
    settings.broker.url = broker.route(&settings.broker.url);
    settings.database.url = database.route(&settings.database.url);
    settings.consumer.concurrency = 4;
    let orders = app.place_orders("cut", 600, 32).await;
    let consumer = app.start_consumer(&settings);

    let unfinished = "SELECT count(*) FROM orders WHERE status <> 2";
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.cut();
    assert!(app.count(unfinished).await > 0, "the broker must go away mid-run");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.restore();
    tokio::time::sleep(Duration::from_millis(700)).await;
    database.cut();
    assert!(app.count(unfinished).await > 0, "the database must go away mid-run");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    database.restore();

    let done = app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 600, Duration::from_secs(60)).await;
    assert_eq!(done, 600, "the consumer reconnected to both and finished");
    issued_once_each(&sim.ledger().await, &orders);
    consumer.stop().await;
    stop_shared(app).await;
}
