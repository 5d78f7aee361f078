//! Authenticating a merchant's request by the original platform's rules: the auth
//! headers, the ±5 minute timestamp window, the merchant and its IP allowlist,
//! the signature over the raw body — in that order, so a request that fails
//! cheaply costs nothing. The once-only nonce is recorded by the caller: inside
//! the accepting transaction for orders, on its own for queries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use lijian_core::signing::{md5_verify, string_to_sign, RsaPublicKey, SignError, SignType};
use lijian_core::status::ApiStatus;
use lijian_core::store::{MerchantAuth, Store};
use lijian_producer::ReplayGuard;
use serde_json::Value;

use crate::response::ApiError;

/// Longest nonce we store; UUIDs are 36.
const MAX_NONCE_LEN: usize = 64;

/// A request that passed authentication.
pub struct Authenticated {
    pub merchant_id: String,
    /// Not yet recorded: the caller records it, in the order's own transaction when
    /// placing an order, or with [`consume_nonce`] otherwise.
    pub replay_guard: ReplayGuard,
    /// The body, parsed once after the signature over its raw bytes was checked.
    pub body: Value,
}

/// Merchants' credentials with their RSA key parsed, kept for a short time so a
/// campaign's requests do not each pay a database round trip and a key parse.
/// Changes made with `lijian merchant …` (disable, key, allowlist) apply to new
/// requests within `ttl`.
pub struct MerchantCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, Arc<CachedMerchant>)>>,
}

pub struct CachedMerchant {
    pub auth: MerchantAuth,
    /// The live RSA keys that parse, newest first (an unreadable one is skipped).
    pub rsa_keys: Vec<RsaPublicKey>,
}

impl MerchantCache {
    pub fn new(ttl: Duration) -> MerchantCache {
        MerchantCache { ttl, entries: RwLock::new(HashMap::new()) }
    }

    async fn get(&self, store: &Store, merchant_id: &str) -> Result<Option<Arc<CachedMerchant>>, ApiError> {
        if let Ok(entries) = self.entries.read() {
            if let Some((at, merchant)) = entries.get(merchant_id) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(merchant.clone()));
                }
            }
        }
        let Some(auth) = store.merchant_auth(merchant_id).await.map_err(|e| {
            tracing::error!(error = %e, "merchant lookup failed");
            ApiError::internal()
        })?
        else {
            return Ok(None);
        };
        let rsa_keys = auth.rsa_public_keys.iter().filter_map(|text| RsaPublicKey::parse(text).ok()).collect();
        let merchant = Arc::new(CachedMerchant { auth, rsa_keys });
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(merchant_id.to_string(), (Instant::now(), merchant.clone()));
        }
        Ok(Some(merchant))
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

/// Where a request names its merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `merchantId` and `businessId` in the body, both required (placing orders).
    Body,
    /// The `businessId` header; the body's `merchantId` and `businessId` are
    /// optional and must match when present (the original platform's order query).
    Header,
}

fn optional_body_text<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_parameter(format!("{field} must be a string"))),
    }
}

/// The one merchant of a businessId; several share it only by an operator's
/// choice, and then the body must say which.
async fn merchant_of_business(store: &Store, business_id: &str) -> Result<String, ApiError> {
    let mut found = store.merchants_of_business(business_id).await.map_err(|e| {
        tracing::error!(error = %e, "merchant lookup failed");
        ApiError::internal()
    })?;
    match found.len() {
        0 => Err(ApiError::new(ApiStatus::NotFound, "merchant not found for this businessId")),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::bad_parameter("merchantId is required: several merchants share this businessId")),
    }
}

/// Runs every check; on success the caller may act for `merchant_id`.
pub async fn authenticate(
    store: &Store,
    cache: &MerchantCache,
    window: Duration,
    request: (&HeaderMap, &[u8]),
    caller: IpAddr,
    naming: Naming,
) -> Result<Authenticated, ApiError> {
    let (headers, raw_body) = request;
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
    let merchant_id = match naming {
        Naming::Body => {
            let merchant_id = body_text(&body, "merchantId")?.to_string();
            if body_text(&body, "businessId")? != business_id {
                return Err(ApiError::bad_parameter("header businessId does not match body businessId"));
            }
            merchant_id
        }
        Naming::Header => {
            if optional_body_text(&body, "businessId")?.is_some_and(|b| b != business_id) {
                return Err(ApiError::bad_parameter("header businessId does not match body businessId"));
            }
            match optional_body_text(&body, "merchantId")? {
                Some(merchant_id) => merchant_id.to_string(),
                None => merchant_of_business(store, business_id).await?,
            }
        }
    };

    let merchant = cache
        .get(store, &merchant_id)
        .await?
        .filter(|m| m.auth.business_id == business_id)
        .ok_or_else(|| ApiError::new(ApiStatus::NotFound, "merchant not found for this businessId"))?;
    if !merchant.auth.enabled {
        return Err(ApiError::new(ApiStatus::Failure, "merchant is disabled"));
    }
    if !merchant.auth.allows(caller) {
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
    // During a key rotation the merchant has more than one live key: any verifies.
    let verdict = match sign_type {
        SignType::Sha256Rsa => {
            let none =
                if merchant.auth.rsa_public_keys.is_empty() { SignError::NoRsaKey } else { SignError::BadPublicKey };
            verify_with_any(&merchant.rsa_keys, none, |key| key.verify_base64(&message, sign))
        }
        SignType::Md5 => {
            verify_with_any(&merchant.auth.md5_keys, SignError::NoMd5Key, |key| md5_verify(&message, key, sign))
        }
    };
    verdict.map_err(|e| ApiError::new(ApiStatus::BadSignature, e.to_string()))?;

    let replay_guard = ReplayGuard { business_id: business_id.to_string(), nonce: nonce.to_string() };
    Ok(Authenticated { merchant_id, replay_guard, body })
}

/// Ok when one of `keys` verifies; otherwise the last key's complaint, or `none`
/// when there is no key to try.
fn verify_with_any<K>(
    keys: &[K],
    none: SignError,
    verify: impl Fn(&K) -> Result<(), SignError>,
) -> Result<(), SignError> {
    let mut verdict = Err(none);
    for key in keys {
        verdict = verify(key);
        if verdict.is_ok() {
            break;
        }
    }
    verdict
}

/// Records the nonce on its own (for requests that do not place an order).
pub async fn consume_nonce(store: &Store, guard: &ReplayGuard) -> Result<(), ApiError> {
    let fresh = store.consume_nonce(&guard.business_id, &guard.nonce).await.map_err(|e| {
        tracing::error!(error = %e, "nonce check failed");
        ApiError::internal()
    })?;
    if !fresh {
        return Err(ApiError::new(
            ApiStatus::NonceReused,
            "nonce already used; send a new random nonce with every request",
        ));
    }
    Ok(())
}
