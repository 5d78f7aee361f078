//! docs/callbacks.md's shell example verifies a real report, and only a real one.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::receiver::Receiver;
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

fn docs_script() -> String {
    let script = doc_block("docs/callbacks.md", "verify-example");
    let file = repo_file("docs/examples/verify-report.sh");
    assert_eq!(script, file.trim(), "docs/examples/verify-report.sh must be the script shown in docs/callbacks.md");
    script
}

fn run(script: &str, report: &crate::helpers::receiver::Received, body: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body).expect("write");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("verify-report.sh")
        .arg(&body_file)
        .env("BUSINESS_ID", report.header("businessId"))
        .env("NONCE", report.header("nonce"))
        .env("TIMESTAMP", report.header("timestamp"))
        .env("SIGN_TYPE", report.header("signType"))
        .env("SIGN", report.header("sign"))
        .env("PLATFORM_PUBLIC_KEY", fixture_path("platform-public.pem"))
        .output()
        .expect("bash");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn shell_example_verifies_a_real_report() {
    let script = docs_script();
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::healthy().await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    app.place_orders("docs", 1, 1).await;
    assert_eq!(receiver.wait_for(1, Duration::from_secs(20)).await, 1);
    let report = receiver.received().remove(0);
    let (ok, stdout) = run(&script, &report, &report.body);
    assert!(ok && stdout.contains("Verified OK"), "{stdout}");
    let tampered = String::from_utf8_lossy(&report.body).replace("\"status\":2", "\"status\":3");
    let (ok, _) = run(&script, &report, tampered.as_bytes());
    assert!(!ok, "a tampered body must not verify");
    // The same key the CLI prints is the one that verifies.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_lijian"))
        .args(["platform", "public-key"])
        .env("LIJIAN_PLATFORM_PRIVATE_KEY", fixture_path("platform-private.pem"))
        .output()
        .expect("lijian platform public-key");
    assert_eq!(String::from_utf8_lossy(&printed.stdout), fixture("platform-public.pem"));
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}

/// docs/examples/callback-receiver.py, run by python3; killed when dropped.
struct PythonReceiver {
    child: std::process::Child,
    url: String,
    printed: std::sync::mpsc::Receiver<String>,
}

impl PythonReceiver {
    fn start() -> PythonReceiver {
        let script = format!("{}/../../docs/examples/callback-receiver.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new("python3")
            .args([&script, "--addr", "127.0.0.1:0", "--public-key", &fixture_path("platform-public.pem")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 on PATH");
        let (tx, printed) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first =
            printed.recv_timeout(Duration::from_secs(10)).expect("the receiver starts (cryptography installed?)");
        let url = first.strip_prefix("listening on ").expect("its address").to_string();
        PythonReceiver { child, url, printed }
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn python_example_verifies_real_reports() {
    let shown = doc_block("docs/callbacks.md", "python-example");
    let receiver_script = repo_file("docs/examples/callback-receiver.py");
    assert!(receiver_script.contains(&shown), "callback-receiver.py must carry the function docs/callbacks.md shows");

    let receiver = PythonReceiver::start();
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    app.set_callback(MERCHANT, &format!("{}/lijian/reports", receiver.url)).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let notifier = app.start_notifier(&app.settings);
    app.place_orders("python", 2, 2).await;
    // Delivered means the receiver answered SUCCESS, which it does only for a
    // report whose signature verified, with header names as our notifier sends them.
    let delivered = "SELECT count(*) FROM reports WHERE outcome = 'delivered'";
    assert_eq!(app.wait_for_count(delivered, 2, Duration::from_secs(20)).await, 2);
    let printed: Vec<String> = receiver.printed.try_iter().collect();
    assert_eq!(printed.iter().filter(|l| l.starts_with("verified report N")).count(), 2, "{printed:?}");

    // A report it cannot verify is refused.
    let forged = reqwest::Client::new()
        .post(format!("{}/lijian/reports", receiver.url))
        .header("businessId", BUSINESS)
        .header("nonce", "n")
        .header("timestamp", "1")
        .header("signType", "SHA256-RSA")
        .header("sign", "AAAA")
        .body(r#"{"notifyId":"Nforged"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status().as_u16(), 401);
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
