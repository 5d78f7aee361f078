//! Property tests for the string to sign and the MD5 rule: a merchant's SDK
//! builds the same string independently, so any header set, in any order and
//! with any body, must give one string, and any change to it must break the sign.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{md5_sign, md5_verify, string_to_sign, SignError};

/// The documented rule built another way: a sorted map, then `format!`.
fn reference(headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let kept: BTreeMap<&str, &str> =
        headers.iter().filter(|(k, v)| k != "sign" && !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let joined: Vec<String> = kept.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = joined.join("&").into_bytes();
    out.extend_from_slice(body);
    out
}

/// Distinct header names as merchants send them (the original platform's names
/// and `sign`, plus arbitrary ones), values possibly empty.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("businessId".to_string()),
        Just("timestamp".to_string()),
        Just("nonce".to_string()),
        Just("signType".to_string()),
        Just("sign".to_string()),
        "[A-Za-z][A-Za-z0-9_-]{0,12}",
    ];
    prop::collection::btree_map(name, "[ -~]{0,20}", 0..8).prop_map(|m| m.into_iter().collect())
}

proptest! {
    /// Matches the reference whatever the header order.
    #[test]
    fn one_string_whatever_the_header_order(
        headers in headers().prop_shuffle(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        prop_assert_eq!(string_to_sign(&pairs, &body), reference(&headers, &body));
    }

    /// The sign verifies in any letter case, and a changed body byte or another
    /// key never verifies.
    #[test]
    fn md5_verifies_only_the_signed_bytes(
        message in prop::collection::vec(any::<u8>(), 1..128),
        key in "[A-Za-z0-9]{8,32}",
        flip in any::<prop::sample::Index>(),
    ) {
        let sign = md5_sign(&message, &key);
        prop_assert_eq!(md5_verify(&message, &key, &sign.to_ascii_lowercase()), Ok(()));
        let mut changed = message.clone();
        let i = flip.index(changed.len());
        changed[i] ^= 0x01;
        prop_assert_eq!(md5_verify(&changed, &key, &sign), Err(SignError::Md5Mismatch));
        prop_assert_eq!(md5_verify(&message, &format!("{key}x"), &sign), Err(SignError::Md5Mismatch));
    }
}
