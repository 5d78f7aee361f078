//! Issue 12, point 8: secrets stay off command lines and screens. MD5 keys come
//! from a file or stdin; the demo prints database URLs without their password.

use std::io::Write;
use std::process::Stdio;

use crate::helpers::*;

const INFO: &str = "/v1/openapi/order/info";

/// The merchant signs a query with `key`: status 7 (no such order) means the
/// signature verified, 2 that it did not.
async fn md5_query_status(app: &TestApp, business: &str, key: &str) -> i64 {
    let mut req = Req::new(r#"{"orderCode":"LJ-none"}"#);
    req.business_id = business.into();
    app.send(INFO, &req.signed_md5(key)).await["status"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn md5_keys_come_from_a_file_or_stdin() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("md5.key");
    std::fs::write(&file, "file-md5-key-0123456789\n").expect("key file");
    let add = |merchant: &str, source: &str| {
        let mut command = lijian_command(&app.settings);
        command.args(["merchant", "add", "--merchant-id", merchant, "--business-id", &format!("b-{merchant}")]);
        command.args(["--name", merchant, "--md5-key-file", source]);
        command
    };
    let out = add("m-file", file.to_str().expect("path")).output().expect("run lijian");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut child = add("m-stdin", "-").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"stdin-md5-key-0123456789\n").expect("write key");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(md5_query_status(&app, "b-m-file", "file-md5-key-0123456789").await, 7);
    assert_eq!(md5_query_status(&app, "b-m-stdin", "stdin-md5-key-0123456789").await, 7);
    assert_eq!(md5_query_status(&app, "b-m-stdin", "wrong-md5-key-0123456789").await, 2);

    // Both ways at once is refused, and so is an empty file.
    let both = add("m-both", file.to_str().expect("path")).args(["--md5-key", "x".repeat(20).as_str()]).output();
    assert!(!both.expect("run").status.success());
    std::fs::write(&file, "\n").expect("empty key file");
    let empty = add("m-empty", file.to_str().expect("path")).output().expect("run");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("holds no key"));
    app.stop().await;
}

/// PostgreSQL here trusts local connections, so any password works: the demo
/// runs with one and must not print it.
#[tokio::test]
async fn the_demo_prints_no_database_password() {
    let _machine = share_machine().await;
    let base = std::env::var("LIJIAN_DATABASE_URL").unwrap_or(lijian_core::config::Settings::default().database.url);
    let Some(with_password) =
        base.contains("://postgres@").then(|| base.replace("://postgres@", "://postgres:s3cret-pw@"))
    else {
        eprintln!("skipped: LIJIAN_DATABASE_URL has its own credentials");
        return;
    };
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let database = format!("lijian_t_{stamp}_demo{:04x}", rand::random::<u16>());
    let prefix = format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let base_settings = lijian_core::config::Settings::default();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
        .args(["demo", "--orders", "20", "--database", &database, "--queue-prefix", &prefix, "--timeout", "60"])
        .env("LIJIAN_DATABASE_URL", &with_password)
        .env("LIJIAN_AMQP_URL", std::env::var("LIJIAN_AMQP_URL").unwrap_or(base_settings.broker.url))
        .output()
        .expect("run lijian demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("LIJIAN_DATABASE_URL=postgres://postgres:***@"), "{stdout}");
    assert!(!stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"), "password printed:\n{stdout}\n{stderr}");
    lijian_core::store::drop_database(&with_dbname(&base, &database)).await.expect("drop demo database");
}
