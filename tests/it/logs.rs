//! What roles write to their logs: no colour codes unless a person is watching
//! (and never with NO_COLOR), each role under its own target, no INFO line per
//! report that had nowhere to go; and `merchant show` counts orders by name.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

/// A role run as a child process, stdout and stderr pipes (not terminals).
struct Piped {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Piped {
    fn start(settings: &lijian_core::config::Settings, role: &str) -> Piped {
        let mut child = lijian_command(settings)
            .arg(role)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn role");
        let stderr = collect_stderr(&mut child);
        let mut stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Piped { child, stderr }
    }

    async fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stderr.lock().expect("stderr lock").contains(needle) {
            let text = self.stderr.lock().expect("stderr lock").clone();
            assert!(Instant::now() < deadline, "no {needle:?} within {within:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, wait for the exit; everything it wrote to stderr.
    fn stop(mut self) -> String {
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        let text = self.stderr.lock().expect("stderr lock").clone();
        text
    }
}

/// The target of each log line: `2026-…Z  INFO lijian_consumer: message`.
fn targets(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let level = words.nth(1)?;
            if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level) {
                return None;
            }
            words.next()?.strip_suffix(':').map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn each_role_logs_under_its_own_target_without_colour_codes_in_a_pipe() {
    let app = spawn_app().await;
    let settings = app.settings.clone();
    for (role, target, ready) in [
        ("consumer", "lijian_consumer", "consuming jobs"),
        ("notifier", "lijian_notifier", "consuming jobs"),
        ("scheduler", "lijian_producer::scheduler", "serving /metrics"),
    ] {
        let child = Piped::start(&settings, role);
        child.wait_for(ready, Duration::from_secs(20)).await;
        let log = child.stop();
        assert!(!log.contains('\x1b'), "{role}: escape codes in a pipe:\n{log:?}");
        let ours: Vec<String> = targets(&log).into_iter().filter(|t| t.starts_with("lijian")).collect();
        assert!(ours.len() >= 2, "{role}: too few lines to judge:\n{log}");
        for t in &ours {
            assert!(t.starts_with(target), "{role} logged under {t}, not {target}:\n{log}");
        }
    }
    app.stop().await;
}

/// Runs `lijian scheduler` on a terminal (a pseudo-terminal from `script`)
/// until `timeout` stops it with SIGTERM; what it wrote there.
fn on_a_terminal(settings: &lijian_core::config::Settings, no_color: Option<&str>) -> Vec<u8> {
    let lijian = env!("CARGO_BIN_EXE_lijian");
    let role = lijian_command(settings);
    let mut script = std::process::Command::new("script");
    script
        .args(["-qfec", &format!("timeout -s TERM 3 {lijian} scheduler"), "/dev/null"])
        .envs(role.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let mut child = script.spawn().expect("script (util-linux)");
    let mut bytes = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut bytes).expect("read");
    let _ = child.wait();
    bytes
}

#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let app = spawn_app().await;
    let coloured = on_a_terminal(&app.settings, None);
    let text = String::from_utf8_lossy(&coloured);
    assert!(text.contains("serving /metrics"), "{text}");
    assert!(coloured.contains(&0x1b), "a terminal gets colour:\n{text:?}");
    let plain = on_a_terminal(&app.settings, Some("1"));
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("serving /metrics"), "{text}");
    assert!(!plain.contains(&0x1b), "NO_COLOR=1 means no escape codes:\n{text:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_report_without_callback_is_no_info_line_and_merchant_show_names_statuses() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = Piped::start(&app.settings, "notifier");
    notifier.wait_for("consuming jobs", Duration::from_secs(20)).await;
    app.place_orders("quiet", 3, 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.count("SELECT count(*) FROM reports WHERE outcome = 'no_callback'").await < 3 {
        assert!(Instant::now() < deadline, "the notifier did not close the reports");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = notifier.stop();
    assert!(!log.contains("no callbackUrl"), "one INFO line per report without a callback:\n{log}");
    assert!(log.contains("consuming jobs"), "the notifier logged at INFO:\n{log}");

    // With no consumer left, one more order stays accepted.
    consumer.stop().await;
    assert_eq!(app.order("quiet-open").await["status"], 0);
    let shown = lijian_ok(&app, &["merchant", "show", "--merchant-id", MERCHANT]);
    let orders = shown.lines().find(|l| l.starts_with("orders")).unwrap_or_default();
    assert!(orders.contains("3 issued (status 2)"), "{shown}");
    assert!(orders.contains("1 accepted (status 0)"), "{shown}");
    stop_shared(app).await;
}
