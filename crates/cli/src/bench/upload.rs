//! `lijian bench upload`: the console's streamed upload against `lijian load`.
//! Two generated campaign files of the same size and share of bad rows (other
//! bizCodes, so neither load sees the other's rows as duplicates): the first
//! through `lijian load` (child process), the second uploaded by token to
//! `POST /campaigns` of `lijian console` (child process), streamed from disk.
//! Reported: both times and their ratio (goal ≤ 1.5×), and the console's
//! memory growth during the upload (goal ≤ 150 MB), sampled from
//! /proc/<pid>/status (VmRSS every 20 ms; VmHWM as the kernel saw it).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lijian_core::config::Settings;
use lijian_core::signing::RsaPrivateKey;

use super::common::BenchEnv;
use super::load::{run_load, write_campaign_as};

pub async fn run(base: &Settings, rows: usize, bad_per_mille: usize) -> anyhow::Result<()> {
    let key = RsaPrivateKey::generate()?;
    let env = BenchEnv::create(base, &key.public_key_pem()?).await?;
    let outcome = measure(&env, rows, bad_per_mille).await;
    env.destroy().await;
    outcome
}

async fn measure(env: &BenchEnv, rows: usize, bad_per_mille: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cli_file, web_file) = (dir.path().join("cli.csv"), dir.path().join("web.csv"));
    let bad = write_campaign_as(&cli_file, rows, bad_per_mille, "C")?;
    write_campaign_as(&web_file, rows, bad_per_mille, "W")?;
    let size = std::fs::metadata(&web_file)?.len();
    println!("campaign files: {rows} rows ({} bad), {:.1} MB each", bad.len(), size as f64 / 1e6);

    let cli = run_load(env, &cli_file, "cli").await?;
    println!(
        "lijian load:               {:>6.1} s = {:>7.0} rows/s, peak RSS {:.0} MB",
        cli.elapsed.as_secs_f64(),
        rows as f64 / cli.elapsed.as_secs_f64(),
        cli.peak_rss_kb as f64 / 1024.0
    );

    let console = Console::start(env).await?;
    let outcome = upload(&console, &web_file, size).await;
    console.stop().await;
    let web = outcome?;
    let ratio = web.elapsed.as_secs_f64() / cli.elapsed.as_secs_f64();
    let growth_mb = web.peak_rss_kb.saturating_sub(web.rss_before_kb) as f64 / 1024.0;
    println!(
        "console POST /campaigns:   {:>6.1} s = {:>7.0} rows/s ({ratio:.2}× lijian load)",
        web.elapsed.as_secs_f64(),
        rows as f64 / web.elapsed.as_secs_f64()
    );
    println!(
        "  console RSS {:.0} MB before, {:.0} MB at most during the upload (+{growth_mb:.0} MB); VmHWM {:.0} MB",
        web.rss_before_kb as f64 / 1024.0,
        web.peak_rss_kb as f64 / 1024.0,
        web.hwm_kb as f64 / 1024.0
    );

    let good = (rows - bad.len()) as u64;
    let rejected = rejected_lines(&web.rejects)?;
    let checks = [
        ("the upload accepted exactly the good rows", web.accepted == good),
        ("its rejects file lists exactly the bad lines", rejected == bad),
        ("≤ 1.5× lijian load's time", ratio <= 1.5),
        ("console memory growth ≤ 150 MB", growth_mb <= 150.0),
    ];
    let mut failed = false;
    for (what, ok) in checks {
        println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
        failed |= !ok;
    }
    if failed {
        bail!("the upload benchmark missed a goal");
    }
    Ok(())
}

/// `lijian console` as a child process with an admin's API token.
struct Console {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    token: String,
}

fn lijian(env: &BenchEnv) -> anyhow::Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .env("LIJIAN_DATABASE_URL", &env.settings.database.url)
        .env("LIJIAN_AMQP_URL", &env.settings.broker.url)
        .env("LIJIAN_QUEUE_PREFIX", &env.settings.broker.queue_prefix)
        .stderr(Stdio::null());
    Ok(command)
}

/// The last line a `lijian …` command printed (the secret it prints once).
async fn last_line(env: &BenchEnv, args: &[&str]) -> anyhow::Result<String> {
    let out = lijian(env)?.args(args).stdout(Stdio::piped()).output().await?;
    if !out.status.success() {
        bail!("lijian {} failed", args.join(" "));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().last().unwrap_or_default().trim().to_string())
}

impl Console {
    async fn start(env: &BenchEnv) -> anyhow::Result<Console> {
        last_line(env, &["operator", "add", "--name", "bench", "--role", "admin"]).await?;
        let token = last_line(env, &["operator", "token", "--name", "bench"]).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let child = lijian(env)?
            .arg("console")
            .env("LIJIAN_CONSOLE_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting lijian console")?;
        let pid = child.id().unwrap_or(0);
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                // One authenticated page first, so the baseline is a console that has served.
                http.get(format!("{base}/campaigns")).bearer_auth(&token).send().await?;
                return Ok(Console { child, pid, base, token });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("lijian console did not answer on {base}")
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

struct Upload {
    elapsed: Duration,
    accepted: u64,
    rss_before_kb: u64,
    peak_rss_kb: u64,
    hwm_kb: u64,
    rejects: String,
}

async fn upload(console: &Console, file: &Path, size: u64) -> anyhow::Result<Upload> {
    let rss_before_kb = status_kb(console.pid, "VmRSS:");
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(file).await?,
        64 * 1024,
    ));
    let form = reqwest::multipart::Form::new()
        .text("merchant_id", "bench-m")
        .text("campaign", "web")
        .part("file", reqwest::multipart::Part::stream_with_length(body, size).file_name("web.csv"));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let sending = http
        .post(format!("{}/campaigns", console.base))
        .bearer_auth(&console.token)
        .header(reqwest::header::ACCEPT, "application/json")
        .multipart(form)
        .send();
    tokio::pin!(sending);
    let mut peak_rss_kb = rss_before_kb;
    let answer = loop {
        peak_rss_kb = peak_rss_kb.max(status_kb(console.pid, "VmRSS:"));
        tokio::select! {
            answer = &mut sending => break answer?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let elapsed = started.elapsed();
    let status = answer.status();
    let loaded: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the upload was refused: {status} {loaded}");
    }
    let rejects = http
        .get(format!("{}/campaigns/web/rejects", console.base))
        .bearer_auth(&console.token)
        .send()
        .await?
        .text()
        .await?;
    Ok(Upload {
        elapsed,
        accepted: loaded["accepted"].as_u64().unwrap_or(0),
        rss_before_kb,
        peak_rss_kb,
        hwm_kb: status_kb(console.pid, "VmHWM:"),
        rejects,
    })
}

/// A `kB` line of /proc/<pid>/status (0 once the process is gone).
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rejected_lines(csv_text: &str) -> anyhow::Result<BTreeSet<u64>> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut lines = BTreeSet::new();
    for record in reader.byte_records() {
        let record = record?;
        lines.insert(std::str::from_utf8(record.get(0).unwrap_or_default())?.parse()?);
    }
    Ok(lines)
}
