//! Never hang silently: against a server that accepts TCP and then says nothing
//! (a broker out of file handles does exactly this), a role times out, warns
//! naming the address on each retry, says so in `/readyz`, and still stops
//! within the shutdown grace on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Accepts connections and keeps them open without ever writing a byte.
struct SilentListener {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentListener {
    async fn start() -> SilentListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind silent listener");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentListener { addr, task }
    }

    /// `url` with its host:port replaced by this listener's.
    fn route(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) =
            rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A role started with short connect timeouts; its stderr collected as it comes.
struct Role {
    child: Child,
    ops: String,
    stderr: Arc<Mutex<String>>,
}

fn spawn(settings: &lijian_core::config::Settings, role: &str) -> Role {
    let mut child = lijian_command(settings)
        .arg(role)
        .env("LIJIAN_AMQP_CONNECT_TIMEOUT", "1s")
        .env("LIJIAN_DB_CONNECT_TIMEOUT", "1s")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn role");
    let stderr = collect_stderr(&mut child);
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("metrics and health on "))
        .unwrap_or_else(|| panic!("{role} did not print its metrics address"));
    let ops = line.trim_start_matches("metrics and health on ").trim_end_matches("/metrics").to_string();
    Role { child, ops, stderr }
}

impl Role {
    /// Waits until stderr holds `count` lines containing `needle`.
    async fn wait_for_warnings(&self, needle: &str, count: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.stderr.lock().expect("stderr lock").clone();
            let seen = text.lines().filter(|l| l.contains("WARN") && l.contains(needle)).count();
            if seen >= count {
                return text;
            }
            assert!(Instant::now() < deadline, "expected {count} warnings naming {needle}, got:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then how long the process took to exit (killed after `limit`).
    fn terminate(mut self, limit: Duration) -> (Duration, bool) {
        let sent = Instant::now();
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (sent.elapsed(), status.success());
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.lock().expect("stderr lock").clone();
                panic!("still running {limit:?} after SIGTERM; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn readyz(base: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /readyz");
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn consumer_against_a_silent_broker_warns_reports_and_stops_on_sigterm() {
    let app = spawn_app().await;
    let silent = SilentListener::start().await;
    let mut settings = app.settings.clone();
    settings.broker.url = silent.route(&settings.broker.url);
    let role = spawn(&settings, "consumer");
    let address = silent.addr.to_string();

    let stderr = role.wait_for_warnings(&address, 2, Duration::from_secs(10)).await;
    assert!(stderr.contains("timed out"), "the warning says what happened:\n{stderr}");
    let (code, body) = readyz(&role.ops).await;
    println!("/readyz: {body}stderr:\n{stderr}");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("RabbitMQ") && body.contains(&address), "readiness names the broker's address: {body}");

    // The grace is 5 s (lijian_command); the role may use all of it, not more.
    let (took, clean) = role.terminate(Duration::from_secs(8));
    println!("consumer against a silent broker exited {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(6), "exit within the shutdown grace: {took:?}");
    assert!(clean, "a requested shutdown exits 0");
    drop(silent);
    app.stop().await;
}

#[tokio::test]
async fn scheduler_against_a_silent_postgres_warns_reports_and_stops_on_sigterm() {
    let app = spawn_app().await;
    let silent = SilentListener::start().await;
    let mut settings = app.settings.clone();
    settings.database.url = silent.route(&settings.database.url);
    let role = spawn(&settings, "scheduler");
    let address = silent.addr.to_string();

    let stderr = role.wait_for_warnings(&address, 2, Duration::from_secs(15)).await;
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    let (code, body) = readyz(&role.ops).await;
    println!("/readyz: {body}stderr:\n{stderr}");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("PostgreSQL") && body.contains(&address), "readiness names the database's address: {body}");

    let (took, clean) = role.terminate(Duration::from_secs(8));
    println!("scheduler against a silent PostgreSQL exited {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(6), "exit within the shutdown grace: {took:?}");
    assert!(clean, "a requested shutdown exits 0");
    drop(silent);
    app.stop().await;
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
