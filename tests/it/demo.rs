//! `lijian demo`, as the README tells a newcomer to run it (with its own
//! database and queue prefix so it can run beside the other tests).

use std::process::Output;

use crate::helpers::*;

fn demo(database: &str, prefix: &str, orders: &str, more: &[&str]) -> Output {
    let base = lijian_core::config::Settings::default();
    std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
        .args(["demo", "--orders", orders, "--database", database, "--queue-prefix", prefix, "--timeout", "90"])
        .args(more)
        .env("LIJIAN_DATABASE_URL", std::env::var("LIJIAN_DATABASE_URL").unwrap_or(base.database.url))
        .env("LIJIAN_AMQP_URL", std::env::var("LIJIAN_AMQP_URL").unwrap_or(base.broker.url))
        // Any free port: the two demo tests run side by side.
        .env("LIJIAN_CONSOLE_ADDR", "127.0.0.1:0")
        .output()
        .expect("run lijian demo")
}

/// A database and queue prefix of the test's own, named so that leftovers of a
/// killed run are swept like every other test's.
fn demo_names() -> (String, String) {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let database = format!("lijian_t_{stamp}_demo{:04x}", rand::random::<u16>());
    let prefix = format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    (database, prefix)
}

async fn drop_demo_database(database: &str) {
    let url = with_dbname(&lijian_core::config::Settings::default().database.url, database);
    let url = std::env::var("LIJIAN_DATABASE_URL").map(|u| with_dbname(&u, database)).unwrap_or(url);
    lijian_core::store::drop_database(&url).await.expect("drop demo database");
}

#[tokio::test]
async fn the_demo_runs_end_to_end_and_again() {
    let _machine = share_machine().await;
    let (database, prefix) = demo_names();
    for orders in ["300", "120"] {
        let out = demo(&database, &prefix, orders, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        for expected in [
            format!("coupons     {orders} issued; the simulator issued {orders} to {orders} distinct orders"),
            format!("reports     {orders} delivered, {orders} signatures verified by the merchant, 0 bad"),
            "p50".to_string(),
        ] {
            assert!(stdout.contains(&expected), "summary lacks {expected:?}:\n{stdout}");
        }
        // The console ran beside the roles, with a login made for this run.
        let console = stdout.lines().find_map(|l| l.trim().strip_prefix("console: http://127.0.0.1:"));
        let password = console
            .and_then(|l| l.split_once("password ")?.1.split_once(';').map(|(p, _)| p.to_string()))
            .unwrap_or_else(|| panic!("no console line:\n{stdout}"));
        let url = std::env::var("LIJIAN_DATABASE_URL")
            .map(|u| with_dbname(&u, &database))
            .unwrap_or_else(|_| with_dbname(&lijian_core::config::Settings::default().database.url, &database));
        let store = lijian_core::store::Store::connect(&url, 1).expect("demo store");
        let (operator, hash) = store.operator_password("demo").await.expect("read").expect("the demo operator");
        assert_eq!(operator.role.as_str(), "admin");
        assert!(lijian_console::secrets::verify_password(&password, &hash), "the printed password signs in");
        drop(store);
    }
    drop_demo_database(&database).await;
}

/// `--faults`: WeChat Pay errs, throttles, times out and drops answers; the
/// merchant refuses first attempts; the consumer restarts; orders park on a
/// disabled account and are replayed. Every order still ends with one coupon
/// and one verified report, and the summary counts what was absorbed.
#[tokio::test]
async fn the_demo_with_faults_still_adds_up_and_counts_them() {
    let _machine = share_machine().await;
    let (database, prefix) = demo_names();
    let out = demo(&database, &prefix, "400", &["--faults"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo --faults failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "coupons     410 issued; the simulator issued 410 to 410 distinct orders",
        "reports     410 delivered, 410 signatures verified by the merchant, 0 bad",
        "10 parked orders replayed",
        "[faults] consumer stopped and a fresh one started",
    ] {
        assert!(stdout.contains(expected), "summary lacks {expected:?}:\n{stdout}");
    }
    let number_before = |text: &str| -> i64 {
        let at = stdout.find(text).unwrap_or_else(|| panic!("{text:?} not in:\n{stdout}"));
        stdout[..at].split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(-1)
    };
    assert!(number_before("calls to WeChat Pay retried") > 0, "{stdout}");
    assert!(number_before("POSTs on purpose") > 0, "{stdout}");
    let restarted_at = number_before("final; 10 parked");
    assert!((1..410).contains(&restarted_at), "the consumer restarted mid-run: {stdout}");
    drop_demo_database(&database).await;
}

#[test]
fn the_demo_says_which_service_is_missing_and_how_to_start_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
        .args(["demo", "--orders", "10"])
        .env("LIJIAN_DATABASE_URL", "postgres://postgres@127.0.0.1:1/lijian")
        .env("LIJIAN_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .expect("run lijian demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "PostgreSQL is not reachable at 127.0.0.1:1",
        "RabbitMQ is not reachable at amqp://guest:",
        "rabbitmq-server -detached",
        "docker compose -f deploy/docker-compose.yml up -d",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
}
