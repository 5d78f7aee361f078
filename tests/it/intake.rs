//! Idempotency, balance and isolation under concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;

use crate::helpers::*;

#[tokio::test]
async fn fifty_concurrent_requests_with_one_biz_code_make_one_order() {
    let app = Arc::new(spawn_app().await);
    let answers = join_all((0..50).map(|_| {
        let app = app.clone();
        async move { app.order("same-biz").await }
    }))
    .await;
    let accepted = answers.iter().filter(|a| a["status"] == 0).count();
    let duplicates = answers.iter().filter(|a| a["status"] == 8).count();
    assert_eq!((accepted, duplicates), (1, 49), "{answers:?}");
    let codes: HashSet<_> =
        answers.iter().map(|a| a["data"]["orderCode"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(codes.len(), 1, "every answer names the same order");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'debit'").await, 1);
    assert_eq!(app.balance(MERCHANT).await, 1_000_000 - PRICE_FEN);
    assert_eq!(app.count("SELECT issued FROM activities WHERE activity_id = 'a-test'").await, 1);
    assert_eq!(app.take_issue_jobs().await.len(), 1);
    stop_shared(app).await;
}

#[tokio::test]
async fn hundred_concurrent_orders_against_a_balance_for_sixty() {
    let app = Arc::new(spawn_app().await);
    app.add_merchant("m-60", 60 * PRICE_FEN, &[], 1000).await;
    let answers = join_all((0..100).map(|i| {
        let app = app.clone();
        async move { app.order_for("m-60", &format!("o-{i}")).await }
    }))
    .await;
    let accepted: Vec<String> = answers
        .iter()
        .filter(|a| a["status"] == 0)
        .map(|a| a["data"]["orderCode"].as_str().unwrap_or_default().into())
        .collect();
    let refused = answers.iter().filter(|a| a["status"] == 9).count();
    assert_eq!((accepted.len(), refused), (60, 40), "{answers:?}");
    assert_eq!(app.balance("m-60").await, 0);
    assert_eq!(app.store.ledger_sum("m-60").await.expect("ledger").0, 0, "ledger balanced");
    assert_eq!(
        app.count("SELECT count(*) FROM balance_ledger WHERE merchant_id = 'm-60' AND kind = 'debit'").await,
        60
    );
    assert_eq!(app.count("SELECT issued FROM activities WHERE activity_id = 'a-m-60'").await, 60);
    let mut jobs = app.take_issue_jobs().await;
    jobs.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(jobs, expected, "exactly one job per accepted order");
    stop_shared(app).await;
}

#[tokio::test]
async fn a_merchant_sees_only_its_own_orders() {
    let app = spawn_app().await;
    app.add_merchant("m-a", 100_000, &[], 100).await;
    app.add_merchant("m-b", 100_000, &[], 100).await;
    let a = app.order_for("m-a", "shared-biz").await;
    let b = app.order_for("m-b", "shared-biz").await;
    assert_eq!((a["status"].as_i64(), b["status"].as_i64()), (Some(0), Some(0)), "bizCode is unique per merchant only");
    let a_code = a["data"]["orderCode"].as_str().unwrap_or_default();
    // m-b asks for m-a's order by code: not found.
    let mut req = Req::new(&format!(r#"{{"merchantId":"m-b","businessId":"b-m-b","orderCode":"{a_code}"}}"#));
    req.business_id = "b-m-b".into();
    let answer = app.send("/v1/openapi/order/info", &req.signed_rsa(&app.signer)).await;
    assert_eq!(answer["status"], 7, "{answer}");
    // By bizCode each sees its own.
    let mut req = Req::new(r#"{"merchantId":"m-b","businessId":"b-m-b","bizCode":"shared-biz"}"#);
    req.business_id = "b-m-b".into();
    let answer = app.send("/v1/openapi/order/info", &req.signed_rsa(&app.signer)).await;
    assert_eq!(answer["data"]["orderCode"], b["data"]["orderCode"]);
    assert_eq!(answer["data"]["merchantId"], "m-b");
    // A merchant cannot act as another by naming its merchantId with its own businessId.
    let mut req = Req::new(r#"{"merchantId":"m-a","businessId":"b-m-b","bizCode":"shared-biz"}"#);
    req.business_id = "b-m-b".into();
    assert_eq!(app.send("/v1/openapi/order/info", &req.signed_rsa(&app.signer)).await["status"], 7);
    app.stop().await;
}
