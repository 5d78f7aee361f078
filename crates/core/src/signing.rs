//! The original platform's request-signing rule, shared by the gateway (verifying
//! merchants' requests) and the notifier (signing our reports to merchants).
//!
//! String to sign: the auth headers other than `sign`, empty values dropped, as
//! `key=value` sorted by key and joined with `&`, immediately followed by the raw
//! body bytes. `SHA256-RSA` signs it with RSASSA-PKCS1-v1_5/SHA-256 (Base64);
//! `MD5` is uppercase hex of MD5(string ‖ md5Key). See `docs/signing.md`.
//!
//! RSA runs on aws-lc-rs: constant-time private-key operations and about five
//! times the signing rate of the `rsa` crate (see `docs/decisions.md`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Runs RSA work (`work`) on this process's crypto threads ([`crypto_pool`]),
/// where it cannot stall the async workers: an RSA-2048 private-key operation
/// holds a thread for ~0.25 ms, and on a worker every task queued behind it
/// waits that long, the gateway's requests too when roles share a runtime
/// (docs/benchmarks.md, "Co-located roles"). Fails only if the work panicked.
pub async fn off_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, SignError> {
    crate::crypto_pool::run(work).await.ok_or(SignError::SigningFailed)
}

/// Why a key could not be read or a signature could not be checked. The messages
/// name the rule that failed and never contain an expected signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("unsupported signType {0:?}: use SHA256-RSA or MD5")]
    UnknownSignType(String),
    #[error("sign is not valid Base64")]
    SignNotBase64,
    #[error("SHA256-RSA signature does not verify with the merchant's registered public key over the string to sign (sorted auth headers + raw body)")]
    RsaMismatch,
    #[error("MD5 signature does not match MD5(string to sign + MD5 key), uppercase hex")]
    Md5Mismatch,
    #[error("the merchant has no RSA public key registered; sign with MD5 or register a key")]
    NoRsaKey,
    #[error("the merchant has no MD5 key registered; sign with SHA256-RSA")]
    NoMd5Key,
    #[error("public key is not a PEM SubjectPublicKeyInfo, PEM PKCS#1 or Base64 DER RSA key of at least 2048 bits")]
    BadPublicKey,
    #[error("private key is not a PEM PKCS#8 or PKCS#1 RSA key")]
    BadPrivateKey,
    #[error("RSA signing failed")]
    SigningFailed,
}

/// The two signature methods of the original platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    Sha256Rsa,
    Md5,
}

impl SignType {
    /// The `signType` header: absent or empty means `SHA256-RSA`.
    pub fn from_header(value: Option<&str>) -> Result<SignType, SignError> {
        match value.map(str::trim) {
            None | Some("") => Ok(SignType::Sha256Rsa),
            Some(v) if v.eq_ignore_ascii_case("SHA256-RSA") => Ok(SignType::Sha256Rsa),
            Some(v) if v.eq_ignore_ascii_case("MD5") => Ok(SignType::Md5),
            Some(other) => Err(SignError::UnknownSignType(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Sha256Rsa => "SHA256-RSA",
            SignType::Md5 => "MD5",
        }
    }
}

/// Builds the string to sign from the auth headers (name, value) and the raw body.
/// `sign` is excluded, empty values are dropped, keys sorted ascending (byte order).
pub fn string_to_sign(headers: &[(&str, &str)], raw_body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<&(&str, &str)> = headers.iter().filter(|(k, v)| *k != "sign" && !v.is_empty()).collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(raw_body.len() + 160);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(raw_body);
    out
}

/// `MD5` signature: uppercase hex of MD5(string to sign ‖ key).
pub fn md5_sign(string_to_sign: &[u8], md5_key: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(string_to_sign);
    hasher.update(md5_key.as_bytes());
    hex::encode_upper(hasher.finalize())
}

/// Checks an `MD5` signature case-insensitively and in constant time.
pub fn md5_verify(string_to_sign: &[u8], md5_key: &str, sign: &str) -> Result<(), SignError> {
    let expected = md5_sign(string_to_sign, md5_key);
    let given = sign.trim().to_ascii_uppercase();
    if expected.as_bytes().ct_eq(given.as_bytes()).into() {
        Ok(())
    } else {
        Err(SignError::Md5Mismatch)
    }
}

/// An RSA private key that signs with SHA256-RSA (PKCS#1 v1.5).
pub struct RsaPrivateKey {
    key: KeyPair,
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("RsaPrivateKey(..)")
    }
}

impl RsaPrivateKey {
    /// Generates a new RSA-2048 key.
    pub fn generate() -> Result<RsaPrivateKey, SignError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SignError::SigningFailed)?;
        Ok(RsaPrivateKey { key })
    }

    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(text: &str) -> Result<RsaPrivateKey, SignError> {
        let der = pem_body(text).ok_or(SignError::BadPrivateKey)?;
        let key =
            KeyPair::from_pkcs8(&der).or_else(|_| KeyPair::from_der(&der)).map_err(|_| SignError::BadPrivateKey)?;
        Ok(RsaPrivateKey { key })
    }

    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn to_pkcs8_pem(&self) -> Result<String, SignError> {
        let der: aws_lc_rs::encoding::Pkcs8V1Der = self.key.as_der().map_err(|_| SignError::BadPrivateKey)?;
        Ok(pem_encode("PRIVATE KEY", der.as_ref()))
    }

    /// The public half as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    pub fn public_key_pem(&self) -> Result<String, SignError> {
        use aws_lc_rs::signature::KeyPair as _;
        let der: aws_lc_rs::encoding::PublicKeyX509Der =
            self.key.public_key().as_der().map_err(|_| SignError::BadPublicKey)?;
        Ok(pem_encode("PUBLIC KEY", der.as_ref()))
    }

    /// Base64(RSASSA-PKCS1-v1_5 SHA-256 signature of `message`).
    pub fn sign_base64(&self, message: &[u8]) -> Result<String, SignError> {
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(|_| SignError::SigningFailed)?;
        Ok(BASE64.encode(signature))
    }
}

/// An RSA public key that verifies SHA256-RSA signatures.
pub struct RsaPublicKey {
    key: ParsedPublicKey,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPublicKey(..)")
    }
}

impl RsaPublicKey {
    /// Reads a public key in any of the forms merchants hand us: PEM
    /// SubjectPublicKeyInfo, PEM PKCS#1 (`BEGIN RSA PUBLIC KEY`), or bare Base64 DER
    /// of either structure.
    pub fn parse(text: &str) -> Result<RsaPublicKey, SignError> {
        let der = pem_body(text).ok_or(SignError::BadPublicKey)?;
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).map_err(|_| SignError::BadPublicKey)?;
        Ok(RsaPublicKey { key })
    }

    /// Verifies a Base64 SHA256-RSA signature over `message`.
    pub fn verify_base64(&self, message: &[u8], sign: &str) -> Result<(), SignError> {
        let signature = BASE64.decode(sign.trim()).map_err(|_| SignError::SignNotBase64)?;
        self.key.verify_sig(message, &signature).map_err(|_| SignError::RsaMismatch)
    }
}

/// `SHA256:` and the first 16 hex digits of SHA-256 over the DER of a public
/// key as handed in (PEM or Base64), so operators can tell keys apart without
/// printing them: for a PEM SubjectPublicKeyInfo file it is the start of
/// `openssl pkey -pubin -in FILE -outform DER | sha256sum`. None when not key text.
pub fn public_key_fingerprint(text: &str) -> Option<String> {
    let der = pem_body(text)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    Some(format!("SHA256:{}", &hex::encode(digest.as_ref())[..16]))
}

/// The DER bytes inside a PEM block, or of bare Base64 text (whitespace ignored).
fn pem_body(text: &str) -> Option<Vec<u8>> {
    let b64: String =
        text.lines().map(str::trim).filter(|line| !line.starts_with("-----") && !line.is_empty()).collect();
    if b64.is_empty() {
        return None;
    }
    BASE64.decode(b64.as_bytes()).ok()
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_matches_the_original_documentation() {
        let body =
            br#"{"businessId":"754ea3e3a699404f9b82e8f881107f19","merchantId":"eb1bb305ca3940f8adf1d4e964555699"}"#;
        let headers = [
            ("timestamp", "1628772138668"),
            ("signType", "SHA256-RSA"),
            ("sign", "ignored"),
            ("nonce", "24bc2c17-0fef-440e-ba32-385c47c6cfa4"),
            ("businessId", "754ea3e3a699404f9b82e8f881107f19"),
        ];
        let expected = "businessId=754ea3e3a699404f9b82e8f881107f19&nonce=24bc2c17-0fef-440e-ba32-385c47c6cfa4&signType=SHA256-RSA&timestamp=1628772138668{\"businessId\":\"754ea3e3a699404f9b82e8f881107f19\",\"merchantId\":\"eb1bb305ca3940f8adf1d4e964555699\"}";
        assert_eq!(String::from_utf8(string_to_sign(&headers, body)).ok().as_deref(), Some(expected));
    }

    #[test]
    fn empty_values_are_dropped() {
        let s = string_to_sign(&[("nonce", "n"), ("signType", ""), ("businessId", "b")], b"{}");
        assert_eq!(s, b"businessId=b&nonce=n{}");
    }

    #[test]
    fn md5_is_case_insensitive_and_rejects_others() {
        let sig = md5_sign(b"abc", "key");
        assert_eq!(sig, sig.to_uppercase());
        assert!(md5_verify(b"abc", "key", &sig.to_lowercase()).is_ok());
        assert_eq!(md5_verify(b"abd", "key", &sig), Err(SignError::Md5Mismatch));
    }

    #[test]
    fn generated_keys_round_trip_through_pem() -> Result<(), SignError> {
        let private = RsaPrivateKey::generate()?;
        let reread = RsaPrivateKey::from_pem(&private.to_pkcs8_pem()?)?;
        let public = RsaPublicKey::parse(&private.public_key_pem()?)?;
        let sig = reread.sign_base64(b"hello")?;
        assert!(public.verify_base64(b"hello", &sig).is_ok());
        assert_eq!(public.verify_base64(b"hellO", &sig), Err(SignError::RsaMismatch));
        assert_eq!(public.verify_base64(b"hello", "%%%"), Err(SignError::SignNotBase64));
        let pem = private.public_key_pem()?;
        let print = public_key_fingerprint(&pem).unwrap_or_default();
        assert!(print.starts_with("SHA256:") && print.len() == 23, "{print}");
        assert_eq!(public_key_fingerprint(&pem.replace('\n', "\r\n")), Some(print), "line endings do not matter");
        Ok(())
    }
}

#[cfg(test)]
mod props;
