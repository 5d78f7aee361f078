//! The signing rule checked against things lijian did not write: the original
//! documentation's string, openssl, and the shell example in docs/signing.md.

use std::process::Command;

use lijian_core::signing::{md5_sign, string_to_sign, RsaPrivateKey, RsaPublicKey};

use crate::helpers::{doc_block, fixture, fixture_path, repo_file, spawn_app};

const DOC_BODY: &str =
    r#"{"businessId":"754ea3e3a699404f9b82e8f881107f19","merchantId":"eb1bb305ca3940f8adf1d4e964555699"}"#;
const VECTOR_RSA: &str = "gGkcP0PZv87swclYRh/Z7bDn5S4UHH106Fq0b8nxECY7jg+Z0Rn/o2dQb0NkBAHomXWqZ2vTky5N2PXiQZr1BIy3JLMCF0ksiMW97itxUnsxYyss1SpC1u79LD0hjy4nwguqNHFMuhEl5g24Yoxug5Xc3+KpuIx50u7cUjieIV2ku/Aya2JdstcRZY7Dk8SBJyvFeqZSxcdrMenjgWzOJZBR8cNp5ypgVu9L1sMhSxNmJ0i0l+KcrNwF5dJpfjaukgcP6+GnU7jD667WyKGkNt36zq/4Mo0dU1sw3tfQKMYTbM/9vN4uOoM06B5IrLmWUqLeL59ipubGI2+lhkkR7g==";
const VECTOR_MD5: &str = "131E7475AA5D7B7277A467DB7FAF0B11";

fn doc_string(sign_type: &str) -> Vec<u8> {
    string_to_sign(
        &[
            ("businessId", "754ea3e3a699404f9b82e8f881107f19"),
            ("nonce", "24bc2c17-0fef-440e-ba32-385c47c6cfa4"),
            ("signType", sign_type),
            ("timestamp", "1628772138668"),
        ],
        DOC_BODY.as_bytes(),
    )
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn rsa_vector_matches_lijian_openssl_and_the_docs() {
    let message = doc_string("SHA256-RSA");
    let key = RsaPrivateKey::from_pem(&fixture("merchant-test-private.pem")).expect("key");
    let ours = key.sign_base64(&message).expect("sign");
    let theirs = b64(&openssl(&["dgst", "-sha256", "-sign", &fixture_path("merchant-test-private.pem")], &message));
    assert_eq!(ours, theirs, "lijian and openssl disagree");
    assert_eq!(ours, VECTOR_RSA);
    let docs = std::fs::read_to_string(format!("{}/../../docs/signing.md", env!("CARGO_MANIFEST_DIR"))).expect("docs");
    assert!(
        docs.contains(VECTOR_RSA) && docs.contains(VECTOR_MD5),
        "docs/signing.md must show the vectors the tests check"
    );
}

#[test]
fn md5_vector_matches_openssl() {
    let message = doc_string("MD5");
    let ours = md5_sign(&message, crate::helpers::MD5_KEY);
    let mut input = message.clone();
    input.extend_from_slice(crate::helpers::MD5_KEY.as_bytes());
    let digest = String::from_utf8(openssl(&["dgst", "-md5", "-r"], &input)).expect("utf8");
    let theirs = digest.split_whitespace().next().expect("digest").to_uppercase();
    assert_eq!(ours, theirs);
    assert_eq!(ours, VECTOR_MD5);
}

#[test]
fn openssl_signatures_verify_with_every_accepted_key_form() {
    let message = b"businessId=b&nonce=n&timestamp=1{\"a\":1}";
    let sig = b64(&openssl(&["dgst", "-sha256", "-sign", &fixture_path("merchant-test-private.pem")], message));
    let spki = fixture("merchant-test-public.pem");
    let pkcs1 = fixture("merchant-test-public-pkcs1.pem");
    let bare: String = spki.lines().filter(|l| !l.starts_with("-----")).collect();
    for form in [&spki, &pkcs1, &bare] {
        let key = RsaPublicKey::parse(form).expect("key form accepted");
        assert!(key.verify_base64(message, &sig).is_ok());
        assert!(key.verify_base64(b"businessId=b&nonce=n&timestamp=1{\"a\":2}", &sig).is_err());
    }
    assert!(RsaPublicKey::parse("not a key").is_err());
}

#[tokio::test]
async fn docs_shell_example_places_an_order() {
    let app = spawn_app().await;
    let script = doc_block("docs/signing.md", "merchant-example");
    let file = repo_file("docs/examples/place-order.sh");
    assert_eq!(script, file.trim(), "docs/examples/place-order.sh must be the script shown in docs/signing.md");
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("GATEWAY", app.url(""))
        .env("MERCHANT_ID", crate::helpers::MERCHANT)
        .env("BUSINESS_ID", crate::helpers::BUSINESS)
        .env("PRIVATE_KEY", fixture_path("merchant-test-private.pem"))
        .env("PRODUCT_CODE", crate::helpers::PRODUCT)
        .env("ACTIVITY_ID", crate::helpers::ACTIVITY)
        .env("BIZ_CODE", "shell-1")
        .output()
        .await
        .expect("bash");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("script output: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(answer["status"], 0, "{answer}");
    assert_eq!(answer["data"]["bizCode"], "shell-1");
    assert_eq!(app.take_issue_jobs().await, vec![answer["data"]["orderCode"].as_str().unwrap_or_default().to_string()]);
    app.stop().await;
}
