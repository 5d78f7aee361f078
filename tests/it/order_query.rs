//! Issue 12, point 4: the original platform's order query names only the
//! order; the merchant is the `businessId` header's.

use crate::helpers::*;

const INFO: &str = "/v1/openapi/order/info";

#[tokio::test]
async fn the_original_query_body_names_only_the_order() {
    let app = spawn_app().await;
    let placed = app.order("orig-1").await;
    assert_eq!(placed["status"], 0, "{placed}");
    let code = placed["data"]["orderCode"].as_str().expect("orderCode").to_string();

    let by_code = app.post_signed(INFO, &format!(r#"{{"orderCode":"{code}"}}"#)).await;
    assert_eq!(by_code["status"], 0, "{by_code}");
    assert_eq!(by_code["data"]["orderCode"], code.as_str());
    assert_eq!(by_code["data"]["merchantId"], MERCHANT);
    let by_biz = app.post_signed(INFO, r#"{"bizCode":"orig-1"}"#).await;
    assert_eq!(by_biz["status"], 0, "{by_biz}");
    assert_eq!(by_biz["data"]["orderCode"], code.as_str());
    // MD5-signed, as many original clients are.
    let req = Req::new(&format!(r#"{{"orderCode":"{code}"}}"#)).signed_md5(MD5_KEY);
    assert_eq!(app.send(INFO, &req).await["status"], 0);

    // merchantId and businessId stay accepted, and must match when sent.
    let full = app
        .post_signed(INFO, &format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","orderCode":"{code}"}}"#))
        .await;
    assert_eq!(full["status"], 0, "{full}");
    app.add_merchant("m-other", 100_000, &[], 10).await;
    let other = app.post_signed(INFO, &format!(r#"{{"merchantId":"m-other","orderCode":"{code}"}}"#)).await;
    assert_eq!(other["status"], 7, "a merchantId of another businessId: {other}");
    let wrong = app.post_signed(INFO, &format!(r#"{{"businessId":"b-m-other","orderCode":"{code}"}}"#)).await;
    assert_eq!(wrong["status"], 3, "body businessId differs from the header: {wrong}");
    let neither = app.post_signed(INFO, "{}").await;
    assert_eq!(neither["status"], 3, "{neither}");

    // Another merchant asking by header only never sees this order.
    let mut req = Req::new(&format!(r#"{{"orderCode":"{code}"}}"#));
    req.business_id = "b-m-other".into();
    let theirs = app.send(INFO, &req.signed_rsa(&app.signer)).await;
    assert_eq!(theirs["status"], 7, "{theirs}");
    // Orders still need merchantId in the body.
    let order = app
        .post_signed(
            "/v1/openapi/order/wechat/coupons",
            &order_body("orig-2").replace(&format!(r#""merchantId":"{MERCHANT}","#), ""),
        )
        .await;
    assert_eq!(order["status"], 3, "{order}");
    app.stop().await;
}
