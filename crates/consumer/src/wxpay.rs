//! A WeChat Pay API v3 client for one call: send a coupon of a stock to a user.
//! Requests are signed with the merchant API key; every 2xx answer is verified
//! with the WeChat Pay public key before it is believed. Both RSA operations run
//! off the async workers ([`off_workers`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lijian_core::signing::{off_workers, RsaPrivateKey, RsaPublicKey};
use serde::Serialize;

/// The body WeChat documents for 发放指定批次的代金券. coupon_value/coupon_minimum
/// are deliberately absent: WeChat answers PARAM_ERROR when they are sent.
#[derive(Debug, Clone, Serialize)]
pub struct SendCoupon {
    pub stock_id: String,
    pub out_request_no: String,
    pub appid: String,
    pub stock_creator_mchid: String,
}

/// What came back, before any decision about the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A verified 2xx with a coupon_id.
    Issued { coupon_id: String },
    /// A non-2xx answer with WeChat's error code.
    Refused { http_status: u16, code: String, message: String },
    /// A 2xx we cannot trust (bad or missing signature, stale timestamp, unknown
    /// serial, no coupon_id). The idempotent re-send will settle it.
    Unverifiable { http_status: u16, reason: String },
    /// No answer: timeout, connection refused or reset.
    NoAnswer { reason: String, timed_out: bool },
}

/// One call and how long it took.
#[derive(Debug, Clone)]
pub struct Call {
    pub reply: Reply,
    pub latency: Duration,
}

pub struct WxPayClient {
    http: reqwest::Client,
    base_url: String,
    mchid: String,
    serial_no: String,
    key: Arc<RsaPrivateKey>,
    platform_key: Arc<RsaPublicKey>,
    platform_key_id: String,
}

/// Longest clock difference accepted on a WeChat answer.
const MAX_ANSWER_SKEW_SECS: i64 = 300;

impl WxPayClient {
    pub fn new(
        base_url: &str,
        mchid: &str,
        serial_no: &str,
        key: RsaPrivateKey,
        platform_key: RsaPublicKey,
        platform_key_id: &str,
        timeout: Duration,
    ) -> Result<WxPayClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .user_agent(concat!("lijian/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WxPayClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            mchid: mchid.to_string(),
            serial_no: serial_no.to_string(),
            key: Arc::new(key),
            platform_key: Arc::new(platform_key),
            platform_key_id: platform_key_id.to_string(),
        })
    }

    /// The Authorization header for one request, signed on the calling thread
    /// (public for protocol tests).
    pub fn authorization(&self, method: &str, path: &str, body: &[u8]) -> Result<String, String> {
        let (timestamp, nonce, message) = string_to_sign(method, path, body);
        let signature = self.key.sign_base64(&message).map_err(|e| e.to_string())?;
        Ok(self.authorization_header(timestamp, &nonce, &signature))
    }

    /// [`WxPayClient::authorization`], signed off the async workers.
    async fn authorization_off_workers(&self, method: &str, path: &str, body: &[u8]) -> Result<String, String> {
        let (timestamp, nonce, message) = string_to_sign(method, path, body);
        let key = Arc::clone(&self.key);
        let signature = off_workers(move || key.sign_base64(&message))
            .await
            .and_then(|signed| signed)
            .map_err(|e| e.to_string())?;
        Ok(self.authorization_header(timestamp, &nonce, &signature))
    }

    fn authorization_header(&self, timestamp: i64, nonce: &str, signature: &str) -> String {
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mchid, self.serial_no
        )
    }

    /// Builds and signs the send-coupon request, ready to go. Signing comes
    /// before the wait for a send slot, so that once the slot comes only the
    /// HTTP write is left: work between slot and wire would let sends drift
    /// together at WeChat, whose limit counts arrivals.
    pub async fn prepare(&self, openid: &str, request: &SendCoupon) -> Result<Prepared, Reply> {
        let path = format!("/v3/marketing/favor/users/{openid}/coupons");
        let body =
            serde_json::to_vec(request).map_err(|e| Reply::NoAnswer { reason: e.to_string(), timed_out: false })?;
        let authorization = self
            .authorization_off_workers("POST", &path, &body)
            .await
            .map_err(|e| Reply::NoAnswer { reason: format!("signing failed: {e}"), timed_out: false })?;
        Ok(Prepared { path, body, authorization })
    }

    /// POST /v3/marketing/favor/users/{openid}/coupons, prepared and signed.
    pub async fn send(&self, prepared: Prepared) -> Call {
        let started = Instant::now();
        let reply = self.send_inner(prepared).await;
        Call { reply, latency: started.elapsed() }
    }

    /// Prepares and sends at once (no slot to wait for in between).
    pub async fn send_coupon(&self, openid: &str, request: &SendCoupon) -> Call {
        match self.prepare(openid, request).await {
            Ok(prepared) => self.send(prepared).await,
            Err(reply) => Call { reply, latency: Duration::ZERO },
        }
    }

    async fn send_inner(&self, prepared: Prepared) -> Reply {
        let Prepared { path, body, authorization } = prepared;
        let sent = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("Authorization", authorization)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Reply::NoAnswer { reason: error_chain(&e), timed_out: e.is_timeout() },
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Reply::NoAnswer { reason: error_chain(&e), timed_out: e.is_timeout() },
        };
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if !(200..300).contains(&status) {
            // Stored as written, minus what PostgreSQL cannot hold (a NUL).
            let text = |field: &str, most: usize| {
                let kept: String = json[field].as_str().unwrap_or_default().chars().take(most).collect();
                lijian_core::store::storable(&kept).into_owned()
            };
            return Reply::Refused { http_status: status, code: text("code", 64), message: text("message", 200) };
        }
        if let Err(reason) = self.verify_answer(&headers, &bytes).await {
            return Reply::Unverifiable { http_status: status, reason };
        }
        match json["coupon_id"].as_str() {
            Some(id) if !id.is_empty() => Reply::Issued { coupon_id: id.to_string() },
            _ => Reply::Unverifiable { http_status: status, reason: "answer has no coupon_id".into() },
        }
    }

    /// `{Wechatpay-Timestamp}\n{Wechatpay-Nonce}\n{body}\n` signed by the WeChat Pay
    /// key named in `Wechatpay-Serial`, over the exact bytes received.
    async fn verify_answer(&self, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), String> {
        let get = |name: &str| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string).ok_or(format!("missing {name}"))
        };
        let (timestamp, nonce, signature, serial) = (
            get("Wechatpay-Timestamp")?,
            get("Wechatpay-Nonce")?,
            get("Wechatpay-Signature")?,
            get("Wechatpay-Serial")?,
        );
        if serial != self.platform_key_id {
            return Err(format!("answer signed by unknown serial {serial}"));
        }
        let ts: i64 = timestamp.parse().map_err(|_| "Wechatpay-Timestamp is not a number".to_string())?;
        if (time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() >= MAX_ANSWER_SKEW_SECS {
            return Err("Wechatpay-Timestamp more than 5 minutes from our clock".into());
        }
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let key = Arc::clone(&self.platform_key);
        off_workers(move || key.verify_base64(&message, &signature))
            .await
            .and_then(|verified| verified)
            .map_err(|e| e.to_string())
    }
}

/// A signed send-coupon request waiting for its slot.
pub struct Prepared {
    path: String,
    body: Vec<u8>,
    authorization: String,
}

/// Timestamp (Unix seconds), nonce and `METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n`.
fn string_to_sign(method: &str, path: &str, body: &[u8]) -> (i64, String, Vec<u8>) {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let nonce = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let mut message = format!("{method}\n{path}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    (timestamp, nonce, message)
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
