//! `lijian demo`, as the README tells a newcomer to run it (with its own
//! database and queue prefix so it can run beside the other tests).

use std::process::Output;

use crate::helpers::*;

fn demo(database: &str, prefix: &str, orders: &str) -> Output {
    let base = lijian_core::config::Settings::default();
    std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
        .args(["demo", "--orders", orders, "--database", database, "--queue-prefix", prefix, "--timeout", "90"])
        .env("LIJIAN_DATABASE_URL", std::env::var("LIJIAN_DATABASE_URL").unwrap_or(base.database.url))
        .env("LIJIAN_AMQP_URL", std::env::var("LIJIAN_AMQP_URL").unwrap_or(base.broker.url))
        .output()
        .expect("run lijian demo")
}

#[tokio::test]
async fn the_demo_runs_end_to_end_and_again() {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let database = format!("lijian_t_{stamp}_demo{:04x}", rand::random::<u16>());
    let prefix = format!("t{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    for orders in ["300", "120"] {
        let out = demo(&database, &prefix, orders);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        for expected in [
            format!("coupons     {orders} issued; the simulator issued {orders} to {orders} distinct orders"),
            format!("reports     {orders} delivered, {orders} signatures verified by the merchant, 0 bad"),
            "p50".to_string(),
        ] {
            assert!(stdout.contains(&expected), "summary lacks {expected:?}:\n{stdout}");
        }
    }
    let url = with_dbname(&lijian_core::config::Settings::default().database.url, &database);
    let url = std::env::var("LIJIAN_DATABASE_URL").map(|u| with_dbname(&u, &database)).unwrap_or(url);
    lijian_core::store::drop_database(&url).await.expect("drop demo database");
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
