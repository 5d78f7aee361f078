//! The simulator's WeChat behaviours that tests of scale-out rely on: strict
//! one-request-per-user, several accounts each with its own key and rate, and the
//! counters at `/__sim/stats`. Requests are signed before they are sent, so a
//! burst reaches the simulator within milliseconds.

use std::time::Duration;

use futures::future::join_all;
use lijian_consumer::wxpay::WxPayClient;
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};

use crate::helpers::fixture;
use crate::helpers::wxpay::{spawn_sim, spawn_strict_sim, Sim, TestAccount, MCHID, PUBLIC_KEY_ID, SERIAL_NO};

/// One send-coupon request, signed and ready.
struct Signed {
    path: String,
    body: String,
    authorization: String,
}

fn signer(mchid: &str, key: RsaPrivateKey) -> WxPayClient {
    let platform = RsaPublicKey::parse(&fixture("wxpay-platform-public.pem")).expect("key");
    WxPayClient::new("http://unused", mchid, SERIAL_NO, key, platform, PUBLIC_KEY_ID, Duration::from_secs(5))
        .expect("client")
}

fn default_signer() -> WxPayClient {
    signer(MCHID, RsaPrivateKey::from_pem(&fixture("wxpay-merchant-private.pem")).expect("key"))
}

fn account_signer(account: &TestAccount) -> WxPayClient {
    signer(&account.mchid, RsaPrivateKey::from_pem(&account.key.to_pkcs8_pem().expect("pem")).expect("key"))
}

fn sign(client: &WxPayClient, mchid: &str, openid: &str, out_request_no: &str) -> Signed {
    let path = format!("/v3/marketing/favor/users/{openid}/coupons");
    let body = format!(
        r#"{{"stock_id":"9856000","out_request_no":"{out_request_no}","appid":"wx1","stock_creator_mchid":"{mchid}"}}"#
    );
    let authorization = client.authorization("POST", &path, body.as_bytes()).expect("sign");
    Signed { path, body, authorization }
}

/// Status, JSON answer and whether the answer's Wechatpay-Signature verifies.
async fn post(sim: &Sim, request: &Signed) -> (u16, serde_json::Value, bool) {
    let resp = reqwest::Client::new()
        .post(format!("{}{}", sim.url(), request.path))
        .header("Authorization", &request.authorization)
        .header("Content-Type", "application/json")
        .body(request.body.clone())
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (ts, nonce, sig) = (h("Wechatpay-Timestamp"), h("Wechatpay-Nonce"), h("Wechatpay-Signature"));
    let text = resp.text().await.expect("body");
    let platform = RsaPublicKey::parse(&fixture("wxpay-platform-public.pem")).expect("key");
    let signed = platform.verify_base64(format!("{ts}\n{nonce}\n{text}\n").as_bytes(), &sig).is_ok();
    (status, serde_json::from_str(&text).expect("JSON"), signed)
}

#[tokio::test]
async fn strict_mode_refuses_a_second_concurrent_send_to_one_user() {
    let sim = spawn_strict_sim(|c| c.latency_ms = 400).await;
    let client = default_signer();
    let (a, b) = (sign(&client, MCHID, "oSame", "LJS1"), sign(&client, MCHID, "oSame", "LJS2"));
    let answers = join_all([post(&sim, &a), post(&sim, &b)]).await;
    // Either may arrive first (a loaded host reorders them): one is issued, the other refused.
    let refused = answers.iter().position(|(status, _, _)| *status == 403).expect("one refused");
    let issued = 1 - refused;
    assert_eq!(answers[issued].0, 200, "{answers:?}");
    assert_eq!(answers[refused].1["code"].as_str(), Some("RULE_LIMIT"), "{answers:?}");
    assert!(answers.iter().all(|(_, _, signed)| *signed), "every answer is signed: {answers:?}");

    let stats = sim.stats().await;
    assert_eq!((stats.requests, stats.overlaps, stats.throttled), (2, 1, 0), "{stats:?}");
    let requests = sim.requests().await;
    assert!(requests.iter().all(|r| r.mchid == MCHID && r.openid == "oSame" && r.time_ms > 0), "{requests:?}");

    // Once the first is answered the user is free again: the refused one is re-sent.
    let (status, _, _) = post(&sim, [&a, &b][refused]).await;
    assert_eq!(status, 200);
    assert_eq!(sim.stats().await.overlaps, 1);
    assert_eq!(sim.ledger().await.len(), 2);
}

#[tokio::test]
async fn different_users_in_parallel_are_not_overlaps_and_lenient_mode_only_counts() {
    let strict = spawn_strict_sim(|c| c.latency_ms = 300).await;
    let client = default_signer();
    let (a, b) = (sign(&client, MCHID, "oOne", "LJD1"), sign(&client, MCHID, "oTwo", "LJD2"));
    let answers = join_all([post(&strict, &a), post(&strict, &b)]).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 200), "{answers:?}");
    assert_eq!(strict.stats().await.overlaps, 0);

    // Without --strict-openid both are served, and the overlap is still counted.
    let lenient = spawn_sim(|c| c.latency_ms = 300).await;
    let (a, b) = (sign(&client, MCHID, "oSame", "LJD3"), sign(&client, MCHID, "oSame", "LJD4"));
    let answers = join_all([post(&lenient, &a), post(&lenient, &b)]).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 200), "{answers:?}");
    assert_eq!(lenient.stats().await.overlaps, 1);
}

#[tokio::test]
async fn each_account_has_its_own_key_and_its_own_rate() {
    let other = TestAccount::generate("1900000002");
    let sim_account = other.sim_account(Some(3));
    let sim = spawn_strict_sim(|c| {
        c.mchid = Some(MCHID.into());
        c.rate = Some(5);
        c.accounts.push(sim_account);
    })
    .await;
    let (ours, theirs) = (default_signer(), account_signer(&other));
    let burst: Vec<Signed> = (0..8)
        .flat_map(|i| {
            [
                sign(&ours, MCHID, &format!("oA{i}"), &format!("LJA{i}")),
                sign(&theirs, &other.mchid, &format!("oB{i}"), &format!("LJB{i}")),
            ]
        })
        .collect();
    // The windows are aligned seconds: start the burst just after one begins.
    let ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) % 1000;
    tokio::time::sleep(Duration::from_millis((1000 - ms) as u64 + 20)).await;
    let answers = join_all(burst.iter().map(|r| post(&sim, r))).await;

    let requests = sim.requests().await;
    let seconds: std::collections::HashSet<i64> = requests.iter().map(|r| r.time_ms.div_euclid(1000)).collect();
    assert_eq!(seconds.len(), 1, "the burst fell in one second: {requests:?}");
    let second = *seconds.iter().next().expect("one second");
    let count = |mchid: &str, status: u16| requests.iter().filter(|r| r.mchid == mchid && r.status == status).count();
    assert_eq!((count(MCHID, 200), count(MCHID, 429)), (5, 3), "{answers:?}");
    assert_eq!((count(&other.mchid, 200), count(&other.mchid, 429)), (3, 5), "{answers:?}");
    let stats = sim.stats().await;
    assert_eq!((stats.requests, stats.throttled, stats.overlaps), (16, 8, 0), "{stats:?}");
    assert_eq!(stats.per_second.get(&second), Some(&16));
    assert_eq!(stats.per_mchid[MCHID].get(&second), Some(&8));
    assert_eq!(stats.per_mchid[&other.mchid].get(&second), Some(&8));

    // Each mchid is verified with its own key; an unknown one does not exist.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let forged = sign(&ours, &other.mchid, "oC", "LJC1");
    let forged = Signed { authorization: forged.authorization.replace(MCHID, &other.mchid), ..forged };
    let (status, answer, _) = post(&sim, &forged).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("SIGN_ERROR")));
    let stranger = signer("1900000009", RsaPrivateKey::from_pem(&fixture("wxpay-merchant-private.pem")).expect("key"));
    let (status, answer, _) = post(&sim, &sign(&stranger, "1900000009", "oD", "LJC2")).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("MCH_NOT_EXISTS")));
}
