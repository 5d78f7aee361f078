//! Authenticating a merchant's request by the original platform's rules: the auth
//! headers, the ±5 minute timestamp window, the merchant and its IP allowlist,
//! the signature over the raw body, and the once-only nonce — in that order, so a
//! request that fails cheaply never touches the nonce table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderMap;
use lijian_core::signing::{md5_verify, string_to_sign, RsaPublicKey, SignError, SignType};
use lijian_core::status::ApiStatus;
use lijian_core::store::Store;
use serde_json::Value;

use crate::response::ApiError;

/// Longest nonce we store; UUIDs are 36.
const MAX_NONCE_LEN: usize = 64;

/// A request that passed authentication.
pub struct Authenticated {
    pub merchant_id: String,
    /// The body, parsed once after the signature over its raw bytes was checked.
    pub body: Value,
}

/// Parsed RSA keys by merchant, re-parsed whenever the stored key text changes, so
/// a rotated key takes effect on the next request.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, (String, Arc<RsaPublicKey>)>>,
}

impl KeyCache {
    fn get(&self, merchant_id: &str, text: &str) -> Result<Arc<RsaPublicKey>, SignError> {
        if let Ok(keys) = self.keys.read() {
            if let Some((cached_text, key)) = keys.get(merchant_id) {
                if cached_text == text {
                    return Ok(key.clone());
                }
            }
        }
        let key = Arc::new(RsaPublicKey::parse(text)?);
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(merchant_id.to_string(), (text.to_string(), key.clone()));
        }
        Ok(key)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| ApiError::bad_parameter(format!("header {name} must be visible ASCII"))),
    }
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    match header(headers, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::bad_parameter(format!("header {name} is required"))),
    }
}

fn body_text<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ApiError::bad_parameter(format!("{field} is required")))
        }
        Some(_) => Err(ApiError::bad_parameter(format!("{field} must be a string"))),
    }
}

/// Runs every check; on success the caller may act for `merchant_id`.
pub async fn authenticate(
    store: &Store,
    keys: &KeyCache,
    window: Duration,
    headers: &HeaderMap,
    raw_body: &[u8],
    caller: IpAddr,
) -> Result<Authenticated, ApiError> {
    let business_id = required_header(headers, "businessId")?;
    let nonce = required_header(headers, "nonce")?;
    let timestamp = required_header(headers, "timestamp")?;
    let sign = required_header(headers, "sign")?;
    let sign_type_header = header(headers, "signType")?;
    let sign_type = SignType::from_header(sign_type_header).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
    if nonce.len() > MAX_NONCE_LEN {
        return Err(ApiError::bad_parameter(format!("header nonce is longer than {MAX_NONCE_LEN} characters")));
    }

    let millis: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::bad_parameter("header timestamp must be milliseconds since the Unix epoch"))?;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let skew = now_ms.abs_diff(millis);
    if skew > window.as_millis() as u64 {
        return Err(ApiError::new(
            ApiStatus::StaleTimestamp,
            format!("timestamp is {}s away from server time {now_ms}; allowed ±{}s", skew / 1000, window.as_secs()),
        ));
    }

    let body: Value = serde_json::from_slice(raw_body)
        .map_err(|e| ApiError::bad_parameter(format!("body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::bad_parameter("body must be a JSON object"));
    }
    let merchant_id = body_text(&body, "merchantId")?.to_string();
    let body_business_id = body_text(&body, "businessId")?;
    if body_business_id != business_id {
        return Err(ApiError::bad_parameter("header businessId does not match body businessId"));
    }

    let merchant = store
        .merchant_auth(&merchant_id, caller)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "merchant lookup failed");
            ApiError::internal()
        })?
        .filter(|m| m.business_id == business_id)
        .ok_or_else(|| ApiError::new(ApiStatus::NotFound, "merchant not found for this businessId"))?;
    if !merchant.enabled {
        return Err(ApiError::new(ApiStatus::Failure, "merchant is disabled"));
    }
    if !merchant.ip_allowed {
        return Err(ApiError::new(
            ApiStatus::IpNotAllowed,
            format!("address {caller} is not in the merchant's IP allowlist"),
        ));
    }

    // The string to sign uses the headers exactly as sent; signType only when sent.
    let mut auth_headers = vec![("businessId", business_id), ("nonce", nonce), ("timestamp", timestamp)];
    if let Some(st) = sign_type_header {
        auth_headers.push(("signType", st));
    }
    let message = string_to_sign(&auth_headers, raw_body);
    let verdict = match sign_type {
        SignType::Sha256Rsa => match merchant.rsa_public_key.as_deref() {
            Some(text) => keys.get(&merchant_id, text).and_then(|key| key.verify_base64(&message, sign)),
            None => Err(SignError::NoRsaKey),
        },
        SignType::Md5 => match merchant.md5_key.as_deref() {
            Some(key) => md5_verify(&message, key, sign),
            None => Err(SignError::NoMd5Key),
        },
    };
    verdict.map_err(|e| ApiError::new(ApiStatus::BadSignature, e.to_string()))?;

    let fresh = store.consume_nonce(business_id, nonce).await.map_err(|e| {
        tracing::error!(error = %e, "nonce check failed");
        ApiError::internal()
    })?;
    if !fresh {
        return Err(ApiError::new(
            ApiStatus::NonceReused,
            "nonce already used; send a new random nonce with every request",
        ));
    }
    Ok(Authenticated { merchant_id, body })
}
