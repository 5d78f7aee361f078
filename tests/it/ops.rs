//! Every role answers `/metrics` (Prometheus text), `/healthz` and `/readyz`,
//! and readiness follows PostgreSQL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::helpers::proxy::TcpProxy;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

/// Starts `lijian <role>` and returns it with the ops address it printed.
fn spawn_role(settings: &lijian_core::config::Settings, role: &str) -> (Child, String) {
    let mut child =
        lijian_command(settings).arg(role).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn role");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("metrics and health on "))
        .unwrap_or_else(|| panic!("{role} did not print its metrics address"));
    let url = line.trim_start_matches("metrics and health on ").trim_end_matches("/metrics").to_string();
    (child, url)
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.text().await.expect("body"))
}

fn stop(mut child: Child) {
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(child.wait().expect("wait").success(), "graceful exit on SIGTERM");
}

#[tokio::test]
async fn every_role_serves_metrics_health_and_readiness() {
    let app = spawn_app().await;
    let sim = spawn_sim(|_| {}).await;
    let settings = app.consumer_settings(&sim);
    // The gateway, on its API port; one order so a counter moves.
    assert_eq!(app.order("ops-1").await["status"], 0);
    let (code, text) = get(&app.url("/metrics")).await;
    assert_eq!(code, 200);
    assert!(text.contains("# TYPE lijian_orders_accepted_total counter\nlijian_orders_accepted_total 1\n"), "{text}");
    assert!(text.contains("lijian_dlq_depth{kind=\"issue\"} 0"), "{text}");
    assert_eq!(get(&app.url("/readyz")).await.0, 200);

    let expected = [
        ("consumer", "lijian_upstream_latency_seconds_bucket"),
        ("notifier", "lijian_reports_delivered_total"),
        ("scheduler", "lijian_orders_released_total"),
    ];
    for (role, metric) in expected {
        let (child, base) = spawn_role(&settings, role);
        let (code, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(code, 200, "{role}");
        assert!(text.contains(metric), "{role} metrics lack {metric}:\n{text}");
        assert!(text.contains(&format!("lijian_role_info{{role=\"{role}\"}} 1")), "{text}");
        assert!(text.contains("lijian_dlq_depth{kind=\"notify\"} 0"), "{text}");
        assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok".to_string()));
        let (code, body) = get(&format!("{base}/readyz")).await;
        assert_eq!(code, 200, "{role}: {body}");
        stop(child);
    }
    drop(sim);
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_while_postgres_is_unreachable() {
    let app = spawn_app().await;
    let database = TcpProxy::in_front_of(&app.settings.database.url).await;
    let mut settings = app.settings.clone();
    settings.database.url = database.route(&settings.database.url);
    let (child, base) = spawn_role(&settings, "scheduler");
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    database.cut();
    let (code, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(code, 503, "{body}");
    let proxy = database.addr.to_string();
    assert!(body.starts_with(&format!("not ready: PostgreSQL at {proxy}: ")), "names the server: {body}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200, "alive while not ready");
    database.restore();
    let mut ready = 0;
    for _ in 0..50 {
        ready = get(&format!("{base}/readyz")).await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "ready again once PostgreSQL is back");
    stop(child);
    app.stop().await;
}

#[tokio::test]
async fn serve_runs_every_role_in_one_process_and_stops_on_sigterm() {
    let app = spawn_app().await;
    let sim = spawn_sim(|_| {}).await;
    let receiver = crate::helpers::receiver::Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let mut settings = app.consumer_settings(&sim);
    settings.gateway.http_addr = "127.0.0.1:0".into();
    let mut child = lijian_command(&settings)
        .arg("serve")
        .env("LIJIAN_HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok);
    let gateway = lines
        .find_map(|l| l.strip_prefix("gateway listening on ").map(str::to_string))
        .expect("serve prints the gateway address");
    let ops = lines
        .find_map(|l| l.strip_prefix("metrics and health on ").map(|u| u.trim_end_matches("/metrics").to_string()))
        .expect("serve prints the ops address");
    let req = Req::new(&order_body("serve-1")).signed_rsa(&app.signer);
    let answer = app.send_to(&format!("{gateway}/v1/openapi/order/wechat/coupons"), &req).await;
    assert_eq!(answer["status"], 0, "{answer}");
    assert_eq!(receiver.wait_for(1, Duration::from_secs(20)).await, 1, "issued and reported by the same process");
    // The notifier counts the delivery once it has recorded the answer, just after
    // the receiver saw the report.
    let mut text = String::new();
    for _ in 0..50 {
        text = get(&format!("{ops}/metrics")).await.1;
        if text.contains("lijian_reports_delivered_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for role in ["consumer", "notifier", "scheduler"] {
        assert!(text.contains(&format!("lijian_role_info{{role=\"{role}\"}} 1")), "{text}");
    }
    assert!(
        text.contains("lijian_coupons_issued_total 1") && text.contains("lijian_reports_delivered_total 1"),
        "{text}"
    );
    drop(lines);
    stop(child);
    drop(sim);
    app.stop().await;
}

#[tokio::test]
async fn json_logs_name_the_order_on_every_line_about_one() {
    let app = std::sync::Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let settings = app.consumer_settings(&sim);
    let orders = app.place_orders("log", 3, 3).await;
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = lijian_command(&settings)
        .arg("consumer")
        .env("LIJIAN_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,lapin=off")
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("spawn consumer");
    let issued = "SELECT count(*) FROM orders WHERE status = 2";
    assert_eq!(app.wait_for_count(issued, 3, Duration::from_secs(20)).await, 3);
    stop(child);
    let text = std::fs::read_to_string(log.path()).expect("read log");
    let mut about_orders = 0;
    for line in text.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["fields"]["message"] == "coupon issued" {
            about_orders += 1;
            let code = entry["span"]["order_code"].as_str().unwrap_or_else(|| panic!("no order_code: {line}"));
            assert!(orders.iter().any(|o| o == code), "{line}");
        }
    }
    assert_eq!(about_orders, 3, "{text}");
    drop(sim);
    stop_shared(app).await;
}
