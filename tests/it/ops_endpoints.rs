//! Issue 12, point 7: operator endpoints. With `LIJIAN_OPS_ADDR` set the
//! gateway's `/metrics` leaves the public API port; collecting metrics never
//! touches the channel orders are published on.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use lapin::options::QueueDeclareOptions;

use crate::helpers::*;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn with_an_ops_address_metrics_leave_the_api_port() {
    let app = spawn_app().await;
    let mut child = lijian_command(&app.settings)
        .arg("gateway")
        .env("LIJIAN_HTTP_ADDR", "127.0.0.1:0")
        .env("LIJIAN_OPS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok);
    let api = lines.find_map(|l| l.strip_prefix("gateway listening on ").map(str::to_string)).expect("API address");
    let ops = lines
        .find_map(|l| l.strip_prefix("metrics and health on ").map(|u| u.trim_end_matches("/metrics").to_string()))
        .expect("a gateway with LIJIAN_OPS_ADDR serves ops endpoints there");
    let req = Req::new(&order_body("ops-port-1")).signed_rsa(&app.signer);
    assert_eq!(app.send_to(&format!("{api}/v1/openapi/order/wechat/coupons"), &req).await["status"], 0);
    let (_, public) = get(&format!("{api}/metrics")).await;
    assert!(!public.contains("lijian_orders_accepted_total"), "metrics on the public port:\n{public}");
    assert!(public.contains("\"status\":4"), "{public}");
    assert_eq!(get(&format!("{api}/healthz")).await, (200, "ok".to_string()), "health stays for load balancers");
    let (code, private) = get(&format!("{ops}/metrics")).await;
    assert_eq!(code, 200);
    assert!(private.contains("lijian_orders_accepted_total 1"), "{private}");
    assert!(private.contains("lijian_role_info{role=\"gateway\"} 1"), "{private}");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    drop(lines);
    app.stop().await;
}

/// A passive declare of a missing queue closes its channel. Metrics used to
/// run it on the publishing channel, which then had to be reopened (and the
/// topology declared again) by the next order's publish.
#[tokio::test]
async fn collecting_metrics_leaves_the_publishing_channel_alone() {
    let app = spawn_app().await;
    assert_eq!(app.order("before").await["status"], 0);
    let connection = lijian_core::queue::connect(&app.amqp_url, "lijian-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let dlq = app.topology.issue_dead_letter_queue();
    channel.queue_delete(dlq.as_str().into(), Default::default()).await.expect("delete the issue DLQ");

    let (code, text) = get(&app.url("/metrics")).await;
    assert_eq!(code, 200);
    assert!(!text.contains("lijian_dlq_depth{kind=\"issue\"}"), "{text}");
    assert!(text.contains("lijian_dlq_depth{kind=\"notify\"} 0"), "the next depth still read:\n{text}");
    assert_eq!(app.order("after").await["status"], 0);

    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let exists = connection
        .create_channel()
        .await
        .expect("channel")
        .queue_declare(dlq.as_str().into(), passive, Default::default())
        .await
        .is_ok();
    assert!(!exists, "the publisher reopened its channel (and re-declared the topology): metrics had closed it");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}
