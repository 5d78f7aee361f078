//! README.md's "Run it for real" works top to bottom: its shell blocks, read from
//! the README when the test runs (so they cannot drift), run in one shell with
//! the debug binary on PATH, against this test's database, broker prefix and
//! free ports. Every order is issued, and every report is delivered to the
//! example receiver, which verified its signature.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

const ORDERS: i64 = 20;

/// The ```sh blocks between "## Run it for real" and the next section.
fn walkthrough() -> String {
    let readme = repo_file("README.md");
    let section = readme.split("\n## Run it for real\n").nth(1).expect("a 'Run it for real' section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let blocks: Vec<&str> =
        section.split("```sh\n").skip(1).map(|rest| rest.split("```").next().unwrap_or_default()).collect();
    assert!(blocks.len() >= 3, "the walkthrough's blocks: {blocks:?}");
    blocks.concat()
}

fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Every process the walkthrough started, its shell included: one process
/// group, stopped (SIGTERM, then SIGKILL) when dropped, also when the test fails.
struct ProcessGroup(u32);

impl ProcessGroup {
    fn signal(&self, signal: &str) -> bool {
        let group = format!("-{}", self.0);
        let status = Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
        status.is_ok_and(|s| s.success())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.signal("-0") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal("-KILL");
    }
}

fn file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The number after `flag` in `text` (`--balance 100000`, `ORDERS=${ORDERS:-10000}`).
fn number_after(text: &str, flag: &str) -> f64 {
    let rest = text.split(flag).nth(1).unwrap_or_else(|| panic!("no {flag} in the walkthrough"));
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    number.parse().unwrap_or_else(|_| panic!("{flag} is followed by {number:?}"))
}

#[test]
fn the_walkthrough_balance_covers_its_orders() {
    let text = walkthrough();
    let (orders, balance, price) =
        (number_after(&text, "ORDERS=${ORDERS:-"), number_after(&text, "--balance "), number_after(&text, "--price "));
    // The bulk orders, and the one placed by hand before them.
    assert!(balance >= (orders + 1.0) * price, "{balance} yuan for {} orders at {price}", orders + 1.0);
}

#[tokio::test]
async fn run_it_for_real_works_top_to_bottom() {
    let script = format!("set -euo pipefail\n{}", walkthrough());
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(format!("{}/../../docs", env!("CARGO_MANIFEST_DIR")), dir.path().join("docs"))
        .expect("docs link");
    let binaries = Path::new(env!("CARGO_BIN_EXE_lijian")).parent().expect("target dir");
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap_or_default());
    let carried = ["LIJIAN_DATABASE_URL", "LIJIAN_AMQP_URL", "LIJIAN_QUEUE_PREFIX"]
        .into_iter()
        // So the roles declare exactly the retry queues the test removes.
        .chain(["LIJIAN_ISSUE_RETRY_SCHEDULE", "LIJIAN_NOTIFY_SCHEDULE"]);
    let settings: Vec<(&str, String)> =
        app.settings.to_env().into_iter().filter(|(key, _)| carried.clone().any(|c| c == *key)).collect();
    let gateway = free_port();
    let mut shell = Command::new("bash");
    shell
        .args(["-c", &script])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(settings)
        .env("LIJIAN_HTTP_ADDR", &gateway)
        .env("SIM", free_port())
        .env("RECEIVER", free_port())
        .env("ORDERS", ORDERS.to_string())
        // Roles side by side, and beside other tests: any free port each.
        .env("LIJIAN_OPS_ADDR", "127.0.0.1:0")
        .env("LIJIAN_SHUTDOWN_GRACE", "5s")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("walkthrough.out")).expect("out"))
        .stderr(std::fs::File::create(dir.path().join("walkthrough.err")).expect("err"))
        .process_group(0);
    let mut child = shell.spawn().expect("bash");
    let _group = ProcessGroup(child.id());
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the walkthrough did not finish:\n{}", file(dir.path(), "walkthrough.err"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (out, err) = (file(dir.path(), "walkthrough.out"), file(dir.path(), "walkthrough.err"));
    assert!(status.success(), "the walkthrough failed ({status}):\n{out}\n{err}");
    assert!(out.contains("\"status\":0"), "place-order.sh placed its order:\n{out}");
    assert!(out.contains(&format!("{ORDERS} requests")), "client orders placed {ORDERS}:\n{out}");

    // The roles it left running finish the work: one coupon per order, one
    // verified report per order.
    let all = ORDERS + 1;
    let issued = "SELECT count(*) FROM orders WHERE merchant_id = 'm1' AND status = 2";
    let delivered = "SELECT count(*) FROM reports r JOIN orders o USING (order_code)
                      WHERE o.merchant_id = 'm1' AND r.outcome = 'delivered'";
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.count(issued).await < all || app.count(delivered).await < all {
        assert!(
            Instant::now() < deadline,
            "issued {} and delivered {} of {all}:\n{err}",
            app.count(issued).await,
            app.count(delivered).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let verified = file(dir.path(), "reports.log").lines().filter(|l| l.starts_with("verified report")).count();
    assert_eq!(verified as i64, all, "the receiver verified every report");
    drop(_group);
    app.stop().await;
}
