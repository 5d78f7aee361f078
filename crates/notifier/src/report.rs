//! The status report as merchants receive it: the JSON body and the signed
//! headers (same rule as requests: sorted auth headers + raw body).

use std::sync::Arc;

use lijian_core::money::Fen;
use lijian_core::signing::{md5_sign, off_workers, string_to_sign, RsaPrivateKey, SignError};
use lijian_core::status::OrderStatus;
use serde_json::json;

/// What a report says about an order.
#[derive(Debug, Clone)]
pub struct Report {
    pub notify_id: String,
    pub order_code: String,
    pub biz_code: String,
    pub merchant_id: String,
    pub product_code: String,
    pub activity_id: String,
    pub open_id: String,
    pub status: OrderStatus,
    pub coupon_id: Option<String>,
    pub settlement: Fen,
    pub message: String,
    pub finish_time_ms: i64,
    /// The notifyId of the report this one corrects (a coupon that arrived
    /// after a failure was reported).
    pub corrects: Option<String>,
}

impl Report {
    /// The body bytes, produced once and signed as they are sent.
    pub fn body(&self) -> Vec<u8> {
        let mut body = json!({
            "notifyId": self.notify_id,
            "orderCode": self.order_code,
            "bizCode": self.biz_code,
            "merchantId": self.merchant_id,
            "productCode": self.product_code,
            "activityId": self.activity_id,
            "openId": self.open_id,
            "status": self.status,
            "settlementPrice": self.settlement.to_yuan_json(),
            "message": self.message,
            "finishTime": self.finish_time_ms,
        });
        if let Some(coupon) = &self.coupon_id {
            body["couponId"] = json!(coupon);
        }
        if let Some(corrects) = &self.corrects {
            body["corrects"] = json!(corrects);
        }
        body.to_string().into_bytes()
    }
}

/// How a merchant's reports are signed.
pub enum Signer<'a> {
    /// SHA256-RSA with the platform's key; merchants verify with its public key.
    Platform(&'a Arc<RsaPrivateKey>),
    /// MD5 with the merchant's own MD5 key (merchants set up without RSA).
    Md5(&'a str),
}

/// `businessId`, a fresh `nonce`, `timestamp` (ms), `signType` and `sign`. An
/// RSA signature is made off the async workers ([`off_workers`]).
pub async fn signed_headers(
    business_id: &str,
    signer: &Signer<'_>,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SignError> {
    let nonce = uuid::Uuid::new_v4().to_string();
    let timestamp = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    let sign_type = match signer {
        Signer::Platform(_) => "SHA256-RSA",
        Signer::Md5(_) => "MD5",
    };
    let auth = [
        ("businessId", business_id),
        ("nonce", nonce.as_str()),
        ("signType", sign_type),
        ("timestamp", timestamp.as_str()),
    ];
    let message = string_to_sign(&auth, body);
    let sign = match signer {
        Signer::Platform(key) => {
            let key = Arc::clone(key);
            off_workers(move || key.sign_base64(&message)).await??
        }
        Signer::Md5(key) => md5_sign(&message, key),
    };
    Ok(vec![
        ("businessId", business_id.to_string()),
        ("nonce", nonce),
        ("timestamp", timestamp),
        ("signType", sign_type.to_string()),
        ("sign", sign),
    ])
}
