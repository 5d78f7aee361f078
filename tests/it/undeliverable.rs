//! Refused at the door: a callbackUrl whose report could never be delivered
//! (an address inside our network) is refused when it arrives — by the open API
//! with status 3 naming the rule, by `merchant add`, by `load` — instead of being
//! accepted and its report parked for good.

use crate::helpers::*;

const ORDERS: &str = "/v1/openapi/order/wechat/coupons";

fn with_callback(biz_code: &str, url: &str) -> String {
    order_body(biz_code).replace(r#""bizCode""#, &format!(r#""callbackUrl":"{url}","bizCode""#))
}

#[tokio::test]
async fn a_callback_url_inside_our_network_is_refused_at_every_door() {
    let app = spawn_app().await;
    for (i, url) in ["http://10.1.2.3/cb", "http://169.254.169.254/latest/meta-data/", "http://[fd12::1]:8080/cb"]
        .into_iter()
        .enumerate()
    {
        let answer = app.post_signed(ORDERS, &with_callback(&format!("door-{i}"), url)).await;
        assert_eq!(answer["status"], 3, "{url}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains("can never be delivered") && message.contains(url), "{message}");
        assert!(message.contains("private") || message.contains("link-local") || message.contains("unique local"));
    }
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0, "nothing accepted, nothing charged");
    // A public address and the test's allowlisted loopback still pass.
    assert_eq!(app.post_signed(ORDERS, &with_callback("door-ok", "https://93.184.216.34/cb")).await["status"], 0);
    assert_eq!(app.post_signed(ORDERS, &with_callback("door-lo", "http://127.0.0.1:9999/cb")).await["status"], 0);

    // merchant add refuses it too, naming the rule.
    let out = lijian_command(&app.settings)
        .args(["merchant", "add", "--merchant-id", "m-door", "--business-id", "b-door", "--name", "Door"])
        .args(["--md5-key", "0123456789abcdef0123", "--callback-url", "http://10.1.2.3/cb"])
        .output()
        .expect("run lijian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("10.1.2.3 is private"), "{stderr}");
    assert_eq!(app.count("SELECT count(*) FROM merchants WHERE merchant_id = 'm-door'").await, 0);

    // So does a load, for its flag and for a row's own column.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("door.csv");
    std::fs::write(&file, "openId,callbackUrl\noDoor1,http://192.168.1.1/cb\noDoor2,\n").expect("csv");
    let load = |extra: &[&str]| {
        lijian_command(&app.settings)
            .arg("load")
            .arg(&file)
            .args(["--merchant-id", MERCHANT, "--activity-id", ACTIVITY, "--product-code", PRODUCT])
            .args(extra)
            .output()
            .expect("run lijian load")
    };
    let flagged = load(&["--callback-url", "http://10.9.9.9/cb"]);
    let stderr = String::from_utf8_lossy(&flagged.stderr);
    assert!(!flagged.status.success() && stderr.contains("--callback-url") && stderr.contains("private"), "{stderr}");
    let loaded = load(&[]);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    let rejects = std::fs::read_to_string(dir.path().join("door.rejects.csv")).expect("rejects file");
    assert!(rejects.contains("192.168.1.1") && rejects.contains("can never be delivered"), "{rejects}");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE source = 'csv'").await, 1, "the other row loads");
    app.stop().await;
}

/// A parked report is listed, and `dlq fail` acts on exactly what `dlq list`
/// shows: it dismisses the report (and the list and the dead-letter queue then
/// agree it is gone); another parked report is re-targeted to a working
/// endpoint and delivered.
#[tokio::test]
async fn a_parked_report_can_be_dismissed_or_retargeted_and_list_and_fail_agree() {
    use crate::helpers::receiver::{Answer, Receiver};
    use crate::helpers::wxpay::spawn_sim;
    use std::sync::Arc;
    use std::time::Duration;

    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let failing = Receiver::start(Vec::new(), Answer::Reply(500, "no")).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    let orders = app.place_orders_to("parked", 2, 2, Some(&failing.url())).await;
    assert_eq!(orders.len(), 2);
    let parked = "SELECT count(*) FROM reports WHERE outcome = 'parked'";
    assert_eq!(app.wait_for_count(parked, 2, Duration::from_secs(30)).await, 2);

    let listed = lijian_ok(&app, &["dlq", "list"]);
    assert!(listed.contains(&orders[0]) && listed.contains(&orders[1]) && listed.contains("2 parked"), "{listed}");

    // Dismissed: what the list showed, fail acts on.
    let failed = lijian_ok(&app, &["dlq", "fail", "--order", &orders[0]]);
    assert!(failed.contains("dismissed 1 parked reports") && !failed.contains("left alone"), "{failed}");
    let listed = lijian_ok(&app, &["dlq", "list"]);
    assert!(!listed.contains(&orders[0]) && listed.contains("1 parked"), "{listed}");
    assert!(lijian_ok(&app, &["order", "show", &orders[0]]).contains("dismissed"));

    // Re-targeted to a working endpoint, then delivered.
    let healthy = Receiver::healthy().await;
    let refused = lijian_command(&app.settings)
        .args(["dlq", "replay", "--order", &orders[1], "--callback-url", "http://10.1.2.3/cb"])
        .output()
        .expect("run lijian");
    assert!(!refused.status.success(), "a target that can never work is refused for a replay too");
    let replayed = lijian_ok(&app, &["dlq", "replay", "--order", &orders[1], "--callback-url", &healthy.url()]);
    assert!(replayed.contains("re-targeted 1 reports") && replayed.contains("1 reports"), "{replayed}");
    assert_eq!(healthy.wait_for(1, Duration::from_secs(20)).await, 1);
    assert!(lijian_ok(&app, &["dlq", "list"]).contains("nothing parked"));
    let delivered =
        format!("SELECT count(*) FROM reports WHERE order_code = '{}' AND outcome = 'delivered'", orders[1]);
    assert_eq!(app.wait_for_count(&delivered, 1, Duration::from_secs(10)).await, 1);

    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
