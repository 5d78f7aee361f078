//! Issue 12, point 6: the notifier's edges. More ranges refused, a port policy,
//! proxies ignored, and a slot map that does not grow with every new host:port.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::receiver::Receiver;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn with_callback(biz: &str, url: &str) -> String {
    order_body(biz).replace(r#""bizCode""#, &format!(r#""callbackUrl":"{url}","bizCode""#))
}

#[tokio::test]
async fn more_internal_ranges_and_unlisted_ports_are_refused_at_the_door() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    // 127.0.0.0/8 is allowed in tests: each of these reaches us only through a
    // form the guard must see through, or on a port the policy forbids.
    let targets = [
        "http://[::127.0.0.1]:8080/cb",
        "http://[2002:7f00:1::1]:8080/cb",
        "http://[64:ff9b:1::a00:1]:8080/cb",
        "http://198.18.0.1:8080/cb",
        "http://192.0.0.8:8080/cb",
        "http://240.0.0.1:8080/cb",
        "http://127.0.0.1:22/cb",
        "http://127.0.0.1:1023/cb",
    ];
    // Each is refused at the door (issue 14: what can never be delivered is not
    // accepted), naming the rule; the notifier's own check of resolved
    // addresses is the same guard (lijian_core::ssrf, unit-tested per range).
    for (i, target) in targets.iter().enumerate() {
        let answer =
            app.post_signed("/v1/openapi/order/wechat/coupons", &with_callback(&format!("edge-{i}"), target)).await;
        assert_eq!(answer["status"], 3, "{target}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("can never be delivered"), "{target}: {message}");
    }
    let port22 = app.post_signed("/v1/openapi/order/wechat/coupons", &with_callback("edge-22", targets[6])).await;
    assert!(port22["message"].as_str().unwrap_or_default().contains("port 22 is not allowed"), "{port22}");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0, "nothing stored");
    assert_eq!(app.count("SELECT count(*) FROM report_attempts").await, 0, "nothing was sent");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

/// A proxy would resolve and connect past the address check: reports go
/// straight to the merchant even when the environment names one.
#[tokio::test]
async fn proxy_variables_are_ignored_for_callbacks() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    let proxy = Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let proxy_url = format!("http://{}", proxy.addr);
    let mut child = lijian_command(&app.settings)
        .arg("notifier")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("NO_PROXY", "")
        .spawn()
        .expect("start lijian notifier");
    app.place_orders("proxied", 3, 3).await;
    let delivered = app
        .wait_for_count("SELECT count(*) FROM reports WHERE outcome = 'delivered'", 3, Duration::from_secs(20))
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(proxy.received().is_empty(), "the proxy saw {} reports", proxy.received().len());
    assert_eq!(delivered, 3);
    assert_eq!(receiver.notify_ids().len(), 3);
    consumer.stop().await;
    stop_shared(app).await;
}

/// Every distinct host:port used to add an entry for ever; idle ones now go.
#[tokio::test]
async fn the_endpoint_slot_map_stays_bounded() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let mut settings = app.settings.clone();
    settings.notifier.concurrency = 4;
    let notifier = app.start_notifier(&settings);
    // 40 endpoints nobody listens on: each attempt fails at once.
    for i in 0..40 {
        let url = format!("http://127.0.0.1:{}/cb", 40_000 + i);
        let answer =
            app.post_signed("/v1/openapi/order/wechat/coupons", &with_callback(&format!("ep-{i}"), &url)).await;
        assert_eq!(answer["status"], 0, "{answer}");
    }
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        most = most.max(notifier.running.handler.endpoints_tracked());
        if app.count("SELECT count(*) FROM reports WHERE outcome = 'parked'").await == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM reports WHERE outcome = 'parked'").await, 40);
    let tracked = notifier.running.handler.endpoints_tracked();
    println!("40 endpoints used; at most {most} tracked, {tracked} at the end");
    assert!(tracked <= 8 && most <= 8 + 4, "bounded by 2 × concurrency (+ those in flight): {most}, {tracked}");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
