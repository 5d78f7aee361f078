//! Issue 12, point 9: roles and benches stop cleanly. Closing an AMQP connection
//! while one of its channels is still open makes lapin log
//! `ERROR … invalid channel state: Closing` on the way out, which on-call reads
//! as a fault in every rolling restart; channels are closed first, then the
//! connection. Each role here runs as a real child process, does some work, is
//! stopped with SIGTERM and must exit 0 without a single warning or error line.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::roles::spawn_role;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

/// Lines an operator would have to look into after a routine stop.
fn alarming(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("invalid channel state"))
        .collect()
}

#[tokio::test]
async fn every_role_stops_on_sigterm_without_an_error_line() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let settings = app.consumer_settings(&sim);
    // Work in flight for the consumer and the notifier when they are stopped.
    app.place_orders("exit", 40, 8).await;
    for role_name in ["consumer", "notifier", "scheduler", "gateway", "serve"] {
        let role = spawn_role(&settings, role_name);
        role.wait_ready(Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let stopped = role.terminate(Duration::from_secs(8));
        println!("{role_name} stopped in {:?}", stopped.took);
        assert!(stopped.clean, "{role_name} exits 0 after SIGTERM:\n{}", stopped.stderr);
        assert!(alarming(&stopped.stderr).is_empty(), "{role_name} on SIGTERM:\n{}", stopped.stderr);
    }
    assert!(app.count("SELECT count(*) FROM orders WHERE status = 2").await > 0, "the roles did work");
    stop_shared(app).await;
}

/// A bench builds a whole installation in-process (database, queues, consumer,
/// simulator) and removes it at the end: the path where the closing-channel
/// error showed, and where dropping its database under live connections made
/// each of them warn.
#[tokio::test]
async fn a_bench_removes_what_it_built_without_an_error_line() {
    let app = spawn_app().await;
    let out = lijian_command(&app.settings)
        .args(["bench", "consumer", "--orders", "200", "--concurrency", "16"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run lijian bench consumer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("issued 200/200"), "the bench ran");
    assert!(alarming(&stderr).is_empty(), "bench consumer:\n{stderr}");
    app.stop().await;
}
