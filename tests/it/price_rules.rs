//! Issue 12, point 3: a product's face value must be the activity's coupon
//! amount at every door, and `product add` refuses prices that cannot be meant.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn an_order_for_a_product_of_another_face_value_is_refused_at_every_door() {
    let app = spawn_app().await;
    // A 1-yuan product at 0.01: ordered against the 10-yuan activity it would
    // buy a 10-yuan coupon for a fen.
    app.add_cheap_product().await;
    let balance = app.balance(MERCHANT).await;

    let body = order_body("cheap-1").replace(PRODUCT, CHEAP);
    let answer = app.post_signed("/v1/openapi/order/wechat/coupons", &body).await;
    assert_eq!(answer["status"], 3, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("1.00 yuan") && message.contains("10.00 yuan"), "names both values: {message}");
    assert!(message.contains(CHEAP) && message.contains(ACTIVITY), "{message}");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0, "nothing stored");
    assert_eq!(app.balance(MERCHANT).await, balance, "nothing charged");
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'debit'").await, 0);
    assert!(app.wait_for_issue_jobs(1, Duration::from_millis(700)).await.is_empty(), "nothing queued");
    // The matching product still works.
    assert_eq!(app.order("right-1").await["status"], 0);

    // A CSV row gets the same rule: rejected with the same words, the rest loads.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = format!("bizCode,openId,productCode\nC1,oUser1,{PRODUCT}\nC2,oUser2,{CHEAP}\nC3,oUser3,\n");
    let file = dir.path().join("faces.csv");
    std::fs::write(&file, csv).expect("write csv");
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", MERCHANT, "--activity-id", ACTIVITY, "--product-code", PRODUCT])
        .output()
        .expect("run lijian load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rejects = std::fs::read_to_string(dir.path().join("faces.rejects.csv")).expect("rejects file");
    let rejected: Vec<&str> = rejects.lines().skip(1).collect();
    assert_eq!(rejected.len(), 1, "{rejects}");
    assert!(
        rejected[0].starts_with("3,") && rejected[0].contains("1.00 yuan") && rejected[0].contains("10.00 yuan"),
        "line 3 refused naming both values: {rejects}"
    );
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE campaign = 'faces'").await, 2);
    assert_eq!(app.count(&format!("SELECT count(*) FROM orders WHERE product_code = '{CHEAP}'")).await, 0);
    assert_eq!(app.balance(MERCHANT).await, balance - 3 * PRICE_FEN, "one API order and two CSV rows charged");
    app.stop().await;
}

#[tokio::test]
async fn product_add_refuses_a_zero_price_and_one_above_the_face_value() {
    let app = spawn_app().await;
    let run =
        |args: &[&str]| lijian_command(&app.settings).args(["product", "add"]).args(args).output().expect("run lijian");
    let refused = |args: &[&str]| {
        let out = run(args);
        assert!(!out.status.success(), "product add {args:?} should be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let zero = refused(&["--product-code", "free", "--face-value", "10", "--price", "0"]);
    assert!(zero.contains("--price must be more than 0"), "{zero}");
    let above = refused(&["--product-code", "dear", "--face-value", "10", "--price", "12"]);
    assert!(above.contains("above --face-value") && above.contains("--allow-price-above-face"), "{above}");
    assert_eq!(app.count("SELECT count(*) FROM products WHERE product_code IN ('free', 'dear')").await, 0);
    let out = run(&["--product-code", "dear", "--face-value", "10", "--price", "12", "--allow-price-above-face"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["--product-code", "fair", "--face-value", "10", "--price", "10"]);
    assert!(out.status.success(), "a price equal to the face value is fine");
    app.stop().await;
}
