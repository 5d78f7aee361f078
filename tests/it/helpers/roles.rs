//! A `lijian` role as a real child process: started against a test's settings,
//! its stderr collected as it comes, stopped with SIGTERM as an init system would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lijian_core::config::Settings;

use super::lijian_command;

/// A running role with its ops address (`/metrics`, `/readyz`).
pub struct Role {
    child: Child,
    pub ops: String,
    stderr: Arc<Mutex<String>>,
    /// Ends when the child's stderr closes: joined so that [`Stopped`] holds
    /// every line the role wrote.
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How a role ended after SIGTERM.
pub struct Stopped {
    pub took: Duration,
    /// Exit code 0.
    pub clean: bool,
    pub stderr: String,
}

/// Starts `lijian ROLE` with short connect timeouts and `RUST_LOG=warn`, so
/// every warning or error it logs is in [`Role::stderr`].
pub fn spawn_role(settings: &Settings, role: &str) -> Role {
    spawn_role_with(settings, role, &[])
}

/// [`spawn_role`] with more environment (settings `lijian_command` does not carry).
pub fn spawn_role_with(settings: &Settings, role: &str, env: &[(&str, &str)]) -> Role {
    let mut child = lijian_command(settings)
        .arg(role)
        .envs(env.iter().copied())
        .env("LIJIAN_AMQP_CONNECT_TIMEOUT", "1s")
        .env("LIJIAN_DB_CONNECT_TIMEOUT", "1s")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        // Any free port: tests run many gateways side by side.
        .env("LIJIAN_HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn role");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (pipe, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut text = sink.lock().expect("stderr lock");
            text.push_str(&line);
            text.push('\n');
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let line = lines
        .find(|l| l.starts_with("metrics and health on "))
        .unwrap_or_else(|| panic!("{role} did not print its metrics address"));
    // Keep draining stdout so the role never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let ops = line.trim_start_matches("metrics and health on ").trim_end_matches("/metrics").to_string();
    Role { child, ops, stderr, reader: Some(reader) }
}

impl Role {
    /// What the role has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits until stderr holds `count` warnings containing `needle`.
    pub async fn wait_for_warnings(&self, needle: &str, count: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.stderr();
            let seen = text.lines().filter(|l| l.contains("WARN") && l.contains(needle)).count();
            if seen >= count {
                return text;
            }
            assert!(Instant::now() < deadline, "expected {count} warnings naming {needle}, got:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (code, body) = readyz(&self.ops).await;
            if code == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "not ready after {within:?}: {body}\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the exit (the test fails, and the role is
    /// killed, after `limit`).
    pub fn terminate(mut self, limit: Duration) -> Stopped {
        let sent = Instant::now();
        std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let took = sent.elapsed();
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Stopped { took, clean: status.success(), stderr: self.stderr() };
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running {limit:?} after SIGTERM; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Role {
    /// A failed test must not leave a role running against a dropped database.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET /readyz`: status code and body.
pub async fn readyz(base: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /readyz");
    (response.status().as_u16(), response.text().await.expect("body"))
}
