//! Never hang silently: against a server that accepts TCP and then says nothing
//! (a broker out of file handles does exactly this), a role times out, warns
//! naming the address on each retry, says so in `/readyz`, and still stops
//! within the shutdown grace on SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::roles::{readyz, spawn_role};
use crate::helpers::silent::SilentListener;
use crate::helpers::*;

/// Which server a role is pointed at the silent listener instead of.
#[derive(Clone, Copy)]
enum Silent {
    Broker,
    Database,
}

/// A role whose broker or database never answers: it warns naming the address
/// at least twice (each retry), `/readyz` says 503 naming the server and the
/// address, and SIGTERM stops it within the 5 s grace (`lijian_command`), exit 0.
async fn warns_reports_and_stops(role_name: &str, silent_server: Silent) {
    let app = spawn_app().await;
    let silent = SilentListener::start().await;
    let mut settings = app.settings.clone();
    let (server, wait) = match silent_server {
        Silent::Broker => {
            settings.broker.url = silent.route(&settings.broker.url);
            ("RabbitMQ", Duration::from_secs(10))
        }
        Silent::Database => {
            settings.database.url = silent.route(&settings.database.url);
            ("PostgreSQL", Duration::from_secs(15))
        }
    };
    let role = spawn_role(&settings, role_name);
    let address = silent.addr.to_string();

    let stderr = role.wait_for_warnings(&address, 2, wait).await;
    assert!(stderr.contains("timed out"), "the warning says what happened:\n{stderr}");
    assert!(stderr.contains(server), "the warning names the server:\n{stderr}");
    let (code, body) = readyz(&role.ops).await;
    println!("/readyz: {body}stderr:\n{stderr}");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(server) && body.contains(&address), "readiness names the server's address: {body}");

    let stopped = role.terminate(Duration::from_secs(8));
    println!("{role_name} against a silent {server} exited {:?} after SIGTERM", stopped.took);
    assert!(stopped.took < Duration::from_secs(6), "exit within the shutdown grace: {:?}", stopped.took);
    assert!(stopped.clean, "a requested shutdown exits 0");
    drop(silent);
    app.stop().await;
}

#[tokio::test]
async fn consumer_against_a_silent_broker_warns_reports_and_stops_on_sigterm() {
    warns_reports_and_stops("consumer", Silent::Broker).await;
}

#[tokio::test]
async fn scheduler_against_a_silent_postgres_warns_reports_and_stops_on_sigterm() {
    warns_reports_and_stops("scheduler", Silent::Database).await;
}

#[tokio::test]
async fn migrate_against_a_silent_postgres_gives_up_naming_the_address() {
    let silent = SilentListener::start().await;
    let settings = lijian_core::config::Settings::default();
    let url = silent.route(&std::env::var("LIJIAN_DATABASE_URL").unwrap_or(settings.database.url.clone()));
    let started = Instant::now();
    let mut child = lijian_command(&settings)
        .arg("migrate")
        .env("LIJIAN_DATABASE_URL", &url)
        .env("LIJIAN_DB_CONNECT_TIMEOUT", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn migrate");
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lijian migrate still waiting on a silent PostgreSQL after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&silent.addr.to_string()) && stderr.contains("timed out"), "{stderr}");
}
