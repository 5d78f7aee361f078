//! Every status code of the open API's table, each from a real HTTP request.

use serde_json::Value;

use crate::helpers::*;

const COUPONS: &str = "/v1/openapi/order/wechat/coupons";
const INFO: &str = "/v1/openapi/order/info";

fn status(answer: &Value) -> i64 {
    answer["status"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn status_0_accepts_charges_enqueues_and_can_be_queried() {
    let app = spawn_app().await;
    let before = app.balance(MERCHANT).await;
    let answer = app.order("biz-0").await;
    assert_eq!(status(&answer), 0, "{answer}");
    assert_eq!(answer["message"], "success");
    let code = answer["data"]["orderCode"].as_str().expect("orderCode").to_string();
    assert!(code.starts_with("LJ") && code.len() == 22, "{code}");
    assert_eq!(answer["data"]["bizCode"], "biz-0");
    assert_eq!(answer["data"]["settlementPrice"].as_f64(), Some(9.5));
    assert_eq!(app.take_issue_jobs().await, vec![code.clone()]);
    assert_eq!(app.balance(MERCHANT).await, before - PRICE_FEN);
    assert_eq!(app.store.ledger_sum(MERCHANT).await.expect("ledger").0, app.balance(MERCHANT).await);

    let body = format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","orderCode":"{code}"}}"#);
    let info = app.post_signed(INFO, &body).await;
    assert_eq!(status(&info), 0, "{info}");
    assert_eq!(info["data"]["orderCode"], code.as_str());
    assert_eq!(info["data"]["status"], 0);
    assert_eq!(info["data"]["settlementPrice"].as_f64(), Some(9.5));
    let body = format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","bizCode":"biz-0"}}"#);
    assert_eq!(app.post_signed(INFO, &body).await["data"]["orderCode"], code.as_str());
    app.stop().await;
}

#[tokio::test]
async fn md5_and_absent_sign_type_are_accepted() {
    let app = spawn_app().await;
    let md5 = app.send(COUPONS, &Req::new(&order_body("md5-1")).signed_md5(MD5_KEY)).await;
    assert_eq!(status(&md5), 0, "{md5}");
    let mut lower = Req::new(&order_body("md5-2")).signed_md5(MD5_KEY);
    lower.sign = lower.sign.to_lowercase();
    assert_eq!(status(&app.send(COUPONS, &lower).await), 0);
    // Without the signType header, the string leaves signType out and RSA applies.
    let mut req = Req::new(&order_body("no-sign-type"));
    req.sign_type = None;
    let answer = app.send(COUPONS, &req.signed_rsa(&app.signer)).await;
    assert_eq!(status(&answer), 0, "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn status_1_disabled_merchant() {
    let app = spawn_app().await;
    app.store.set_merchant_enabled(MERCHANT, false).await.expect("disable");
    let answer = app.order("biz-1").await;
    assert_eq!(status(&answer), 1, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("disabled"));
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn status_2_signature_failures_name_the_rule_not_the_signature() {
    let app = spawn_app().await;
    let mut tampered = Req::new(&order_body("biz-2")).signed_rsa(&app.signer);
    tampered.body = tampered.body.replace("oUser_biz-2", "oOther");
    let answer = app.send(COUPONS, &tampered).await;
    assert_eq!(status(&answer), 2, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("SHA256-RSA") && message.contains("raw body"), "{message}");

    let wrong_md5 = Req::new(&order_body("biz-2b")).signed_md5("not-the-key-000000");
    let answer = app.send(COUPONS, &wrong_md5).await;
    assert_eq!(status(&answer), 2, "{answer}");
    let expected = md5_upper(wrong_md5.string_to_sign().as_bytes(), MD5_KEY);
    assert!(!answer.to_string().contains(&expected), "the expected signature must never be echoed");

    let mut garbage = Req::new(&order_body("biz-2c"));
    garbage.sign = "***".into();
    assert_eq!(status(&app.send(COUPONS, &garbage).await), 2);

    // Re-serialised JSON (spaces added) no longer matches what was signed.
    let mut reserialised = Req::new(&order_body("biz-2d")).signed_rsa(&app.signer);
    reserialised.body = reserialised.body.replace(",", ", ");
    assert_eq!(status(&app.send(COUPONS, &reserialised).await), 2);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    assert!(app.take_issue_jobs().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn status_3_bad_parameters_store_nothing() {
    let app = spawn_app().await;
    let mut missing_nonce = Req::new(&order_body("b3")).signed_rsa(&app.signer);
    missing_nonce.nonce = String::new();
    let answer = app.send(COUPONS, &missing_nonce).await;
    assert_eq!((status(&answer), answer["message"].as_str()), (3, Some("header nonce is required")));

    let not_json = app.post_signed(COUPONS, "merchantId=m").await;
    assert_eq!(status(&not_json), 3, "{not_json}");

    let huge = format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let answer = app.post_signed(COUPONS, &huge).await;
    assert_eq!(status(&answer), 3, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("64 KiB"));

    let mut mismatch = Req::new(&order_body_for(MERCHANT, "b-other", "b3"));
    mismatch.business_id = BUSINESS.into();
    assert_eq!(status(&app.send(COUPONS, &mismatch.signed_rsa(&app.signer)).await), 3);

    let no_biz = format!(
        r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","openId":"o1","productCode":"{PRODUCT}","activityId":"{ACTIVITY}"}}"#
    );
    let answer = app.post_signed(COUPONS, &no_biz).await;
    assert_eq!((status(&answer), answer["message"].as_str()), (3, Some("bizCode is required")));

    let long_biz = order_body(&"x".repeat(65));
    assert_eq!(status(&app.post_signed(COUPONS, &long_biz).await), 3);

    let bad_url = order_body("b3u").replace(r#""bizCode""#, r#""callbackUrl":"ftp://x","bizCode""#);
    assert_eq!(status(&app.post_signed(COUPONS, &bad_url).await), 3);

    let mut bad_type = Req::new(&order_body("b3t"));
    bad_type.sign_type = Some("SHA1".into());
    assert_eq!(status(&app.send(COUPONS, &bad_type.signed_rsa(&app.signer)).await), 3);

    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.balance(MERCHANT).await, 1_000_000);
    assert!(app.take_issue_jobs().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn status_4_unknown_method_is_still_json() {
    let app = spawn_app().await;
    let answer = app.post_signed("/v1/openapi/order/wechat/transfer", &order_body("b4")).await;
    assert_eq!(status(&answer), 4, "{answer}");
    let resp = app.http.get(app.url(COUPONS)).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.expect("json");
    assert_eq!(status(&answer), 4);
    app.stop().await;
}

#[tokio::test]
async fn status_5_timestamp_outside_five_minutes() {
    let app = spawn_app().await;
    for offset in [-6 * 60_000, 6 * 60_000] {
        let mut req = Req::new(&order_body("b5"));
        req.timestamp = (now_ms() + offset).to_string();
        let answer = app.send(COUPONS, &req.signed_rsa(&app.signer)).await;
        assert_eq!(status(&answer), 5, "{answer}");
    }
    let mut req = Req::new(&order_body("b5"));
    req.timestamp = (now_ms() - 4 * 60_000).to_string();
    assert_eq!(status(&app.send(COUPONS, &req.signed_rsa(&app.signer)).await), 0, "4 minutes old is inside the window");
    app.stop().await;
}

#[tokio::test]
async fn status_6_nonce_reused_even_for_another_order() {
    let app = spawn_app().await;
    let first = Req::new(&order_body("b6")).signed_rsa(&app.signer);
    assert_eq!(status(&app.send(COUPONS, &first).await), 0);
    assert_eq!(status(&app.send(COUPONS, &first).await), 6, "exact replay");
    let mut other = Req::new(&order_body("b6-other"));
    other.nonce = first.nonce.clone();
    let answer = app.send(COUPONS, &other.signed_rsa(&app.signer)).await;
    assert_eq!(status(&answer), 6, "{answer}");
    assert_eq!(app.take_issue_jobs().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn status_7_unknown_merchant_product_activity_order() {
    let app = spawn_app().await;
    app.add_merchant("m-other", 100_000, &[], 10).await;
    let unknown_merchant = order_body_for("m-nobody", BUSINESS, "b7");
    assert_eq!(status(&app.post_signed(COUPONS, &unknown_merchant).await), 7);
    let unknown_product = order_body("b7p").replace(PRODUCT, "p-nope");
    let answer = app.post_signed(COUPONS, &unknown_product).await;
    assert_eq!((status(&answer), answer["message"].as_str()), (7, Some("product not found")));
    let unknown_activity = order_body("b7a").replace(ACTIVITY, "a-nope");
    assert_eq!(status(&app.post_signed(COUPONS, &unknown_activity).await), 7);
    let foreign_activity = order_body("b7f").replace(ACTIVITY, "a-m-other");
    assert_eq!(status(&app.post_signed(COUPONS, &foreign_activity).await), 7, "another merchant's activity");
    let info = format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","orderCode":"LJ000"}}"#);
    assert_eq!(status(&app.post_signed(INFO, &info).await), 7);
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn status_8_duplicate_returns_the_existing_order_and_98_a_reused_biz_code() {
    let app = spawn_app().await;
    let first = app.order("b8").await;
    let again = app.order("b8").await;
    assert_eq!(status(&again), 8, "{again}");
    assert_eq!(again["data"], first["data"], "a retry gets the same data to reconcile");
    let reused = order_body("b8").replace("oUser_b8", "oSomeoneElse");
    let answer = app.post_signed(COUPONS, &reused).await;
    assert_eq!(status(&answer), 98, "{answer}");
    assert_eq!(answer["data"]["orderCode"], first["data"]["orderCode"]);
    assert_eq!(app.balance(MERCHANT).await, 1_000_000 - PRICE_FEN, "charged once");
    assert_eq!(app.take_issue_jobs().await.len(), 1, "one job");
    app.stop().await;
}

#[tokio::test]
async fn status_9_insufficient_balance() {
    let app = spawn_app().await;
    app.add_merchant("m-poor", 1000, &[], 100).await;
    assert_eq!(status(&app.order_for("m-poor", "b9-1").await), 0);
    let answer = app.order_for("m-poor", "b9-2").await;
    assert_eq!((status(&answer), answer["message"].as_str()), (9, Some("insufficient balance")));
    assert_eq!(app.balance("m-poor").await, 50);
    assert_eq!(
        app.count("SELECT issued FROM activities WHERE activity_id = 'a-m-poor'").await,
        1,
        "budget not counted"
    );
    app.stop().await;
}

#[tokio::test]
async fn status_10_address_outside_the_allowlist() {
    let app = spawn_app().await;
    app.add_merchant("m-fenced", 100_000, &["10.0.0.0/8"], 100).await;
    app.add_merchant("m-local", 100_000, &["127.0.0.1/32"], 100).await;
    let answer = app.order_for("m-fenced", "b10").await;
    assert_eq!(status(&answer), 10, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("127.0.0.1"));
    assert_eq!(status(&app.order_for("m-local", "b10").await), 0);
    app.stop().await;
}

#[tokio::test]
async fn status_11_budget_used_up_or_outside_the_window() {
    let app = spawn_app().await;
    app.add_merchant("m-small", 100_000, &[], 1).await;
    assert_eq!(status(&app.order_for("m-small", "b11-1").await), 0);
    let answer = app.order_for("m-small", "b11-2").await;
    assert_eq!((status(&answer), answer["message"].as_str()), (11, Some("activity budget used up")));
    assert_eq!(app.balance("m-small").await, 100_000 - PRICE_FEN, "the refused order is not charged");

    let now = time::OffsetDateTime::now_utc();
    let later = activity("a-later", MERCHANT, 10, now + time::Duration::days(1), now + time::Duration::days(2));
    app.store.add_activity(&later).await.expect("activity");
    let answer = app.post_signed(COUPONS, &order_body("b11-3").replace(ACTIVITY, "a-later")).await;
    assert_eq!((status(&answer), answer["message"].as_str()), (11, Some("activity has not started")));
    app.stop().await;
}
