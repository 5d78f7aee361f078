//! Open-API requests signed by hand: the string to sign built with `format!`,
//! RSA by aws-lc-rs directly and MD5 by the md5 crate, not with lijian's signing
//! code, so the two check each other.

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use md5::{Digest, Md5};

use super::{fixture, now_ms, ACTIVITY, BUSINESS, MERCHANT, PRODUCT};

/// The fixed test merchant key, parsed by aws-lc-rs directly from the PEM body.
pub fn test_signer() -> KeyPair {
    signer_from_pem(&fixture("merchant-test-private.pem"))
}

/// A PKCS#8 PEM private key (what `lijian keygen` writes), parsed by aws-lc-rs directly.
pub fn signer_from_pem(pem: &str) -> KeyPair {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("fixture base64");
    KeyPair::from_pkcs8(&der).expect("fixture key")
}

pub fn rsa_sign(key: &KeyPair, message: &[u8]) -> String {
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), message, &mut sig).expect("sign");
    base64::engine::general_purpose::STANDARD.encode(sig)
}

pub fn md5_upper(message: &[u8], key: &str) -> String {
    let mut h = Md5::new();
    h.update(message);
    h.update(key.as_bytes());
    hex::encode_upper(h.finalize())
}

/// A request the test builds header by header.
#[derive(Clone)]
pub struct Req {
    pub business_id: String,
    pub nonce: String,
    pub timestamp: String,
    pub sign_type: Option<String>,
    pub sign: String,
    pub body: String,
}

impl Req {
    pub fn new(body: &str) -> Req {
        Req {
            business_id: BUSINESS.into(),
            nonce: uuid::Uuid::new_v4().to_string(),
            timestamp: now_ms().to_string(),
            sign_type: Some("SHA256-RSA".into()),
            sign: String::new(),
            body: body.into(),
        }
    }

    /// The documented string to sign, built independently of lijian's code.
    pub fn string_to_sign(&self) -> String {
        match &self.sign_type {
            Some(st) => format!(
                "businessId={}&nonce={}&signType={st}&timestamp={}{}",
                self.business_id, self.nonce, self.timestamp, self.body
            ),
            None => format!(
                "businessId={}&nonce={}&timestamp={}{}",
                self.business_id, self.nonce, self.timestamp, self.body
            ),
        }
    }

    pub fn signed_rsa(mut self, key: &KeyPair) -> Req {
        self.sign = rsa_sign(key, self.string_to_sign().as_bytes());
        self
    }

    pub fn signed_md5(mut self, md5_key: &str) -> Req {
        self.sign_type = Some("MD5".into());
        self.sign = md5_upper(self.string_to_sign().as_bytes(), md5_key);
        self
    }
}

/// An order body for the seeded merchant.
pub fn order_body(biz_code: &str) -> String {
    order_body_for(MERCHANT, BUSINESS, biz_code)
}

pub fn order_body_for(merchant: &str, business: &str, biz_code: &str) -> String {
    order_body_full(merchant, business, ACTIVITY, biz_code)
}

pub fn order_body_full(merchant: &str, business: &str, activity: &str, biz_code: &str) -> String {
    format!(
        r#"{{"merchantId":"{merchant}","businessId":"{business}","openId":"oUser_{biz_code}","productCode":"{PRODUCT}","activityId":"{activity}","bizCode":"{biz_code}"}}"#
    )
}
