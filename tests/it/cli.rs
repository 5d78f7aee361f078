//! The `lijian` binary as an operator uses it: exit codes, messages, and that a
//! refused command stores nothing.

use std::process::Output;

use lijian_core::store::Store;

use crate::helpers::{fixture_path, with_dbname};

struct Cli {
    database_url: String,
}

impl Cli {
    fn new() -> Cli {
        let base = std::env::var("LIJIAN_DATABASE_URL")
            .unwrap_or_else(|_| lijian_core::config::Settings::default().database.url);
        let name =
            format!("lijian_t_{}_cli{:08x}", time::OffsetDateTime::now_utc().unix_timestamp(), rand::random::<u32>());
        Cli { database_url: with_dbname(&base, &name) }
    }

    fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
            .args(args)
            .env("LIJIAN_DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "error")
            .output()
            .expect("run lijian")
    }

    fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "lijian {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must be refused; returns its error message.
    fn refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "lijian {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    async fn count(&self, sql: &str) -> i64 {
        let store = Store::connect(&self.database_url, 1).expect("store");
        store.client().await.expect("client").query_one(sql, &[]).await.expect(sql).get(0)
    }

    async fn drop_database(self) {
        lijian_core::store::drop_database(&self.database_url).await.expect("drop test database");
    }
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_safe_twice() {
    let cli = Cli::new();
    assert!(cli
        .ok(&["migrate"])
        .contains("applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]"));
    assert!(cli.ok(&["migrate"]).contains("up to date"));
    assert_eq!(cli.count("SELECT count(*) FROM lijian_migrations").await, 19);
    cli.drop_database().await;
}

/// Every SQL function comes from its one file in `migrations/functions/`
/// (docs/decisions.md, "SQL functions defined once"): one definition each, no
/// stale overload, and `migrate` puts back one whose text changed or that went
/// missing, and only that one.
#[tokio::test]
async fn sql_functions_come_from_their_files_once() {
    let cli = Cli::new();
    assert!(cli.ok(&["migrate"]).contains("defined SQL functions"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/migrations/functions");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("functions dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let name = p.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
            (name, std::fs::read_to_string(&p).expect("read function file"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "function files: {files:?}");

    let store = Store::connect(&cli.database_url, 1).expect("store");
    let client = store.client().await.expect("client");
    let rows = client
        .query(
            "SELECT p.proname::text, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proname LIKE 'lijian\\_%' ",
            &[],
        )
        .await
        .expect("functions");
    let mut defined: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    defined.sort();
    let names: Vec<&str> = defined.iter().map(|(n, _)| n.as_str()).collect();
    let file_names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, file_names, "one definition per function, one file per function");
    for ((name, body), (_, file)) in defined.iter().zip(&files) {
        assert!(file.contains(body.as_str()), "{name} in the database is not the text of its file");
    }

    // A changed text and a dropped function: both come back, nothing else is touched.
    client
        .batch_execute(
            "UPDATE lijian_functions SET sha256 = 'older' WHERE name = 'lijian_accept_batch';
             DROP FUNCTION lijian_pause_sends(text, interval)",
        )
        .await
        .expect("age two functions");
    let again = cli.ok(&["migrate"]);
    assert!(again.contains("defined SQL functions lijian_accept_batch, lijian_pause_sends\n"), "{again}");
    assert!(!again.contains("applied migrations"), "{again}");
    assert!(cli.ok(&["migrate"]).contains("up to date"));
    assert_eq!(cli.count("SELECT count(*) FROM pg_proc WHERE proname = 'lijian_pause_sends'").await, 1);
    drop(client);
    cli.drop_database().await;
}

#[tokio::test]
async fn keygen_writes_keys_openssl_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("keys");
    let cli = Cli::new();
    cli.ok(&["keygen", "--out", out.to_str().unwrap_or_default()]);
    let private = std::fs::read_to_string(out.join("private.pem")).expect("private");
    let public = std::fs::read_to_string(out.join("public.pem")).expect("public");
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let derived = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(out.join("private.pem"))
        .output()
        .expect("openssl");
    assert_eq!(String::from_utf8_lossy(&derived.stdout), public, "public.pem is the public half of private.pem");
    let text = String::from_utf8_lossy(
        &std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-text", "-in"])
            .arg(out.join("private.pem"))
            .output()
            .expect("openssl")
            .stdout,
    )
    .into_owned();
    assert!(text.contains("2048 bit"), "{text}");
    let again = cli.refused(&["keygen", "--out", out.to_str().unwrap_or_default()]);
    assert!(again.contains("refusing to overwrite"), "{again}");
}

#[tokio::test]
async fn admin_commands_store_what_they_say_and_refuse_bad_input() {
    let cli = Cli::new();
    cli.ok(&["migrate"]);
    let public = fixture_path("merchant-test-public.pem");
    let add = |extra: &[&str]| {
        let mut args = vec!["merchant", "add", "--merchant-id", "m1", "--business-id", "b1", "--name", "Shop"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (extra, expect) in [
        (vec!["--public-key", &public, "--balance", "abc"], "not a decimal number"),
        (vec!["--public-key", &public, "--balance", "1.001"], "more than two decimals"),
        (vec!["--public-key", &public, "--allow-ip", "10.0.0.0/33"], "not an IP address or CIDR"),
        (vec!["--public-key", "/nonexistent.pem"], "reading /nonexistent.pem"),
        (vec!["--public-key", &fixture_path("merchant-test-private.pem").replace("private", "nope")], "reading"),
        (vec![], "--public-key FILE or --md5-key KEY"),
        (vec!["--md5-key", "short"], "at least 16"),
        (vec!["--public-key", &public, "--callback-url", "ftp://x"], "http:// or https://"),
    ] {
        let args = add(&extra);
        let message = cli.refused(&args);
        assert!(message.contains(expect), "{extra:?}: {message}");
    }
    assert_eq!(cli.count("SELECT count(*) FROM merchants").await, 0, "nothing stored by refused commands");

    cli.ok(&add(&[
        "--public-key",
        &public,
        "--allow-ip",
        "203.0.113.0/24",
        "--allow-ip",
        "198.51.100.7",
        "--balance",
        "100.5",
    ]));
    assert!(cli.refused(&add(&["--md5-key", "0123456789abcdef"])).contains("already exists"));
    assert!(cli.ok(&["merchant", "topup", "--merchant-id", "m1", "--amount", "0.25"]).contains("100.75"));
    let negative = cli.refused(&["merchant", "topup", "--merchant-id", "m1", "--amount=-3"]);
    assert!(negative.contains("must not be negative"), "{negative}");
    assert!(cli.refused(&["merchant", "topup", "--merchant-id", "nobody", "--amount", "3"]).contains("not found"));
    let shown = cli.ok(&["merchant", "show", "--merchant-id", "m1"]);
    assert!(
        shown.contains("100.75 yuan") && shown.contains("203.0.113.0/24") && shown.contains("198.51.100.7/32"),
        "{shown}"
    );
    assert_eq!(cli.count("SELECT sum(amount_fen)::bigint FROM balance_ledger").await, 10075);

    assert!(cli
        .refused(&["product", "add", "--product-code", "p1", "--face-value", "10", "--price", "1.234"])
        .contains("--price"));
    cli.ok(&["product", "add", "--product-code", "p1", "--face-value", "10", "--price", "9.5"]);

    let activity = |id: &str, merchant: &str, face: &str, starts: &str, ends: &str| {
        vec![
            "activity",
            "add",
            "--activity-id",
            id,
            "--merchant-id",
            merchant,
            "--stock-id",
            "9856000",
            "--stock-creator-mchid",
            "1900000001",
            "--appid",
            "wx1",
            "--face-value",
            face,
            "--budget",
            "100",
            "--starts",
            starts,
            "--ends",
            ends,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    for (args, expect) in [
        (activity("a1", "m1", "10", "2026-12-01T00:00:00Z", "2027-03-15T00:00:00Z"), "at most 90 days"),
        (activity("a1", "m1", "0.5", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"), "at least 1 yuan"),
        (activity("a1", "m1", "10", "tomorrow", "2027-01-01T00:00:00Z"), "RFC 3339"),
        (activity("a1", "m1", "10", "2027-01-01T00:00:00Z", "2026-12-01T00:00:00Z"), "after --starts"),
        (
            activity("a1", "nobody", "10", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            "merchant nobody does not exist",
        ),
    ] {
        let message = cli.refused(&args);
        assert!(message.contains(expect), "{args:?}: {message}");
    }
    assert_eq!(cli.count("SELECT count(*) FROM activities").await, 0);
    cli.ok(&activity("a1", "m1", "10", "2026-12-01T00:00:00+08:00", "2027-02-28T00:00:00+08:00"));
    assert_eq!(cli.count("SELECT budget FROM activities").await, 100);
    cli.drop_database().await;
}

#[test]
fn example_configuration_file_loads() {
    let path = format!("{}/../../deploy/lijian.example.toml", env!("CARGO_MANIFEST_DIR"));
    let settings =
        lijian_core::config::Settings::load(Some(std::path::Path::new(&path))).expect("example config loads");
    assert_eq!(settings.producer.relay_grace, std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_missing_database_is_named_with_the_fix() {
    // Not migrated: the database does not exist yet.
    let cli = Cli::new();
    let error = cli.refused(&["campaign", "list"]);
    assert!(error.contains("does not exist") && error.contains("lijian migrate"), "{error}");
}
