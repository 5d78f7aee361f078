//! WeChat Pay API v3 signatures as the platform side sees them.

use std::collections::HashMap;

use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};

/// The parts of a `WECHATPAY2-SHA256-RSA2048` Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub signature: String,
    pub timestamp: String,
    pub serial_no: String,
}

/// Parses `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`.
pub fn parse_authorization(header: &str) -> Result<Authorization, String> {
    let rest = header
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
        .ok_or("Authorization must start with WECHATPAY2-SHA256-RSA2048")?;
    let mut fields = HashMap::new();
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or("Authorization fields are key=\"value\"")?;
        let value =
            value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or("Authorization values are quoted")?;
        fields.insert(key.to_string(), value.to_string());
    }
    let mut take = |k: &str| fields.remove(k).ok_or(format!("Authorization lacks {k}"));
    Ok(Authorization {
        mchid: take("mchid")?,
        nonce_str: take("nonce_str")?,
        signature: take("signature")?,
        timestamp: take("timestamp")?,
        serial_no: take("serial_no")?,
    })
}

/// Verifies the request signature: SHA256withRSA over
/// `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`.
pub fn verify_request(
    key: &RsaPublicKey,
    auth: &Authorization,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), String> {
    let mut message = format!("{method}\n{path_and_query}\n{}\n{}\n", auth.timestamp, auth.nonce_str).into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    key.verify_base64(&message, &auth.signature).map_err(|e| e.to_string())
}

/// The four `Wechatpay-*` headers for an answer body.
pub fn sign_response(key: &RsaPrivateKey, serial: &str, body: &[u8]) -> Result<Vec<(&'static str, String)>, String> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    let signature = key.sign_base64(&message).map_err(|e| e.to_string())?;
    Ok(vec![
        ("Wechatpay-Timestamp", timestamp),
        ("Wechatpay-Nonce", nonce),
        ("Wechatpay-Signature", signature),
        ("Wechatpay-Serial", serial.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_header() {
        let h = r#"WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="uOVR==",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C""#;
        let a = parse_authorization(h).expect("parses");
        assert_eq!(a.mchid, "1900009191");
        assert_eq!(a.signature, "uOVR==");
        assert!(parse_authorization("Bearer x").is_err());
        assert!(parse_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid="1""#).is_err());
    }
}
