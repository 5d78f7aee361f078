//! WeChat Pay API v3 signatures checked with openssl over strings built here by
//! hand, not with the code that made them.

use std::time::Duration;

use base64::Engine;
use lijian_consumer::wxpay::{Reply, SendCoupon, WxPayClient};
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};

use crate::helpers::wxpay::{spawn_sim, MCHID, PUBLIC_KEY_ID, SERIAL_NO};
use crate::helpers::{fixture, fixture_path};

fn client(base_url: &str) -> WxPayClient {
    WxPayClient::new(
        base_url,
        MCHID,
        SERIAL_NO,
        RsaPrivateKey::from_pem(&fixture("wxpay-merchant-private.pem")).expect("key"),
        RsaPublicKey::parse(&fixture("wxpay-platform-public.pem")).expect("key"),
        PUBLIC_KEY_ID,
        Duration::from_secs(5),
    )
    .expect("client")
}

/// `openssl dgst -sha256 -verify PUB -signature SIG MSG` succeeds.
fn openssl_verifies(public_key: &str, message: &[u8], signature_b64: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let (msg, sig) = (dir.path().join("msg"), dir.path().join("sig"));
    std::fs::write(&msg, message).expect("write");
    std::fs::write(&sig, base64::engine::general_purpose::STANDARD.decode(signature_b64).expect("base64"))
        .expect("write");
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", &fixture_path(public_key), "-signature"])
        .arg(&sig)
        .arg(&msg)
        .output()
        .expect("openssl");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// Splits `WECHATPAY2-SHA256-RSA2048 k="v",…` by hand.
fn fields(header: &str) -> std::collections::HashMap<String, String> {
    let rest = header.strip_prefix("WECHATPAY2-SHA256-RSA2048 ").expect("scheme");
    rest.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn authorization_signature_verifies_with_openssl() {
    let path = "/v3/marketing/favor/users/oUpF8uMuAJO_M2pxb1Q9zNjWeS6o/coupons";
    let body = br#"{"stock_id":"9856000","out_request_no":"LJ20261125000000000001","appid":"wx1","stock_creator_mchid":"1900000001"}"#;
    let header = client("http://unused").authorization("POST", path, body).expect("sign");
    let f = fields(&header);
    assert_eq!(f["mchid"], MCHID);
    assert_eq!(f["serial_no"], SERIAL_NO);
    assert_eq!(f.len(), 5, "{header}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - f["timestamp"].parse::<i64>().expect("seconds")).abs() < 5, "timestamp is Unix seconds");
    let message = format!("POST\n{path}\n{}\n{}\n{}\n", f["timestamp"], f["nonce_str"], String::from_utf8_lossy(body));
    assert!(openssl_verifies("wxpay-merchant-public.pem", message.as_bytes(), &f["signature"]));
    let tampered = message.replace("LJ20261125000000000001", "LJ20261125000000000002");
    assert!(!openssl_verifies("wxpay-merchant-public.pem", tampered.as_bytes(), &f["signature"]));
}

#[tokio::test]
async fn simulator_answers_verify_with_openssl_and_bad_signatures_get_401() {
    let sim = spawn_sim(|_| {}).await;
    let path = "/v3/marketing/favor/users/oA/coupons";
    let body = r#"{"stock_id":"9856000","out_request_no":"LJ1","appid":"wx1","stock_creator_mchid":"1900000001"}"#;
    let authorization = client(&sim.url()).authorization("POST", path, body.as_bytes()).expect("sign");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}{path}", sim.url()))
        .header("Authorization", &authorization)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let h = |n: &str| resp.headers()[n].to_str().expect("ascii").to_string();
    let (ts, nonce, sig, serial) =
        (h("Wechatpay-Timestamp"), h("Wechatpay-Nonce"), h("Wechatpay-Signature"), h("Wechatpay-Serial"));
    assert_eq!(serial, PUBLIC_KEY_ID);
    let answer = resp.text().await.expect("body");
    assert!(answer.contains("coupon_id"), "{answer}");
    let message = format!("{ts}\n{nonce}\n{answer}\n");
    assert!(openssl_verifies("wxpay-platform-public.pem", message.as_bytes(), &sig));

    // The same request re-signed by another key is refused.
    let forged = authorization.replace(&fields(&authorization)["signature"], "AAAA");
    let resp = http
        .post(format!("{}{path}", sim.url()))
        .header("Authorization", forged)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let err: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(err["code"], "SIGN_ERROR");
}

#[tokio::test]
async fn an_answer_signed_by_another_key_is_not_trusted() {
    // A "WeChat" whose answers are signed with a key we do not know.
    let impostor = spawn_sim(|c| c.private_key = fixture("merchant-test-private.pem")).await;
    let request = SendCoupon {
        stock_id: "9856000".into(),
        out_request_no: "LJ2".into(),
        appid: "wx1".into(),
        stock_creator_mchid: MCHID.into(),
    };
    let call = client(&impostor.url()).send_coupon("oB", &request).await;
    assert!(matches!(call.reply, Reply::Unverifiable { http_status: 200, .. }), "{:?}", call.reply);
    // The coupon exists at "WeChat", but we retry (same out_request_no) rather than believe it.
    assert_eq!(impostor.ledger().await.len(), 1);
}
