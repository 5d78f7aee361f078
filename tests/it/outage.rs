//! Faults, injected through in-test TCP proxies so the shared servers keep running.

use std::time::Duration;

use crate::helpers::proxy::TcpProxy;
use crate::helpers::*;

#[tokio::test]
async fn broker_down_after_commit_then_back_the_job_arrives() {
    let settings = lijian_core::config::Settings::default();
    let mut amqp = settings.broker.url.clone();
    if let Ok(v) = std::env::var("LIJIAN_AMQP_URL") {
        amqp = v;
    }
    let proxy = TcpProxy::in_front_of(&amqp).await;
    let proxied = proxy.route(&amqp);
    let app = spawn_app_with(|s| s.broker.url = proxied).await;

    assert_eq!(app.order("before").await["status"], 0);
    assert_eq!(app.take_issue_jobs().await.len(), 1);

    proxy.cut();
    let answer = app.order("during").await;
    assert_eq!(answer["status"], 0, "the order is durable even though the broker is unreachable: {answer}");
    let code = answer["data"]["orderCode"].as_str().unwrap_or_default().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(app.take_issue_jobs().await.is_empty(), "nothing could reach the broker");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM orders WHERE order_code = '{code}' AND enqueued_at IS NULL")).await,
        1
    );

    proxy.restore();
    let jobs = app.wait_for_issue_jobs(1, Duration::from_secs(20)).await;
    assert_eq!(jobs, vec![code.clone()], "the relay enqueued it once the broker was back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.take_issue_jobs().await.is_empty(), "and only once");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE enqueued_at IS NULL").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn status_99_when_postgres_is_unreachable_and_recovers_after() {
    let settings = lijian_core::config::Settings::default();
    let db = std::env::var("LIJIAN_DATABASE_URL").unwrap_or(settings.database.url);
    let proxy = TcpProxy::in_front_of(&db).await;
    let app = spawn_app_with(|s| s.database.url = proxy.route(&s.database.url)).await;
    assert_eq!(app.order("pg-1").await["status"], 0);

    proxy.cut();
    let answer = app.order("pg-2").await;
    assert_eq!(answer["status"], 99, "{answer}");
    let ready = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "not ready while PostgreSQL is unreachable");

    proxy.restore();
    let mut last = serde_json::Value::Null;
    for _ in 0..50 {
        last = app.order("pg-2").await;
        if last["status"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last["status"], 0, "the pool reconnects by itself: {last}");
    assert_eq!(app.http.get(app.url("/readyz")).send().await.expect("readyz").status(), 200);
    app.stop().await;
}
